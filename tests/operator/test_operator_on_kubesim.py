"""The real operator (kopf + reconciler) against kubesim, observed only through the API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from kubesim.harness.testing import KubeSimThread
from kubesim.http.faults import FaultKind, FaultRule
from modelfleet.control.worker import ROLLOUT_RECHECK_SECONDS
from modelfleet_dev.operator_thread import OperatorThread
from modelfleet_dev.pod_readiness_watch import UnavailableWellsWatch

from .cluster_harness import MD_PATH, Api, model_deployment
from .conftest import WELLS

Bundles = tuple[Path, dict[tuple[str, str], str]]


def is_available(version: str, wells: int) -> Any:
    def check(status: dict[str, Any]) -> bool:
        return (
            status.get("phase") == "Available"
            and status.get("model", "").endswith("@" + version)
            and status.get("availableWells") == wells
            and status.get("updatedWells") == wells
        )

    return check


def settled_on_generation(generation: int, wells: int) -> Any:
    """The spec of `generation` is fully rolled out: every well available on its revision."""

    def check(status: dict[str, Any]) -> bool:
        return (
            status.get("phase") == "Available"
            and status.get("currentRevision") == status.get("updateRevision")
            and status.get("availableWells") == wells
            and status.get("observedGeneration") == generation
        )

    return check


def fleet_phases(deployment: str, namespace: str = "default") -> set[str]:
    """Phases `modelfleet_operator_fleet_phase` reports as current (1) for a fleet (the registry
    is the process's: fleets of other tests keep their own label sets)."""
    return {
        sample.labels["phase"]
        for metric in REGISTRY.collect()
        if metric.name == "modelfleet_operator_fleet_phase"
        for sample in metric.samples
        if sample.labels["deployment"] == deployment
        and sample.labels["namespace"] == namespace
        and sample.value == 1
    }


def writes_so_far() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "modelfleet_operator_api_calls":
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels["verb"] in (
                    "create",
                    "patch",
                    "delete",
                    "update",
                ):
                    total += sample.value
    return total


def test_create_makes_one_owned_hardened_pod_per_well_behind_a_headless_service(
    cluster: KubeSimThread, api: Api, bundles: Bundles
) -> None:
    root, digests = bundles
    with OperatorThread.standalone(cluster.kubeconfig):
        r = api.create(MD_PATH, model_deployment("esp", WELLS, "1.0.0", root))
        assert r.status_code == 201, r.text
        uid = r.json()["metadata"]["uid"]
        status = api.wait_status("esp", is_available("1.0.0", len(WELLS)))
    assert status["observedGeneration"] == 1
    assert status["versions"] == [
        {"version": "1.0.0", "revision": status["currentRevision"], "wells": 8}
    ]
    pods = {p["metadata"]["name"]: p for p in api.pods()}
    assert sorted(pods) == sorted(f"esp-{w}" for w in WELLS)
    pod = pods["esp-w3"]
    ref = pod["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "ModelDeployment",
        "esp",
        uid,
        True,
    )
    labels = pod["metadata"]["labels"]
    assert labels["modelfleet.dev/well"] == "w3" and labels["modelfleet.dev/deployment"] == "esp"
    assert labels["modelfleet.dev/revision"] == status["currentRevision"]
    spec = pod["spec"]
    assert (spec["hostname"], spec["subdomain"]) == ("w3", "esp")
    container = spec["containers"][0]
    sc = container["securityContext"]
    assert (
        sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    )
    assert (
        sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"
    )
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert pod["metadata"]["annotations"]["modelfleet.dev/bundle-uri"] == f"file://{root}/1.0.0/w3"
    gate = next(
        c for c in pod["status"]["conditions"] if c["type"] == "modelfleet.dev/bundle-current"
    )
    assert gate["status"] == "True" and digests[("1.0.0", "w3")] in gate["message"]
    # The operator's User-Agent names it as the field manager of its writes.
    managers = {(m["manager"], m.get("subresource", "")) for m in pod["metadata"]["managedFields"]}
    assert {("modelfleet-operator", ""), ("modelfleet-operator", "status")} <= managers
    service = api.get("/api/v1/namespaces/default/services/esp")
    assert service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["ownerReferences"][0]["uid"] == uid
    revisions = api.get("/apis/apps/v1/namespaces/default/controllerrevisions")["items"]
    assert [r["metadata"]["name"] for r in revisions] == [f"esp-{status['currentRevision']}"]


def test_steady_state_makes_no_writes(cluster: KubeSimThread, api: Api, bundles: Bundles) -> None:
    root, _ = bundles
    with OperatorThread.standalone(cluster.kubeconfig):
        api.create(MD_PATH, model_deployment("calm", WELLS, "1.0.0", root))
        api.wait_status("calm", is_available("1.0.0", len(WELLS)))
        # The last writes of the roll-out (its final status, an Event) may still be under way
        # when status first says Available: settle on one quiet recheck period first (a write
        # loop never settles, and fails here).
        writes, deadline = writes_so_far(), time.monotonic() + 10 * ROLLOUT_RECHECK_SECONDS
        while True:
            time.sleep(ROLLOUT_RECHECK_SECONDS)
            settled, writes = writes == writes_so_far(), writes_so_far()
            if settled:
                break
            assert time.monotonic() < deadline, "the operator kept writing after Available"
        before_rv = api.deployment("calm")["metadata"]["resourceVersion"]
        # Absence of writes can only be observed over a window: a few recheck periods.
        time.sleep(3 * ROLLOUT_RECHECK_SECONDS)
        assert writes_so_far() == writes
        assert api.deployment("calm")["metadata"]["resourceVersion"] == before_rv


def test_version_change_swaps_bundles_in_place_within_budget(
    cluster: KubeSimThread, api: Api, bundles: Bundles
) -> None:
    root, digests = bundles
    with OperatorThread.standalone(cluster.kubeconfig):
        api.create(MD_PATH, model_deployment("esp", WELLS, "1.0.0", root, maxUnavailable=2))
        api.wait_status("esp", is_available("1.0.0", len(WELLS)))
        uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in api.pods()}
        with UnavailableWellsWatch(cluster.url, set(WELLS)) as watch:
            api.merge_patch(f"{MD_PATH}/esp", {"spec": {"model": {"version": "2.0.0"}}})
            status = api.wait_status("esp", is_available("2.0.0", len(WELLS)))
        assert watch.max_unavailable <= 2
        assert watch.samples > len(WELLS)
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in api.pods()} == uids
    for pod in api.pods():
        well = pod["metadata"]["labels"]["modelfleet.dev/well"]
        gate = next(
            c for c in pod["status"]["conditions"] if c["type"] == "modelfleet.dev/bundle-current"
        )
        assert digests[("2.0.0", well)] in gate["message"]
    assert status["versions"] == [
        {"version": "2.0.0", "revision": status["updateRevision"], "wells": 8}
    ]
    events = api.get("/api/v1/namespaces/default/events")["items"]
    reasons = [e["reason"] for e in events if e["involvedObject"]["name"] == "esp"]
    assert "RolloutStarted" in reasons and "WaveStarted" in reasons and "RolloutComplete" in reasons
    assert reasons.count("WaveStarted") <= 4 + 1  # per wave, not per pod


