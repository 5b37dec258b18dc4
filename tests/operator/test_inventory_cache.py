"""The operator's ConfigMap cache: only referenced ConfigMaps are kept, newest wins, a watch event
beats a GET answer, and a change that does not touch the inventory wakes no fleet.

Driven through the WatchCache's observe_* methods, as the informers drive them, with a listener
that records what it is told; the one-read rule through the InputGatherer with a fake executor.
No API server, no monkey-patching.
"""

from __future__ import annotations

import asyncio
from typing import Any

from modelfleet.control.cache import FleetKey, WatchCache
from modelfleet.control.inputs import InputGatherer

FLEET = ("fleet", "esp")


class RecordingListener:
    """What the control loop would be told."""

    def __init__(self) -> None:
        self.woken: list[FleetKey] = []
        self.invalidated: list[FleetKey] = []

    def fleet_changed(self, key: FleetKey) -> None:
        self.woken.append(key)

    def well_changed(self, key: FleetKey, well: str) -> None:
        pass

    def inventory_changed(self, key: FleetKey) -> None:
        self.invalidated.append(key)
        self.woken.append(key)

    def fleet_deleted(self, key: FleetKey) -> None:
        pass


class ConfigMapReader:
    """The executor's ConfigMap read, answered from a dict; counts the reads."""

    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects
        self.reads: list[str] = []

    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append(name)
        return self.objects.get(name)


def config_map(name: str, rv: int, wells: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "fleet",
            "name": name,
            "resourceVersion": str(rv),
            "labels": labels,
        },
        "data": {"wells.yaml": wells, "unrelated.txt": "x" * 100},
    }


def fleet(*config_maps: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "fleet", "name": "esp", "uid": "u", "resourceVersion": "1"},
        "spec": {"wellsFrom": [{"configMap": n} for n in config_maps]},
    }


def watch_cache() -> tuple[WatchCache, RecordingListener]:
    listener = RecordingListener()
    return WatchCache(listener), listener


def test_only_referenced_config_maps_are_kept_and_only_their_inventory_keys() -> None:
    cache, _ = watch_cache()
    cache.observe_deployment("ADDED", fleet("fr-wells"))
    cache.observe_config_map("ADDED", config_map("kube-root-ca.crt", 5, "-"))
    cache.observe_config_map("ADDED", config_map("fr-wells", 6, "- id: w1"))
    assert list(cache.config_maps) == [("fleet", "fr-wells")]
    source = cache.config_maps[("fleet", "fr-wells")].source
    assert source is not None and dict(source.data) == {"wells.yaml": "- id: w1"}
    # The fleet stops naming it: it is forgotten.
    cache.observe_deployment(
        "MODIFIED", {**fleet(), "metadata": {**fleet()["metadata"], "resourceVersion": "2"}}
    )
    assert cache.config_maps == {}


def test_an_older_event_never_replaces_a_newer_one() -> None:
    cache, _ = watch_cache()
    cache.observe_deployment("ADDED", fleet("fr-wells"))
    cache.observe_config_map("MODIFIED", config_map("fr-wells", 9, "- id: new"))
    cache.observe_config_map("MODIFIED", config_map("fr-wells", 7, "- id: old"))
    source = cache.config_maps[("fleet", "fr-wells")].source
    assert source is not None and source.data["wells.yaml"] == "- id: new"


def test_a_label_change_keeps_the_parsed_inventory_and_wakes_nobody() -> None:
    cache, listener = watch_cache()
    cache.observe_deployment("ADDED", fleet("fr-wells"))
    cache.observe_config_map("ADDED", config_map("fr-wells", 3, "- id: w1"))
    parsed = cache.config_maps[("fleet", "fr-wells")].source
    assert parsed is not None and not isinstance(parsed.wells, Exception)
    listener.woken.clear()
    cache.observe_config_map("MODIFIED", config_map("fr-wells", 4, "- id: w1", team="ops"))
    assert cache.config_maps[("fleet", "fr-wells")].source is parsed
    assert listener.woken == []


def test_a_deleted_config_map_is_remembered_as_missing_and_invalidates_its_fleet() -> None:
    cache, listener = watch_cache()
    cache.observe_deployment("ADDED", fleet("fr-wells"))
    cache.observe_config_map("ADDED", config_map("fr-wells", 3, "- id: w1"))
    listener.woken.clear()
    listener.invalidated.clear()
    cache.observe_config_map("DELETED", config_map("fr-wells", 4, "- id: w1"))
    assert cache.config_maps[("fleet", "fr-wells")].source is None
    assert listener.invalidated == [FLEET] and listener.woken == [FLEET]


def test_a_reference_the_watch_has_not_kept_is_read_once() -> None:
    cache, _ = watch_cache()
    reader = ConfigMapReader({"fr-wells": config_map("fr-wells", 3, "- id: w1")})
    gatherer = InputGatherer(reader, cache)  # type: ignore[arg-type]  # only reads ConfigMaps
    cache.observe_deployment("ADDED", fleet("fr-wells", "missing"))

    async def twice() -> list[dict[str, Any]]:
        refs = cache.fleets[FLEET].inventory_refs
        first = await gatherer.inventory_sources("fleet", refs)
        second = await gatherer.inventory_sources("fleet", refs)
        return [first, second]

    first, second = asyncio.run(twice())
    assert first == second
    assert first["missing"] is None and first["fr-wells"] is not None
    assert sorted(reader.reads) == ["fr-wells", "missing"]  # one per name, not per reconcile


def test_a_relist_marks_referenced_config_maps_it_lacks_as_missing() -> None:
    cache, _ = watch_cache()
    cache.observe_deployment("ADDED", fleet("fr-wells"))
    cache.observe_config_map("ADDED", config_map("fr-wells", 3, "- id: w1"))
    cache.resync_config_maps("fleet", [config_map("other", 8, "-")])
    assert cache.config_maps == {("fleet", "fr-wells"): cache.config_maps[("fleet", "fr-wells")]}
    assert cache.config_maps[("fleet", "fr-wells")].source is None
