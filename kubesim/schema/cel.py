"""CEL for ``x-kubernetes-validations``: parsed by celpy, compiled to Python closures.

Why this exists: the apiserver evaluates CRD validation rules with cel-go, including the
Kubernetes extension libraries (strings, lists, sets, regex, quantity). ``celpy`` (cel-python,
PyPI) parses CEL
faithfully, but its tree-walking interpreter needs about 2 s for ``self.all(w, ...)`` over
10,000 list items and has no ``replace``/``lowerAscii``/``isSorted``; its transpiler mode breaks
``has()`` and custom functions. So this module keeps celpy's parser and compiles the parse tree
once per rule into nested Python closures working directly on decoded JSON (dict, list, str,
int, float, bool, None), with cel-go's semantics for what rules use: short-circuit ``&&``/``||``
that absorb errors, ``has()`` as a presence test, the comprehension macros, heterogeneous
numeric equality, truncating integer division, and the Kubernetes property-name escaping.
Expressions using something this compiler does not know (timestamps, durations, bytes) fall
back to celpy's interpreter, so they still work, only slower. Rules calling what neither
knows (url, ip, cidr) fail when they run; optionals (``.?``) and two-variable comprehensions
are rejected when the CRD is created. Uints are
plain ints here, so ``type(1u) == type(1)``. On cel-spec's simple conformance files
(basic, comparisons, conversions, fields, fp/integer math, lists, logic, macros, strings)
765 of 831 runnable cases pass; the rest are protobuf messages, uint typing, and syntax or
macros Kubernetes 1.32 does not offer.

Docs: https://kubernetes.io/docs/reference/using-api/cel/ and
https://github.com/google/cel-spec/blob/master/doc/langdef.md
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

import celpy
import lark
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, celstr

__all__ = ["CelCompileError", "CelError", "CompiledExpression", "compile_expression"]

Activation = dict[str, Any]
Evaluator = Callable[[Activation], Any]


class CelError(Exception):
    """A CEL evaluation error (cel-go's ``types.Err``): no such key, no such overload, ..."""


class CelCompileError(Exception):
    """The expression does not parse or references something undeclared."""


class _Unsupported(Exception):
    """Internal: the closure compiler does not handle this node; use celpy's interpreter."""


@dataclass(frozen=True)
class _CelType:
    """A CEL type value (``int``, ``string`` ...) as returned by ``type(x)``."""

    name: str


_TYPE_NAMES: Final = (
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
)
_TYPES: Final = {name: _CelType(name) for name in _TYPE_NAMES}
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

# Kubernetes escapes property names that are CEL keywords or contain characters CEL
# identifiers cannot hold (https://kubernetes.io/docs/reference/using-api/cel/#escaping).
_CEL_RESERVED: Final = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)


def unescape_property_name(name: str) -> str:
    """The JSON property a CEL identifier denotes (``__dash__`` -> ``-``, ``__in__`` -> ``in``)."""
    if "__" not in name:
        return name
    if name.startswith("__") and name.endswith("__") and name[2:-2] in _CEL_RESERVED:
        return name[2:-2]
    return (
        name.replace("__underscores__", "\0")
        .replace("__dot__", ".")
        .replace("__dash__", "-")
        .replace("__slash__", "/")
        .replace("\0", "__")
    )


def _type_name(value: Any) -> str:
    if value is None:
        return "null_type"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, _CelType):
        return "type"
    if isinstance(value, Quantity):
        return "kubernetes.Quantity"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _overload(op: str, *args: Any) -> CelError:
    kinds = ", ".join(_type_name(a) for a in args)
    return CelError(f"no such overload: {op}({kinds})")