def test_runtime_change_recreates_pods_never_exceeding_budget(
    slow_cluster: KubeSimThread, bundles: Bundles
) -> None:
    root, _ = bundles
    api = Api(slow_cluster.url)
    with OperatorThread.standalone(slow_cluster.kubeconfig):
        api.create(MD_PATH, model_deployment("esp", WELLS, "1.0.0", root, maxUnavailable=3))
        api.wait_status("esp", is_available("1.0.0", len(WELLS)))
        old_uids = {p["metadata"]["uid"] for p in api.pods()}
        with UnavailableWellsWatch(slow_cluster.url, set(WELLS)) as watch:
            api.merge_patch(
                f"{MD_PATH}/esp", {"spec": {"runtime": {"image": "registry.example/runtime:2"}}}
            )
            api.wait_status(
                "esp",
                settled_on_generation(2, len(WELLS)),
            )
        assert 0 < watch.max_unavailable <= 3
    pods = api.pods()
    assert not ({p["metadata"]["uid"] for p in pods} & old_uids)
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"registry.example/runtime:2"}


def test_paused_rollout_changes_nothing_until_resumed(
    cluster: KubeSimThread, api: Api, bundles: Bundles
) -> None:
    root, _ = bundles
    with OperatorThread.standalone(cluster.kubeconfig):
        api.create(MD_PATH, model_deployment("esp", WELLS, "1.0.0", root, maxUnavailable=2))
        api.wait_status("esp", is_available("1.0.0", len(WELLS)))
        api.merge_patch(
            f"{MD_PATH}/esp", {"spec": {"model": {"version": "2.0.0"}, "rollout": {"paused": True}}}
        )
        status = api.wait_status("esp", lambda s: s.get("phase") == "Paused")
        assert status["updatedWells"] == 0
        assert fleet_phases("esp") == {"Paused"}  # the metric follows the status
        assert {p["metadata"]["annotations"]["modelfleet.dev/version"] for p in api.pods()} == {
            "1.0.0"
        }
        api.merge_patch(f"{MD_PATH}/esp", {"spec": {"rollout": {"paused": False}}})
        api.wait_status("esp", is_available("2.0.0", len(WELLS)))


