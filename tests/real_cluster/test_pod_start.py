"""The responder starts a bound Pending pod of a kwok Node as the kubelet does: one status write
conditioned on the pod's resourceVersion (a conflict re-reads the pod and writes again), never
a second start for a pod already started. kwok's pod-start Stage, which this replaces, applied
itself again from stale copies at 10,000 pods and flipped Ready pods back to not ready.

No cluster and no root: the apiserver is an httpx mock that records what it is sent.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from modelfleet_dev.real_cluster.responder import Responder

STATUS_PATH = "/api/v1/namespaces/fleet/pods/fleet-w00001/status"
POD_PATH = "/api/v1/namespaces/fleet/pods/fleet-w00001"
NODE_IP = "10.99.0.7"


def _pending(
    version: str,
    *,
    node: str = "kwok-node-0",
    probed: bool = True,
    gates: tuple[str, ...] = (),
    deleting: bool = False,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "runtime", "image": "example.invalid/r:1"}
    if probed:
        container["readinessProbe"] = {"httpGet": {"path": "/v2/health/ready", "port": 8080}}
    spec: dict[str, Any] = {
        "containers": [container],
        "readinessGates": [{"conditionType": g} for g in gates],
    }
    if node:
        spec["nodeName"] = node
    meta: dict[str, Any] = {
        "name": "fleet-w00001",
        "namespace": "fleet",
        "uid": "uid-1",
        "resourceVersion": version,
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-12-04T12:00:00Z"
    return {
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
        },
    }


class _Apiserver:
    """Answers start writes (status PATCHes setting the phase) with the given codes in turn
    (then 200), keeping each, and a pod GET with `latest`; kwok-node-0 is a kwok Node, any
    other Node is not found."""

    def __init__(self, *codes: int, latest: dict[str, Any] | None = None) -> None:
        self.codes = list(codes)
        self.latest = latest
        self.patches: list[dict[str, Any]] = []
        self.gets = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path.startswith("/api/v1/nodes/"):
            if path != "/api/v1/nodes/kwok-node-0":
                return httpx.Response(404, json={"kind": "Status", "reason": "NotFound"})
            node = {
                "metadata": {"name": "kwok-node-0", "annotations": {"kwok.x-k8s.io/node": "fake"}},
                "spec": {"podCIDR": "10.244.1.0/24"},
                "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]},
            }
            return httpx.Response(200, json=node)
        if request.method == "GET" and path == POD_PATH:
            self.gets += 1
            assert self.latest is not None
            return httpx.Response(200, json=self.latest)
        if request.method == "DELETE":
            return httpx.Response(200, json={})  # a terminating pod's end (test_pod_deletion)
        assert (request.method, path) == ("PATCH", STATUS_PATH), request
        patch = json.loads(request.content)
        if "phase" not in patch["status"]:
            return httpx.Response(200, json={})  # a readiness write (test_pod_readiness)
        self.patches.append(patch)
        return httpx.Response(self.codes.pop(0) if self.codes else 200, json={})


async def _observe(apiserver: _Apiserver, *pods: dict[str, Any]) -> Responder:
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(apiserver), base_url="https://apiserver"
    )
    responder = Responder(client, pod_start_delay=0.0)
    for obj in pods:
        responder.observe(obj)
        # The start is a timer (the start delay) that then spawns its write: run both out.
        await asyncio.sleep(0)
        while responder.tasks:
            await asyncio.gather(*responder.tasks)
            await asyncio.sleep(0)
    await client.aclose()
    return responder


def _conditions(patch: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in patch["status"]["conditions"]}


async def test_a_bound_pending_pod_is_started_once_conditioned_on_its_resource_version() -> None:
    apiserver = _Apiserver()
    pod = _pending("41")
    await _observe(apiserver, pod, pod)  # two events of the same Pending pod
    (patch,) = apiserver.patches
    assert patch["metadata"] == {"uid": "uid-1", "resourceVersion": "41"}
    status = patch["status"]
    assert status["phase"] == "Running"
    assert status["hostIP"] == NODE_IP
    assert "podIP" not in status  # the IP comes with the readiness patch, as a CNI's would
    (container,) = status["containerStatuses"]
    assert container["started"] is True
    assert container["ready"] is False  # probed: ready only once its runtime passes the probe
    conditions = _conditions(patch)
    assert conditions["ContainersReady"]["status"] == "False"
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "ContainersNotReady"


async def test_a_pod_without_a_probe_is_ready_at_its_start_unless_a_gate_holds_it() -> None:
    apiserver = _Apiserver()
    await _observe(apiserver, _pending("41", probed=False))
    assert _conditions(apiserver.patches[0])["Ready"]["status"] == "True"

    gated = _Apiserver()
    await _observe(gated, _pending("41", probed=False, gates=("modelfleet.dev/bundle-current",)))
    ready = _conditions(gated.patches[0])["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ReadinessGatesNotReady")


async def test_a_conflict_rereads_the_pod_and_starts_it_on_its_latest_version() -> None:
    apiserver = _Apiserver(409, latest=_pending("57"))
    await _observe(apiserver, _pending("41"))
    assert [p["metadata"]["resourceVersion"] for p in apiserver.patches] == ["41", "57"]
    assert apiserver.gets == 1


async def test_a_pod_started_meanwhile_is_not_started_again() -> None:
    running = _pending("57")
    running["status"]["phase"] = "Running"
    apiserver = _Apiserver(409, latest=running)
    responder = await _observe(apiserver, _pending("41"))
    assert len(apiserver.patches) == 1  # the refused write only
    assert not responder._pending


async def test_unbound_foreign_running_and_terminating_pods_are_not_started() -> None:
    running = _pending("41")
    running["status"]["phase"] = "Running"
    for pod in (
        _pending("41", node=""),
        _pending("41", node="real-node-0"),
        running,
        _pending("41", deleting=True),
    ):
        apiserver = _Apiserver()
        await _observe(apiserver, pod)
        assert apiserver.patches == [], pod
