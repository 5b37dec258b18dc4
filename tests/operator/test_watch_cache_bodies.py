"""What the watch cache keeps of a ModelDeployment: the body without metadata.managedFields.

The apiserver records a field entry per list item, so a 10,000-well fleet's managedFields are
most of its object (430,861 of 591,641 bytes on kubesim); the cache never reads them.
"""

from __future__ import annotations

from typing import Any

from modelfleet.control.cache import FleetKey, WatchCache, without_managed_fields

NAMESPACE = "cache-bodies"


class Listener:
    def __init__(self) -> None:
        self.changed: list[FleetKey] = []

    def fleet_changed(self, key: FleetKey) -> None:
        self.changed.append(key)

    def well_changed(self, key: FleetKey, well: str) -> None:
        return None

    def inventory_changed(self, key: FleetKey) -> None:
        return None

    def fleet_deleted(self, key: FleetKey) -> None:
        return None


def managed_fields(wells: int) -> list[dict[str, Any]]:
    """managedFields as the apiserver writes them: one entry per well of the list."""
    entries: dict[str, Any] = {f'k:{{"id":"w{i}"}}': {".": {}, "f:id": {}} for i in range(wells)}
    return [
        {
            "manager": "kubectl",
            "operation": "Update",
            "apiVersion": "modelfleet.dev/v1alpha1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:wells": entries}},
        }
    ]


def fleet_body(rv: int, wells: int = 3, status: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {
            "namespace": NAMESPACE,
            "name": "esp",
            "uid": "uid-esp",
            "resourceVersion": str(rv),
            "generation": 1,
            "labels": {"team": "lift"},
            "managedFields": managed_fields(wells),
        },
        "spec": {
            "model": {"name": "esp", "version": "1.0.0", "bundleUri": "file:///b/{well}/"},
            "wells": [{"id": f"w{i}"} for i in range(wells)],
        },
    }
    if status is not None:
        body["status"] = status
    return body


def test_a_watched_fleet_is_kept_without_its_managed_fields_and_the_event_is_untouched() -> None:
    cache = WatchCache(Listener())
    body = fleet_body(rv=5, status={"phase": "Progressing"})
    cache.observe_deployment("ADDED", body)
    kept = cache.fleets[(NAMESPACE, "esp")].body
    assert kept is not None
    assert "managedFields" not in kept["metadata"]
    expected = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    assert kept["metadata"] == expected
    assert kept["spec"] == body["spec"] and kept["status"] == body["status"]
    assert cache.fleets[(NAMESPACE, "esp")].generation() == 1
    # The watch's own object (kopf's) is not changed.
    assert body["metadata"]["managedFields"] == managed_fields(3)


def test_a_status_write_answer_replaces_the_body_without_its_managed_fields() -> None:
    cache = WatchCache(Listener())
    key = (NAMESPACE, "esp")
    cache.observe_deployment("ADDED", fleet_body(rv=5))
    status = {"phase": "Available", "readyWells": 3}
    stored = fleet_body(rv=6, status=status)
    cache.record_status(key, status, stored)
    kept = cache.fleets[key].body
    assert kept is not None
    assert kept["metadata"]["resourceVersion"] == "6"
    assert "managedFields" not in kept["metadata"]
    assert cache.fleets[key].last_status == status
    # An older watch event (before the write) does not bring the old body back.
    cache.observe_deployment("MODIFIED", fleet_body(rv=5))
    assert cache.fleets[key].body is kept


def test_a_body_without_managed_fields_is_kept_as_it_is() -> None:
    body = fleet_body(rv=1)
    del body["metadata"]["managedFields"]
    assert without_managed_fields(body) is body
    assert without_managed_fields({"spec": {}}) == {"spec": {}}


def test_what_the_cache_keeps_of_a_big_fleet_is_far_smaller_than_the_watched_body() -> None:
    import json

    body = fleet_body(rv=1, wells=2_000)
    kept = without_managed_fields(body)
    assert len(json.dumps(kept)) * 3 < len(json.dumps(body))