def test_broken_bundle_is_reported_degraded_and_rolled_back(
    cluster: KubeSimThread, api: Api, bundles: Bundles
) -> None:
    root, digests = bundles
    with OperatorThread.standalone(cluster.kubeconfig):
        md = model_deployment(
            "esp", WELLS, "2.0.0", root, maxUnavailable=1, progressDeadlineSeconds=3
        )
        api.create(MD_PATH, md)
        good = api.wait_status("esp", is_available("2.0.0", len(WELLS)))
        expected = {w: digests[("3.0.0", w)] for w in WELLS}
        expected["w0"] = "sha256:" + "0" * 64  # the bundle at w0 is not what was trained
        api.merge_patch(
            f"{MD_PATH}/esp", {"spec": {"model": {"version": "3.0.0", "digests": expected}}}
        )
        invalid = api.wait_status(
            "esp",
            lambda s: any(u["reason"] == "BundleInvalid" for u in s.get("unhealthyWells") or []),
        )
        assert invalid["unhealthyWells"][0]["well"] == "w0"
        final = api.wait_status(
            "esp",
            lambda s: s.get("rolledBackFrom") is not None and s.get("availableWells") == 8,
            timeout=40,
        )
    assert final["phase"] == "Degraded"
    assert final["currentRevision"] == good["currentRevision"]
    conditions = {c["type"]: c for c in final["conditions"]}
    assert conditions["Progressing"]["reason"] == "RolledBack"
    assert conditions["Degraded"]["status"] == "True"
    assert {p["metadata"]["annotations"]["modelfleet.dev/version"] for p in api.pods()} == {"2.0.0"}
    reasons = {e["reason"] for e in api.get("/api/v1/namespaces/default/events")["items"]}
    assert {"BundleInvalid", "RolledBack"} <= reasons


def test_deleting_the_deployment_garbage_collects_everything(
    cluster: KubeSimThread, api: Api, bundles: Bundles
) -> None:
    root, _ = bundles
    with OperatorThread.standalone(cluster.kubeconfig):
        api.create(MD_PATH, model_deployment("esp", WELLS[:3], "1.0.0", root))
        api.wait_status("esp", is_available("1.0.0", 3))
        assert api.delete(f"{MD_PATH}/esp").status_code == 200
        api.wait_for("pods gone", lambda: not api.pods())
        api.wait_for(
            "service gone",
            lambda: api.http.get("/api/v1/namespaces/default/services/esp").status_code == 404,
        )
        api.wait_for(
            "revisions gone",
            lambda: not api.get("/apis/apps/v1/namespaces/default/controllerrevisions")["items"],
        )


def test_removed_well_loses_its_pod_and_added_well_gets_one(
    cluster: KubeSimThread, api: Api, bundles: Bundles
) -> None:
    root, _ = bundles
    with OperatorThread.standalone(cluster.kubeconfig):
        api.create(MD_PATH, model_deployment("esp", WELLS[:4], "1.0.0", root))
        api.wait_status("esp", is_available("1.0.0", 4))
        wells = [{"id": w} for w in [*WELLS[1:4], WELLS[5]]]
        api.merge_patch(f"{MD_PATH}/esp", {"spec": {"wells": wells}})
        api.wait_for(
            "pods follow wells",
            lambda: (
                sorted(
                    p["metadata"]["name"]
                    for p in api.pods()
                    if not p["metadata"].get("deletionTimestamp")
                )
                == ["esp-w1", "esp-w2", "esp-w3", "esp-w5"]
            ),
        )
        api.wait_status("esp", is_available("1.0.0", 4))


