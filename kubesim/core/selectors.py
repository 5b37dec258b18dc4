"""Label and field selectors, parsed and matched the way kube-apiserver does it.

Why this exists: every ``list``/``watch`` carries ``labelSelector``/``fieldSelector`` query
parameters in the textual syntax of ``k8s.io/apimachinery/pkg/labels`` and ``.../pkg/fields``,
and controllers (kopf, the Deployment-like logic of our operator) rely on exact semantics such
as "``!=`` and ``notin`` also match objects that lack the label". Parse errors are answered with
the apiserver's 400 messages. The module also carries the name/label validators (RFC 1123,
qualified names) that selectors and object-name validation share.

Docs: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors
and https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from kubesim.wire.errors import ApiError

__all__ = [
    "FieldSelector",
    "FieldTerm",
    "LabelSelector",
    "Operator",
    "Requirement",
    "dns1123_label_errors",
    "dns1123_subdomain_errors",
    "label_key_errors",
    "label_value_errors",
    "object_field_value",
]

# --------------------------------------------------------------------------------------------
# Name and label validation (k8s.io/apimachinery/pkg/api/validate/content)
# --------------------------------------------------------------------------------------------

_DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT: Final = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_LABEL_RE: Final = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE: Final = re.compile(_DNS1123_SUBDOMAIN_FMT)
_LABEL_KEY_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT: Final = "(" + _LABEL_KEY_FMT + ")?"
_LABEL_KEY_RE: Final = re.compile(_LABEL_KEY_FMT)
_LABEL_VALUE_RE: Final = re.compile(_LABEL_VALUE_FMT)
_LABEL_KEY_MSG: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _max_len_error(length: int) -> str:
    return f"must be no more than {length} bytes"


def dns1123_label_errors(value: str) -> list[str]:
    """Why ``value`` is not an RFC 1123 label (namespace names, service names); empty if valid."""
    errs: list[str] = []
    if len(value.encode()) > 63:
        errs.append(_max_len_error(63))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(value):
            errs.append("must not contain dots")
        else:
            errs.append(
                _regex_error(
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                    "or '-', and must start and end with an alphanumeric character",
                    _DNS1123_LABEL_FMT,
                    "my-name",
                    "123-abc",
                )
            )
    return errs


def dns1123_subdomain_errors(value: str) -> list[str]:
    """Why ``value`` is not an RFC 1123 subdomain (most object names); empty if valid."""
    errs: list[str] = []
    if len(value.encode()) > 253:
        errs.append(_max_len_error(253))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(
            _regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character",
                _DNS1123_SUBDOMAIN_FMT,
                "example.com",
            )
        )
    return errs


def label_key_errors(key: str) -> list[str]:
    """Why ``key`` is not a qualified name (``[prefix/]name``); empty if valid."""
    errs: list[str] = []
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain_errors(prefix))
    else:
        return [
            "a valid label key "
            + _regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name.encode()) > 63:
        errs.append("name part " + _max_len_error(63))
    if not _LABEL_KEY_RE.fullmatch(name):
        errs.append(
            "name part "
            + _regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def label_value_errors(value: str) -> list[str]:
    """Why ``value`` is not a label value; empty if valid (the empty string is valid)."""
    errs: list[str] = []
    if len(value.encode()) > 63:
        errs.append(_max_len_error(63))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(
            _regex_error(
                "a valid label must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character",
                _LABEL_VALUE_FMT,
                "MyValue",
                "my_value",
                "12345",
            )
        )
    return errs


def _go_quote(text: str) -> str:
    # Go's %q for the printable text that can reach these messages.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------------------------
# Label selectors (k8s.io/apimachinery/pkg/labels/selector.go)
# --------------------------------------------------------------------------------------------


class Operator(StrEnum):
    """``selection.Operator`` values; the string is how ``String()`` prints them."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_BINARY_OPERATORS: Final = "in, notin, =, ==, !=, gt, lt"


