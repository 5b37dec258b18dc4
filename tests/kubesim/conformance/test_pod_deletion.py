"""Graceful pod deletion, the same on kubesim and kube-apiserver: a deleted pod that is bound to
a node stays, terminating, until its kubelet is done with it (or a delete with
gracePeriodSeconds=0 removes it), and its name stays taken all that while.

An operator that recreates a pod under the same name must wait for it to be gone: its create
meanwhile is refused. The node named here has no kubelet on either cluster, so nothing but the
test ends the grace period.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from .conftest import ConformanceCluster

_names = itertools.count(1)
NO_KUBELET_NODE = "conformance-node-without-kubelet"


def _namespace(cluster: ConformanceCluster) -> str:
    name = f"conformance-del-{time.monotonic_ns() % 100000}-{next(_names)}"
    answer = cluster.admin.post(
        "/api/v1/namespaces",
        json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    assert answer.status_code == 201, answer.text
    deadline = time.monotonic() + 30
    while (
        cluster.admin.get(f"/api/v1/namespaces/{name}/serviceaccounts/default").status_code != 200
    ):
        assert time.monotonic() < deadline, f"no default ServiceAccount in {name} after 30 s"
        time.sleep(0.1)
    return name


def _bound_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": NO_KUBELET_NODE,
            "terminationGracePeriodSeconds": 30,
            "containers": [{"name": "main", "image": "registry.local/app:1"}],
        },
    }


def test_a_deleted_bound_pod_stays_terminating_and_keeps_its_name_until_it_is_gone(
    cluster: ConformanceCluster,
) -> None:
    namespace = _namespace(cluster)
    pods = f"/api/v1/namespaces/{namespace}/pods"
    created = cluster.admin.post(pods, json=_bound_pod("well-0"))
    assert created.status_code == 201, created.text
    uid = created.json()["metadata"]["uid"]

    deleted = cluster.admin.request(
        "DELETE", f"{pods}/well-0", json={"preconditions": {"uid": uid}}
    )
    assert deleted.status_code == 200, deleted.text
    answer = deleted.json()
    assert answer["kind"] == "Pod" and answer["metadata"]["uid"] == uid
    assert answer["metadata"]["deletionTimestamp"]
    assert answer["metadata"]["deletionGracePeriodSeconds"] == 30

    terminating = cluster.admin.get(f"{pods}/well-0")
    assert terminating.status_code == 200
    assert terminating.json()["metadata"]["deletionTimestamp"]
    replacement = cluster.admin.post(pods, json=_bound_pod("well-0"))
    assert replacement.status_code == 409, replacement.text
    assert replacement.json()["reason"] == "AlreadyExists"

    # What a kubelet does once the containers stopped: the pod goes, the name is free.
    gone = cluster.admin.request(
        "DELETE", f"{pods}/well-0", json={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
    )
    assert gone.status_code == 200, gone.text
    assert cluster.admin.get(f"{pods}/well-0").status_code == 404
    recreated = cluster.admin.post(pods, json=_bound_pod("well-0"))
    assert recreated.status_code == 201, recreated.text
    assert recreated.json()["metadata"]["uid"] != uid
    cluster.admin.request("DELETE", f"{pods}/well-0", json={"gracePeriodSeconds": 0})


def test_an_object_kept_by_a_finalizer_is_answered_200_unless_orphaning_was_refused(
    cluster: ConformanceCluster,
) -> None:
    # kube-apiserver answers 202 Accepted for a delete that did not remove the object only when
    # the request set orphanDependents=false; every other pending deletion is a 200.
    namespace = _namespace(cluster)
    maps = f"/api/v1/namespaces/{namespace}/configmaps"
    codes = {}
    for name, options in (("plain", {}), ("no-orphans", {"orphanDependents": False})):
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "finalizers": ["conformance.modelfleet.dev/hold"]},
        }
        assert cluster.admin.post(maps, json=body).status_code == 201
        deleted = cluster.admin.request("DELETE", f"{maps}/{name}", json=options)
        assert deleted.json()["metadata"]["deletionTimestamp"], deleted.text
        codes[name] = deleted.status_code
        released = cluster.admin.patch(
            f"{maps}/{name}",
            json={"metadata": {"finalizers": None}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert released.status_code == 200, released.text
    assert codes == {"plain": 200, "no-orphans": 202}
