"""The three PATCH content types kube-apiserver accepts, applied to plain JSON objects.

Why this exists: kopf patches status and finalizers with JSON merge patch, the ``kubernetes``
client defaults to strategic merge patch for built-ins, and ``kubectl apply`` sends strategic
merge patches full of directives (``$setElementOrder``, ``$retainKeys``,
``$deleteFromPrimitiveList``). A server that merged lists wrongly would silently drop
containers or finalizers, so the semantics follow ``k8s.io/apimachinery/pkg/util/strategicpatch``
(``mergeMap``/``mergeSlice``) and ``k8s.io/apiserver/pkg/endpoints/handlers/patch.go`` for the
error codes.

Docs: https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
and https://github.com/kubernetes/community/blob/master/contributors/devel/sig-api-machinery/strategic-merge-patch.md

Every function returns a new object and never mutates its inputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import jsonpatch
import jsonpointer

from kubesim.wire.errors import ApiError, StatusCause
from kubesim.wire.jsonwire import clone

__all__ = [
    "STRATEGIC_SCHEMAS",
    "StrategicSchema",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "strategic_schema_for",
]

# --------------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386)
# --------------------------------------------------------------------------------------------


def _merge_value(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return clone(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_value(result.get(key), value)
    return result


def apply_merge_patch(target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """RFC 7386: objects merge recursively, ``null`` deletes, everything else replaces.

    The apiserver only accepts a JSON object as the patch of an object (anything else cannot
    yield an object), answered 400 like a body that does not decode.
    """
    if not isinstance(patch, dict):
        raise ApiError.bad_request(
            f"json: cannot unmarshal {_json_kind(patch)} into Go value of type map[string]interface {{}}"
        )
    merged = _merge_value(clone(target), patch)
    assert isinstance(merged, dict)
    return merged


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else "object"


# --------------------------------------------------------------------------------------------
# JSON patch (RFC 6902)
# --------------------------------------------------------------------------------------------

# The apiserver caps the operation count (maxJSONPatchOperations) to bound the work per request.
MAX_JSON_PATCH_OPERATIONS: Final = 10000


def _unprocessable(message: str) -> ApiError:
    # patch.go answers apply failures with NewGenericServerResponse(422, ...): a fixed message
    # and the real reason as the only cause.
    return ApiError(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        {},
        [StatusCause("", message, "")],
    )


def apply_json_patch(target: dict[str, Any], ops: Any) -> dict[str, Any]:
    """RFC 6902 operations; a malformed patch is 400, one that does not apply is 422."""
    if not isinstance(ops, list):
        raise ApiError.bad_request(
            f"json: cannot unmarshal {_json_kind(ops)} into Go value of type jsonpatch.Patch"
        )
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise ApiError.request_entity_too_large(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
            f"got {len(ops)}"
        )
    for index, op in enumerate(ops):
        if not isinstance(op, dict):
            raise ApiError.bad_request(f"json patch operation {index} is not an object")
        if op.get("op") not in ("add", "remove", "replace", "move", "copy", "test"):
            raise ApiError.bad_request(f"Unexpected kind: {op.get('op')}")
        if not isinstance(op.get("path"), str):
            raise ApiError.bad_request(f"json patch operation {index} ({op.get('op')}) has no path")
        if op["op"] in ("add", "replace", "test") and "value" not in op:
            raise ApiError.bad_request(f"{op['op']} operation missing value at {op['path']}")
        if op["op"] in ("move", "copy") and not isinstance(op.get("from"), str):
            raise ApiError.bad_request(f"{op['op']} operation missing from at {op['path']}")
    try:
        result = jsonpatch.JsonPatch(ops).apply(target, in_place=False)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise _unprocessable(f"testing value failed: {exc}") from None
    except jsonpatch.InvalidJsonPatch as exc:
        raise ApiError.bad_request(str(exc)) from None
    except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException) as exc:
        raise _unprocessable(f"doc is missing path or value: {exc}") from None
    except jsonpatch.JsonPatchException as exc:
        raise _unprocessable(str(exc)) from None
    if not isinstance(result, dict):
        raise _unprocessable("the patched document is not a JSON object")
    return result


# --------------------------------------------------------------------------------------------
# Strategic merge patch
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrategicSchema:
    """Patch metadata of one field and, through ``fields``, of its children.

    For a list field ``fields`` describes the list items. ``patch_strategy`` is the Go struct tag
    (``merge`` merges lists by ``merge_key`` or as a set of primitives; empty replaces lists
    atomically and merges maps; ``replace`` replaces maps atomically).
    """

    fields: Mapping[str, StrategicSchema] = field(default_factory=dict)
    patch_strategy: str = ""
    merge_key: str = ""

    def child(self, name: str) -> StrategicSchema:
        return self.fields.get(name, _NO_META)

    @property
    def merges_lists(self) -> bool:
        return "merge" in self.patch_strategy.split(",")


_NO_META: Final = StrategicSchema()

_DIRECTIVE: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST: Final = "$deleteFromPrimitiveList/"
_SET_ELEMENT_ORDER: Final = "$setElementOrder/"


class _PatchError(Exception):
    """A strategic merge patch that cannot be applied; carries the apiserver's status code."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