@dataclass(frozen=True)
class Requirement:
    """One ANDed term of a label selector: ``key op values``."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            value = labels.get(self.key)
            return value is not None and value in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            # Documented: "!=" and "notin" also select resources that lack the label.
            value = labels.get(self.key)
            return value is None or value not in self.values
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        value = labels.get(self.key)
        if value is None or len(self.values) != 1:
            return False
        try:
            have, want = int(value), int(self.values[0])
        except ValueError:
            return False
        return have > want if op is Operator.GREATER_THAN else have < want

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        if op in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {op.value} ({','.join(self.values)})"
        if op is Operator.GREATER_THAN:
            return f"{self.key}>{self.values[0]}"
        if op is Operator.LESS_THAN:
            return f"{self.key}<{self.values[0]}"
        return f"{self.key}{op.value}{self.values[0]}"


def _requirement(key: str, op: Operator, values: Iterable[str]) -> Requirement:
    """``labels.NewRequirement``: validates key, value count and every value."""
    vals = tuple(sorted(set(values)))
    errs: list[str] = []
    key_errs = label_key_errors(key)
    if key_errs:
        errs.append(f"key: Invalid value: {_go_quote(key)}: {'; '.join(key_errs)}")
    if op in (Operator.IN, Operator.NOT_IN) and not vals:
        errs.append(
            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
        )
    if op in (Operator.GREATER_THAN, Operator.LESS_THAN):
        for i, v in enumerate(vals):
            if not re.fullmatch(r"[+-]?[0-9]+", v):
                errs.append(
                    f"values[{i}]: Invalid value: {_go_quote(v)}: for 'Gt', 'Lt' operators, "
                    "the value must be an integer"
                )
    for i, v in enumerate(vals):
        val_errs = label_value_errors(v)
        if val_errs:
            errs.append(f"values[{i}][{key}]: Invalid value: {_go_quote(v)}: {'; '.join(val_errs)}")
    if errs:
        raise _SelectorSyntaxError(errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]")
    return Requirement(key, op, vals)


class _SelectorSyntaxError(Exception):
    """Internal: a parse error before it is wrapped into the apiserver's 400."""


_SPECIAL: Final = frozenset("=!(),><")
_WHITESPACE: Final = frozenset(" \t\r\n")
_TOKENS: Final[dict[str, str]] = {
    ")": "CLOSE",
    ",": "COMMA",
    "!": "NOT",
    "==": "DEQ",
    "=": "EQ",
    ">": "GT",
    "in": "IN",
    "<": "LT",
    "!=": "NEQ",
    "notin": "NOTIN",
    "(": "OPEN",
}


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokenise like ``labels.Lexer``: identifiers end at whitespace or a special symbol."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            tokens.append(("END", ""))
            return tokens
        if text[i] in _SPECIAL:
            # Longest special-symbol sequence that is still a known token.
            buf, best = "", ("", "")
            while i < n and text[i] in _SPECIAL:
                candidate = buf + text[i]
                if candidate in _TOKENS:
                    buf, best = candidate, (_TOKENS[candidate], candidate)
                    i += 1
                elif best[0]:
                    break
                else:
                    buf = candidate
                    i += 1
            if not best[0]:
                tokens.append(("ERROR", f"error expected: keyword found '{buf}'"))
            else:
                tokens.append(best)
            continue
        start = i
        while i < n and text[i] not in _SPECIAL and text[i] not in _WHITESPACE:
            i += 1
        word = text[start:i]
        tokens.append((_TOKENS.get(word, "ID"), word))


