"""The operator's ConfigMap cache: only referenced ConfigMaps are kept, newest wins, a watch event
beats a GET answer, and a change that does not touch the inventory wakes no fleet.

Driven through FleetReconciler's observe_* methods with a stub client, as the informers and the
reconcile loop drive them; no API server.
"""

from __future__ import annotations

import asyncio
from typing import Any

from modelfleet.control.reconciler import FleetReconciler


class StubClient:
    """Answers GETs of ConfigMaps from a dict; counts them."""

    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects
        self.gets: list[str] = []

    async def get(self, path: str, resource: str) -> dict[str, Any]:
        from modelfleet.io.kube import KubeApiError

        self.gets.append(path)
        name = path.rsplit("/", 1)[-1]
        if name not in self.objects:
            raise KubeApiError(404, "NotFound", f'configmaps "{name}" not found')
        return self.objects[name]


class StubExecutor:
    def __init__(self, client: StubClient) -> None:
        self.client = client


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


def reconciler(objects: dict[str, dict[str, Any]] | None = None) -> FleetReconciler:
    recon = FleetReconciler(StubExecutor(StubClient(objects or {})))  # type: ignore[arg-type]
    recon._wake = lambda key, memory: memory.wake.set()  # type: ignore[method-assign]
    return recon


def test_only_referenced_config_maps_are_kept_and_only_their_inventory_keys() -> None:
    recon = reconciler()
    recon.observe_deployment("ADDED", fleet("fr-wells"))
    recon.observe_config_map("ADDED", config_map("kube-root-ca.crt", 5, "-"))
    recon.observe_config_map("ADDED", config_map("fr-wells", 6, "- id: w1"))
    assert list(recon.config_maps) == [("fleet", "fr-wells")]
    source = recon.config_maps[("fleet", "fr-wells")].source
    assert source is not None and dict(source.data) == {"wells.yaml": "- id: w1"}
    # The fleet stops naming it: it is forgotten.
    recon.observe_deployment(
        "MODIFIED", {**fleet(), "metadata": {**fleet()["metadata"], "resourceVersion": "2"}}
    )
    assert recon.config_maps == {}


def test_an_older_event_never_replaces_a_newer_one() -> None:
    recon = reconciler()
    recon.observe_deployment("ADDED", fleet("fr-wells"))
    recon.observe_config_map("MODIFIED", config_map("fr-wells", 9, "- id: new"))
    recon.observe_config_map("MODIFIED", config_map("fr-wells", 7, "- id: old"))
    source = recon.config_maps[("fleet", "fr-wells")].source
    assert source is not None and source.data["wells.yaml"] == "- id: new"


def test_a_label_change_keeps_the_parsed_inventory_and_wakes_nobody() -> None:
    recon = reconciler()
    recon.observe_deployment("ADDED", fleet("fr-wells"))
    memory = recon.fleets[("fleet", "esp")]
    recon.observe_config_map("ADDED", config_map("fr-wells", 3, "- id: w1"))
    parsed = recon.config_maps[("fleet", "fr-wells")].source
    assert parsed is not None and not isinstance(parsed.wells, Exception)
    memory.wake.clear()
    recon.observe_config_map("MODIFIED", config_map("fr-wells", 4, "- id: w1", team="ops"))
    assert recon.config_maps[("fleet", "fr-wells")].source is parsed
    assert not memory.wake.is_set()


def test_a_deleted_config_map_is_remembered_as_missing_and_wakes_its_fleet() -> None:
    recon = reconciler()
    recon.observe_deployment("ADDED", fleet("fr-wells"))
    memory = recon.fleets[("fleet", "esp")]
    recon.observe_config_map("ADDED", config_map("fr-wells", 3, "- id: w1"))
    memory.wake.clear()
    recon.observe_config_map("DELETED", config_map("fr-wells", 4, "- id: w1"))
    assert recon.config_maps[("fleet", "fr-wells")].source is None
    assert memory.wake.is_set()


def test_a_reference_the_watch_has_not_kept_is_read_once() -> None:
    stored = {"fr-wells": config_map("fr-wells", 3, "- id: w1")}
    recon = reconciler(stored)
    recon.observe_deployment("ADDED", fleet("fr-wells", "missing"))

    async def twice() -> list[dict[str, Any]]:
        refs = recon.fleets[("fleet", "esp")].inventory_refs
        first = await recon._inventory_sources("fleet", refs)
        second = await recon._inventory_sources("fleet", refs)
        return [first, second]

    first, second = asyncio.run(twice())
    assert first == second
    assert first["missing"] is None and first["fr-wells"] is not None
    client = recon.executor.client
    assert (
        isinstance(client, StubClient) and len(client.gets) == 2
    )  # one per name, not per reconcile


def test_a_relist_marks_referenced_config_maps_it_lacks_as_missing() -> None:
    recon = reconciler()
    recon.observe_deployment("ADDED", fleet("fr-wells"))
    recon.observe_config_map("ADDED", config_map("fr-wells", 3, "- id: w1"))
    recon.resync_config_maps("fleet", [config_map("other", 8, "-")])
    assert recon.config_maps == {("fleet", "fr-wells"): recon.config_maps[("fleet", "fr-wells")]}
    assert recon.config_maps[("fleet", "fr-wells")].source is None
