"""Well inventories by reference: a fleet's wells and digests read from ConfigMaps.

A ModelDeployment must fit in the apiserver's object size limit (1.5 MiB in etcd), which a
realistic fleet with a digest per well outgrows at about 8,600 wells. `spec.wellsFrom` and
`spec.model.digestsFrom` name ConfigMaps (each at most 1 MiB of data) holding the rest, under the
keys `wells.yaml` (a list of wells, the schema of `spec.wells` items) and `digests.yaml` (well id
-> sha256 digest).

Everything here is pure: the reconciler hands over what its ConfigMap watch last saw, and
`resolve_inventory` returns the spec with every well and digest inline, which the planner and the
revisions take exactly as they take an inline spec (so a rollback restores the resolved digests
from the ControllerRevision, whatever happened to the ConfigMaps since). When a ConfigMap is
missing or wrong, `InventoryError` says which ConfigMap, which key, which well and what was
expected; the reconciler then changes no pod and reports the error (`failure_status`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from modelfleet.api.spec import (
    DIGEST_PATTERN,
    DIGESTS_KEY,
    DNS1123_LABEL,
    MAX_FLEET_WELLS,
    WELLS_KEY,
    ConditionType,
    ModelDeploymentSpec,
    Phase,
    Reason,
    Well,
)
from modelfleet.logic.fleet_status import rfc3339

#: The fields a well may carry in wells.yaml. Unknown ones are refused rather than dropped: a
#: misspelt `pin` would otherwise silently move a pinned well to the new version.
WELL_FIELDS = frozenset(Well.model_fields)
#: Pod names are `<deployment>-<well>` and double as DNS hostnames.
MAX_POD_NAME = 63

_WELLS = TypeAdapter(list[Well])
_WELL_ID = re.compile(DNS1123_LABEL)
_DIGEST = re.compile(DIGEST_PATTERN)
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BlockedFleet(Exception):
    """The fleet cannot be planned; status (Degraded) and a Warning event say why."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class InventoryError(BlockedFleet):
    """A fleet's inventory cannot be read; the message names the ConfigMap, key and well."""


@dataclass(frozen=True)
class InventorySource:
    """The inventory keys of one ConfigMap, as last seen; parsed once, on first use."""

    name: str
    resource_version: str
    data: Mapping[str, str]  # only WELLS_KEY and DIGESTS_KEY are kept
    other_keys: tuple[str, ...] = ()  # names of the keys not kept, for error messages

    @classmethod
    def from_config_map(cls, body: Mapping[str, Any]) -> InventorySource:
        meta = body.get("metadata") or {}
        data = body.get("data") or {}
        kept = {k: str(v) for k, v in data.items() if k in (WELLS_KEY, DIGESTS_KEY)}
        others = sorted({*data, *(body.get("binaryData") or {})} - set(kept))
        return cls(
            name=str(meta.get("name", "")),
            resource_version=str(meta.get("resourceVersion", "")),
            data=kept,
            other_keys=tuple(others),
        )

    @functools.cached_property
    def wells(self) -> list[Well] | InventoryError:
        try:
            return parse_wells(self.name, self._text(WELLS_KEY))
        except InventoryError as exc:
            return exc

    @functools.cached_property
    def digests(self) -> dict[str, str] | InventoryError:
        try:
            return parse_digests(self.name, self._text(DIGESTS_KEY))
        except InventoryError as exc:
            return exc

    def _text(self, key: str) -> str:
        if key in self.other_keys:  # kept keys come from data, so this one is binaryData
            raise InventoryError(
                Reason.INVENTORY_INVALID,
                f"ConfigMap {self.name} has {key} under binaryData; expected it under data as "
                "UTF-8 text (kubectl create configmap --from-file puts text files there)",
            )
        if key not in self.data:
            keys = ", ".join(self.other_keys) or "none"
            raise InventoryError(
                Reason.INVENTORY_NOT_FOUND,
                f"ConfigMap {self.name} has no key {key} (its keys: {keys}); expected {key} under "
                f"data, e.g. kubectl create configmap {self.name} --from-file={key}=<file>",
            )
        return self.data[key]


# ------------------------------------------------------------------------------------ parsing


