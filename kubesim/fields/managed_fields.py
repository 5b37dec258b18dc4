"""Field ownership: the field sets of ``metadata.managedFields`` and how writes move them.

Why this exists: server-side apply decides conflicts and removals from who owns which field, and
``kubectl get --show-managed-fields``, Helm 4 and controllers read ``managedFields`` back. The
set semantics follow sigs.k8s.io/structured-merge-diff (``fieldpath``, ``typed.ToFieldSet``,
``typed.Compare``, ``merge.Updater.Update``) and k8s.io/apimachinery ``managedfields`` (the
FieldsV1 encoding, the entry order, the stripped metadata fields, the manager derived from the
User-Agent).

A field set is a ``frozenset`` of paths; a path is a tuple of FieldsV1 path elements:
``f:<field>``, ``k:<json object of the key fields>`` (an element of an associative list),
``v:<json value>`` (an element of a set list) and ``i:<index>``. Lists and maps follow the
schema's ``x-kubernetes-list-type`` / ``x-kubernetes-list-map-keys`` / ``x-kubernetes-map-type``
(built-in kinds: the Kubernetes 1.32 OpenAPI definitions; custom resources: their CRD schema).
Lists without a list type are atomic, objects are granular unless marked atomic.

Docs: https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management
"""

from __future__ import annotations

import functools
import json
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from kubesim.schema.builtin import builtin_definition_name, builtin_definitions
from kubesim.wire.jsonwire import encode

__all__ = [
    "EMPTY",
    "MANAGER_MAX_LENGTH",
    "Comparison",
    "FieldSet",
    "ManagerKey",
    "Managers",
    "ObjectShape",
    "Path",
    "compare",
    "decode_managed_fields",
    "empty_object",
    "encode_managed_fields",
    "forget_removed",
    "from_fields_v1",
    "list_elements",
    "manager_from_request",
    "only_prefix",
    "path_string",
    "shape_for",
    "strip_meta",
    "to_field_set",
    "to_fields_v1",
    "track_create",
    "track_update",
    "without_prefix",
]

Path = tuple[str, ...]
FieldSet = frozenset[Path]
EMPTY: Final[FieldSet] = frozenset()

# FieldManagerMaxLength in apimachinery's validation.
MANAGER_MAX_LENGTH: Final = 128
_OBJECT_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_METADATA: Final[Path] = ("f:metadata",)
# The apiserver's own metadata never belongs to a manager (managedfields stripMetaManager).
_STRIPPED: Final[FieldSet] = frozenset(
    {
        ("f:apiVersion",),
        ("f:kind",),
        _METADATA,
        *(
            (*_METADATA, "f:" + name)
            for name in (
                "name",
                "namespace",
                "creationTimestamp",
                "selfLink",
                "uid",
                "clusterName",
                "generation",
                "managedFields",
                "resourceVersion",
            )
        ),
    }
)
# Key fields the 1.32 OpenAPI v3 documents default (``+default="TCP"`` on ContainerPort and
# ServicePort) but the v2-derived definitions kubesim reads do not carry.
_BUILTIN_KEY_DEFAULTS: Final = {"protocol": "TCP"}
# Never compared: kept by the apiserver, not part of anyone's intent.
_UNCOMPARED_METADATA: Final = frozenset({"managedFields", "resourceVersion"})


# --------------------------------------------------------------------------------------------
# The schema, as far as field ownership needs it
# --------------------------------------------------------------------------------------------


@functools.cache
def _builtin_definitions() -> Mapping[str, Any]:
    return builtin_definitions()


