"""ServiceAccounts as pods meet them, the same on kubesim and kube-apiserver: every namespace gets
a `default` ServiceAccount, a pod without one names it, a pod naming a missing one is refused."""

from __future__ import annotations

import itertools
import time
from typing import Any

from .conftest import ConformanceCluster

_names = itertools.count(1)


def _namespace(cluster: ConformanceCluster) -> str:
    name = f"conformance-sa-{time.monotonic_ns() % 100000}-{next(_names)}"
    answer = cluster.admin.post(
        "/api/v1/namespaces",
        json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    assert answer.status_code == 201, answer.text
    return name


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "registry.local/app:1"}], **spec},
    }


def _await_default_account(cluster: ConformanceCluster, namespace: str) -> None:
    deadline = time.monotonic() + 30
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/default"
    while cluster.admin.get(path).status_code != 200:
        assert time.monotonic() < deadline, f"no default ServiceAccount in {namespace} after 30 s"
        time.sleep(0.1)


def test_a_new_namespace_gets_a_default_service_account_that_pods_are_given(
    cluster: ConformanceCluster,
) -> None:
    namespace = _namespace(cluster)
    _await_default_account(cluster, namespace)
    created = cluster.admin.post(f"/api/v1/namespaces/{namespace}/pods", json=_pod("plain"))
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["serviceAccountName"] == "default"


def test_a_pod_naming_a_missing_service_account_is_forbidden(cluster: ConformanceCluster) -> None:
    namespace = _namespace(cluster)
    _await_default_account(cluster, namespace)
    refused = cluster.admin.post(
        f"/api/v1/namespaces/{namespace}/pods", json=_pod("lost", serviceAccountName="nobody")
    )
    assert refused.status_code == 403, refused.text
    body = refused.json()
    assert body["reason"] == "Forbidden"
    assert 'serviceaccount "nobody" not found' in body["message"], body["message"]