def test_operator_restart_mid_rollout_converges_without_duplicates(
    slow_cluster: KubeSimThread, bundles: Bundles
) -> None:
    root, _ = bundles
    api = Api(slow_cluster.url)
    with OperatorThread.standalone(slow_cluster.kubeconfig):
        api.create(MD_PATH, model_deployment("esp", WELLS, "1.0.0", root, maxUnavailable=2))
        api.wait_status("esp", is_available("1.0.0", len(WELLS)))
        api.merge_patch(
            f"{MD_PATH}/esp", {"spec": {"runtime": {"image": "registry.example/runtime:2"}}}
        )
        api.wait_for(
            "roll-out under way",
            lambda: any(
                p["spec"]["containers"][0]["image"] == "registry.example/runtime:2"
                for p in api.pods()
            ),
        )
    # Operator gone mid-roll-out; a new one picks up from the API alone.
    with (
        UnavailableWellsWatch(slow_cluster.url, set(WELLS)) as watch,
        OperatorThread.standalone(slow_cluster.kubeconfig),
    ):
        api.wait_status(
            "esp",
            settled_on_generation(2, len(WELLS)),
            timeout=40,
        )
    assert watch.max_unavailable <= 2
    pods = api.pods()
    assert sorted(p["metadata"]["name"] for p in pods) == sorted(f"esp-{w}" for w in WELLS)
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"registry.example/runtime:2"}


def test_converges_through_throttling_errors_conflicts_and_dropped_watches(
    cluster: KubeSimThread, api: Api, bundles: Bundles
) -> None:
    root, _ = bundles
    faults = cluster.sim.faults
    faults.add(
        FaultRule(
            FaultKind.THROTTLE, verb="create", resource="pods", probability=0.3, retry_after=1
        )
    )
    faults.add(FaultRule(FaultKind.ERROR, verb="patch", resource="*", probability=0.2))
    faults.add(
        FaultRule(FaultKind.CONFLICT, verb="patch", resource="modeldeployments", probability=0.3)
    )
    faults.add(
        FaultRule(FaultKind.DROP_WATCH, verb="watch", resource="pods", drop_after_seconds=1.0)
    )
    with OperatorThread.standalone(cluster.kubeconfig):
        api.create(MD_PATH, model_deployment("esp", WELLS, "1.0.0", root, maxUnavailable=2))
        api.wait_status("esp", is_available("1.0.0", len(WELLS)), timeout=60)
        api.merge_patch(f"{MD_PATH}/esp", {"spec": {"model": {"version": "2.0.0"}}})
        api.wait_status("esp", is_available("2.0.0", len(WELLS)), timeout=60)
    injected = sum(rule.injected for rule in faults.rules)
    assert injected > 0
    assert sorted(p["metadata"]["name"] for p in api.pods()) == sorted(f"esp-{w}" for w in WELLS)


def test_real_runtime_pod_swaps_its_bundle_in_place_and_reports_the_digest(
    tmp_path: Path, bundles: Bundles
) -> None:
    """One well runs the real `model-runtime` process (kubesim's kubelet runs it on its pod IP);
    the operator's reload nudge goes through the pod proxy to that process."""
    import httpx

    from kubesim.harness.testing import kubesim_in_thread
    from kubesim.node.kubelet import KubeletConfig
    from modelfleet_dev.kubesim_runtime import SimulatedModelRuntime

    root, digests = bundles
    kubelet = KubeletConfig(run_selector="modelfleet.dev/well=w1", annotation_refresh_delay=30.0)
    with kubesim_in_thread(
        tmp_path, kubelet=kubelet, container_runtimes=[SimulatedModelRuntime]
    ) as ks:
        api = Api(ks.url)
        api.install_crd()
        with OperatorThread.standalone(ks.kubeconfig):
            api.create(MD_PATH, model_deployment("esp", ["w1", "w2"], "1.0.0", root))
            api.wait_status("esp", is_available("1.0.0", 2), timeout=60)
            pod = next(p for p in api.pods() if p["metadata"]["name"] == "esp-w1")
            served = httpx.get(f"http://{pod['status']['podIP']}:8080/v2").json()["bundle"]
            assert served["digest"] == digests[("1.0.0", "w1")]
            api.merge_patch(f"{MD_PATH}/esp", {"spec": {"model": {"version": "2.0.0"}}})
            api.wait_status("esp", is_available("2.0.0", 2), timeout=60)
            after = next(p for p in api.pods() if p["metadata"]["name"] == "esp-w1")
            served = httpx.get(f"http://{after['status']['podIP']}:8080/v2").json()["bundle"]
    assert after["metadata"]["uid"] == pod["metadata"]["uid"]  # swapped in place, no restart
    assert served["digest"] == digests[("2.0.0", "w1")]
    statuses = after["status"]["containerStatuses"]
    assert statuses[0]["restartCount"] == 0