def _hashable(value: Any) -> Any:
    """A dict key that keeps Go's ``==`` distinctions (``true`` is not ``1``)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", float(value))
    if isinstance(value, str):
        return ("str", value)
    if value is None:
        return ("null", None)
    return ("json", json.dumps(value, sort_keys=True))


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """Strip ``$patch`` markers from a value that has no original to merge with.

    Returns the cleaned value and whether it should be kept at all (a map carrying a
    directive is dropped, as in ``removeDirectives``).
    """
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return None, False
        out: dict[str, Any] = {}
        for key, item in value.items():
            if (
                key.startswith(("$setElementOrder/", "$deleteFromPrimitiveList/"))
                or key == _RETAIN_KEYS
            ):
                continue
            cleaned, keep = _remove_directives(item)
            if keep:
                out[key] = cleaned
        return out, True
    if isinstance(value, list):
        items = []
        for item in value:
            cleaned, keep = _remove_directives(item)
            if keep:
                items.append(cleaned)
        return items, True
    return value, True


def _discard_nulls(value: Any) -> Any:
    # IgnoreUnmatchedNulls: a null that has nothing to delete is dropped, not stored.
    if isinstance(value, dict):
        return {k: _discard_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_discard_nulls(v) for v in value]
    return value


def _element_kind(*lists: list[Any]) -> str:
    kind = ""
    for items in lists:
        for item in items:
            if isinstance(item, list):
                raise _PatchError("lists of lists are not supported", 422)
            this = "map" if isinstance(item, dict) else type(item).__name__
            if this in ("int", "float"):
                this = "number"
            if not kind:
                kind = this
            elif kind != this:
                raise _PatchError("list element types are not identical")
    return kind


def _merge_value_of(item: Any, merge_key: str) -> Any:
    if not isinstance(item, dict):
        raise _PatchError(f"value {item!r} of a merging list is not a map")
    if merge_key not in item:
        raise _PatchError(
            f"map: {json.dumps(item, sort_keys=True)} does not contain declared merge key: {merge_key}"
        )
    return _hashable(item[merge_key])


def _identity(item: Any, merge_key: str) -> Any:
    return _merge_value_of(item, merge_key) if merge_key else _hashable(item)


def _merge_sorted(
    left: list[Any], right: list[Any], server_order: list[Any], merge_key: str
) -> list[Any]:
    """``mergeSortedSlice``: interleave server-only items (left) into patch items (right).

    A server-only item goes before a patch item only when both exist in the live list and it
    came first there; otherwise patch items win, so relative orders of both lists are kept.
    """
    position: dict[Any, int] = {}
    for index, item in enumerate(server_order):
        position.setdefault(_identity(item, merge_key), index)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = position.get(_identity(left[i], merge_key))
            ri = position.get(_identity(right[j], merge_key))
            if li is not None and ri is not None and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _normalize_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
) -> list[Any]:
    def sort_by(items: list[Any], order: list[Any]) -> list[Any]:
        rank: dict[Any, int] = {}
        for index, item in enumerate(order):
            rank.setdefault(_identity(item, merge_key), index)
        # Items missing from the order keep their place after the known ones (stable sort).
        return sorted(items, key=lambda it: rank.get(_identity(it, merge_key), len(rank)))

    return _merge_sorted(
        sort_by(server_only, server_order),
        sort_by(patch_items, patch_order),
        server_order,
        merge_key,
    )


def _partition(merged: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    wanted = {_identity(item, merge_key) for item in by}
    in_patch = [item for item in merged if _identity(item, merge_key) in wanted]
    server_only = [item for item in merged if _identity(item, merge_key) not in wanted]
    return in_patch, server_only


def _merge_slice(
    original: list[Any],
    patch: list[Any],
    schema: StrategicSchema,
    merge_key: str,
    is_delete_list: bool,
) -> list[Any]:
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    if kind != "map":
        if is_delete_list:
            doomed = {_hashable(v) for v in patch}
            return [v for v in original if _hashable(v) not in doomed]
        merged: list[Any] = []
        seen: set[Any] = set()
        for value in [*original, *patch]:
            key = _hashable(value)
            if key not in seen:
                seen.add(key)
                merged.append(value)
        patch_items, server_only = _partition(merged, patch, "")
        return _normalize_order(patch_items, server_only, patch, original, "")

    if not merge_key:
        raise _PatchError("cannot merge lists without merge key")
    # Special elements first: {"$patch": "delete", key: v} removes, {"$patch": "replace"}
    # makes the rest of the patch list the whole new list.
    plain: list[Any] = []
    replace = False
    remaining = list(original)
    for item in patch:
        if not isinstance(item, dict):
            raise _PatchError(f"value {item!r} of a merging list is not a map")
        directive = item.get(_DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            doomed = _merge_value_of(item, merge_key)
            remaining = [o for o in remaining if _merge_value_of(o, merge_key) != doomed]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise _PatchError(
                f"unknown patch type: {directive} in map: {json.dumps(item, sort_keys=True)}"
            )
    if replace:
        cleaned, _ = _remove_directives(plain)
        return list(cleaned)

    index = {_merge_value_of(o, merge_key): i for i, o in reversed(list(enumerate(remaining)))}
    merged = list(remaining)
    for item in plain:
        key = _merge_value_of(item, merge_key)
        at = index.get(key)
        if at is None:
            cleaned, keep = _remove_directives(_discard_nulls(item))
            if keep:
                index[key] = len(merged)
                merged.append(cleaned)
        else:
            merged[at] = _merge_map(merged[at], item, schema)
    patch_items, server_only = _partition(merged, plain, merge_key)
    return _normalize_order(patch_items, server_only, plain, original, merge_key)


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    retain = patch.pop(_RETAIN_KEYS, None)
    if retain is None:
        return
    if not isinstance(retain, list):
        raise _PatchError("invalid patch: the value of $retainKeys must be a list")
    keep = set(retain)
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if key not in keep:
            raise _PatchError(
                "doesn't satisfy strategic merge patch format: "
                "$retainKeys must list every field present in the patch"
            )
    for key in list(original):
        if key not in keep:
            del original[key]


def _apply_set_element_order(
    original: dict[str, Any], patch: dict[str, Any], schema: StrategicSchema
) -> None:
    for key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        name = key[len(_SET_ELEMENT_ORDER) :]
        if not name:
            raise _PatchError("invalid patch: $setElementOrder needs a field name")
        if not isinstance(order, list):
            raise _PatchError("invalid patch: the value of $setElementOrder must be a list")
        meta = schema.child(name)
        has_original, has_patch = name in original, name in patch
        if not has_original and not has_patch:
            continue
        original_list = original.get(name, [])
        patch_list = patch.pop(name, None) if has_patch else None
        if has_original and not isinstance(original_list, list):
            # The live field is not a list: the patch (if any) simply replaces it.
            if patch_list is not None:
                original[name] = _remove_directives(patch_list)[0]
            continue
        if patch_list is not None and not isinstance(patch_list, list):
            raise _PatchError(f"invalid patch: {name} must be a list next to {key}")
        if has_original and patch_list is None:
            merged = list(original_list)
        elif not has_original:
            merged = list(_remove_directives(patch_list)[0])
        elif meta.merges_lists:
            merged = _merge_slice(
                list(original_list), list(patch_list or []), meta, meta.merge_key, False
            )
        else:
            merged = list(_remove_directives(patch_list)[0])
        if not merged:
            original[name] = merged
            continue
        mk = meta.merge_key if isinstance(merged[0], dict) else ""
        server_order = list(original_list)
        if mk and has_original and meta.merges_lists and patch_list:
            server_order = _aliased_live_order(server_order, patch_list, mk)
        patch_items, server_only = _partition(merged, order, mk)
        original[name] = _normalize_order(patch_items, server_only, order, server_order, mk)


def _aliased_live_order(live: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    """The live-order list the apiserver actually sorts by after merging ``patch`` into ``live``.

    In Go, ``mergeSlice`` deletes ``$patch: delete`` items by shifting the live slice in place and
    then appends new items into the freed tail of the same backing array, which the caller
    still holds as the live order. Mimicking that keeps kubesim's list order identical to
    kube-apiserver's when ``kubectl apply`` removes and adds items of one list at once (the
    strategicpatch "add map and delete map from merging list" cases).
    """
    backing = list(live)
    if any(isinstance(item, dict) and item.get(_DIRECTIVE) == "replace" for item in patch):
        return backing  # The patch list replaces the live one; nothing is written in place.
    length = len(backing)
    for item in patch:
        if isinstance(item, dict) and item.get(_DIRECTIVE) == "delete" and merge_key in item:
            doomed = _hashable(item[merge_key])
            while True:
                at = next(
                    (i for i in range(length) if _merge_value_of(backing[i], merge_key) == doomed),
                    None,
                )
                if at is None:
                    break
                backing[at : length - 1] = backing[at + 1 : length]
                length -= 1
    present = {_merge_value_of(backing[i], merge_key) for i in range(length)}
    for item in patch:
        if not isinstance(item, dict) or _DIRECTIVE in item or merge_key not in item:
            continue
        key = _merge_value_of(item, merge_key)
        if key in present:
            continue
        present.add(key)
        if length >= len(backing):
            break  # Go reallocates here; later appends no longer touch the live slice.
        backing[length] = item
        length += 1
    return backing


def _merge_map(
    original: dict[str, Any] | None, patch: dict[str, Any], schema: StrategicSchema
) -> Any:
    patch = dict(patch)
    directive = patch.get(_DIRECTIVE)
    if directive is not None:
        if directive == "replace":
            del patch[_DIRECTIVE]
            return _remove_directives(_discard_nulls(patch))[0]
        if directive == "delete":
            return {}
        if directive != "merge":
            raise _PatchError(
                f"unknown patch type: {directive} in map: {json.dumps(patch, sort_keys=True, default=str)}"
            )
        # "$patch: merge" on a map is the default behaviour spelled out; accepted and dropped.
        del patch[_DIRECTIVE]
    result: dict[str, Any] = dict(original or {})
    _apply_retain_keys(result, patch)
    _apply_set_element_order(result, patch, schema)

    # Deletion lists run before the merges so "add x" and "delete y" in one patch commute.
    for key in sorted(patch, key=lambda k: not k.startswith(_DELETE_FROM_PRIMITIVE_LIST)):
        value = patch[key]
        is_delete_list = key.startswith(_DELETE_FROM_PRIMITIVE_LIST)
        if is_delete_list:
            key = key[len(_DELETE_FROM_PRIMITIVE_LIST) :]
            if not key or not isinstance(value, list):
                raise _PatchError(
                    "invalid patch: $deleteFromPrimitiveList/<field> must name a field and hold a list"
                )
        if value is None:
            result.pop(key, None)
            continue
        if key not in result:
            if not is_delete_list:
                cleaned, keep = _remove_directives(_discard_nulls(value))
                if keep:
                    result[key] = cleaned
            continue
        current = result[key]
        meta = schema.child(key)
        if isinstance(current, dict) and isinstance(value, dict):
            if meta.patch_strategy == "replace":
                result[key] = _remove_directives(_discard_nulls(value))[0]
            else:
                merged = _merge_map(current, value, meta)
                result[key] = merged
        elif isinstance(current, list) and isinstance(value, list):
            if meta.merges_lists or is_delete_list:
                result[key] = _merge_slice(
                    list(current), value, meta, meta.merge_key, is_delete_list
                )
            else:
                result[key] = _remove_directives(_discard_nulls(value))[0]
        elif not is_delete_list:
            cleaned, keep = _remove_directives(_discard_nulls(value))
            if keep:
                result[key] = cleaned
            else:
                result.pop(key, None)
    return result


def apply_strategic_merge_patch(
    target: dict[str, Any], patch: Any, merge_keys: StrategicSchema
) -> dict[str, Any]:
    """Apply a strategic merge patch using the object's patch metadata ``merge_keys``.

    Errors are mapped like ``interpretStrategicMergePatchError``: format errors are 400,
    lists of lists are 422.
    """
    if not isinstance(patch, dict):
        raise ApiError.bad_request("invalid JSON document")
    try:
        merged = _merge_map(clone(target), clone(patch), merge_keys)
    except _PatchError as exc:
        if exc.code == 422:
            raise _unprocessable(str(exc)) from None
        raise ApiError.bad_request(str(exc)) from None
    if not isinstance(merged, dict):
        raise ApiError.bad_request("the patch deleted the whole object")
    return merged


# --------------------------------------------------------------------------------------------
# Patch metadata of the built-in kinds kubesim serves
# (from the patchStrategy/patchMergeKey struct tags in k8s.io/api and metav1.ObjectMeta)
# --------------------------------------------------------------------------------------------


def _merge(key: str = "", fields: Mapping[str, StrategicSchema] | None = None) -> StrategicSchema:
    return StrategicSchema(fields or {}, "merge", key)


def _struct(**fields: StrategicSchema) -> StrategicSchema:
    return StrategicSchema(fields)


_OBJECT_META: Final = _struct(
    ownerReferences=_merge("uid"),
    finalizers=_merge(),
)

_CONTAINER: Final[dict[str, StrategicSchema]] = {
    "ports": _merge("containerPort"),
    "env": _merge("name"),
    "volumeMounts": _merge("mountPath"),
    "volumeDevices": _merge("devicePath"),
    # command, args, envFrom carry no tag: replaced atomically.
}

_POD_SPEC: Final = _struct(
    volumes=StrategicSchema({}, "merge,retainKeys", "name"),
    initContainers=_merge("name", _CONTAINER),
    containers=_merge("name", _CONTAINER),
    ephemeralContainers=_merge("name", _CONTAINER),
    imagePullSecrets=_merge("name"),
    hostAliases=_merge("ip"),
    topologySpreadConstraints=_merge("topologyKey"),
    schedulingGates=_merge("name"),
    resourceClaims=StrategicSchema({}, "merge,retainKeys", "name"),
    # tolerations and readinessGates carry no patchStrategy tag in core/v1: replaced atomically.
)

_CONTAINER_STATUS: Final[dict[str, StrategicSchema]] = {
    "volumeMounts": _merge("mountPath"),
    "allocatedResourcesStatus": _merge("name"),
}

_POD_STATUS: Final = _struct(
    conditions=_merge("type"),
    hostIPs=_merge("ip"),
    podIPs=_merge("ip"),
    resourceClaimStatuses=StrategicSchema({}, "merge,retainKeys", "name"),
    # containerStatuses has no tag: replaced atomically (the kubelet always sends all of them).
)

_METADATA_ONLY: Final = _struct(metadata=_OBJECT_META)

STRATEGIC_SCHEMAS: Final[dict[tuple[str, str, str], StrategicSchema]] = {
    ("", "v1", "Pod"): _struct(metadata=_OBJECT_META, spec=_POD_SPEC, status=_POD_STATUS),
    ("", "v1", "Service"): _struct(
        metadata=_OBJECT_META,
        spec=_struct(ports=_merge("port")),
        status=_struct(conditions=_merge("type")),
    ),
    ("", "v1", "Namespace"): _struct(
        metadata=_OBJECT_META, status=_struct(conditions=_merge("type"))
    ),
    ("", "v1", "ConfigMap"): _METADATA_ONLY,
    ("", "v1", "Secret"): _METADATA_ONLY,
    ("", "v1", "Event"): _METADATA_ONLY,
    ("events.k8s.io", "v1", "Event"): _METADATA_ONLY,
    ("coordination.k8s.io", "v1", "Lease"): _METADATA_ONLY,
    ("apps", "v1", "ControllerRevision"): _METADATA_ONLY,
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"): _METADATA_ONLY,
}


def strategic_schema_for(group: str, version: str, kind: str) -> StrategicSchema | None:
    """Patch metadata for a served built-in, or None (custom resources refuse strategic merge)."""
    return STRATEGIC_SCHEMAS.get((group, version, kind))
