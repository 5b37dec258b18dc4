"""The real kubectl (v1.32) against kubesim: apply, get with printer columns, describe, wait,
delete with cascading, get -w, explain."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubesim.harness.testing import KubeSimThread, kubesim_in_thread
from tests.kubesim.conftest import WIDGET_CRD, run_kubectl

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "kubectl"], capture_output=True).returncode != 0,
    reason="kubectl not installed",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeSimThread]:
    with kubesim_in_thread(tmp_path_factory.mktemp("kubectl")) as sim:
        yield sim


@pytest.fixture(scope="module")
def kubectl(cluster: KubeSimThread, tmp_path_factory: pytest.TempPathFactory) -> Any:
    cache = tmp_path_factory.mktemp("kubectl-cache")

    def run(
        *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(cluster.kubeconfig, cache, *args, stdin=stdin, check=check)

    return run


@pytest.fixture(scope="module")
def widgets(kubectl: Any) -> None:
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(WIDGET_CRD))
    kubectl("wait", "--for=condition=Established", "crd/widgets.kubesim.test", "--timeout=10s")


def _widget_yaml(name: str, size: int, extra: dict[str, Any] | None = None) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubesim.test/v1",
            "kind": "Widget",
            "metadata": {"name": name, **(extra or {})},
            "spec": {"size": size},
        }
    )


def test_kubectl_apply_creates_then_updates_a_custom_resource(kubectl: Any, widgets: None) -> None:
    """kubectl apply (client-side apply): create, then a merge patch carrying last-applied-configuration.
    https://kubernetes.io/docs/tasks/manage-kubernetes-objects/declarative-config/"""
    out = kubectl("apply", "-f", "-", stdin=_widget_yaml("ap", 1)).stdout
    assert "widget.kubesim.test/ap created" in out
    out = kubectl("apply", "-f", "-", stdin=_widget_yaml("ap", 2)).stdout
    assert "widget.kubesim.test/ap configured" in out
    obj = json.loads(kubectl("get", "widget", "ap", "-o", "json").stdout)
    assert obj["spec"]["size"] == 2 and obj["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    bad = kubectl("apply", "-f", "-", stdin=_widget_yaml("bad", 99), check=False)
    assert bad.returncode != 0 and "spec.size" in bad.stderr


def test_kubectl_get_prints_crd_printer_columns(kubectl: Any, widgets: None) -> None:
    """kubectl get asks for a Table and prints the CRD's additionalPrinterColumns.
    https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#additional-printer-columns"""
    kubectl("apply", "-f", "-", stdin=_widget_yaml("cols", 4))
    lines = kubectl("get", "widgets").stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "PHASE", "AGE"]
    row = next(line for line in lines if line.startswith("cols"))
    assert row.split()[1] == "4"
    assert "cols" in kubectl("get", "wd", "-o", "name").stdout


def test_kubectl_get_pods_prints_ready_status_restarts(kubectl: Any) -> None:
    """Built-in tables: pods print READY, STATUS, RESTARTS, AGE (and IP, NODE with -o wide).
    https://kubernetes.io/docs/reference/kubectl/generated/kubectl_get/"""
    kubectl("run", "web", "--image=registry.local/web:1")
    kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=10s")
    lines = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert lines[0].split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    row = next(line for line in lines if line.startswith("web")).split()
    assert row[1:3] == ["1/1", "Running"] and row[5].startswith("127.")


def test_kubectl_describe_shows_object_and_events(kubectl: Any, cluster: KubeSimThread) -> None:
    """kubectl describe reads the object and lists Events by involvedObject field selectors.
    https://kubernetes.io/docs/reference/kubectl/generated/kubectl_describe/"""
    kubectl("run", "desc", "--image=registry.local/web:1")
    pod = json.loads(kubectl("get", "pod", "desc", "-o", "json").stdout)
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "desc.1", "namespace": "default"},
        "involvedObject": {
            "kind": "Pod",
            "name": "desc",
            "namespace": "default",
            "uid": pod["metadata"]["uid"],
        },
        "reason": "KubesimSaidHello",
        "message": "hello from the test",
        "type": "Normal",
        "count": 1,
        "firstTimestamp": pod["metadata"]["creationTimestamp"],
        "lastTimestamp": pod["metadata"]["creationTimestamp"],
    }
    kubectl("create", "-f", "-", stdin=json.dumps(event))
    out = kubectl("describe", "pod", "desc").stdout
    assert "Node:             kubesim-node/127.0.0.1" in out
    assert "KubesimSaidHello" in out and "hello from the test" in out