def calls_by_resource() -> dict[tuple[str, str], float]:
    """The operator's API calls so far, by (verb, resource), every answer code summed."""
    calls: dict[tuple[str, str], float] = {}
    for metric in REGISTRY.collect():
        if metric.name == "modelfleet_operator_api_calls":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    key = (sample.labels["verb"], sample.labels["resource"])
                    calls[key] = calls.get(key, 0.0) + sample.value
    return calls


def test_readiness_probe_confirmation_makes_one_call_a_pod_and_swaps_through_the_proxy(
    tmp_path: Path, bundles: Bundles
) -> None:
    """bundleConfirmation ReadinessProbe with a real `model-runtime` for w1 (kubesim's kubelet
    runs it with the pod's args): Ready is the confirmation, so the apply reads no runtime and
    writes no pod status; a version swapped in place is confirmed through the proxy."""
    from kubesim.harness.testing import kubesim_in_thread
    from kubesim.node.kubelet import KubeletConfig
    from modelfleet.api.spec import BundleConfirmation, RuntimeSpec
    from modelfleet_dev import fleet_manifest
    from modelfleet_dev.kubesim_runtime import SimulatedModelRuntime

    root, digests = bundles
    wells = ["w1", "w2", "w3"]

    def expected(version: str) -> dict[str, str]:
        return {w: digests[(version, w)] for w in wells}

    body = fleet_manifest.model_deployment(
        "esp",
        wells=wells,
        version="1.0.0",
        bundle_uri=f"file://{root}/{{version}}/{{well}}",
        digests=expected("1.0.0"),
        runtime=RuntimeSpec(bundle_confirmation=BundleConfirmation.READINESS_PROBE),
    )
    kubelet = KubeletConfig(run_selector="modelfleet.dev/well=w1", annotation_refresh_delay=0.5)
    with kubesim_in_thread(
        tmp_path, kubelet=kubelet, container_runtimes=[SimulatedModelRuntime]
    ) as ks:
        api = Api(ks.url)
        api.install_crd()
        with OperatorThread.standalone(ks.kubeconfig):
            before = calls_by_resource()
            api.create(MD_PATH, body)
            api.wait_status("esp", is_available("1.0.0", len(wells)), timeout=60)
            applied = calls_by_resource()
            pods = api.pods()
            assert all("readinessGates" not in p["spec"] for p in pods)
            status_writes = applied.get(("patch", "pods/status"), 0) - before.get(
                ("patch", "pods/status"), 0
            )
            proxied = sum(v - before.get(k, 0) for k, v in applied.items() if k[1] == "pods/proxy")
            assert (status_writes, proxied) == (0, 0)
            assert applied[("create", "pods")] - before.get(("create", "pods"), 0) == len(wells)
            api.merge_patch(
                f"{MD_PATH}/esp",
                {"spec": {"model": {"version": "2.0.0", "digests": expected("2.0.0")}}},
            )
            api.wait_status("esp", is_available("2.0.0", len(wells)), timeout=60)
            swapped = calls_by_resource()
        after = {p["metadata"]["name"]: p for p in api.pods()}
    assert {p["metadata"]["uid"] for p in after.values()} == {p["metadata"]["uid"] for p in pods}
    for well in wells:
        condition = next(
            c
            for c in after[f"esp-{well}"]["status"]["conditions"]
            if c["type"] == "modelfleet.dev/bundle-current"
        )
        assert condition["status"] == "True" and digests[("2.0.0", well)] in condition["message"]
    assert swapped[("patch", "pods/status")] - applied.get(("patch", "pods/status"), 0) >= len(
        wells
    )
