"""The responder ends a bound pod's deletion as the kubelet does: one DELETE, grace 0, the pod's
UID as precondition, so a pod created since under the same name is never the one removed.

No cluster and no root: the apiserver is an httpx mock that records what it is sent.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from modelfleet_dev.real_cluster.responder import Responder

PATH = "/api/v1/namespaces/fleet/pods/fleet-w00001"


def _terminating(uid: str, *, node: str = "kwok-node-0") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "runtime", "image": "example.invalid/r:1"}]}
    if node:
        spec["nodeName"] = node
    return {
        "metadata": {
            "name": "fleet-w00001",
            "namespace": "fleet",
            "uid": uid,
            "deletionTimestamp": "2026-12-03T12:00:00Z",
            "deletionGracePeriodSeconds": 30,
        },
        "spec": spec,
        "status": {"phase": "Running", "podIP": "10.244.0.5"},
    }


class _Apiserver:
    """Answers DELETEs with the given codes in turn (then 200), keeping every request body;
    kwok-node-0 is a kwok Node, any other Node is not found."""

    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.deletes: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.startswith("/api/v1/nodes/"):
            if request.url.path != "/api/v1/nodes/kwok-node-0":
                return httpx.Response(404, json={"kind": "Status", "reason": "NotFound"})
            node = {
                "metadata": {"name": "kwok-node-0", "annotations": {"kwok.x-k8s.io/node": "fake"}},
                "spec": {"podCIDR": "10.244.1.0/24"},
            }
            return httpx.Response(200, json=node)
        assert request.method == "DELETE", request
        self.deletes.append((request.url.path, json.loads(request.content)))
        return httpx.Response(self.codes.pop(0) if self.codes else 200, json={})


async def _observe(apiserver: _Apiserver, *events: tuple[dict[str, Any], bool]) -> Responder:
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(apiserver), base_url="https://apiserver"
    )
    responder = Responder(client)
    for obj, deleted in events:
        responder.observe(obj, deleted=deleted)
        while responder.tasks:
            await asyncio.gather(*responder.tasks)
    await client.aclose()
    return responder


async def test_a_bound_terminating_pod_is_deleted_once_with_its_uid_as_precondition() -> None:
    apiserver = _Apiserver()
    pod = _terminating("uid-old")
    await _observe(apiserver, (pod, False), (pod, False))  # two events of the same deletion
    assert apiserver.deletes == [
        (
            PATH,
            {
                "apiVersion": "v1",
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "uid-old"},
            },
        )
    ]


async def test_a_name_taken_by_a_newer_pod_is_left_alone() -> None:
    # 409: the precondition failed, the name belongs to another UID now; no retry.
    apiserver = _Apiserver(409)
    await _observe(apiserver, (_terminating("uid-old"), False))
    assert len(apiserver.deletes) == 1


async def test_a_failing_apiserver_is_asked_again_and_a_refusal_is_not() -> None:
    retried = _Apiserver(500, 429)
    await _observe(retried, (_terminating("uid-old"), False))
    assert len(retried.deletes) == 3
    refused = _Apiserver(403)
    responder = await _observe(refused, (_terminating("uid-old"), False))
    assert len(refused.deletes) == 1
    # The next event of the pod tries again.
    assert "uid-old" not in responder._finalizing


async def test_an_unbound_pod_is_left_to_the_apiserver() -> None:
    apiserver = _Apiserver()
    await _observe(apiserver, (_terminating("uid-old", node=""), False))
    assert apiserver.deletes == []


async def test_a_pod_on_a_node_that_is_not_kwoks_is_left_to_that_nodes_kubelet() -> None:
    apiserver = _Apiserver()
    await _observe(apiserver, (_terminating("uid-old", node="node-without-kubelet"), False))
    assert apiserver.deletes == []


async def test_the_replacement_under_the_same_name_gets_its_own_delete() -> None:
    apiserver = _Apiserver()
    old, new = _terminating("uid-old"), _terminating("uid-new")
    responder = await _observe(apiserver, (old, False), (old, True), (new, False))
    assert [body["preconditions"]["uid"] for _, body in apiserver.deletes] == [
        "uid-old",
        "uid-new",
    ]
    assert responder._finalizing == {"uid-new"}
