"""The input gatherer validates a spec once per (uid, generation): a roll-out reconciles often,
and validating and hashing 10,000 inline wells costs tens of milliseconds each time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelfleet.control.cache import ObservedFleet, WatchCache
from modelfleet.control.inputs import FleetInputs, InputGatherer
from modelfleet.io.execution import FleetRef
from modelfleet.logic.inventory import BlockedFleet
from tests.operator.test_fleet_worker import GOOD_SPEC, NAMESPACE, FakeExecutor
from tests.operator.test_inventory_cache import RecordingListener


def body(spec: dict[str, Any], *, uid: str = "uid-1", generation: int = 1) -> dict[str, Any]:
    metadata = {"namespace": NAMESPACE, "name": "fr", "uid": uid, "generation": generation}
    return {"metadata": metadata, "spec": spec}


def gather(gatherer: InputGatherer, fleet_body: dict[str, Any]) -> FleetInputs:
    fleet = FleetRef(NAMESPACE, "fr", fleet_body["metadata"]["uid"])
    observed = ObservedFleet(body=fleet_body)
    return asyncio.run(gatherer.gather(fleet, observed, failure_reported=False))


def gatherer() -> InputGatherer:
    return InputGatherer(FakeExecutor(), WatchCache(RecordingListener()))


def test_the_same_generation_reuses_the_validated_spec_and_its_revision() -> None:
    inputs = gatherer()
    first = gather(inputs, body(GOOD_SPEC))
    second = gather(inputs, body(GOOD_SPEC))
    assert second.spec is first.spec and second.update is first.update


def test_a_new_generation_is_validated_again() -> None:
    inputs = gatherer()
    first = gather(inputs, body(GOOD_SPEC))
    model = {"name": "esp", "version": "2.0.0", "bundleUri": "file:///b/{version}/{well}/"}
    edited = {**GOOD_SPEC, "model": model}
    second = gather(inputs, body(edited, generation=2))
    assert second.spec.model.version == "2.0.0"
    assert second.update.name != first.update.name  # a new pod template, a new revision


def test_a_fleet_created_again_under_the_same_name_is_validated_again() -> None:
    # Generation restarts at 1 for a new object: only the uid tells the two apart.
    inputs = gatherer()
    gather(inputs, body(GOOD_SPEC, uid="uid-1"))
    edited = {**GOOD_SPEC, "wells": [{"id": "w7"}]}
    again = gather(inputs, body(edited, uid="uid-2"))
    assert [well.id for well in again.spec.wells or []] == ["w7"]


def test_an_invalid_spec_is_refused_every_time_and_then_a_fix_is_taken() -> None:
    inputs = gatherer()
    broken = {**GOOD_SPEC, "wells": "not a list"}
    for _ in range(2):
        with pytest.raises(BlockedFleet, match=r"spec\.wells"):
            gather(inputs, body(broken, generation=3))
    fixed = gather(inputs, body(GOOD_SPEC, generation=4))
    assert len(fixed.spec.wells or []) == 3