class ObjectShape:
    """Navigates an OpenAPI schema (``$ref`` into the built-in definitions, ``allOf`` wrappers).

    Answers are memoized by the identity of the schema node: schemas are never mutated and live
    as long as the shape (built-in definitions forever, a CRD's schema in the shape cache), and
    ownership is tracked on every write, so the walk must not resolve ``$ref`` chains each time.
    """

    def __init__(self, root: Mapping[str, Any] | None, *, builtin: bool = False) -> None:
        self.root = root
        # Built-in kinds are Go structs: their zero value has structs in it, and an emptied
        # optional map is not serialized (omitempty). A custom resource is unstructured.
        self.builtin = builtin
        self.zero: dict[str, Any] | None = None
        self.definitions = _builtin_definitions()
        self._objects: dict[int, tuple[Mapping[str, Any], Mapping[str, Any] | None]] = {}
        self._items: dict[int, Mapping[str, Any] | None] = {}
        self._list_types: dict[int, tuple[str, tuple[str, ...]]] = {}
        self._atomic_maps: dict[int, bool] = {}
        self._key_defaults: dict[int, dict[str, Any]] = {}
        self.added_memo: dict[tuple[int, bytes], tuple[Path, ...]] = {}

    def field(
        self, node: Mapping[str, Any] | None, name: str
    ) -> tuple[Mapping[str, Any] | None, bool]:
        """The schema of ``name`` inside an object, and whether it is a declared (struct) field."""
        # Memoized per node, not per name: map keys (ConfigMap data, labels) are unbounded.
        hit = self._objects.get(id(node))
        if hit is None:
            hit = self._objects[id(node)] = self._object_of(node)
        props, extra = hit
        found = props.get(name)
        if found is not None:
            return found, True
        return extra, False

    def items(self, node: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        key = id(node)
        if key not in self._items:
            self._items[key] = self._items_of(node)
        return self._items[key]

    def list_type(self, node: Mapping[str, Any] | None) -> tuple[str, tuple[str, ...]]:
        """``(atomic|set|map, map keys)``; lists without a list type are atomic."""
        key = id(node)
        hit = self._list_types.get(key)
        if hit is None:
            hit = self._list_types[key] = self._list_type(node)
        return hit

    def atomic_map(self, node: Mapping[str, Any] | None) -> bool:
        key = id(node)
        hit = self._atomic_maps.get(key)
        if hit is None:
            hit = self._atomic_maps[key] = any(
                candidate is not None and candidate.get("x-kubernetes-map-type") == "atomic"
                for candidate in (node, self.resolve(node))
            )
        return hit

    def key_defaults(self, node: Mapping[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any]:
        """Defaults of list-map key fields (``protocol: TCP`` of container ports)."""
        key = id(node)
        hit = self._key_defaults.get(key)
        if hit is None:
            hit = self._key_defaults[key] = self._defaults_of(node, keys)
        return hit

    def resolve(self, node: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        for _ in range(16):  # a $ref chain is short; the bound guards a cycle
            if node is None:
                return None
            ref = node.get("$ref")
            if isinstance(ref, str):
                node = self.definitions.get(ref.rsplit("/", 1)[-1])
                continue
            all_of = node.get("allOf")
            if isinstance(all_of, list) and len(all_of) == 1 and "properties" not in node:
                node = all_of[0]
                continue
            return node
        return None

    def _object_of(
        self, node: Mapping[str, Any] | None
    ) -> tuple[Mapping[str, Any], Mapping[str, Any] | None]:
        """(declared properties, schema of other keys) of an object schema."""
        resolved = self.resolve(node)
        if resolved is None:
            return {}, None
        props = resolved.get("properties")
        extra = resolved.get("additionalProperties")
        return (props if isinstance(props, Mapping) else {}), (
            extra if isinstance(extra, Mapping) else None
        )

    def _items_of(self, node: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        resolved = self.resolve(node)
        items = resolved.get("items") if resolved is not None else None
        return items if isinstance(items, Mapping) else None

    def _list_type(self, node: Mapping[str, Any] | None) -> tuple[str, tuple[str, ...]]:
        for candidate in (node, self.resolve(node)):
            if candidate is not None and "x-kubernetes-list-type" in candidate:
                kind = str(candidate["x-kubernetes-list-type"])
                keys = tuple(candidate.get("x-kubernetes-list-map-keys") or ())
                if kind == "map" and not keys:
                    return "atomic", ()
                return kind, keys
        return "atomic", ()

    def _defaults_of(self, node: Mapping[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any]:
        item = self.resolve(self.items(node))
        props = item.get("properties") if item is not None else None
        out: dict[str, Any] = {}
        for key in keys:
            sub = self.resolve(props.get(key)) if isinstance(props, Mapping) else None
            if sub is not None and "default" in sub:
                out[key] = sub["default"]
            elif key in _BUILTIN_KEY_DEFAULTS:
                out[key] = _BUILTIN_KEY_DEFAULTS[key]
        return out


def shape_for(
    group: str, version: str, kind: str, crd_schema: Mapping[str, Any] | None
) -> ObjectShape:
    """The shape of a built-in kind (its 1.32 definition) or of a custom resource (its CRD schema
    with ``metadata`` as ObjectMeta, as the apiextensions-apiserver publishes it)."""
    key = (group, version, kind, id(crd_schema))
    hit = _SHAPES.get(key)
    if hit is not None and hit[0] is crd_schema:
        return hit[1]
    shape = _build_shape(group, version, kind, crd_schema)
    # The cache keeps the schema alive, so its id cannot be reused by another schema.
    _SHAPES[key] = (crd_schema, shape)
    return shape


_SHAPES: dict[tuple[str, str, str, int], tuple[Any, ObjectShape]] = {}


def _build_shape(
    group: str, version: str, kind: str, crd_schema: Mapping[str, Any] | None
) -> ObjectShape:
    if crd_schema is not None:
        root = dict(crd_schema)
        props = dict(root.get("properties") or {})
        props["metadata"] = {"$ref": "#/$defs/" + _OBJECT_META}
        root["properties"] = props
        return ObjectShape(root)
    name = builtin_definition_name(group, version, kind)
    return ObjectShape({"$ref": "#/$defs/" + name} if name else None, builtin=True)


# --------------------------------------------------------------------------------------------
# Path elements
# --------------------------------------------------------------------------------------------


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # beyond 64-bit integers, non-string keys
        return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _element(
    item: Any, index: int, kind: str, keys: tuple[str, ...], defaults: Mapping[str, Any]
) -> str:
    if kind == "set" and not isinstance(item, (dict, list)):
        return "v:" + _json(item)
    if kind == "map" and isinstance(item, dict):
        key = {k: item.get(k, defaults.get(k)) for k in keys if k in item or k in defaults}
        if key:
            return "k:" + _json(key)
    return f"i:{index}"


def list_elements(
    shape: ObjectShape, node: Mapping[str, Any] | None, items: list[Any]
) -> list[str]:
    kind, keys = shape.list_type(node)
    defaults = shape.key_defaults(node, keys) if kind == "map" else {}
    return [_element(item, i, kind, keys, defaults) for i, item in enumerate(items)]


def path_string(path: Path) -> str:
    """fieldpath.Path.String(): ``.spec.containers[name="main"].image``."""
    out: list[str] = []
    for element in path:
        tag, body = element[:2], element[2:]
        if tag == "f:":
            out.append("." + body)
        elif tag == "k:":
            fields = json.loads(body)
            out.append("[" + ",".join(f"{k}={_json(v)}" for k, v in sorted(fields.items())) + "]")
        elif tag == "v:":
            out.append("[=" + body + "]")
        else:
            out.append("[" + body + "]")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Field sets of values, and what changed between two values
# --------------------------------------------------------------------------------------------


def to_field_set(value: Mapping[str, Any], shape: ObjectShape) -> FieldSet:
    """typed.ToFieldSet: the leaves of an applied configuration, plus list elements, map entries
    that are not struct fields, and empty objects; not the objects that merely contain them."""
    out: set[Path] = set()
    _collect(value, shape.root, (), shape, out)
    return frozenset(out)


def _collect(
    value: Any, node: Mapping[str, Any] | None, path: Path, shape: ObjectShape, out: set[Path]
) -> None:
    if isinstance(value, dict):
        if path and shape.atomic_map(node):
            out.add(path)
            return
        for key, child in value.items():
            child_node, declared = shape.field(node, key)
            child_path = (*path, "f:" + key)
            _collect(child, child_node, child_path, shape, out)
            if child is None or child == {} or not declared:
                out.add(child_path)
    elif isinstance(value, list):
        if shape.list_type(node)[0] == "atomic":
            out.add(path)
            return
        item_node = shape.items(node)
        for element, item in zip(list_elements(shape, node, value), value, strict=True):
            child_path = (*path, element)
            _collect(item, item_node, child_path, shape, out)
            out.add(child_path)
    else:
        out.add(path)


@dataclass(frozen=True)
class Comparison:
    """typed.Comparison: paths added, modified and removed between two versions of an object."""

    added: FieldSet
    modified: FieldSet
    removed: FieldSet

    def empty(self) -> bool:
        return not (self.added or self.modified or self.removed)


def compare(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    shape: ObjectShape,
    *,
    skip: Iterable[str] = (),
    only: Iterable[str] | None = None,
) -> Comparison:
    """typed.Compare of two objects; ``skip``/``only`` name top-level fields left out (a
    resource's reset fields: status for the main resource, all but status for /status)."""
    added: set[Path] = set()
    modified: set[Path] = set()
    removed: set[Path] = set()
    skipped = frozenset(skip)
    wanted = frozenset(only) if only is not None else None
    for key in (*old, *(k for k in new if k not in old)):
        if key in skipped or (wanted is not None and key not in wanted):
            continue
        child_node, _ = shape.field(shape.root, key)
        _compare(
            old.get(key, _ABSENT),
            new.get(key, _ABSENT),
            child_node,
            ("f:" + key,),
            shape,
            added,
            modified,
            removed,
        )
    return Comparison(frozenset(added), frozenset(modified), frozenset(removed))


_ABSENT: Final = object()
# Subtrees are memoized by their schema node and JSON, at every depth, as paths relative to the
# subtree: objects made from one template (the pods of a workload) share most of their spec even
# when a few values differ per object (a hostname, one env var), so a create walks only the
# subtrees that differ. Metadata is unique per object (name, uid) and is walked.
_MEMO_LIMIT: Final = 4096
# Memo keys and values stay small (a template's spec, not a 1 MiB ConfigMap): 4,096 entries of at
# most 8 KiB keys and sets of at most 1,024 paths bound each memo; bigger objects are walked.
_MEMO_MAX_KEY_BYTES: Final = 8192
_MEMO_MAX_SET: Final = 1024


def _granular(value: Any, node: Mapping[str, Any] | None, path: Path, shape: ObjectShape) -> str:
    """``map``/``list`` when ownership descends into ``value``, else ``leaf``."""
    if isinstance(value, dict):
        return "leaf" if path and shape.atomic_map(node) else "map"
    if isinstance(value, list):
        return "leaf" if shape.list_type(node)[0] == "atomic" else "list"
    return "leaf"


def _added_paths(
    value: Any, node: Mapping[str, Any] | None, path: Path, shape: ObjectShape
) -> FieldSet:
    """Every path of a subtree that is new (typed.Compare puts all of them in Added)."""
    if not value or not isinstance(value, (dict, list)):
        return frozenset([path])
    if path[0] == "f:metadata":
        # Unique per object (name, uid): walked, not memoized; the object's own metadata leaves
        # out what the apiserver does not compare.
        skip = _UNCOMPARED_METADATA if path == _METADATA else frozenset()
        inside = _relative_paths(value, node, shape, memoize=False, skip=skip)
    else:
        inside = _relative_paths(value, node, shape)
    return frozenset([path, *(path + rel for rel in inside)])


def _relative_paths(
    value: Any,
    node: Mapping[str, Any] | None,
    shape: ObjectShape,
    *,
    memoize: bool = True,
    skip: frozenset[str] = frozenset(),
) -> tuple[Path, ...]:
    """The paths inside a non-empty container, relative to it: they depend only on the value and
    its schema node (and ``skip``, the keys left out at this level)."""
    encoded = encode(value) if memoize else b""
    memo_key = (id(node), encoded)
    hit = shape.added_memo.get(memo_key) if memoize else None
    if hit is not None:
        return hit
    out: list[Path] = []
    kind = _granular(value, node, _SOME_PATH, shape)
    children: list[tuple[str, Any, Mapping[str, Any] | None]] = []
    if isinstance(value, dict) and kind == "map":
        children = [
            ("f:" + k, v, shape.field(node, k)[0]) for k, v in value.items() if k not in skip
        ]
    elif isinstance(value, list) and kind == "list":
        item_node = shape.items(node)
        children = [
            (element, item, item_node)
            for element, item in zip(list_elements(shape, node, value), value, strict=True)
        ]
    for element, child, child_node in children:
        out.append((element,))
        if child and isinstance(child, (dict, list)):
            out.extend(
                (element, *rel)
                for rel in _relative_paths(child, child_node, shape, memoize=memoize)
            )
    found = tuple(out)
    if memoize and len(encoded) <= _MEMO_MAX_KEY_BYTES and len(found) <= _MEMO_MAX_SET:
        if len(shape.added_memo) >= _MEMO_LIMIT:
            shape.added_memo.clear()
        shape.added_memo[memo_key] = found
    return found


_SOME_PATH: Final[Path] = ("f:",)  # any non-empty path: granularity below the root


def _compare(
    lhs: Any,
    rhs: Any,
    node: Mapping[str, Any] | None,
    path: Path,
    shape: ObjectShape,
    added: set[Path],
    modified: set[Path],
    removed: set[Path],
) -> None:
    if lhs is _ABSENT:
        added.update(_added_paths(rhs, node, path, shape))
        return
    if rhs is _ABSENT:
        removed.update(_added_paths(lhs, node, path, shape))
        return
    if lhs == rhs:
        return
    if lhs is None and isinstance(rhs, (dict, list)) and rhs:
        # null on the left is an empty value of the right's kind (a Go nil slice or map).
        lhs = type(rhs)()
    lkind = _granular(lhs, node, path, shape)
    rkind = _granular(rhs, node, path, shape)
    # Both empty, or of different kinds: a leaf (structured-merge-diff's emptyPromoteToLeaf).
    if rkind == "leaf" or lkind != rkind or (not lhs and not rhs):
        modified.add(path)
        return
    if rkind == "map":
        if not lhs:
            # An empty object on the left (a new object's spec): everything inside is new.
            added.update(_added_paths(rhs, node, path, shape) - {path})
            return
        skip = _UNCOMPARED_METADATA if path == _METADATA else ()
        for key in (*lhs, *(k for k in rhs if k not in lhs)):
            if key in skip:
                continue
            child_node, _ = shape.field(node, key)
            _compare(
                lhs.get(key, _ABSENT),
                rhs.get(key, _ABSENT),
                child_node,
                (*path, "f:" + key),
                shape,
                added,
                modified,
                removed,
            )
        return
    item_node = shape.items(node)
    left_by = dict(zip(list_elements(shape, node, lhs), lhs, strict=True))
    right_by = dict(zip(list_elements(shape, node, rhs), rhs, strict=True))
    for element in (*left_by, *(e for e in right_by if e not in left_by)):
        _compare(
            left_by.get(element, _ABSENT),
            right_by.get(element, _ABSENT),
            item_node,
            (*path, element),
            shape,
            added,
            modified,
            removed,
        )


def strip_meta(fields: FieldSet) -> FieldSet:
    return fields - _STRIPPED if fields & _STRIPPED else fields


def without_prefix(fields: FieldSet, prefix: Path) -> FieldSet:
    """fieldpath.Set.RecursiveDifference with one path: drop ``prefix`` and everything below."""
    n = len(prefix)
    return frozenset(p for p in fields if p[:n] != prefix)


def only_prefix(fields: FieldSet, prefix: Path) -> FieldSet:
    n = len(prefix)
    return frozenset(p for p in fields if p[:n] == prefix)


# --------------------------------------------------------------------------------------------
# FieldsV1
# --------------------------------------------------------------------------------------------

_ORDER: Final = {".": 0, "f": 1, "k": 2, "v": 3, "i": 4}


_FIELDS_V1_MEMO: dict[FieldSet, dict[str, Any]] = {}


def to_fields_v1(fields: FieldSet) -> dict[str, Any]:
    """The FieldsV1 JSON of a set: ``{}`` for a member leaf, ``".": {}`` for a member with children.

    Memoized (the same sets recur on every object of a workload): callers must not mutate it."""
    if len(fields) > _MEMO_MAX_SET:
        return _build_fields_v1(fields)
    hit = _FIELDS_V1_MEMO.get(fields)
    if hit is None:
        if len(_FIELDS_V1_MEMO) >= _MEMO_LIMIT:
            _FIELDS_V1_MEMO.clear()
        hit = _FIELDS_V1_MEMO[fields] = _build_fields_v1(fields)
    return hit


def _build_fields_v1(fields: FieldSet) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in fields:
        node = tree
        for element in path:
            node = node.setdefault(element, {})
        node["."] = {}
    return _finish(tree)


def _finish(node: dict[str, Any]) -> dict[str, Any]:
    if list(node) == ["."]:
        return {}
    return {
        key: (_finish(node[key]) if key != "." else {})
        for key in sorted(node, key=lambda k: (_ORDER.get(k[0], 5), k))
    }


_FROM_FIELDS_V1_MEMO: dict[bytes, FieldSet] = {}


def from_fields_v1(tree: Mapping[str, Any]) -> FieldSet:
    """The set a FieldsV1 tree encodes (memoized by its JSON: every update decodes the entries)."""
    memo_key = encode(tree)
    hit = _FROM_FIELDS_V1_MEMO.get(memo_key)
    if hit is None:
        found: set[Path] = set()
        _read_tree(tree, (), found)
        hit = frozenset(found)
        if len(memo_key) <= _MEMO_MAX_KEY_BYTES:
            if len(_FROM_FIELDS_V1_MEMO) >= _MEMO_LIMIT:
                _FROM_FIELDS_V1_MEMO.clear()
            _FROM_FIELDS_V1_MEMO[memo_key] = hit
    return hit


def _read_tree(node: Mapping[str, Any], path: Path, out: set[Path]) -> None:
    for key, child in node.items():
        if key == ".":
            if path:
                out.add(path)
        elif isinstance(child, Mapping) and child:
            _read_tree(child, (*path, key), out)
        else:
            out.add((*path, key))


# --------------------------------------------------------------------------------------------
# managedFields entries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManagerKey:
    """What tells two entries apart (the manager identifier of apimachinery's managedfields)."""

    manager: str
    operation: str
    api_version: str
    subresource: str = ""

    def describe(self) -> str:
        """printManager: Update managers name their apiVersion, appliers only themselves."""
        if self.operation == "Update":
            return f"{_json(self.manager)} using {self.api_version}"
        return _json(self.manager)


@dataclass
class Managers:
    """Decoded managedFields: each manager's set and time, in the order they were read."""

    fields: dict[ManagerKey, FieldSet]
    times: dict[ManagerKey, str]

    def others(self, key: ManagerKey) -> Iterator[tuple[ManagerKey, FieldSet]]:
        return ((k, v) for k, v in self.fields.items() if k != key)


def _entry_key(entry: Mapping[str, Any]) -> ManagerKey:
    return ManagerKey(
        str(entry.get("manager", "")),
        str(entry.get("operation", "")),
        str(entry.get("apiVersion", "")),
        str(entry.get("subresource", "")),
    )


def _entry_order(key: ManagerKey, time: str) -> tuple[str, ...]:
    """The apiserver's order of entries: Apply before Update, then by time, manager, version."""
    return (key.operation, time, key.manager, key.api_version, key.subresource)


def decode_managed_fields(entries: Any) -> Managers:
    fields: dict[ManagerKey, FieldSet] = {}
    times: dict[ManagerKey, str] = {}
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or (not entry.get("manager") and not entry.get("fieldsV1")):
            continue
        key = _entry_key(entry)
        tree = entry.get("fieldsV1")
        fields[key] = fields.get(key, EMPTY) | (
            from_fields_v1(tree) if isinstance(tree, Mapping) else EMPTY
        )
        if entry.get("time"):
            times[key] = str(entry["time"])
    return Managers(fields, times)


def encode_managed_fields(managers: Managers) -> list[dict[str, Any]]:
    """The entries in the apiserver's order: Apply before Update, then by time, manager, version."""
    keys = sorted(
        (k for k, v in managers.fields.items() if v),
        key=lambda k: _entry_order(k, managers.times.get(k, "")),
    )
    out: list[dict[str, Any]] = []
    for key in keys:
        entry: dict[str, Any] = {
            "manager": key.manager,
            "operation": key.operation,
            "apiVersion": key.api_version,
        }
        if key in managers.times:
            entry["time"] = managers.times[key]
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = to_fields_v1(managers.fields[key])
        if key.subresource:
            entry["subresource"] = key.subresource
        out.append(entry)
    return out


def empty_object(shape: ObjectShape) -> dict[str, Any]:
    """What a create is compared with: the apiserver starts from a new object of the kind. A
    custom resource starts from nothing. A built-in is a Go zero value, which already holds its
    struct fields (metadata, spec, status, a template) and, as null, the fields serialized
    without omitempty (the schema's required ones, e.g. containers): the creator owns what is
    inside those, not the objects themselves (so no ``.`` on them). Which other struct fields
    are values rather than pointers the schema does not say; those get a ``.``."""
    if not shape.builtin:
        return {}
    if shape.zero is None:
        shape.zero = _zero_value(shape, shape.root, 0)
    return shape.zero


_VALUE_STRUCTS: Final = frozenset({"metadata", "spec", "status", "template"})


def _zero_value(shape: ObjectShape, node: Mapping[str, Any] | None, depth: int) -> dict[str, Any]:
    resolved = shape.resolve(node)
    out: dict[str, Any] = {}
    if resolved is None or depth > 4:
        return out
    props = resolved.get("properties") or {}
    required = set(resolved.get("required") or ())
    for name, sub in props.items():
        sub_resolved = shape.resolve(sub)
        is_struct = sub_resolved is not None and "properties" in sub_resolved
        if is_struct and (name in _VALUE_STRUCTS or name in required):
            out[name] = _zero_value(shape, sub, depth + 1)
        elif (
            name in required
            and sub_resolved is not None
            and ("items" in sub_resolved or "additionalProperties" in sub_resolved)
        ):
            out[name] = None
    return out


def base_entries(sent: Any, live: Any) -> Any:
    """The entries an update starts from: the client's, if it sent any (that is how managedFields
    are edited), else the live ones; ``[{}]`` resets them (docs: Clearing managedFields)."""
    if isinstance(sent, list) and sent:
        if all(isinstance(e, dict) and not e for e in sent):
            return []
        return sent
    return live


def track_update(
    base: Any,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    shape: ObjectShape,
    key: ManagerKey,
    now: str,
    *,
    has_status: bool = False,
    canonical: bool = False,
) -> Any:
    """merge.Updater.Update: the updater takes every field it added or changed (from whoever owned
    it), removed fields leave every set. Returns ``base`` itself when nothing changed. Status is
    the /status subresource's alone when the resource has one (its reset fields).

    ``canonical``: ``base`` are entries this module wrote (the live object's), so an entry the
    change does not touch is kept as it is instead of being decoded and encoded again."""
    if key.subresource == "status":
        change = compare(old, new, shape, only=("status",))
    else:
        change = compare(old, new, shape, skip=("status",) if has_status else ())
    if change.empty():
        return base
    if canonical:
        quick = _update_touched_entries(base, change, key, now)
        if quick is not None:
            return quick
    managers = decode_managed_fields(base)
    _take(managers, change, key, now)
    _cap_update_managers(managers)
    return encode_managed_fields(managers)


def _take(managers: Managers, change: Comparison, key: ManagerKey, now: str) -> None:
    """The updater takes every field it added or changed; removed fields leave every set."""
    taken = change.added | change.modified
    for other, owned in list(managers.others(key)):
        kept = owned - taken - change.removed if owned & (taken | change.removed) else owned
        managers.fields[other] = kept
    mine = (managers.fields.get(key, EMPTY) - change.removed) | taken
    managers.fields[key] = strip_meta(mine)
    managers.times[key] = now


def _owns(tree: Any, path: Path) -> bool:
    """Whether a FieldsV1 tree holds ``path`` (a leaf ``{}`` or a node with ``.``)."""
    node = tree
    for element in path:
        if not isinstance(node, Mapping):
            return False
        node = node.get(element)
        if node is None:
            return False
    return isinstance(node, Mapping) and (not node or "." in node)


def _update_touched_entries(base: Any, change: Comparison, key: ManagerKey, now: str) -> Any:
    """track_update for entries this module wrote, decoding only the entries the change touches.

    A status write to a ModelDeployment with 10,000 wells decoded and encoded its creator's
    entry (a path per well) every time: most of kubesim's managedFields cost while such a fleet
    came up. An entry owns none of the changed paths in a few dict lookups per path, and such
    an entry is exactly what decoding and encoding it again would give. None: take the general
    path (entries that do not look like ours, or the Update-manager cap would merge some).
    """
    if not isinstance(base, list) or not all(
        isinstance(e, dict) and isinstance(e.get("fieldsV1"), Mapping) for e in base
    ):
        return None
    changed = change.added | change.modified | change.removed
    kept: list[dict[str, Any]] = []
    touched: list[dict[str, Any]] = []
    for entry in base:
        mine = _entry_key(entry) == key
        tree = entry["fieldsV1"]
        if mine or any(_owns(tree, path) for path in changed):
            touched.append(entry)
        else:
            kept.append(entry)
    updaters = {_entry_key(e) for e in base if e.get("operation") == "Update"} | {key}
    if len(updaters) > MAX_UPDATE_MANAGERS:
        return None
    managers = decode_managed_fields(touched)
    _take(managers, change, key, now)
    entries = kept + encode_managed_fields(managers)
    entries.sort(key=lambda e: _entry_order(_entry_key(e), str(e.get("time", ""))))
    return entries


def forget_removed(
    base: Any,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    shape: ObjectShape,
    *,
    has_status: bool,
) -> Any:
    """A write without a manager (kubesim's garbage collector dropping an ownerReference): what
    it removed leaves every set, what it changed stays with its owners."""
    if not base:
        return base
    removed = compare(old, new, shape, skip=("status",) if has_status else ()).removed
    if not removed:
        return base
    managers = decode_managed_fields(base)
    for key, owned in list(managers.fields.items()):
        managers.fields[key] = owned - removed
    return encode_managed_fields(managers)


MAX_UPDATE_MANAGERS: Final = 10
ANCIENT_CHANGES: Final = "ancient-changes"


def _cap_update_managers(managers: Managers) -> None:
    """capManagersManager: beyond 10 Update entries the oldest merge, per apiVersion, into an
    ``ancient-changes`` entry (carrying the newest merged time)."""
    updaters = [k for k, v in managers.fields.items() if k.operation == "Update" and v]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda k: (managers.times.get(k, ""), k.manager))
    first_by_version: dict[str, ManagerKey] = {}
    count = len(updaters)
    for key in updaters:
        if count <= MAX_UPDATE_MANAGERS:
            break
        bucket = ManagerKey(ANCIENT_CHANGES, "Update", key.api_version)
        first = first_by_version.get(key.api_version)
        if first is None:
            first_by_version[key.api_version] = key
            continue
        if bucket not in managers.fields:
            managers.fields[bucket] = managers.fields.pop(first)
            managers.times.pop(first, None)
        managers.fields[bucket] = managers.fields[bucket] | managers.fields.pop(key)
        if key in managers.times:
            managers.times[bucket] = managers.times.pop(key)
        count -= 1


_CREATE_MEMO: dict[tuple[Any, ...], Any] = {}


def track_create(
    new: Mapping[str, Any], shape: ObjectShape, key: ManagerKey, now: str, *, has_status: bool
) -> Any:
    """The creator's Update entry: it owns everything it sent (and the defaults), not status.

    Creates are the hot path (a workload's pods), and the entry depends only on the object's
    structure: its spec's JSON, which metadata fields, label and annotation keys and list
    elements it has. That signature is memoized with the second-resolution time."""
    meta = new.get("metadata") or {}
    signature = (
        id(shape),
        key,
        now,
        tuple(
            (k, tuple(v) if isinstance(v, dict) else encode(v) if isinstance(v, list) else None)
            for k, v in meta.items()
        ),
        tuple(
            (k, None if k == "metadata" or (has_status and k == "status") else encode(v))
            for k, v in new.items()
        ),
    )
    hit = _CREATE_MEMO.get(signature)
    if hit is None:
        hit = track_update(None, empty_object(shape), new, shape, key, now, has_status=has_status)
        size = sum(len(v) for part in signature[3:] for _, v in part if isinstance(v, bytes))
        if size <= _MEMO_MAX_KEY_BYTES:
            if len(_CREATE_MEMO) >= _MEMO_LIMIT:
                _CREATE_MEMO.clear()
            _CREATE_MEMO[signature] = hit
    return hit


def manager_from_request(field_manager: str, user_agent: str) -> str:
    """managerOrUserAgent: the fieldManager parameter, else the User-Agent before its first
    ``/`` without unprintable characters, cut at 128 characters."""
    if field_manager:
        return field_manager
    prefix = user_agent.split("/", 1)[0]
    if prefix.isprintable() and len(prefix) <= MANAGER_MAX_LENGTH and prefix.isascii():
        return prefix
    out = ""
    for char in user_agent.split("/", 1)[0]:
        if not char.isprintable() or unicodedata.category(char) == "Cc":
            continue
        if len((out + char).encode()) > MANAGER_MAX_LENGTH:
            break
        out += char
    return out