def cel_equals(left: Any, right: Any) -> bool:
    """CEL ``==``: numbers compare across int/double, other types never equal each other."""
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if type(left) is not type(right):
        if isinstance(left, _CelType) or isinstance(right, _CelType):
            return False
        if not (isinstance(left, str) and isinstance(right, str)):
            return False
    if isinstance(left, list):
        return len(left) == len(right) and all(
            cel_equals(a, b) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(cel_equals(v, right[k]) for k, v in left.items())
    return bool(left == right)


def _compare(op: str, left: Any, right: Any) -> bool:
    if not (
        (_is_number(left) and _is_number(right))
        or (isinstance(left, str) and isinstance(right, str))
        or (isinstance(left, bool) and isinstance(right, bool))
        or (isinstance(left, bytes) and isinstance(right, bytes))
    ):
        raise _overload(op, left, right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _check_int(value: int) -> int:
    if value < _INT64_MIN or value > _INT64_MAX:
        raise CelError("integer overflow")
    return value


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, bool) or isinstance(right, bool):
        raise _overload("_+_", left, right)
    if isinstance(left, int) and isinstance(right, int):
        return _check_int(left + right)
    if _is_number(left) and _is_number(right):
        return float(left) + float(right)
    if isinstance(left, str) and isinstance(right, str):
        return left + right
    if isinstance(left, list) and isinstance(right, list):
        return left + right
    if isinstance(left, bytes) and isinstance(right, bytes):
        return left + right
    raise _overload("_+_", left, right)


def _arith(op: str, left: Any, right: Any) -> Any:
    if not (_is_number(left) and _is_number(right)):
        raise _overload(f"_{op}_", left, right)
    if isinstance(left, int) and isinstance(right, int):
        if op == "-":
            return _check_int(left - right)
        if op == "*":
            return _check_int(left * right)
        if right == 0:
            raise CelError("division by zero" if op == "/" else "modulus by zero")
        quotient = abs(left) // abs(right)
        if (left < 0) != (right < 0):
            quotient = -quotient
        # cel-go truncates toward zero (Go semantics), unlike Python's floor division.
        return _check_int(quotient) if op == "/" else left - right * quotient
    a, b = float(left), float(right)
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0:
            return math.copysign(math.inf, a) if a else math.nan
        return a / b
    raise _overload("_%_", left, right)


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | list | dict):
        return len(value)
    raise _overload("size", value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _overload("int", value)
    if isinstance(value, int):
        return _check_int(value)
    if isinstance(value, float):
        # cel-go rejects the boundary doubles too (they are not exactly representable ints).
        if not math.isfinite(value) or value <= _INT64_MIN or value >= _INT64_MAX:
            raise CelError("double is out of range for int conversion")
        return int(value)
    if isinstance(value, str):
        try:
            return _check_int(int(value, 10))
        except ValueError:
            raise CelError(f"cannot convert string {value!r} to int") from None
    raise _overload("int", value)


def _to_uint(value: Any) -> int:
    # uints are plain ints here; only the range differs from int().
    converted = _to_int(value) if not isinstance(value, float) else int(value) if value >= 0 else -1
    if converted < 0 or converted > 2**64 - 1:
        raise CelError("uint out of range")
    return converted


def _to_double(value: Any) -> float:
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise CelError(f"cannot convert string {value!r} to double") from None
    raise _overload("double", value)


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else f"{value:.0f}"
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise _overload("string", value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        truthy = {"1", "t", "true", "TRUE", "True"}
        falsy = {"0", "f", "false", "FALSE", "False"}
        if value in truthy:
            return True
        if value in falsy:
            return False
        raise CelError(f"cannot convert string {value!r} to bool")
    raise _overload("bool", value)


def _require(kind: type | tuple[type, ...], name: str, *values: Any) -> None:
    for value in values:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _overload(name, *values)


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _regex(pattern: str) -> re.Pattern[str]:
    compiled = _REGEX_CACHE.get(pattern)
    if compiled is None:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise CelError(f"invalid regular expression {pattern!r}: {exc}") from None
        if len(_REGEX_CACHE) < 1024:
            _REGEX_CACHE[pattern] = compiled
    return compiled


def _matches(text: Any, pattern: Any) -> bool:
    _require(str, "matches", text, pattern)
    # CEL matches() is an RE2 partial match (search), anchors must be written explicitly.
    return _regex(pattern).search(text) is not None


def _find(text: Any, pattern: Any) -> str:
    # Kubernetes regex library: the first match, or "" when there is none.
    _require(str, "find", text, pattern)
    match = _regex(pattern).search(text)
    return match.group(0) if match else ""


def _find_all(text: Any, pattern: Any, limit: Any = -1) -> list[str]:
    _require(str, "findAll", text, pattern)
    _require(int, "findAll", limit)
    if limit == 0:
        return []
    found = [m.group(0) for m in _regex(pattern).finditer(text)]
    return found if limit < 0 else found[:limit]


def _reverse(value: Any) -> Any:
    if isinstance(value, str):
        return value[::-1]
    if isinstance(value, list):
        return value[::-1]
    raise _overload("reverse", value)


def _quote(text: Any) -> str:
    _require(str, "strings.quote", text)
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\t", "\\t")
        .replace("\r", "\\r")
    )
    return f'"{escaped}"'


_FORMAT_RE: Final = re.compile(r"%(?:\.(\d+))?([sdfeExXobc%])")


def _format_value(verb: str, precision: str | None, value: Any) -> str:
    if verb == "s":
        if isinstance(value, list):
            return "[" + ", ".join(_format_value("s", None, v) for v in value) + "]"
        if isinstance(value, dict):
            inner = ", ".join(
                f"{_format_value('s', None, k)}: {_format_value('s', None, v)}"
                for k, v in value.items()
            )
            return "{" + inner + "}"
        if value is None:
            return "null"
        return _to_string(value)
    if verb == "d":
        if isinstance(value, bool) or not isinstance(value, int):
            raise CelError(
                f"error during formatting: decimal clause can only be used on integers, was given {_type_name(value)}"
            )
        return str(value)
    if verb in "fe" or verb == "E":
        if not _is_number(value):
            raise CelError(
                f"error during formatting: fixed-point clause can only be used on doubles, was given {_type_name(value)}"
            )
        digits = int(precision) if precision is not None else 6
        return f"{float(value):.{digits}{verb}}"
    if verb in "xXob":
        if isinstance(value, str) and verb in "xX":
            text = value.encode().hex()
            return text.upper() if verb == "X" else text
        if isinstance(value, bool) or not isinstance(value, int):
            raise CelError(
                f"error during formatting: only integers and strings can be formatted as {verb}"
            )
        return format(value, {"x": "x", "X": "X", "o": "o", "b": "b"}[verb])
    raise CelError(f"error during formatting: unrecognized formatting clause %{verb}")


def _format(template: Any, args: Any) -> str:
    # strings extension: '%s has %d wells'.format([name, count])
    _require(str, "format", template)
    if not isinstance(args, list):
        raise _overload("format", template, args)
    position = 0

    def substitute(match: re.Match[str]) -> str:
        nonlocal position
        verb = match.group(2)
        if verb == "%":
            return "%"
        if position >= len(args):
            raise CelError(f"index {position} out of range")
        value = args[position]
        position += 1
        return _format_value(verb, match.group(1), value)

    return _FORMAT_RE.sub(substitute, template)


def _replace(text: Any, old: Any, new: Any, count: Any = -1) -> str:
    _require(str, "replace", text, old, new)
    _require(int, "replace", count)
    return str(text.replace(old, new, count if count >= 0 else -1))


def _split(text: Any, sep: Any, count: Any = -1) -> list[str]:
    _require(str, "split", text, sep)
    _require(int, "split", count)
    if count == 0:
        return []
    if sep == "":
        parts = list(text)
        if count > 0 and len(parts) > count:
            parts = [*parts[: count - 1], "".join(parts[count - 1 :])]
        return parts
    pieces: list[str] = text.split(sep, count - 1) if count > 0 else text.split(sep)
    return pieces


def _index_of(target: Any, needle: Any, start: Any = 0) -> int:
    if isinstance(target, list):
        for i, item in enumerate(target):
            if cel_equals(item, needle):
                return i
        return -1
    _require(str, "indexOf", target, needle)
    _require(int, "indexOf", start)
    if start < 0 or start > len(target):
        raise CelError(f"index out of range: {start}")
    return int(target.find(needle, start))


def _last_index_of(target: Any, needle: Any, *rest: Any) -> int:
    if isinstance(target, list):
        for i in range(len(target) - 1, -1, -1):
            if cel_equals(target[i], needle):
                return i
        return -1
    _require(str, "lastIndexOf", target, needle)
    if rest:
        _require(int, "lastIndexOf", rest[0])
        return int(target.rfind(needle, 0, rest[0] + len(needle)))
    return int(target.rfind(needle))


def _substring(text: Any, start: Any, end: Any = None) -> str:
    _require(str, "substring", text)
    stop = len(text) if end is None else end
    _require(int, "substring", start, stop)
    if start < 0 or stop > len(text) or start > stop:
        raise CelError(f"index out of range: {start}, {stop}")
    return str(text[start:stop])


def _char_at(text: Any, index: Any) -> str:
    _require(str, "charAt", text)
    _require(int, "charAt", index)
    if index < 0 or index > len(text):
        raise CelError(f"index out of range: {index}")
    return str(text[index : index + 1])


def _join(items: Any, sep: Any = "") -> str:
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise _overload("join", items)
    _require(str, "join", sep)
    return str(sep.join(items))


def _sortable(items: Any, name: str) -> list[Any]:
    if not isinstance(items, list):
        raise _overload(name, items)
    return items


def _is_sorted(items: Any) -> bool:
    values = _sortable(items, "isSorted")
    return all(not _compare("<", values[i + 1], values[i]) for i in range(len(values) - 1))


def _sum(items: Any) -> Any:
    values = _sortable(items, "sum")
    total: Any = 0
    for value in values:
        total = _add(total, value)
    return total


def _extreme(items: Any, name: str, better: str) -> Any:
    """min() or max() of a list: the first item no other is ``better`` (``<`` or ``>``) than."""
    values = _sortable(items, name)
    if not values:
        raise CelError(f"{name}(list) argument must not be empty")
    best = values[0]
    for value in values[1:]:
        if _compare(better, value, best):
            best = value
    return best


def _min(items: Any) -> Any:
    return _extreme(items, "min", "<")


def _max(items: Any) -> Any:
    return _extreme(items, "max", ">")


def _string_method(name: str, fn: Callable[[str], str]) -> Callable[[Any], str]:
    def call(text: Any) -> str:
        _require(str, name, text)
        return fn(text)

    return call


def _starts_with(text: Any, prefix: Any) -> bool:
    _require(str, "startsWith", text, prefix)
    return bool(text.startswith(prefix))


def _ends_with(text: Any, suffix: Any) -> bool:
    _require(str, "endsWith", text, suffix)
    return bool(text.endswith(suffix))


def _contains(text: Any, part: Any) -> bool:
    _require(str, "contains", text, part)
    return part in text


def _lower_ascii(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def _upper_ascii(text: str) -> str:
    return "".join(c.upper() if c.isascii() else c for c in text)


def _sets_contains(left: Any, right: Any) -> bool:
    _sortable(left, "sets.contains")
    _sortable(right, "sets.contains")
    return all(any(cel_equals(r, item) for item in left) for r in right)


def _sets_equivalent(left: Any, right: Any) -> bool:
    return _sets_contains(left, right) and _sets_contains(right, left)


def _sets_intersects(left: Any, right: Any) -> bool:
    _sortable(left, "sets.intersects")
    _sortable(right, "sets.intersects")
    return any(any(cel_equals(r, item) for item in left) for r in right)


# Functions callable as f(x, ...) and as x.f(...) (receiver first), with their arities.
# -- Kubernetes quantity library (k8s.io/apiserver/pkg/cel/library/quantity.go) --------------

_QUANTITY_RE: Final = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_QUANTITY_SUFFIX: Final[dict[str, Fraction]] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}


@dataclass(frozen=True)
class Quantity:
    """A resource.Quantity (``quantity('1Gi')``), compared by exact value."""

    value: Fraction


def _parse_quantity(text: Any) -> Quantity | None:
    if not isinstance(text, str):
        return None
    match = _QUANTITY_RE.match(text)
    if match is None:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    if suffix[:1] in ("e", "E") and suffix not in _QUANTITY_SUFFIX:
        factor = Fraction(10) ** int(suffix[1:])
    else:
        factor = _QUANTITY_SUFFIX[suffix]
    return Quantity(Fraction(number) * factor)


def _quantity(text: Any) -> Quantity:
    parsed = _parse_quantity(text)
    if parsed is None:
        raise CelError(f"quantities must match the regular expression: {text!r}")
    return parsed


def _as_quantity(value: Any, name: str) -> Quantity:
    if isinstance(value, Quantity):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Quantity(Fraction(value))
    raise _overload(name, value)


def _quantity_method(
    name: str, fn: Callable[[Quantity, Quantity], Any]
) -> Callable[[Any, Any], Any]:
    def call(receiver: Any, other: Any) -> Any:
        if not isinstance(receiver, Quantity):
            raise _overload(name, receiver, other)
        return fn(receiver, _as_quantity(other, name))

    return call


def _quantity_unary(name: str, fn: Callable[[Quantity], Any]) -> Callable[[Any], Any]:
    def call(receiver: Any) -> Any:
        if not isinstance(receiver, Quantity):
            raise _overload(name, receiver)
        return fn(receiver)

    return call


def _as_integer(q: Quantity) -> int:
    if q.value.denominator != 1 or not _INT64_MIN <= q.value.numerator <= _INT64_MAX:
        raise CelError("cannot convert value to integer")
    return int(q.value)


def _sign(value: Any) -> Any:
    if isinstance(value, Quantity):
        return (value.value > 0) - (value.value < 0)
    raise _overload("sign", value)


_FUNCTIONS: Final[dict[str, tuple[Callable[..., Any], tuple[int, ...]]]] = {
    "quantity": (_quantity, (1,)),
    "isQuantity": (lambda t: _parse_quantity(t) is not None, (1,)),
    "isInteger": (_quantity_unary("isInteger", lambda q: q.value.denominator == 1), (1,)),
    "asInteger": (_quantity_unary("asInteger", _as_integer), (1,)),
    "asApproximateFloat": (_quantity_unary("asApproximateFloat", lambda q: float(q.value)), (1,)),
    "sign": (_sign, (1,)),
    "add": (_quantity_method("add", lambda a, b: Quantity(a.value + b.value)), (2,)),
    "sub": (_quantity_method("sub", lambda a, b: Quantity(a.value - b.value)), (2,)),
    "isGreaterThan": (_quantity_method("isGreaterThan", lambda a, b: a.value > b.value), (2,)),
    "isLessThan": (_quantity_method("isLessThan", lambda a, b: a.value < b.value), (2,)),
    "compareTo": (
        _quantity_method("compareTo", lambda a, b: (a.value > b.value) - (a.value < b.value)),
        (2,),
    ),
    "size": (_size, (1,)),
    "int": (_to_int, (1,)),
    "uint": (_to_uint, (1,)),
    "double": (_to_double, (1,)),
    "string": (_to_string, (1,)),
    "bool": (_to_bool, (1,)),
    "dyn": (lambda v: v, (1,)),
    "type": (lambda v: _TYPES.get(_type_name(v), _CelType(_type_name(v))), (1,)),
    "matches": (_matches, (2,)),
    "startsWith": (_starts_with, (2,)),
    "endsWith": (_ends_with, (2,)),
    "contains": (_contains, (2,)),
    "lowerAscii": (_string_method("lowerAscii", _lower_ascii), (1,)),
    "upperAscii": (_string_method("upperAscii", _upper_ascii), (1,)),
    "trim": (_string_method("trim", str.strip), (1,)),
    "replace": (_replace, (3, 4)),
    "split": (_split, (2, 3)),
    "join": (_join, (1, 2)),
    "indexOf": (_index_of, (2, 3)),
    "lastIndexOf": (_last_index_of, (2, 3)),
    "substring": (_substring, (2, 3)),
    "charAt": (_char_at, (2,)),
    "format": (_format, (2,)),
    "find": (_find, (2,)),
    "findAll": (_find_all, (2, 3)),
    "reverse": (_reverse, (1,)),
    "isSorted": (_is_sorted, (1,)),
    "sum": (_sum, (1,)),
    "min": (_min, (1,)),
    "max": (_max, (1,)),
}

_NAMESPACED_FUNCTIONS: Final[dict[tuple[str, str], tuple[Callable[..., Any], tuple[int, ...]]]] = {
    ("sets", "contains"): (_sets_contains, (2,)),
    ("sets", "equivalent"): (_sets_equivalent, (2,)),
    ("sets", "intersects"): (_sets_intersects, (2,)),
    ("strings", "quote"): (_quote, (1,)),
}

_MACROS: Final = frozenset({"all", "exists", "exists_one", "map", "filter"})


def _select(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        try:
            return value[name]
        except KeyError:
            raise CelError(f"no such key: {name}") from None
    raise CelError(f"type '{_type_name(value)}' does not support field selection")


def _index(value: Any, key: Any) -> Any:
    if isinstance(value, list):
        if isinstance(key, float) and key.is_integer():
            key = int(key)
        if not isinstance(key, int) or isinstance(key, bool):
            raise _overload("_[_]", value, key)
        if key < 0 or key >= len(value):
            raise CelError(f"index out of bounds: {key}")
        return value[key]
    if isinstance(value, dict):
        try:
            return value[key]
        except (KeyError, TypeError):
            raise CelError(f"no such key: {key}") from None
    raise _overload("_[_]", value, key)


def _truth(value: Any, op: str) -> bool:
    if isinstance(value, bool):
        return value
    raise _overload(op, value)


class _Compiler:
    """Turns one celpy parse tree into a closure; raises _Unsupported for unknown constructs."""

    def __init__(self, variables: frozenset[str]) -> None:
        self.variables = set(variables)
        self.referenced: set[str] = set()

    def compile(self, node: Any) -> Evaluator:
        if isinstance(node, lark.Token):
            raise _Unsupported(node.type)
        method = getattr(self, "_" + str(node.data), None)
        if method is None:
            raise _Unsupported(str(node.data))
        result: Evaluator = method(node)
        return result

    # -- structure -----------------------------------------------------------------------

    def _single(self, node: lark.Tree[Any]) -> Evaluator:
        return self.compile(node.children[0])

    _paren_expr = _single
    _primary = _single

    def _expr(self, node: lark.Tree[Any]) -> Evaluator:
        if len(node.children) == 1 or node.children[1] is None:
            return self.compile(node.children[0])
        cond, yes, no = (self.compile(c) for c in node.children)

        def ternary(act: Activation) -> Any:
            return yes(act) if _truth(cond(act), "_?_:_") else no(act)

        return ternary

    def _conditionalor(self, node: lark.Tree[Any]) -> Evaluator:
        if len(node.children) == 1 or node.children[0] is None:
            return self.compile(node.children[-1])
        left, right = self.compile(node.children[0]), self.compile(node.children[1])

        def logical_or(act: Activation) -> Any:
            # cel-go: true || error == true and error || true == true.
            try:
                if _truth(left(act), "_||_"):
                    return True
                left_error: CelError | None = None
            except CelError as exc:
                left_error = exc
            if _truth(right(act), "_||_"):
                return True
            if left_error is not None:
                raise left_error
            return False

        return logical_or

    def _conditionaland(self, node: lark.Tree[Any]) -> Evaluator:
        if len(node.children) == 1 or node.children[0] is None:
            return self.compile(node.children[-1])
        left, right = self.compile(node.children[0]), self.compile(node.children[1])

        def logical_and(act: Activation) -> Any:
            try:
                if not _truth(left(act), "_&&_"):
                    return False
                left_error: CelError | None = None
            except CelError as exc:
                left_error = exc
            if not _truth(right(act), "_&&_"):
                return False
            if left_error is not None:
                raise left_error
            return True

        return logical_and

    def _binary(self, node: lark.Tree[Any]) -> tuple[str, Evaluator, Evaluator] | None:
        if len(node.children) == 1 or node.children[0] is None:
            return None
        op_node, right_node = node.children
        return str(op_node.data), self.compile(op_node.children[0]), self.compile(right_node)

    def _relation(self, node: lark.Tree[Any]) -> Evaluator:
        parts = self._binary(node)
        if parts is None:
            return self.compile(node.children[-1])
        op, left, right = parts
        if op == "relation_eq":
            return lambda act: cel_equals(left(act), right(act))
        if op == "relation_ne":
            return lambda act: not cel_equals(left(act), right(act))
        if op == "relation_in":

            def contains(act: Activation) -> bool:
                needle, haystack = left(act), right(act)
                if isinstance(haystack, list):
                    return any(cel_equals(needle, item) for item in haystack)
                if isinstance(haystack, dict):
                    if _is_number(needle):
                        # Heterogeneous numeric keys: 3.0 in {3: ...} is true.
                        return any(_is_number(k) and k == needle for k in haystack)
                    return needle in haystack if isinstance(needle, str | bool) else False
                raise _overload("@in", needle, haystack)

            return contains
        symbol = {"relation_lt": "<", "relation_le": "<=", "relation_gt": ">", "relation_ge": ">="}[
            op
        ]
        return lambda act: _compare(symbol, left(act), right(act))

    def _addition(self, node: lark.Tree[Any]) -> Evaluator:
        parts = self._binary(node)
        if parts is None:
            return self.compile(node.children[-1])
        op, left, right = parts
        if op == "addition_add":
            return lambda act: _add(left(act), right(act))
        return lambda act: _arith("-", left(act), right(act))

    def _multiplication(self, node: lark.Tree[Any]) -> Evaluator:
        parts = self._binary(node)
        if parts is None:
            return self.compile(node.children[-1])
        op, left, right = parts
        symbol = {"multiplication_mul": "*", "multiplication_div": "/", "multiplication_mod": "%"}[
            op
        ]
        return lambda act: _arith(symbol, left(act), right(act))

    def _unary(self, node: lark.Tree[Any]) -> Evaluator:
        if len(node.children) == 1:
            return self.compile(node.children[0])
        op, operand_node = node.children
        operand = self.compile(operand_node)
        if op.data == "unary_not":
            return lambda act: not _truth(operand(act), "!_")

        def negate(act: Activation) -> Any:
            value = operand(act)
            if isinstance(value, int) and not isinstance(value, bool):
                return _check_int(-value)
            if isinstance(value, float):
                return -value
            raise _overload("-_", value)

        return negate

    # -- members ---------------------------------------------------------------------------

    def _member(self, node: lark.Tree[Any]) -> Evaluator:
        return self.compile(node.children[0])

    def _member_dot(self, node: lark.Tree[Any]) -> Evaluator:
        target_node, name_token = node.children
        name = unescape_property_name(str(name_token))
        target = self.compile(target_node)
        return lambda act: _select(target(act), name)

    def _member_index(self, node: lark.Tree[Any]) -> Evaluator:
        target, key = self.compile(node.children[0]), self.compile(node.children[1])
        return lambda act: _index(target(act), key(act))

    def _args(self, node: Any) -> list[Any]:
        return [] if node is None else list(node.children)

    def _member_dot_arg(self, node: lark.Tree[Any]) -> Evaluator:
        target_node, name_token = node.children[0], node.children[1]
        name = str(name_token)
        args = self._args(node.children[2] if len(node.children) > 2 else None)
        if name in _MACROS:
            return self._macro(name, target_node, args)
        namespace = self._plain_ident(target_node)
        if namespace is not None and namespace not in self.variables:
            entry = _NAMESPACED_FUNCTIONS.get((namespace, name))
            if entry is None:
                raise _Unsupported(f"{namespace}.{name}")
            return self._call(entry, [self.compile(a) for a in args], f"{namespace}.{name}")
        entry = _FUNCTIONS.get(name)
        if entry is None:
            raise _Unsupported(name)
        return self._call(
            entry, [self.compile(target_node), *(self.compile(a) for a in args)], name
        )

    def _plain_ident(self, node: Any) -> str | None:
        # expr -> conditionalor -> ... -> member -> primary -> ident, each with one child.
        while isinstance(node, lark.Tree) and node.data != "ident":
            children = [c for c in node.children if c is not None]
            if len(children) != 1:
                return None
            node = children[0]
        if isinstance(node, lark.Tree) and node.data == "ident":
            return str(node.children[0])
        return None

    def _call(
        self, entry: tuple[Callable[..., Any], tuple[int, ...]], args: list[Evaluator], name: str
    ) -> Evaluator:
        fn, arities = entry
        if len(args) not in arities:
            raise CelCompileError(
                f"found no matching overload for '{name}' with {len(args)} arguments"
            )
        if len(args) == 1:
            (a,) = args
            return lambda act: fn(a(act))
        if len(args) == 2:
            a, b = args
            return lambda act: fn(a(act), b(act))
        return lambda act: fn(*(arg(act) for arg in args))

    def _ident_arg(self, node: lark.Tree[Any]) -> Evaluator:
        name = str(node.children[0])
        args = self._args(node.children[1] if len(node.children) > 1 else None)
        if name == "has":
            return self._has(args)
        entry = _FUNCTIONS.get(name)
        if entry is None:
            raise _Unsupported(name)
        return self._call(entry, [self.compile(a) for a in args], name)

    def _has(self, args: list[Any]) -> Evaluator:
        if len(args) != 1:
            raise CelCompileError("has() takes exactly one argument")
        node = args[0]
        # Descend to the member_dot the macro must wrap.
        while isinstance(node, lark.Tree) and node.data != "member_dot":
            children = [c for c in node.children if c is not None]
            if len(children) != 1:
                break
            node = children[0]
        if not (isinstance(node, lark.Tree) and node.data == "member_dot"):
            raise CelCompileError("invalid argument to has() macro")
        target = self.compile(node.children[0])
        name = unescape_property_name(str(node.children[1]))

        def has(act: Activation) -> bool:
            value = target(act)
            if isinstance(value, dict):
                return name in value
            raise CelError(f"invalid type for field selection: {_type_name(value)}")

        return has

    def _macro(self, name: str, target_node: Any, args: list[Any]) -> Evaluator:
        if len(args) not in ((2, 3) if name == "map" else (2,)):
            raise CelCompileError(f"{name}() macro takes 2 arguments")
        var = self._plain_ident(args[0])
        if var is None:
            raise CelCompileError(f"{name}() variable name must be a simple identifier")
        target = self.compile(target_node)
        added = var not in self.variables
        self.variables.add(var)
        try:
            bodies = [self.compile(a) for a in args[1:]]
        finally:
            if added:
                self.variables.discard(var)

        def items_of(act: Activation) -> list[Any]:
            value = target(act)
            if isinstance(value, list):
                return value
            if isinstance(value, dict):
                return list(value)
            raise _overload(name, value)

        def bind(act: Activation, item: Any, body: Evaluator) -> Any:
            act[var] = item
            return body(act)

        def run(act: Activation) -> Any:
            items = items_of(act)
            saved = act.get(var, _MISSING)
            try:
                return comprehension(act, items)
            finally:
                if saved is _MISSING:
                    act.pop(var, None)
                else:
                    act[var] = saved

        body = bodies[0]
        if name == "all":

            def comprehension(act: Activation, items: list[Any]) -> Any:
                error: CelError | None = None
                for item in items:
                    try:
                        if not _truth(bind(act, item, body), "all"):
                            return False
                    except CelError as exc:
                        error = error or exc
                if error is not None:
                    raise error
                return True

        elif name == "exists":

            def comprehension(act: Activation, items: list[Any]) -> Any:
                error: CelError | None = None
                for item in items:
                    try:
                        if _truth(bind(act, item, body), "exists"):
                            return True
                    except CelError as exc:
                        error = error or exc
                if error is not None:
                    raise error
                return False

        elif name == "exists_one":

            def comprehension(act: Activation, items: list[Any]) -> Any:
                return sum(1 for item in items if _truth(bind(act, item, body), "exists_one")) == 1

        elif name == "filter":

            def comprehension(act: Activation, items: list[Any]) -> Any:
                return [item for item in items if _truth(bind(act, item, body), "filter")]

        elif len(bodies) == 1:

            def comprehension(act: Activation, items: list[Any]) -> Any:
                return [bind(act, item, body) for item in items]

        else:
            transform = bodies[1]

            def comprehension(act: Activation, items: list[Any]) -> Any:
                return [
                    bind(act, item, transform)
                    for item in items
                    if _truth(bind(act, item, body), "map")
                ]

        return run

    # -- leaves ----------------------------------------------------------------------------

    def _ident(self, node: lark.Tree[Any]) -> Evaluator:
        name = str(node.children[0])
        if name in self.variables:
            self.referenced.add(name)
            return lambda act: act[name]
        if name in _TYPES:
            value = _TYPES[name]
            return lambda act: value
        raise CelCompileError(f"undeclared reference to '{name}' (in container '')")

    def _literal(self, node: lark.Tree[Any]) -> Evaluator:
        token = node.children[0]
        if not isinstance(token, lark.Token):
            raise _Unsupported("literal")
        text = str(token)
        value: Any
        if token.type == "INT_LIT":
            value = int(text, 16) if "0x" in text.lower() else int(text)
        elif token.type == "UINT_LIT":
            body = text[:-1]
            value = int(body, 16) if "0x" in body.lower() else int(body)
        elif token.type == "FLOAT_LIT":
            value = float(text)
        elif token.type in ("STRING_LIT", "MLSTRING_LIT"):
            value = str(celstr(token))
        elif token.type == "BOOL_LIT":
            value = text == "true"
        elif token.type == "NULL_LIT":
            value = None
        else:
            raise _Unsupported(token.type)
        return lambda act: value

    def _list_lit(self, node: lark.Tree[Any]) -> Evaluator:
        items = [self.compile(c) for c in self._args(node.children[0] if node.children else None)]
        return lambda act: [item(act) for item in items]

    def _map_lit(self, node: lark.Tree[Any]) -> Evaluator:
        children = self._args(node.children[0] if node.children else None)
        pairs = [
            (self.compile(children[i]), self.compile(children[i + 1]))
            for i in range(0, len(children), 2)
        ]

        def build_map(act: Activation) -> dict[Any, Any]:
            out: dict[Any, Any] = {}
            for key_of, value_of in pairs:
                key = key_of(act)
                if key is None or isinstance(key, float | list | dict):
                    raise CelError(f"unsupported key type: {_type_name(key)}")
                if key in out and type(next(k for k in out if k == key)) is type(key):
                    raise CelError(f"Failed with repeated key: {key}")
                out[key] = value_of(act)
            return out

        return build_map

    def _exprlist(self, node: lark.Tree[Any]) -> Evaluator:
        raise _Unsupported("exprlist")


_MISSING: Final = object()


def _to_cel(value: Any) -> Any:
    return json_to_cel(value)


def _from_cel(value: Any) -> Any:
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.ListType):
        return [_from_cel(v) for v in value]
    if isinstance(value, celtypes.MapType):
        return {_from_cel(k): _from_cel(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class CompiledExpression:
    """A compiled CEL expression; ``evaluate`` takes plain JSON values as variables."""

    source: str
    evaluator: Evaluator
    references: frozenset[str]
    native: bool

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """Evaluate with ``variables`` (e.g. ``self``, ``oldSelf``); raises CelError."""
        try:
            return self.evaluator(dict(variables))
        except CelError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError) as exc:
            # A combination of value types no overload covers (cel-go reports "no such overload").
            raise CelError(f"no such overload: {exc}") from None


def compile_expression(
    source: str, variables: frozenset[str] = frozenset({"self", "oldSelf"})
) -> CompiledExpression:
    """Parse with celpy and compile to closures (celpy's interpreter for unsupported parts)."""
    env = celpy.Environment()
    try:
        tree = env.compile(source)
    except CELParseError as exc:
        raise CelCompileError(f"ERROR: <input>: Syntax error: {exc}") from None
    compiler = _Compiler(variables)
    try:
        evaluator = compiler.compile(tree)
        return CompiledExpression(
            source, evaluator, frozenset(compiler.referenced & variables), True
        )
    except _Unsupported:
        pass
    program = env.program(tree)
    referenced = frozenset(v for v in variables if re.search(rf"\b{re.escape(v)}\b", source))

    def interpreted(act: Activation) -> Any:
        try:
            result = program.evaluate({k: _to_cel(v) for k, v in act.items()})
        except CELEvalError as exc:
            raise CelError(str(exc.args[0] if exc.args else exc)) from None
        if isinstance(result, CELEvalError):
            raise CelError(str(result.args[0] if result.args else result))
        return _from_cel(result)

    return CompiledExpression(source, interpreted, referenced, False)
