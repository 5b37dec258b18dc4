"""`helm install` of the chart (France, then Norway) onto the real cluster, then the operator run
from the installed Deployment's arguments and env under the chart's own ServiceAccount: a token
for it from the TokenRequest API in a kubeconfig, never the admin. A fleet that reaches
Available proves the chart's RBAC on the real authorizer; any refused request shows up as a 403
in the operator's log and a fleet that never converges.

The cluster's pods are kwok's, so the operator runs on the host: the Deployment's own args with
its two listening ports moved to free loopback ports (the only change), its env with fieldRefs
resolved from its (kwok-played) pod, and the kubeconfig standing in for the mounted token.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from modelfleet_dev.real_cluster import RealCluster
from tests.chart.chart_rendering import CHART_DIR, country_values, merge_values
from tests.chart.operator_on_kubesim import build_bundles
from tests.crd_bodies import prometheus_operator_crd
from tests.real_cluster.helpers import wait_for

pytestmark = pytest.mark.real_cluster

TOKEN_SECONDS = 3600
#: Norway's 4,000 wells would measure the pod simulation, not the RBAC: its first 40 (its canary).
NORWAY_WELLS = 40


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _service_account_kubeconfig(
    cluster: RealCluster, namespace: str, account: str, path: Path
) -> Path:
    """A kubeconfig with a TokenRequest token of ``account``: the operator's own identity."""
    assert cluster.pki is not None
    with cluster.api() as api:
        answer = api.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
            json={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": TOKEN_SECONDS},
            },
        )
    assert answer.status_code == 201, answer.text
    token = answer.json()["status"]["token"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "real",
                "cluster": {
                    "server": cluster.server,
                    "certificate-authority-data": base64.b64encode(
                        cluster.pki.ca_cert.read_bytes()
                    ).decode(),
                },
            }
        ],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {
                "name": "sa",
                "context": {"cluster": "real", "user": account, "namespace": namespace},
            }
        ],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _json(cluster: RealCluster, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(cluster.kubectl(*args, "-o", "json"))
    return out


def _operator_command(
    cluster: RealCluster, namespace: str, deployment: str, kubeconfig: Path
) -> tuple[list[str], dict[str, str]]:
    """The installed Deployment's container: args (listening ports on loopback) and env."""
    installed = _json(cluster, "get", "deployment", deployment, "-n", namespace)
    pod_spec = installed["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    selector = ",".join(f"{k}={v}" for k, v in installed["spec"]["selector"]["matchLabels"].items())
    pods = wait_for(
        lambda: _json(cluster, "get", "pods", "-n", namespace, "-l", selector)["items"] or None,
        60,
        f"a pod of {deployment}",
    )
    pod = pods[0]
    args = []
    for arg in container["args"]:
        if arg.startswith("--metrics-port="):
            arg = f"--metrics-port={_free_loopback_port()}"
        elif arg.startswith("--liveness="):
            arg = f"--liveness=http://127.0.0.1:{_free_loopback_port()}/healthz"
        args.append(arg)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            field = var["valueFrom"]["fieldRef"]["fieldPath"]
            assert field == "metadata.name", f"resolve fieldRef {field} too"
            env[var["name"]] = pod["metadata"]["name"]
    env["KUBECONFIG"] = str(kubeconfig)
    account = pod_spec["serviceAccountName"]
    assert account != "default"
    return [sys.executable, "-m", "modelfleet.app.cli", *args], env


def _available(version: str, wells: int) -> Any:
    def check(status: dict[str, Any]) -> bool:
        return (
            status.get("phase") == "Available"
            and status.get("availableWells") == wells
            and status.get("updatedWells") == wells
            and str(status.get("model", "")).endswith(f"@{version}")
        )

    return check


def _install_and_reconcile(
    cluster: RealCluster,
    tmp_path: Path,
    release: str,
    values: dict[str, Any],
    timeout: float,
) -> None:
    namespace = release
    fleet = values["fleet"]
    config = helm.Config(kubeconfig_path=str(cluster.kubeconfig), namespace=namespace)
    try:
        installed = config.install(
            str(CHART_DIR), release, values, namespace=namespace, create_namespace=True, timeout=120
        )
        assert installed["status"] == "deployed"
    finally:
        config.close()
    deployment = f"{release}-modelfleet"
    account = _json(cluster, "get", "deployment", deployment, "-n", namespace)["spec"]["template"][
        "spec"
    ]["serviceAccountName"]
    kubeconfig = _service_account_kubeconfig(
        cluster, namespace, account, tmp_path / f"{release}-sa.yaml"
    )
    whoami = json.loads(
        cluster.kubectl("--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json")
    )
    assert (
        whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:{account}"
    )
    argv, env = _operator_command(cluster, namespace, deployment, kubeconfig)
    log_path = tmp_path / f"{release}-operator.log"
    with log_path.open("wb") as log:
        operator = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        want = _available(fleet["model"]["version"], len(fleet["wells"]))

        def converged() -> bool | None:
            assert operator.poll() is None, log_path.read_text()[-3000:]
            status = _json(cluster, "get", "mdep", fleet["name"], "-n", namespace).get("status")
            return True if status and want(status) else None

        try:
            wait_for(converged, timeout, f"{release}'s fleet Available under the chart's RBAC")
        except BaseException:
            print(log_path.read_text()[-5000:])
            raise
    finally:
        operator.terminate()
        try:
            operator.wait(20)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
    text = log_path.read_text()
    assert " 403" not in text and "Forbidden" not in text and "forbidden" not in text, text[-5000:]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chart-bundles")
    fr = country_values("fr")["fleet"]
    for well in fr["wells"]:
        build_bundles(root, [well["id"]], [well.get("pin") or fr["model"]["version"]])
    no = country_values("no")["fleet"]
    build_bundles(root, [w["id"] for w in no["wells"][:NORWAY_WELLS]], [no["model"]["version"]])
    return root


@pytest.fixture
def served_bundles(bundles: Path) -> Iterator[str]:
    yield f"file://{bundles}/{{version}}/{{well}}"


def test_france_installs_with_helm_and_its_operator_reconciles_under_the_charts_rbac(
    real_cluster: RealCluster, tmp_path: Path, served_bundles: str
) -> None:
    # The pilot's values; bundles on local disk and no minute of readiness per well, to keep the
    # test short. Everything RBAC-relevant (namespaced Role, watch namespaces) is the pilot's.
    values = merge_values(
        country_values("fr"),
        {"fleet": {"model": {"bundleUri": served_bundles}, "rollout": {"minReadySeconds": 0}}},
    )
    _install_and_reconcile(real_cluster, tmp_path, "fleet-fr", values, timeout=240)


def test_norway_installs_with_helm_and_its_cluster_wide_operator_reconciles_under_the_charts_rbac(
    real_cluster: RealCluster, tmp_path: Path, served_bundles: str
) -> None:
    # Norway's values (cluster-wide ClusterRole, peering, NetworkPolicies, ServiceMonitor,
    # PodDisruptionBudget), its first NORWAY_WELLS wells, its roll-out not paused. The
    # ServiceMonitor CRD stands in for the Prometheus Operator's.
    real_cluster.kubectl(
        "apply", "-f", "-", input=json.dumps(prometheus_operator_crd("ServiceMonitor"))
    )
    real_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com"
    )
    norway = country_values("no")
    values = merge_values(
        norway,
        {
            "fleet": {
                "model": {"bundleUri": served_bundles},
                "rollout": {"minReadySeconds": 0, "paused": False},
            }
        },
    )
    values["fleet"]["wells"] = norway["fleet"]["wells"][:NORWAY_WELLS]
    _install_and_reconcile(real_cluster, tmp_path, "fleet-no", values, timeout=300)
