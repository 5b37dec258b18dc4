"""Well inventories read from ConfigMaps: parsing, merging and the errors a user acts on.

Pure: ConfigMap bodies in, a resolved spec (or an InventoryError naming the ConfigMap, key, well
and what was expected) out. The operator-level behaviour (nothing changes while an inventory is
broken) is in test_inventory_on_kubesim.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from modelfleet.api.spec import MAX_FLEET_WELLS, ModelDeploymentSpec, Reason
from modelfleet.logic.inventory import (
    InventoryError,
    InventorySource,
    failure_of,
    failure_status,
    parse_digests,
    parse_wells,
    referenced_config_maps,
    resolve_inventory,
)
from modelfleet.logic.revisions import Revision, revision_of

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def config_map(name: str, rv: int = 1, **data: str) -> InventorySource:
    return InventorySource.from_config_map(
        {"metadata": {"name": name, "resourceVersion": str(rv)}, "data": data}
    )


def wells_map(name: str, wells: list[dict[str, Any]]) -> InventorySource:
    return config_map(name, **{"wells.yaml": yaml.safe_dump(wells)})


def digests_map(name: str, digests: dict[str, str]) -> InventorySource:
    return config_map(name, **{"digests.yaml": yaml.safe_dump(digests)})


def spec(**fields: Any) -> ModelDeploymentSpec:
    model = {"name": "esp-failure", "version": "1.0.0", "bundleUri": "file:///b/{version}/{well}"}
    model.update(fields.pop("model", {}))
    return ModelDeploymentSpec.model_validate({"model": model, **fields})


def error_of(*args: Any) -> InventoryError:
    with pytest.raises(InventoryError) as raised:
        resolve_inventory(*args)
    return raised.value


# ------------------------------------------------------------------------------- the fleet


def test_fleet_is_inline_wells_then_each_config_map_in_list_order() -> None:
    fleet = spec(
        wells=[{"id": "w0"}],
        wellsFrom=[{"configMap": "second"}, {"configMap": "first"}],
    )
    sources = {
        "first": wells_map("first", [{"id": "w3"}]),
        "second": wells_map("second", [{"id": "w1", "labels": {"zone": "n"}}, {"id": "w2"}]),
    }
    resolved = resolve_inventory(fleet, "esp", sources)
    assert [w.id for w in resolved.wells] == ["w0", "w1", "w2", "w3"]
    assert resolved.wells[1].labels == {"zone": "n"}
    assert resolved.wells_from is None


def test_digests_from_become_the_revision_digests_like_inline_ones() -> None:
    by_reference = spec(
        wellsFrom=[{"configMap": "wells"}],
        model={"digestsFrom": [{"configMap": "d1"}, {"configMap": "d2"}]},
    )
    sources = {
        "wells": wells_map("wells", [{"id": "w1"}, {"id": "w2"}]),
        "d1": digests_map("d1", {"w1": DIGEST_A}),
        "d2": digests_map("d2", {"w2": DIGEST_B, "elsewhere": DIGEST_A}),
    }
    resolved = resolve_inventory(by_reference, "esp", sources)
    inline = spec(
        wells=[{"id": "w1"}, {"id": "w2"}],
        model={"digests": {"w1": DIGEST_A, "w2": DIGEST_B, "elsewhere": DIGEST_A}},
    )
    # Same wells, same digests: the same revision, whichever way they were given.
    assert revision_of(resolved).name == revision_of(inline).name
    assert resolved.model.digests_from is None
    # The ControllerRevision carries the digests themselves: a rollback needs no ConfigMap.
    restored = Revision.from_data("r", revision_of(resolved).data())
    assert restored.model.digests == {"w1": DIGEST_A, "w2": DIGEST_B, "elsewhere": DIGEST_A}


def test_a_spec_without_references_is_returned_unchanged() -> None:
    inline = spec(wells=[{"id": "w1"}])
    assert resolve_inventory(inline, "esp", {}) is inline


def test_json_is_read_as_well_as_yaml() -> None:
    source = config_map("j", **{"wells.yaml": json.dumps([{"id": "w1", "pin": "0.9"}])})
    assert parse_wells("j", source.data["wells.yaml"])[0].pin == "0.9"


def test_referenced_names_come_from_the_raw_spec() -> None:
    raw = {"wellsFrom": [{"configMap": "a"}], "model": {"digestsFrom": [{"configMap": "d"}]}}
    assert referenced_config_maps(raw) == {"a", "d"}
    assert referenced_config_maps({"wells": []}) == frozenset()


def test_parsing_happens_once_per_config_map_version() -> None:
    source = wells_map("w", [{"id": "w1"}])
    assert source.wells is source.wells


# ------------------------------------------------------------------------------ the errors


@pytest.mark.parametrize(
    ("text", "reason", "expected"),
    [
        ("- id: w1\n\tlabels: {}", Reason.INVENTORY_INVALID, "is not valid YAML at line 2"),
        ("w1: {}", Reason.INVENTORY_INVALID, "must hold a list of wells"),
        ("- w1", Reason.INVENTORY_INVALID, "well [0] must be a mapping"),
        ("- id: w1\n- id: W_2", Reason.INVENTORY_INVALID, "well [1] (id 'W_2'): id: String"),
        ("- id: w1\n  lables: {a: b}", Reason.INVENTORY_INVALID, "unknown field lables"),
        ("- labels: {a: b}", Reason.INVENTORY_INVALID, "well [0]: id: Field required"),
        ("- id: w1\n  labels: {on: yes}", Reason.INVENTORY_INVALID, "quote it"),
        ("- id: w1\n- id: w1", Reason.INVENTORY_INVALID, "appears twice, at [0] and [1]"),
    ],
)
def test_a_wrong_wells_yaml_is_named_with_its_config_map_key_and_well(
    text: str, reason: Reason, expected: str
) -> None:
    fleet = spec(wellsFrom=[{"configMap": "fr-wells"}])
    error = error_of(fleet, "esp", {"fr-wells": config_map("fr-wells", **{"wells.yaml": text})})
    assert error.reason == reason
    assert "ConfigMap fr-wells key wells.yaml" in error.message
    assert expected in error.message


def test_a_missing_config_map_is_not_found_with_the_field_that_names_it() -> None:
    fleet = spec(wellsFrom=[{"configMap": "a"}, {"configMap": "b"}])
    error = error_of(fleet, "esp", {"a": wells_map("a", []), "b": None})
    assert error.reason == Reason.INVENTORY_NOT_FOUND
    assert error.message.startswith("ConfigMap b (spec.wellsFrom[1]) not found")


def test_a_missing_key_is_not_found_and_lists_the_keys_there_are() -> None:
    fleet = spec(wellsFrom=[{"configMap": "fr"}])
    error = error_of(fleet, "esp", {"fr": config_map("fr", **{"wells.yml": "- id: w1"})})
    assert error.reason == Reason.INVENTORY_NOT_FOUND
    assert "has no key wells.yaml (its keys: wells.yml)" in error.message


def test_an_inventory_under_binary_data_is_refused_saying_where_it_belongs() -> None:
    body = {"metadata": {"name": "fr"}, "binaryData": {"wells.yaml": "LSBpZDogdzE="}}
    fleet = spec(wellsFrom=[{"configMap": "fr"}])
    error = error_of(fleet, "esp", {"fr": InventorySource.from_config_map(body)})
    assert error.reason == Reason.INVENTORY_INVALID
    assert "has wells.yaml under binaryData; expected it under data" in error.message


def test_a_well_in_two_sources_names_both_places() -> None:
    fleet = spec(wells=[{"id": "w1"}], wellsFrom=[{"configMap": "a"}])
    error = error_of(fleet, "esp", {"a": wells_map("a", [{"id": "w0"}, {"id": "w1"}])})
    assert error.reason == Reason.INVENTORY_INVALID
    assert "well id w1 appears twice: spec.wells[0] and ConfigMap a key wells.yaml [1]" in (
        error.message
    )


def test_a_well_whose_pod_name_would_be_too_long_is_refused() -> None:
    fleet = spec(wellsFrom=[{"configMap": "a"}])
    error = error_of(fleet, "e" * 30, {"a": wells_map("a", [{"id": "w" * 33}])})
    assert "longer than 63 characters" in error.message


def test_more_wells_than_the_fleet_limit_is_refused() -> None:
    half = MAX_FLEET_WELLS // 2 + 1
    fleet = spec(wellsFrom=[{"configMap": "a"}, {"configMap": "b"}])
    sources = {
        "a": wells_map("a", [{"id": f"a{i}"} for i in range(half)]),
        "b": wells_map("b", [{"id": f"b{i}"} for i in range(half)]),
    }
    error = error_of(fleet, "esp", sources)
    assert f"at most {MAX_FLEET_WELLS:,} wells" in error.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- w1", "must hold a mapping of well id to digest"),
        ("W1: " + DIGEST_A, "key 'W1' is not a well id"),
        ("w1: md5:abc", "well w1: digest 'md5:abc' is not sha256:<64 lowercase hex>"),
    ],
)
def test_a_wrong_digests_yaml_is_named(text: str, expected: str) -> None:
    with pytest.raises(InventoryError) as raised:
        parse_digests("esp-1.0.0-digests", text)
    assert "ConfigMap esp-1.0.0-digests key digests.yaml" in raised.value.message
    assert expected in raised.value.message


def test_a_digest_in_two_config_maps_is_refused() -> None:
    fleet = spec(
        wells=[{"id": "w1"}], model={"digestsFrom": [{"configMap": "x"}, {"configMap": "y"}]}
    )
    sources = {"x": digests_map("x", {"w1": DIGEST_A}), "y": digests_map("y", {"w1": DIGEST_A})}
    error = error_of(fleet, "esp", sources)
    assert "well w1 has a digest in ConfigMap x and in ConfigMap y" in error.message


# ----------------------------------------------------------------------------- properties


well_ids = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(
    inline=st.lists(well_ids, max_size=5, unique=True),
    parts=st.lists(st.lists(well_ids, max_size=8, unique=True), min_size=1, max_size=4),
)
def test_resolution_is_the_concatenation_or_names_the_first_duplicate(
    inline: list[str], parts: list[list[str]]
) -> None:
    fleet = spec(
        wells=[{"id": w} for w in inline],
        wellsFrom=[{"configMap": f"part-{i}"} for i in range(len(parts))],
    )
    sources: dict[str, InventorySource | None] = {
        f"part-{i}": wells_map(f"part-{i}", [{"id": w} for w in part])
        for i, part in enumerate(parts)
    }
    concatenated = inline + [w for part in parts for w in part]
    duplicates = {w for w in concatenated if concatenated.count(w) > 1}
    if not duplicates:
        assert [w.id for w in resolve_inventory(fleet, "esp", sources).wells] == concatenated
        return
    error = error_of(fleet, "esp", sources)
    first = next(w for i, w in enumerate(concatenated) if w in concatenated[:i])
    assert error.reason == Reason.INVENTORY_INVALID
    assert f"well id {first} appears twice" in error.message


@settings(max_examples=40, deadline=None)
@given(
    wells=st.lists(
        st.fixed_dictionaries(
            {"id": well_ids},
            optional={
                "labels": st.dictionaries(
                    st.from_regex(r"[a-z]{1,8}", fullmatch=True),
                    st.from_regex(r"[a-z0-9]{0,10}", fullmatch=True),
                    max_size=3,
                ),
                "pin": st.from_regex(r"[0-9]\.[0-9]{1,3}", fullmatch=True),
            },
        ),
        max_size=20,
        unique_by=lambda w: w["id"],
    ),
    as_json=st.booleans(),
)
def test_what_kubectl_would_store_reads_back_as_the_same_wells(
    wells: list[dict[str, Any]], as_json: bool
) -> None:
    text = json.dumps(wells) if as_json else yaml.safe_dump(wells)
    parsed = parse_wells("fr", text)
    assert [w.model_dump(exclude_none=True) for w in parsed] == wells


# -------------------------------------------------------------------------------- status


def test_failure_status_keeps_counts_and_is_stable_for_the_same_error() -> None:
    previous = {
        "readyWells": 4,
        "phase": "Available",
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "reason": "MinimumWellsAvailable",
                "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            },
            {
                "type": "Degraded",
                "status": "False",
                "reason": "AsExpected",
                "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            },
        ],
    }
    error = InventoryError(Reason.INVENTORY_NOT_FOUND, "ConfigMap b (spec.wellsFrom[1]) not found")
    first = failure_status(previous, error, generation=3, model="m@1", now=1_800_000_000)
    again = failure_status(first, error, generation=3, model="m@1", now=1_800_000_100)
    assert first == again
    assert first["readyWells"] == 4 and first["phase"] == "Degraded"
    assert first["observedGeneration"] == 3
    assert failure_of(first) == ("InventoryNotFound", "ConfigMap b (spec.wellsFrom[1]) not found")
    conditions = {c["type"]: c for c in first["conditions"]}
    assert conditions["Available"] == previous["conditions"][0]  # pods untouched: still serving
    assert conditions["Progressing"]["status"] == "False"
    assert failure_of(previous) is None