def test_kubectl_delete_cascades_to_dependents(kubectl: Any) -> None:
    """kubectl delete uses background cascading by default; --cascade=orphan keeps dependents.
    https://kubernetes.io/docs/tasks/administer-cluster/use-cascading-deletion/"""
    kubectl("create", "configmap", "owner")
    uid = kubectl("get", "configmap", "owner", "-o", "jsonpath={.metadata.uid}").stdout
    dep = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
            ],
        },
    }
    kubectl("create", "-f", "-", stdin=json.dumps(dep))
    assert (
        'configmap "owner" deleted' in kubectl("delete", "configmap", "owner", "--wait=true").stdout
    )
    deadline = time.monotonic() + 10
    while kubectl("get", "configmap", "owned", check=False).returncode == 0:
        assert time.monotonic() < deadline, "dependent was not garbage collected"
        time.sleep(0.05)


def test_kubectl_wait_for_condition_on_custom_resource(
    kubectl: Any, widgets: None, cluster: KubeSimThread
) -> None:
    """kubectl wait --for=condition=X watches the object until status.conditions has X=True.
    https://kubernetes.io/docs/reference/kubectl/generated/kubectl_wait/"""
    kubectl("apply", "-f", "-", stdin=_widget_yaml("waiter", 1))
    proc = subprocess.Popen(
        [
            "kubectl",
            f"--kubeconfig={cluster.kubeconfig}",
            "wait",
            "--for=condition=Done",
            "widget/waiter",
            "--timeout=15s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    status = {
        "status": {
            "conditions": [
                {
                    "type": "Done",
                    "status": "True",
                    "reason": "Test",
                    "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ]
        }
    }
    kubectl(
        "patch",
        "widget",
        "waiter",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "condition met" in out


def test_kubectl_get_watch_streams_changes(
    kubectl: Any, widgets: None, cluster: KubeSimThread
) -> None:
    """kubectl get -w prints the list, then a row per change from the watch.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes"""
    kubectl("apply", "-f", "-", stdin=_widget_yaml("watched", 1))
    proc = subprocess.Popen(
        [
            "kubectl",
            f"--kubeconfig={cluster.kubeconfig}",
            "get",
            "widgets",
            "-w",
            "--request-timeout=4s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.7)
    kubectl("patch", "widget", "watched", "--type=merge", "-p", '{"spec":{"size":5}}')
    time.sleep(0.7)
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    rows = [line.split() for line in out.splitlines() if line.startswith("watched")]
    assert rows[0][1] == "1" and rows[-1][1] == "5"


def test_kubectl_explain_reads_openapi_for_crds(kubectl: Any, widgets: None) -> None:
    """kubectl explain reads /openapi/v3; CRD schemas are published there.
    https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#publish-validation-schema-in-openapi"""
    out = kubectl("explain", "widgets.spec").stdout
    assert "size" in out and "integer" in out
    out = kubectl("explain", "pods.spec.containers.image").stdout
    assert "image" in out.lower()


def test_kubectl_reports_apiserver_errors_verbatim(kubectl: Any) -> None:
    """Status messages reach the user as the apiserver wrote them.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#api-response-status-codes"""
    proc = kubectl("create", "configmap", "Bad_Name", check=False)
    assert proc.returncode != 0 and 'ConfigMap "Bad_Name" is invalid' in proc.stderr
    proc = kubectl("get", "configmap", "nope", check=False)
    assert 'configmaps "nope" not found' in proc.stderr


def _unused(_: Path) -> None:  # keep Path import for type checkers of helpers above
    return None


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: op}
spec:
  selector: {matchLabels: {app: op}}
  template:
    metadata: {labels: {app: op}}
    spec:
      containers:
      - {name: main, image: "registry.local/op:1", env: [{name: A, value: "1"}]}
      - {name: side, image: "registry.local/side:1"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: op}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: op}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: op}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: op}
spec: {maxUnavailable: 1, selector: {matchLabels: {app: op}}}
"""


def test_kubectl_apply_of_stored_only_kinds_deployment_rbac_pdb(kubectl: Any) -> None:
    """Deployments, RBAC and PodDisruptionBudgets are stored and served (no controller acts on
    them); a re-apply strategic-merges the pod template's containers by name.
    https://kubernetes.io/docs/tasks/manage-kubernetes-objects/declarative-config/#merging-changes-to-primitive-fields"""
    out = kubectl("apply", "-f", "-", stdin=DEPLOYMENT).stdout
    assert (
        "deployment.apps/op created" in out and "role.rbac.authorization.k8s.io/op created" in out
    )
    out = kubectl(
        "apply", "-f", "-", stdin=DEPLOYMENT.replace("registry.local/op:1", "registry.local/op:2")
    ).stdout
    assert "deployment.apps/op configured" in out
    dep = json.loads(kubectl("get", "deploy", "op", "-o", "json").stdout)
    images = [c["image"] for c in dep["spec"]["template"]["spec"]["containers"]]
    assert images == ["registry.local/op:2", "registry.local/side:1"]
    assert dep["metadata"]["generation"] == 2
    assert (
        kubectl("get", "pdb", "op", "-o", "name").stdout.strip() == "poddisruptionbudget.policy/op"
    )
