"""Fleets whose wells and digests live in ConfigMaps, with the real operator on kubesim.

The ConfigMaps are made the way a user makes them (`kubectl create configmap NAME
--from-file=wells.yaml`, updated with `kubectl create ... --dry-run=client -o yaml | kubectl
replace -f -`); everything else is observed through the API.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from kubesim.harness.testing import KubeSimThread
from modelfleet.control.worker import ROLLOUT_RECHECK_SECONDS
from modelfleet_dev.kubectl import Kubectl, kubectl_binary
from modelfleet_dev.operator_thread import OperatorThread

from .cluster_harness import MD_PATH, Api, model_deployment
from .test_operator_on_kubesim import is_available, writes_so_far

Bundles = tuple[Path, dict[tuple[str, str], str]]
pytestmark = pytest.mark.skipif(kubectl_binary() is None, reason="needs the kubectl binary")


def kubectl_in(cluster: KubeSimThread, workdir: Path) -> Kubectl:
    """kubectl run from `workdir`, where the test writes the files it creates ConfigMaps from."""
    return Kubectl(cluster.kubeconfig, workdir / ".kube-cache", cwd=workdir)


def write(workdir: Path, filename: str, content: Any) -> None:
    text = content if isinstance(content, str) else yaml.safe_dump(content)
    (workdir / filename).write_text(text)


def replace_config_map(kubectl: Kubectl, name: str, *from_files: str) -> None:
    """The usual update idiom: render with --dry-run, replace the stored object."""
    files = [f"--from-file={f}" for f in from_files]
    rendered = kubectl.text("create", "configmap", name, *files, "--dry-run=client", "-o", "yaml")
    kubectl.text("replace", "-f", "-", stdin=rendered)


def inventory_deployment(name: str, root: Path, version: str = "1.0.0", **spec: Any) -> Any:
    """A fleet whose spec (camelCase `spec`, e.g. wellsFrom) names its inventory ConfigMaps."""
    body = model_deployment(name, None, version, root, maxUnavailable=2)
    body["spec"]["model"].update(spec.pop("model", {}))
    body["spec"].update(spec)
    return body


def live_pods(api: Api) -> dict[str, tuple[str, dict[str, str], dict[str, str]]]:
    """Pod name -> (uid, labels, annotations): what the operator would change."""
    return {
        p["metadata"]["name"]: (
            p["metadata"]["uid"],
            p["metadata"]["labels"],
            p["metadata"].get("annotations") or {},
        )
        for p in api.pods()
        if not p["metadata"].get("deletionTimestamp")
    }


def degraded(reason: str, *fragments: str) -> Any:
    def check(status: dict[str, Any]) -> bool:
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        condition = conditions.get("Degraded") or {}
        return (
            condition.get("status") == "True"
            and condition.get("reason") == reason
            and all(f in condition.get("message", "") for f in fragments)
            and status.get("phase") == "Degraded"
        )

    return check


def settled_writes(timeout: float = 10.0) -> float:
    """The operator's write count once a reconcile's trailing writes (its Events come right
    after the status write the test waited for) have landed: unchanged for half a second."""
    deadline = time.monotonic() + timeout
    last = writes_so_far()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = writes_so_far()
        if now == last:
            return now
        last = now
    raise AssertionError(f"the operator kept writing for {timeout}s")


def events(api: Api, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/api/v1/namespaces/default/events")["items"]
    return [e for e in items if e["involvedObject"]["name"] == name]


def test_fleet_from_two_config_maps_comes_up_and_follows_their_edits(
    cluster: KubeSimThread, api: Api, bundles: Bundles, tmp_path: Path
) -> None:
    root, _ = bundles
    kubectl = kubectl_in(cluster, tmp_path)
    write(tmp_path, "wells.yaml", [{"id": w, "labels": {"field": "north"}} for w in ("w0", "w1")])
    kubectl.run("create", "configmap", "fr-wells", "--from-file=wells.yaml")
    write(tmp_path, "south.yaml", [{"id": "w2", "labels": {"field": "south"}}, {"id": "w3"}])
    kubectl.run("create", "configmap", "fr-wells-south", "--from-file=wells.yaml=south.yaml")
    with OperatorThread.standalone(cluster.kubeconfig):
        fleet = inventory_deployment(
            "esp",
            root,
            wellsFrom=[{"configMap": "fr-wells"}, {"configMap": "fr-wells-south"}],
            rollout={
                "maxUnavailable": 2,
                "canary": {"selector": {"matchLabels": {"field": "south"}}},
            },
        )
        assert api.create(MD_PATH, fleet).status_code == 201
        api.wait_status("esp", is_available("1.0.0", 4))
        assert sorted(live_pods(api)) == ["esp-w0", "esp-w1", "esp-w2", "esp-w3"]

        # One well leaves the south ConfigMap, two arrive. The ConfigMap also grows past
        # 512 KiB, so the change must come through a watch event longer than aiohttp reads
        # as one line by itself.
        write(tmp_path, "south.yaml", [{"id": "w3"}, {"id": "w4"}, {"id": "w5"}])
        write(tmp_path, "notes.txt", "field notes\n" * 60_000)
        replace_config_map(kubectl, "fr-wells-south", "wells.yaml=south.yaml", "notes.txt")
        api.wait_for(
            "pods follow the ConfigMap",
            lambda: sorted(live_pods(api)) == [f"esp-w{i}" for i in (0, 1, 3, 4, 5)],
        )
        status = api.wait_status("esp", is_available("1.0.0", 5))
        writes = settled_writes()
        time.sleep(1.5 * ROLLOUT_RECHECK_SECONDS)  # absence of writes needs a window
        assert writes_so_far() == writes
    assert status["wells"] == 5


def test_a_broken_inventory_changes_no_pod_is_reported_and_recovers_when_fixed(
    cluster: KubeSimThread, api: Api, bundles: Bundles, tmp_path: Path
) -> None:
    root, _ = bundles
    kubectl = kubectl_in(cluster, tmp_path)
    write(tmp_path, "wells.yaml", [{"id": "w1"}, {"id": "w2"}])
    kubectl.run("create", "configmap", "fr-wells", "--from-file=wells.yaml")
    with OperatorThread.standalone(cluster.kubeconfig):
        fleet = inventory_deployment(
            "esp", root, wells=[{"id": "w0"}], wellsFrom=[{"configMap": "fr-wells"}]
        )
        api.create(MD_PATH, fleet)
        api.wait_status("esp", is_available("1.0.0", 3))
        before = live_pods(api)

        write(tmp_path, "wells.yaml", "- id: w1\n- id: W_2\n")
        replace_config_map(kubectl, "fr-wells", "wells.yaml")
        status = api.wait_status(
            "esp",
            degraded("InventoryInvalid", "ConfigMap fr-wells key wells.yaml: well [1] (id 'W_2')"),
        )
        assert status["readyWells"] == 3 and status["wells"] == 3  # as they were
        writes = settled_writes()
        time.sleep(1.5 * ROLLOUT_RECHECK_SECONDS)
        assert writes_so_far() == writes, "a broken inventory must not cause repeated writes"

        write(tmp_path, "wells.yaml", [{"id": "w1"}, {"id": "w0"}])
        replace_config_map(kubectl, "fr-wells", "wells.yaml")
        api.wait_status(
            "esp",
            degraded(
                "InventoryInvalid",
                "well id w0 appears twice: spec.wells[0] and ConfigMap fr-wells key wells.yaml [1]",
            ),
        )

        kubectl.run("delete", "configmap", "fr-wells")
        api.wait_status("esp", degraded("InventoryNotFound", "ConfigMap fr-wells"))
        assert live_pods(api) == before

        write(tmp_path, "wells.yaml", [{"id": "w1"}, {"id": "w2"}, {"id": "w3"}])
        kubectl.run("create", "configmap", "fr-wells", "--from-file=wells.yaml")
        status = api.wait_status("esp", is_available("1.0.0", 4))
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Degraded"]["status"] == "False"
    assert {k: v for k, v in live_pods(api).items() if k != "esp-w3"} == before
    warnings = [e for e in events(api, "esp") if e["type"] == "Warning"]
    # One Warning per distinct error (Event names are random: the list is not in time order).
    assert sorted(e["reason"] for e in warnings) == [
        "InventoryInvalid",
        "InventoryInvalid",
        "InventoryNotFound",
    ]
    assert "InventoryResolved" in {e["reason"] for e in events(api, "esp")}


def test_digests_from_a_config_map_are_verified_like_inline_digests(
    cluster: KubeSimThread, api: Api, bundles: Bundles, tmp_path: Path
) -> None:
    root, digests = bundles
    wells = ["w0", "w1", "w2"]
    kubectl = kubectl_in(cluster, tmp_path)
    write(tmp_path, "wells.yaml", [{"id": w} for w in wells])
    kubectl.run("create", "configmap", "fr-wells", "--from-file=wells.yaml")
    with OperatorThread.standalone(cluster.kubeconfig):
        # The fleet comes first; its digests ConfigMap a moment later.
        fleet = inventory_deployment(
            "esp",
            root,
            wellsFrom=[{"configMap": "fr-wells"}],
            model={"digestsFrom": [{"configMap": "esp-1.0.0-digests"}]},
            rollout={"maxUnavailable": 1},
        )
        api.create(MD_PATH, fleet)
        api.wait_status("esp", degraded("InventoryNotFound", "ConfigMap esp-1.0.0-digests"))
        assert live_pods(api) == {}
        write(tmp_path, "digests.yaml", {w: digests[("1.0.0", w)] for w in wells})
        kubectl.run("create", "configmap", "esp-1.0.0-digests", "--from-file=digests.yaml")
        good = api.wait_status("esp", is_available("1.0.0", 3))
        annotations = {name: pod[2] for name, pod in live_pods(api).items()}
        assert annotations["esp-w1"]["modelfleet.dev/bundle-digest"] == digests[("1.0.0", "w1")]

        # Version 2.0.0 with a digest that does not match w0's bundle.
        expected = {w: digests[("2.0.0", w)] for w in wells}
        expected["w0"] = "sha256:" + "0" * 64
        write(tmp_path, "digests.yaml", expected)
        kubectl.run("create", "configmap", "esp-2.0.0-digests", "--from-file=digests.yaml")
        api.merge_patch(
            f"{MD_PATH}/esp",
            {
                "spec": {
                    "model": {
                        "version": "2.0.0",
                        "digestsFrom": [{"configMap": "esp-2.0.0-digests"}],
                    }
                }
            },
        )
        invalid = api.wait_status(
            "esp",
            lambda s: any(u["reason"] == "BundleInvalid" for u in s.get("unhealthyWells") or []),
        )
    assert invalid["unhealthyWells"][0]["well"] == "w0"
    # The revisions hold the digests themselves: a rollback needs neither ConfigMap.
    revisions = api.get("/apis/apps/v1/namespaces/default/controllerrevisions")["items"]
    by_name = {r["metadata"]["labels"]["modelfleet.dev/revision"]: r for r in revisions}
    assert by_name[good["currentRevision"]]["data"]["model"]["digests"] == {
        w: digests[("1.0.0", w)] for w in wells
    }
    assert by_name[invalid["updateRevision"]]["data"]["model"]["digests"] == expected
    assert "digestsFrom" not in by_name[invalid["updateRevision"]]["data"]["model"]


def config_map_reads() -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "modelfleet_operator_api_calls"
        for sample in metric.samples
        if sample.name.endswith("_total")
        and (sample.labels["verb"], sample.labels["resource"]) == ("get", "configmaps")
    )


def test_a_restarted_operator_resolves_the_same_fleet_and_rewrites_nothing(
    cluster: KubeSimThread, api: Api, bundles: Bundles, tmp_path: Path
) -> None:
    root, digests = bundles
    wells = ["w0", "w1", "w2", "w3"]
    kubectl = kubectl_in(cluster, tmp_path)
    write(tmp_path, "wells.yaml", [{"id": w, "labels": {"n": str(i)}} for i, w in enumerate(wells)])
    kubectl.run("create", "configmap", "fr-wells", "--from-file=wells.yaml")
    write(tmp_path, "digests.yaml", {w: digests[("1.0.0", w)] for w in reversed(wells)})
    kubectl.run("create", "configmap", "esp-1.0.0-digests", "--from-file=digests.yaml")
    fleet = inventory_deployment(
        "esp",
        root,
        wellsFrom=[{"configMap": "fr-wells"}],
        model={"digestsFrom": [{"configMap": "esp-1.0.0-digests"}]},
    )
    with OperatorThread.standalone(cluster.kubeconfig):
        api.create(MD_PATH, fleet)
        api.wait_status("esp", is_available("1.0.0", 4))
        settled_writes()
    pods, md = live_pods(api), api.deployment("esp")
    revisions = api.get("/apis/apps/v1/namespaces/default/controllerrevisions")["items"]
    reads = config_map_reads()
    with OperatorThread.standalone(cluster.kubeconfig):
        # The new operator's watch listed the ConfigMaps before it knew the fleet: it reads
        # each once, resolves the same wells and digests, hence the same revision.
        api.wait_for("the ConfigMaps read again", lambda: config_map_reads() >= reads + 2)
        writes = settled_writes()
        time.sleep(ROLLOUT_RECHECK_SECONDS)
        assert writes_so_far() == writes
    assert live_pods(api) == pods
    assert api.deployment("esp")["metadata"]["resourceVersion"] == md["metadata"]["resourceVersion"]
    assert api.get("/apis/apps/v1/namespaces/default/controllerrevisions")["items"] == revisions
