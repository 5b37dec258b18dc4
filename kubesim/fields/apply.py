"""Server-side apply: merging an applied configuration into the live object, with ownership.

Why this exists: Helm 4 and ``kubectl apply --server-side`` send
``PATCH application/apply-patch+yaml`` and rely on what the apiserver does with it: create the
object if it is absent, merge lists by their schema keys, remove the fields the same manager
applied before and no longer applies (unless someone else owns them), refuse with a 409 listing
every field another manager set to a different value unless ``force=true``, and record the
applier in ``managedFields``. The merge and ownership rules follow
sigs.k8s.io/structured-merge-diff ``merge.Updater.Apply`` (merge, prune, update); the error
texts follow k8s.io/apimachinery ``managedfields/internal/conflict.go`` and the PatchOptions
validation of ``k8s.io/apiserver``.

Docs: https://kubernetes.io/docs/reference/using-api/server-side-apply/
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from kubesim.fields.managed_fields import (
    EMPTY,
    MANAGER_MAX_LENGTH,
    FieldSet,
    ManagerKey,
    Managers,
    ObjectShape,
    Path,
    compare,
    decode_managed_fields,
    encode_managed_fields,
    list_elements,
    only_prefix,
    path_string,
    strip_meta,
    to_field_set,
    without_prefix,
)
from kubesim.wire.errors import (
    ApiError,
    StatusCause,
    field_forbidden,
    field_required,
    field_too_long,
)

__all__ = [
    "APPLY_PATCH",
    "AppliedObject",
    "apply_configuration",
    "check_configuration",
    "conflict_error",
    "merge",
    "validate_patch_options",
]

APPLY_PATCH: Final = "application/apply-patch+yaml"
_STATUS: Final[Path] = ("f:status",)


def validate_patch_options(is_apply: bool, field_manager: str, force: str | None) -> None:
    """ValidatePatchOptions: apply needs a fieldManager; ``force`` belongs to apply only."""
    causes: list[StatusCause] = []
    if not is_apply and force is not None:
        causes.append(field_forbidden("force", "may not be specified for non-apply patch"))
    if is_apply and not field_manager:
        causes.append(field_required("fieldManager", "is required for apply patch"))
    if len(field_manager) > MANAGER_MAX_LENGTH:
        causes.append(field_too_long("fieldManager", MANAGER_MAX_LENGTH))
    if causes:
        raise ApiError.invalid("meta.k8s.io", "PatchOptions", "", causes)


def check_configuration(body: Any, kind: str, name: str) -> dict[str, Any]:
    """An applied configuration is an object of the URL's name without managedFields."""
    if not isinstance(body, dict):
        raise ApiError.bad_request(f"the object provided is unrecognized (must be of type {kind})")
    meta = body.get("metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise ApiError.bad_request("metadata must be an object")
    if meta.get("managedFields") is not None:
        raise ApiError.bad_request("metadata.managedFields must be nil")
    if meta.get("name") and meta["name"] != name:
        raise ApiError.bad_request(
            f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
        )
    return {**body, "metadata": {**meta, "name": name}}


# --------------------------------------------------------------------------------------------
# Merge (typed.TypedValue.Merge)
# --------------------------------------------------------------------------------------------


def merge(live: Any, config: Any, shape: ObjectShape) -> Any:
    """The applied configuration over the live value: granular objects merge key by key,
    associative and set lists merge by element (the configuration's order wins for elements
    both have; live-only elements keep their place), atomic values are replaced."""
    return _merge(live, config, shape.root, (), shape)


def _merge(
    live: Any, config: Any, node: Mapping[str, Any] | None, path: Path, shape: ObjectShape
) -> Any:
    if (
        isinstance(config, dict)
        and isinstance(live, dict)
        and not (path and shape.atomic_map(node))
    ):
        out = dict(live)
        for key, value in config.items():
            if value is None:
                # An explicit null leaves the field unset (the typed object has no null fields).
                out.pop(key, None)
                continue
            child_node, _ = shape.field(node, key)
            out[key] = (
                _merge(live[key], value, child_node, (*path, "f:" + key), shape)
                if key in live
                else value
            )
        return out
    if isinstance(config, list) and isinstance(live, list) and shape.list_type(node)[0] != "atomic":
        return _merge_list(live, config, node, path, shape)
    return config


def _merge_list(
    live: list[Any],
    config: list[Any],
    node: Mapping[str, Any] | None,
    path: Path,
    shape: ObjectShape,
) -> list[Any]:
    item_node = shape.items(node)
    lkeys = list_elements(shape, node, live)
    rkeys = list_elements(shape, node, config)
    live_by = dict(zip(lkeys, live, strict=True))
    config_by = dict(zip(rkeys, config, strict=True))
    out: list[Any] = []
    done: set[str] = set()

    def take(key: str) -> None:
        value = config_by[key]
        out.append(
            _merge(live_by[key], value, item_node, (*path, key), shape) if key in live_by else value
        )
        done.add(key)

    li = ri = 0
    while li < len(live) or ri < len(config):
        if li < len(live) and ri < len(config) and lkeys[li] == rkeys[ri]:
            if lkeys[li] not in done:
                take(rkeys[ri])
            li += 1
            ri += 1
            continue
        if li < len(live):
            key = lkeys[li]
            if key not in config_by:
                out.append(live[li])
                li += 1
                continue
            if key in done or ri >= len(config):
                li += 1
                continue
        if ri < len(config):
            if rkeys[ri] not in done:
                take(rkeys[ri])
            ri += 1
    return out


# --------------------------------------------------------------------------------------------
# Removing paths (prune)
# --------------------------------------------------------------------------------------------


def _remove_path(obj: Any, path: Path, shape: ObjectShape) -> Any:
    """A copy of ``obj`` without the value at ``path`` (copies only along the path)."""
    return _remove(obj, path, shape.root, shape)


def _remove(value: Any, path: Path, node: Mapping[str, Any] | None, shape: ObjectShape) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(value, dict) and head.startswith("f:"):
        name = head[2:]
        if name not in value:
            return value
        out = dict(value)
        if rest:
            child_node, _ = shape.field(node, name)
            out[name] = _remove(value[name], rest, child_node, shape)
        else:
            del out[name]
        return out
    if isinstance(value, list):
        elements = list_elements(shape, node, value)
        if head not in elements:
            return value
        index = elements.index(head)
        items = list(value)
        if rest:
            items[index] = _remove(value[index], rest, shape.items(node), shape)
        else:
            del items[index]
        return items
    return value


# --------------------------------------------------------------------------------------------
# Apply
# --------------------------------------------------------------------------------------------


def _prune(
    merged: dict[str, Any],
    last: FieldSet,
    applied: FieldSet,
    managers: Managers,
    key: ManagerKey,
    shape: ObjectShape,
) -> Any:
    """merge.Updater.prune: what the applier applied last time and no longer applies leaves the
    object, unless a manager (the applier included) still owns it or something below it."""
    kept: set[Path] = set(applied)
    for _, owned in managers.others(key):
        kept |= owned
    for path in list(kept):
        kept.update(path[:i] for i in range(1, len(path)))
    removed: set[Path] = set()
    for path in sorted(last - kept, key=len):
        if any(path[:i] in removed for i in range(1, len(path))):
            continue  # went with its parent
        merged = _remove_path(merged, path, shape)
        removed.add(path)
        if shape.builtin:
            # omitempty: a built-in's map (labels, annotations, data) emptied by the removal is
            # not serialized, unless someone owns it; structs and lists stay.
            for depth in range(len(path) - 1, 0, -1):
                value, node = _value_at(merged, path[:depth], shape)
                resolved = shape.resolve(node)
                if (
                    value != {}
                    or path[:depth] in kept
                    or resolved is None
                    or "additionalProperties" not in resolved
                ):
                    break
                merged = _remove_path(merged, path[:depth], shape)
    return merged


def _value_at(obj: Any, path: Path, shape: ObjectShape) -> tuple[Any, Mapping[str, Any] | None]:
    """The value at ``path`` and its schema."""
    node = shape.root
    for element in path:
        if isinstance(obj, dict) and element.startswith("f:"):
            node = shape.field(node, element[2:])[0]
            obj = obj.get(element[2:])
        elif isinstance(obj, list):
            elements = list_elements(shape, node, obj)
            if element not in elements:
                return None, None
            obj = obj[elements.index(element)]
            node = shape.items(node)
        else:
            return None, None
    return obj, node


@dataclass(frozen=True)
class AppliedObject:
    obj: dict[str, Any]
    managed_fields: list[dict[str, Any]]


def conflict_error(conflicts: Mapping[ManagerKey, FieldSet]) -> ApiError:
    """NewConflictError: one cause per conflicting field, the message grouped by manager."""
    pairs = sorted(
        ((key, path) for key, paths in conflicts.items() for path in paths),
        key=lambda kp: (kp[0].manager, path_string(kp[1])),
    )
    causes = [
        StatusCause("FieldManagerConflict", f"conflict with {key.describe()}", path_string(path))
        for key, path in pairs
    ]
    if len(pairs) == 1:
        key, path = pairs[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {key.describe()}: {path_string(path)}"
        )
    else:
        lines: list[str] = []
        for key in sorted(conflicts, key=lambda k: k.manager):
            lines.append(f"conflicts with {key.describe()}:")
            lines.extend(f"- {path_string(p)}" for p in sorted(conflicts[key], key=path_string))
        message = f"Apply failed with {len(pairs)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {}, causes)


def _owned_part(fields: FieldSet, subresource: str | None, has_status: bool) -> FieldSet:
    """The resource's reset fields: status belongs to /status, everything else to the main
    resource (when the status subresource exists)."""
    if subresource == "status":
        return only_prefix(fields, _STATUS)
    return without_prefix(fields, _STATUS) if has_status else fields


def apply_configuration(
    live: dict[str, Any],
    config: dict[str, Any],
    shape: ObjectShape,
    key: ManagerKey,
    *,
    force: bool,
    now: str,
    subresource: str | None = None,
    has_status: bool = False,
) -> AppliedObject:
    """merge.Updater.Apply on the live object (``{}`` when creating). Raises the 409 apply
    conflict unless ``force``.

    For the manager ``kubectl`` on an object that carries client-side apply's
    last-applied-configuration annotation, the apiserver eases the move to server-side apply
    (managedfields ``lastAppliedManager`` / ``lastAppliedUpdater``): conflicts on fields whose
    live value is still the last-applied one are forced, and the annotation follows the applied
    configuration so a later client-side apply diffs against it."""
    sent = config
    if subresource == "status":
        config = {
            k: v for k, v in config.items() if k in ("apiVersion", "kind", "metadata", "status")
        }
        config["metadata"] = {
            k: v for k, v in (config.get("metadata") or {}).items() if k in ("name", "namespace")
        }
    elif has_status:
        config = {k: v for k, v in config.items() if k != "status"}
    kubectl_migration = (
        key.manager == "kubectl" and subresource is None and _last_applied(live) is not None
    )
    result, conflicts = _apply_once(live, config, shape, key, force, now, subresource, has_status)
    if conflicts:
        allowed = _unchanged_since_last_applied(live, shape) if kubectl_migration else EMPTY
        remaining = {m: paths - allowed for m, paths in conflicts.items() if paths - allowed}
        if remaining:
            raise conflict_error(remaining)
        result, _ = _apply_once(live, config, shape, key, True, now, subresource, has_status)
    assert result is not None
    if kubectl_migration:
        _set_last_applied(result.obj, sent)
    return result


def _apply_once(
    live: dict[str, Any],
    config: dict[str, Any],
    shape: ObjectShape,
    key: ManagerKey,
    force: bool,
    now: str,
    subresource: str | None,
    has_status: bool,
) -> tuple[AppliedObject | None, dict[ManagerKey, FieldSet]]:
    managers = decode_managed_fields((live.get("metadata") or {}).get("managedFields"))
    merged = merge(live, config, shape)
    applied = _owned_part(strip_meta(to_field_set(config, shape)), subresource, has_status)
    last = managers.fields.get(key, EMPTY)
    if last:
        merged = _prune(merged, last, applied, managers, key, shape)
    managers.fields[key] = applied
    change = compare(live, merged, shape)
    changed = change.added | change.modified
    conflicts = {other: owned & changed for other, owned in managers.others(key) if owned & changed}
    if conflicts and not force:
        return None, conflicts
    for other, owned in list(managers.others(key)):
        managers.fields[other] = owned - changed - change.removed
    previous = decode_managed_fields((live.get("metadata") or {}).get("managedFields"))
    if change.empty() and previous.fields == {k: v for k, v in managers.fields.items() if v}:
        # Nothing changed, timestamps included (the apiserver ignores timestamp-only changes).
        entries = (live.get("metadata") or {}).get("managedFields") or []
    else:
        managers.times[key] = now
        entries = encode_managed_fields(managers)
    return AppliedObject(merged, entries), {}


LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"


def _last_applied(obj: Mapping[str, Any]) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    return value if isinstance(value, str) and value else None


def _unchanged_since_last_applied(live: Mapping[str, Any], shape: ObjectShape) -> FieldSet:
    """allowedConflictsFromLastApplied: the last-applied fields whose live value is unchanged."""
    try:
        last = json.loads(_last_applied(live) or "")
    except ValueError:
        return EMPTY
    if not isinstance(last, dict):
        return EMPTY
    unchanged = compare(last, live, shape)
    return to_field_set(last, shape) - unchanged.modified - unchanged.removed


def _set_last_applied(obj: dict[str, Any], sent: Mapping[str, Any]) -> None:
    """buildLastApplied: the applied configuration without the annotation, as Go encodes it."""
    config = json.loads(json.dumps(sent))
    annotations = (config.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED, None)
    meta = dict(obj["metadata"])
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        LAST_APPLIED: json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        + "\n",
    }
    obj["metadata"] = meta