class _Parser:
    """Recursive descent over the token list, mirroring ``labels.Parser`` and its messages."""

    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def _peek(self, values: bool = True) -> tuple[str, str]:
        tok, lit = self.tokens[self.pos]
        # In value context "in"/"notin" are ordinary identifiers ("x in (in)").
        if values and tok in ("IN", "NOTIN"):
            tok = "ID"
        return tok, lit

    def _take(self, values: bool = True) -> tuple[str, str]:
        tok = self._peek(values)
        self.pos += 1
        return tok

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self._peek()
            if tok in ("ID", "NOT"):
                try:
                    reqs.append(self._requirement())
                except _SelectorSyntaxError as exc:
                    raise _SelectorSyntaxError(f"unable to parse requirement: {exc}") from None
                tok, lit = self._take()
                if tok == "END":
                    return reqs
                if tok == "COMMA":
                    tok2, lit2 = self._peek()
                    if tok2 not in ("ID", "NOT"):
                        raise _SelectorSyntaxError(
                            f"found '{lit2}', expected: identifier after ','"
                        )
                    continue
                raise _SelectorSyntaxError(f"found '{lit}', expected: ',' or 'end of string'")
            if tok == "END":
                return reqs
            raise _SelectorSyntaxError(
                f"found '{lit}', expected: !, identifier, or 'end of string'"
            )

    def _requirement(self) -> Requirement:
        tok, lit = self._take()
        negated = tok == "NOT"
        if negated:
            tok, lit = self._take()
        if tok != "ID":
            raise _SelectorSyntaxError(f"found '{lit}', expected: identifier")
        key = lit
        key_errs = label_key_errors(key)
        if key_errs:
            raise _SelectorSyntaxError(f": Invalid value: {_go_quote(key)}: {'; '.join(key_errs)}")
        if negated:
            # "!key" is complete; whatever follows is reported by the requirement-list loop.
            return _requirement(key, Operator.DOES_NOT_EXIST, ())
        nxt, _ = self._peek()
        if nxt in ("END", "COMMA"):
            return _requirement(key, Operator.EXISTS, ())
        op_tok, op_lit = self._take(values=False)
        op = {
            "IN": Operator.IN,
            "NOTIN": Operator.NOT_IN,
            "EQ": Operator.EQUALS,
            "DEQ": Operator.DOUBLE_EQUALS,
            "NEQ": Operator.NOT_EQUALS,
            "GT": Operator.GREATER_THAN,
            "LT": Operator.LESS_THAN,
        }.get(op_tok)
        if op is None:
            raise _SelectorSyntaxError(f"found '{op_lit}', expected: {_BINARY_OPERATORS}")
        if op in (Operator.IN, Operator.NOT_IN):
            return _requirement(key, op, self._value_set())
        return _requirement(key, op, (self._exact_value(),))

    def _value_set(self) -> set[str]:
        tok, lit = self._take()
        if tok != "OPEN":
            raise _SelectorSyntaxError(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok == "CLOSE":
            self._take()
            return {""}
        if tok not in ("ID", "COMMA"):
            raise _SelectorSyntaxError(f"found '{lit}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:
            tok, lit = self._take()
            if tok == "ID":
                values.add(lit)
                tok2, lit2 = self._peek()
                if tok2 == "COMMA":
                    continue
                if tok2 == "CLOSE":
                    self._take()
                    return values
                raise _SelectorSyntaxError(f"found '{lit2}', expected: ',' or ')'")
            if tok == "COMMA":
                # "(,a)", "(a,,b)" and "(a,)" all contain the empty value.
                if not values:
                    values.add("")
                tok2, _ = self._peek()
                if tok2 == "CLOSE":
                    values.add("")
                    self._take()
                    return values
                if tok2 == "COMMA":
                    values.add("")
                continue
            raise _SelectorSyntaxError(f"found '{lit}', expected: ',', or identifier")

    def _exact_value(self) -> str:
        tok, lit = self._peek()
        if tok in ("END", "COMMA"):
            return ""
        tok, lit = self._take()
        if tok == "ID":
            return lit
        raise _SelectorSyntaxError(f"found '{lit}', expected: identifier")


@dataclass(frozen=True)
class LabelSelector:
    """An AND of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()
    # A metav1.LabelSelector can also be "nothing" (nil selector in some APIs); kept explicit.
    matches_nothing: bool = False

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls(())

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse the ``labelSelector`` query syntax; bad syntax raises ApiError 400."""
        parsed = _parse_label_selector(text)
        if isinstance(parsed, str):
            raise ApiError.bad_request(parsed)
        return parsed

    @classmethod
    def from_match_labels_expressions(cls, obj: Mapping[str, Any] | None) -> LabelSelector:
        """``metav1.LabelSelectorAsSelector``: matchLabels plus matchExpressions (In, NotIn, ...)."""
        if obj is None:
            return cls((), matches_nothing=True)
        reqs: list[Requirement] = []
        try:
            for key, value in sorted((obj.get("matchLabels") or {}).items()):
                reqs.append(_requirement(str(key), Operator.EQUALS, (str(value),)))
            for expr in obj.get("matchExpressions") or []:
                op_name = str(expr.get("operator", ""))
                op = {
                    "In": Operator.IN,
                    "NotIn": Operator.NOT_IN,
                    "Exists": Operator.EXISTS,
                    "DoesNotExist": Operator.DOES_NOT_EXIST,
                }.get(op_name)
                if op is None:
                    raise _SelectorSyntaxError(
                        f"{_go_quote(op_name)} is not a valid label selector operator"
                    )
                values = [str(v) for v in expr.get("values") or []]
                if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
                    raise _SelectorSyntaxError(
                        "values: Invalid value: "
                        + "["
                        + ",".join(_go_quote(v) for v in values)
                        + "]"
                        + ": values set must be empty for exists and does not exist"
                    )
                reqs.append(_requirement(str(expr.get("key", "")), op, values))
        except _SelectorSyntaxError as exc:
            raise ApiError.bad_request(str(exc)) from None
        return cls(tuple(sorted(reqs, key=lambda r: r.key)))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.matches_nothing:
            return False
        have = labels or {}
        return all(r.matches(have) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements and not self.matches_nothing

    def required_equalities(self) -> dict[str, str]:
        """Labels every match must carry with one exact value (usable as index lookups)."""
        out: dict[str, str] = {}
        for r in self.requirements:
            if r.operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS) or (
                r.operator is Operator.IN and len(r.values) == 1
            ):
                out[r.key] = r.values[0]
        return out

    def required_keys(self) -> frozenset[str]:
        """Label keys every match must carry (for "exists" index lookups)."""
        return frozenset(
            r.key
            for r in self.requirements
            if r.operator
            in (
                Operator.EQUALS,
                Operator.DOUBLE_EQUALS,
                Operator.IN,
                Operator.EXISTS,
                Operator.GREATER_THAN,
                Operator.LESS_THAN,
            )
        )

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


@functools.lru_cache(maxsize=1024)
def _parse_label_selector(text: str) -> LabelSelector | str:
    """Parsed selector or the parse error text; cached because controllers repeat the same
    selectors on every list and watch (LabelSelector is immutable, so sharing is safe)."""
    try:
        reqs = _Parser(text).parse()
    except _SelectorSyntaxError as exc:
        return str(exc)
    # labels.Parse sorts requirements by key for deterministic printing.
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


# --------------------------------------------------------------------------------------------
# Field selectors (k8s.io/apimachinery/pkg/fields/selector.go)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldTerm:
    field: str
    value: str
    negated: bool

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{'!=' if self.negated else '='}{escaped}"


def _split_terms(text: str) -> list[str]:
    terms: list[str] = []
    start, in_slash = 0, False
    for i, ch in enumerate(text):
        if in_slash:
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _unescape(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            if i + 1 >= len(value) or value[i + 1] not in "\\,=":
                raise ApiError.bad_request(
                    f"invalid field selector: invalid escape sequence: {value[i : i + 2]}"
                )
            out.append(value[i + 1])
            i += 2
            continue
        if ch in ",=":
            raise ApiError.bad_request(
                f"invalid field selector: unescaped character in value: {ch}"
            )
        out.append(ch)
        i += 1
    return "".join(out)


def object_field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string a field selector compares for a dotted path (missing fields read as "")."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


@dataclass(frozen=True)
class FieldSelector:
    """An AND of ``field=value`` / ``field!=value`` terms over a fixed set of supported fields."""

    terms: tuple[FieldTerm, ...] = ()
    getter: Callable[[Mapping[str, Any], str], str] = object_field_value

    @classmethod
    def parse(
        cls,
        text: str,
        supported: frozenset[str],
        getter: Callable[[Mapping[str, Any], str], str] = object_field_value,
    ) -> FieldSelector:
        """Parse ``fieldSelector``; unknown fields give the apiserver's 400
        ``field label not supported: x``."""
        terms: list[FieldTerm] = []
        for part in sorted(_split_terms(text)):
            if not part:
                continue
            for i in range(len(part)):
                rest = part[i:]
                op = next((o for o in ("!=", "==", "=") if rest.startswith(o)), None)
                if op is not None:
                    lhs, rhs = part[:i], part[i + len(op) :]
                    break
            else:
                raise ApiError.bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
            if lhs not in supported:
                raise ApiError.bad_request(f"field label not supported: {lhs}")
            terms.append(FieldTerm(lhs, _unescape(rhs), op == "!="))
        return cls(tuple(terms), getter)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for term in self.terms:
            equal = self.getter(obj, term.field) == term.value
            if equal == term.negated:
                return False
        return True

    def required_equalities(self) -> dict[str, str]:
        """``field -> value`` every match must have (e.g. ``metadata.name`` for a one-object watch)."""
        return {t.field: t.value for t in self.terms if not t.negated}

    def empty(self) -> bool:
        return not self.terms

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)
