"""Pods on the real cluster behave as the operator needs: kwok-played, routable, gated.

One cluster for the module. Each test uses its own names, so the order does not matter.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from model_runtime.manifest import manifest_digest
from modelfleet_dev.real_cluster import RealCluster
from modelfleet_dev.real_cluster.build import KUBERNETES_VERSION
from modelfleet_dev.real_cluster.netns import POD_CIDR
from tests.real_cluster.helpers import wait_for

GATE = "example.com/gate"

pytestmark = pytest.mark.real_cluster


def _pod(cluster: RealCluster, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(cluster.kubectl("get", "pod", name, "-o", "json"))
    return out


def _condition(pod: dict[str, Any], type_: str) -> str | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return str(c.get("status"))
    return None


def _patch_gate(cluster: RealCluster, name: str, status: str) -> None:
    patch = {"status": {"conditions": [{"type": GATE, "status": status}]}}
    cluster.kubectl(
        "patch", "pod", name, "--subresource=status", "--type=strategic", "-p", json.dumps(patch)
    )


def test_kubectl_matches_server_version(real_cluster: RealCluster) -> None:
    versions = json.loads(real_cluster.kubectl("version", "-o", "json"))
    assert versions["clientVersion"]["gitVersion"] == KUBERNETES_VERSION
    assert versions["serverVersion"]["gitVersion"] == KUBERNETES_VERSION
    assert "kubectl" in str(real_cluster.kubectl_path) and ".cache/modelfleet" in str(
        real_cluster.kubectl_path
    )


def test_deployment_pods_ready_with_pod_network_ips(real_cluster: RealCluster) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
            },
        },
    }
    real_cluster.kubectl("apply", "-f", "-", input=json.dumps(deployment))
    real_cluster.kubectl("wait", "--for=condition=Available", "deployment/web", "--timeout=60s")
    pods = json.loads(real_cluster.kubectl("get", "pods", "-l", "app=web", "-o", "json"))["items"]
    assert len(pods) == 3
    network = ipaddress.ip_network(POD_CIDR)
    ips = set()
    for pod in pods:
        assert _condition(pod, "Ready") == "True"
        ip = pod["status"]["podIP"]
        assert ipaddress.ip_address(ip) in network
        ips.add(ip)
        assert pod["spec"]["nodeName"].startswith("kwok-node-")  # bound by the real scheduler
    assert len(ips) == 3
    real_cluster.kubectl("delete", "deployment", "web", "--wait=true", "--timeout=60s")
    # The garbage collector (kube-controller-manager) removes the ReplicaSet and its pods.
    wait_for(
        lambda: not real_cluster.kubectl("get", "pods", "-l", "app=web", "-o", "name").strip(),
        60,
        "the Deployment's pods to be collected",
    )


def test_readiness_gate_holds_ready_until_patched_true(real_cluster: RealCluster) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "gated", "namespace": "default"},
        "spec": {
            "readinessGates": [{"conditionType": GATE}],
            "containers": [{"name": "c", "image": "example.invalid/c:1"}],
        },
    }
    real_cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def containers_ready() -> dict[str, Any] | None:
        p = _pod(real_cluster, "gated")
        return p if _condition(p, "ContainersReady") == "True" else None

    started = wait_for(containers_ready, 60, "the gated pod's containers to be ready")
    assert _condition(started, "Ready") == "False"
    assert _condition(started, GATE) is None  # kwok never writes a gate condition
    ready = next(c for c in started["status"]["conditions"] if c["type"] == "Ready")
    assert ready.get("reason") == "ReadinessGatesNotReady"
    _patch_gate(real_cluster, "gated", "False")
    still = _pod(real_cluster, "gated")
    assert _condition(still, "Ready") == "False"
    _patch_gate(real_cluster, "gated", "True")
    wait_for(
        lambda: _condition(_pod(real_cluster, "gated"), "Ready") == "True",
        30,
        "Ready once the gate is True",
    )
    _patch_gate(real_cluster, "gated", "False")
    wait_for(
        lambda: _condition(_pod(real_cluster, "gated"), "Ready") == "False",
        30,
        "not Ready again once the gate is False",
    )
    real_cluster.kubectl("delete", "pod", "gated", "--wait=true", "--timeout=60s")


def test_pods_proxy_reaches_the_responder(real_cluster: RealCluster, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    raw = json.dumps({"well": "w-1", "version": "v1", "models": []}).encode()
    (bundle / "manifest.json").write_bytes(raw)
    digest = manifest_digest(raw)
    uri = bundle.as_uri()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "runtime",
            "namespace": "default",
            "labels": {"modelfleet.dev/well": "w-1"},
            "annotations": {
                "modelfleet.dev/bundle-uri": uri,
                "modelfleet.dev/bundle-digest": digest,
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "runtime",
                    "image": "example.invalid/model-runtime:1",
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": 8080}},
                }
            ]
        },
    }
    real_cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    # The container has a readinessProbe: Ready only once the responder's runtime passes it.
    real_cluster.kubectl("wait", "--for=condition=Ready", "pod/runtime", "--timeout=60s")
    base = "/api/v1/namespaces/default/pods/runtime:8080/proxy"
    meta = json.loads(real_cluster.kubectl("get", "--raw", f"{base}/v2"))
    assert meta["name"] == "modelfleet-model-runtime"
    assert meta["bundle"]["uri"] == uri
    assert meta["bundle"]["digest"] == digest
    assert meta["bundle"]["well"] == "w-1"
    with real_cluster.api() as api:
        wrong = api.post(
            f"{base}/v2/repository/bundle/load", json={"uri": uri, "digest": "sha256:" + "0" * 64}
        )
        assert wrong.status_code == 422, wrong.text
        assert wrong.json()["reason"] == "BundleInvalid"
        same = api.post(f"{base}/v2/repository/bundle/load", json={"uri": uri, "digest": digest})
        assert same.status_code == 200, same.text
        assert same.json()["bundle"]["digest"] == digest
        ready = api.get(f"{base}/v2/health/ready")
        assert ready.status_code == 200 and ready.json()["ready"] is True
    real_cluster.kubectl("delete", "pod", "runtime", "--wait=true", "--timeout=60s")


def test_a_pod_recreated_under_its_name_is_not_deleted_in_its_turn(
    real_cluster: RealCluster,
) -> None:
    """Each pod is created again under its name on the watch event of its deletion, as the
    operator and a StatefulSet do: the responder (the kubelet's part, no kwok Stage) ends every
    deletion, and every replacement stays and runs under its own UID. kwok's delete Stage, by
    name, removed some replacements when kwok lagged (500-pod roll-outs; not reproduced at 20
    pods on an idle machine); test_pod_deletion.py pins the UID precondition itself."""
    names = [f"again-{i}" for i in range(20)]
    base = "/api/v1/namespaces/default/pods"
    selector = {"labelSelector": "test=recreated-by-name"}

    def body(name: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"test": "recreated-by-name"}},
            "spec": {"containers": [{"name": "c", "image": "example.invalid/c:1"}]},
        }

    with real_cluster.api() as api:

        def create(name: str) -> str:
            created = api.post(base, json=body(name))
            assert created.status_code == 201, created.text
            return str(created.json()["metadata"]["uid"])

        def running(uids: dict[str, str]) -> dict[str, Any] | None:
            listing = api.get(base, params=selector).json()
            phases = {
                p["metadata"]["name"]: (p["metadata"]["uid"], p["status"].get("phase"))
                for p in listing["items"]
            }
            every = all(phases.get(n) == (uid, "Running") for n, uid in uids.items())
            return listing if every else None

        first = {name: create(name) for name in names}
        listing = wait_for(lambda: running(first), 60, "the first pods to run")
        for name in names:
            assert api.delete(f"{base}/{name}").status_code == 200
        replaced: dict[str, str] = {}
        params = {
            **selector,
            "watch": "1",
            "resourceVersion": listing["metadata"]["resourceVersion"],
            "timeoutSeconds": "60",
        }
        with api.stream("GET", base, params=params, timeout=70) as events:
            for line in events.iter_lines():
                event = json.loads(line)
                name = event["object"]["metadata"]["name"]
                if event["type"] == "DELETED" and name not in replaced:
                    assert event["object"]["metadata"]["uid"] == first[name]
                    replaced[name] = create(name)
                    if len(replaced) == len(names):
                        break
        assert sorted(replaced) == sorted(names)
        wait_for(lambda: running(replaced), 60, "every replacement to run under its own UID")
        for name in names:
            api.delete(f"{base}/{name}")
        wait_for(
            lambda: not api.get(base, params=selector).json()["items"],
            60,
            "the replacements to be deleted",
        )


def test_both_kubeconfigs_authenticate_as_the_admin(real_cluster: RealCluster) -> None:
    """The certificate and the bearer-token kubeconfig are the same user to the apiserver."""
    token_config = real_cluster.kubeconfig.with_name("admin-token.yaml")
    for config in (real_cluster.kubeconfig, token_config):
        review = json.loads(
            real_cluster.kubectl("--kubeconfig", str(config), "auth", "whoami", "-o", "json")
        )
        user = review["status"]["userInfo"]
        assert user["username"] == "kubernetes-admin"
        assert "system:masters" in user["groups"]
    # Without credentials a request is system:anonymous and refused by RBAC, as on any cluster
    # (kubesim lets it through: a client that drops its credentials is only caught here).
    assert real_cluster.pki is not None
    trust = ssl.create_default_context(cafile=str(real_cluster.pki.ca_cert))
    with httpx.Client(base_url=real_cluster.server, verify=trust) as anonymous:
        refused = anonymous.get("/api/v1/namespaces/default/pods")
    assert refused.status_code == 403
    assert "system:anonymous" in refused.json()["message"]