def _load(config_map: str, key: str, text: str) -> Any:
    """JSON is tried first: it is valid YAML and parses ~20x faster at 10,000 wells."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.load(text, Loader=_YAML_LOADER)  # CSafeLoader (or SafeLoader): safe
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InventoryError(
            Reason.INVENTORY_INVALID,
            f"ConfigMap {config_map} key {key} is not valid YAML{where}: {problem}",
        ) from None


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"[:80]


def parse_wells(config_map: str, text: str) -> list[Well]:
    """The wells of a wells.yaml: a list of {id, labels, pin}, validated like spec.wells."""
    where = f"ConfigMap {config_map} key {WELLS_KEY}"
    items = _load(config_map, WELLS_KEY, text)
    if not isinstance(items, list):
        raise InventoryError(
            Reason.INVENTORY_INVALID,
            f"{where} must hold a list of wells (- id: ..., labels: {{...}}, pin: ...); "
            f"found {_kind(items)}",
        )
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InventoryError(
                Reason.INVENTORY_INVALID,
                f"{where}: well [{index}] must be a mapping with id, labels, pin; "
                f"found {_kind(item)}",
            )
        unknown = set(item) - WELL_FIELDS
        if unknown:
            raise InventoryError(
                Reason.INVENTORY_INVALID,
                f"{where}: well [{index}]{_id_of(item)}: unknown field "
                f"{', '.join(sorted(map(str, unknown)))} (a well has {', '.join(sorted(WELL_FIELDS))})",
            )
    try:
        wells = _WELLS.validate_python(items)
    except ValidationError as exc:
        raise InventoryError(Reason.INVENTORY_INVALID, _schema_message(where, items, exc)) from None
    seen: dict[str, int] = {}
    for index, well in enumerate(wells):
        first = seen.setdefault(well.id, index)
        if first != index:
            raise InventoryError(
                Reason.INVENTORY_INVALID,
                f"{where}: well id {well.id} appears twice, at [{first}] and [{index}]",
            )
    return wells


def _id_of(item: Mapping[str, Any]) -> str:
    return f" (id {item['id']!r})" if "id" in item else ""


def _schema_message(where: str, items: list[Any], exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    loc = list(first["loc"])
    index = loc.pop(0) if loc and isinstance(loc[0], int) else None
    item = items[index] if isinstance(index, int) else {}
    field = ".".join(str(part) for part in loc) or "well"
    value = first.get("input")
    hint = ""
    if value is not None and not isinstance(value, str | dict | list) and "string" in first["msg"]:
        hint = f" (YAML read {value!r} as {type(value).__name__}: quote it)"
    more = f"; {len(errors) - 1} more error(s)" if len(errors) > 1 else ""
    return (
        f"{where}: well [{index}]{_id_of(item)}: {field}: {first['msg']}{hint}{more}; "
        "expected the fields of spec.wells items (see kubectl explain modeldeployment.spec.wells)"
    )


def parse_digests(config_map: str, text: str) -> dict[str, str]:
    """The digests of a digests.yaml: a mapping of well id to sha256:<64 hex>."""
    where = f"ConfigMap {config_map} key {DIGESTS_KEY}"
    mapping = _load(config_map, DIGESTS_KEY, text)
    if not isinstance(mapping, dict):
        raise InventoryError(
            Reason.INVENTORY_INVALID,
            f"{where} must hold a mapping of well id to digest (<well>: sha256:<64 hex>); "
            f"found {_kind(mapping)}",
        )
    for well, digest in mapping.items():
        if not isinstance(well, str) or not _WELL_ID.match(well) or len(well) > 40:
            raise InventoryError(
                Reason.INVENTORY_INVALID,
                f"{where}: key {well!r} is not a well id (a DNS-1123 label of at most 40 "
                "characters)",
            )
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise InventoryError(
                Reason.INVENTORY_INVALID,
                f"{where}: well {well}: digest {str(digest)[:80]!r} is not sha256:<64 lowercase hex>",
            )
    return {str(k): str(v) for k, v in mapping.items()}


# ---------------------------------------------------------------------------------- resolving


def referenced_config_maps(spec: Mapping[str, Any]) -> frozenset[str]:
    """Names of the ConfigMaps a raw ModelDeployment spec reads (no validation: cheap)."""
    refs = [*(spec.get("wellsFrom") or []), *((spec.get("model") or {}).get("digestsFrom") or [])]
    return frozenset(str(r["configMap"]) for r in refs if isinstance(r, dict) and "configMap" in r)


def uses_inventory(spec: ModelDeploymentSpec) -> bool:
    return bool(spec.wells_from or spec.model.digests_from)


def resolve_inventory(
    spec: ModelDeploymentSpec,
    deployment: str,
    sources: Mapping[str, InventorySource | None],
) -> ModelDeploymentSpec:
    """The spec with every well and digest inline, as the planner and revisions take it.

    `sources` holds what was read of each referenced ConfigMap (None: it does not exist).
    Raises InventoryError for the first problem found, in spec order.
    """
    if not uses_inventory(spec):
        return spec
    wells = list(spec.wells)
    origin = {w.id: f"spec.wells[{i}]" for i, w in enumerate(wells)}
    for ref_index, ref in enumerate(spec.wells_from or []):
        parsed = _source(sources, ref.config_map, f"spec.wellsFrom[{ref_index}]").wells
        if isinstance(parsed, InventoryError):
            raise parsed
        for index, well in enumerate(parsed):
            here = f"ConfigMap {ref.config_map} key {WELLS_KEY} [{index}]"
            if well.id in origin:
                raise InventoryError(
                    Reason.INVENTORY_INVALID,
                    f"well id {well.id} appears twice: {origin[well.id]} and {here}; "
                    "each well must be listed once across spec.wells and wellsFrom",
                )
            if len(deployment) + 1 + len(well.id) > MAX_POD_NAME:
                raise InventoryError(
                    Reason.INVENTORY_INVALID,
                    f"{here}: well id {well.id} makes the pod name {deployment}-{well.id} longer "
                    f"than {MAX_POD_NAME} characters (it is the well's hostname); shorten the "
                    "ModelDeployment name or the well id",
                )
            origin[well.id] = here
        wells.extend(parsed)
        if len(wells) > MAX_FLEET_WELLS:
            raise InventoryError(
                Reason.INVENTORY_INVALID,
                f"the fleet has more than {MAX_FLEET_WELLS:,} wells (reached {len(wells):,} with "
                f"ConfigMap {ref.config_map}, spec.wellsFrom[{ref_index}]); at most "
                f"{MAX_FLEET_WELLS:,} wells per ModelDeployment: split the fleet",
            )
    model = spec.model
    if model.digests_from:
        digests: dict[str, str] = {}
        digest_origin: dict[str, str] = {}
        for ref_index, ref in enumerate(model.digests_from):
            parsed_digests = _source(
                sources, ref.config_map, f"spec.model.digestsFrom[{ref_index}]"
            ).digests
            if isinstance(parsed_digests, InventoryError):
                raise parsed_digests
            for well_id in parsed_digests:
                if well_id in digest_origin:
                    raise InventoryError(
                        Reason.INVENTORY_INVALID,
                        f"well {well_id} has a digest in ConfigMap {digest_origin[well_id]} and "
                        f"in ConfigMap {ref.config_map} (key {DIGESTS_KEY}); each well's digest "
                        "must come from one ConfigMap",
                    )
                digest_origin[well_id] = ref.config_map
            digests.update(parsed_digests)
            if len(digests) > MAX_FLEET_WELLS:
                raise InventoryError(
                    Reason.INVENTORY_INVALID,
                    f"spec.model.digestsFrom holds more than {MAX_FLEET_WELLS:,} digests "
                    f"(reached {len(digests):,} with ConfigMap {ref.config_map}); the "
                    "ControllerRevision records them all: keep only this fleet's wells",
                )
        model = model.model_copy(update={"digests": digests, "digests_from": None})
    return spec.model_copy(update={"wells": wells, "wells_from": None, "model": model})


def _source(
    sources: Mapping[str, InventorySource | None], name: str, field: str
) -> InventorySource:
    source = sources.get(name)
    if source is None:
        raise InventoryError(
            Reason.INVENTORY_NOT_FOUND,
            f"ConfigMap {name} ({field}) not found in the ModelDeployment's namespace; create "
            f"it, e.g. kubectl create configmap {name} --from-file=<key>=<file>",
        )
    return source


# ------------------------------------------------------------------------------------ status


#: Reasons that stop a fleet before planning: its pods are left alone until they clear.
BLOCKING_REASONS = frozenset(
    {Reason.INVENTORY_INVALID, Reason.INVENTORY_NOT_FOUND, Reason.SPEC_INVALID}
)


def failure_status(
    previous: Mapping[str, Any] | None,
    error: BlockedFleet,
    *,
    generation: int,
    model: str,
    now: float,
) -> dict[str, Any]:
    """The status while the fleet cannot be planned (its inventory cannot be read, or its spec
    is invalid): the counts as they were (no pod changes), Degraded and Progressing saying why.
    Stable for the same error, so no write repeats."""
    status = dict(previous or {})
    conditions = {c["type"]: dict(c) for c in status.get("conditions") or []}
    for ctype, value in ((ConditionType.PROGRESSING, "False"), (ConditionType.DEGRADED, "True")):
        prev = conditions.get(ctype.value) or {}
        same = prev.get("status") == value and prev.get("lastTransitionTime")
        conditions[ctype.value] = {
            "type": ctype.value,
            "status": value,
            "reason": error.reason.value,
            "message": error.message[:1024],
            "lastTransitionTime": prev["lastTransitionTime"] if same else rfc3339(now),
            "observedGeneration": generation,
        }
    order = [ConditionType.AVAILABLE.value, ConditionType.PROGRESSING.value]
    order.append(ConditionType.DEGRADED.value)
    # ModelsHealthy and AnalysisPassed stand as last reported: the fleet's data is no less
    # drifting because its inventory cannot be read.
    order += [t for t in conditions if t not in order]
    status.update(
        observedGeneration=generation,
        model=model,
        phase=Phase.DEGRADED.value,
        conditions=[conditions[t] for t in order if t in conditions],
    )
    return status


def failure_of(status: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(reason, message) of a blocking failure (BLOCKING_REASONS) reported in `status`, if any."""
    for condition in (status or {}).get("conditions") or []:
        if (
            condition.get("type") == ConditionType.DEGRADED.value
            and condition.get("reason") in BLOCKING_REASONS
        ):
            return str(condition["reason"]), str(condition.get("message", ""))
    return None
