"""The chart's RBAC grants the operator exactly what it calls: no more, no less, no wildcard.

The real operator (its own client and kopf, with peering as when replicas > 1) runs on kubesim
through a whole fleet life: create (one well from a ConfigMap inventory), in-place model upgrade (bundle-load nudges through the pod
proxy, readiness gate), runtime change (pods recreated), a lost pod, a revision name already
taken, revision history pruning, shutdown. kubesim records every request as RBAC sees it
(api_audit.py). The set of (apiGroup, resource, verb) it issued must equal what the rendered
Role/ClusterRole grant, per scope: namespaced calls from the per-namespace Role (or the
ClusterRole cluster-wide), cluster-scoped calls from a ClusterRole only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import httpx
import pytest
import yaml

from kubesim.harness.testing import KubeSimThread
from kubesim.node.kubelet import KubeletConfig
from modelfleet.api.spec import ModelDeploymentSpec
from modelfleet.app.settings import OperatorSettings
from modelfleet.logic.revisions import revision_of
from modelfleet_dev.operator_thread import OperatorThread

from .api_audit import AuditLog, RequestAttributes, recording_kubesim
from .chart_rendering import CHART_DIR, KubeObject, render
from .operator_on_kubesim import TEST_AGENT, TestClient, build_bundles

NAMESPACE = "fleet"
PEERING = "fleet-operator"
WELLS = ("w0", "w1", "w2")
VERSIONS = ("1.0.0", "2.0.0")
MD_PATH = f"/apis/modelfleet.dev/v1alpha1/namespaces/{NAMESPACE}/modeldeployments"
DISCOVERY_PREFIXES = ("/api", "/apis", "/version", "/openapi")

#: (apiGroup, resource, verb): what one RBAC rule entry grants and one request needs.
Grant = tuple[str, str, str]


@dataclass(frozen=True)
class OperatorRun:
    records: list[RequestAttributes]
    all_namespaces: bool

    @property
    def operator_requests(self) -> list[RequestAttributes]:
        return [r for r in self.records if r.user_agent != TEST_AGENT]

    def called(self, *, cluster_scoped: bool) -> set[Grant]:
        """What the operator issued; cluster-wide mode needs everything from its ClusterRole."""
        return {
            (r.group, r.rbac_resource, r.verb)
            for r in self.operator_requests
            if r.is_resource_request
            and (self.all_namespaces or (r.namespace is None) == cluster_scoped)
        }


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundles(tmp_path_factory.mktemp("bundles"), WELLS, VERSIONS)


def _available(version: str, generation: int) -> Callable[[dict[str, Any]], bool]:
    def check(status: dict[str, Any]) -> bool:
        return (
            status.get("observedGeneration") == generation
            and status.get("phase") == "Available"
            and status.get("model", "").endswith("@" + version)
            and status.get("updatedWells") == len(WELLS)
            and status.get("availableWells") == len(WELLS)
        )

    return check


def exercise_operator(sim: KubeSimThread, bundles: Path, *, all_namespaces: bool) -> None:
    """A fleet's life, touching every code path that calls the API."""
    api = TestClient(sim.url)
    api.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
    )
    for path in sorted((CHART_DIR / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    if all_namespaces:
        peering = {
            "apiVersion": "kopf.dev/v1",
            "kind": "ClusterKopfPeering",
            "metadata": {"name": PEERING},
        }
        api.create("/apis/kopf.dev/v1/clusterkopfpeerings", peering)
    else:
        peering = {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": PEERING},
        }
        api.create(f"/apis/kopf.dev/v1/namespaces/{NAMESPACE}/kopfpeerings", peering)
    # The last well comes from a ConfigMap made before the operator starts: its watch lists it
    # before any fleet names it, so the operator reads it once (get) and then follows it (watch).
    inventory = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "esp-wells"},
        "data": {"wells.yaml": yaml.safe_dump([{"id": WELLS[-1]}])},
    }
    api.create(f"/api/v1/namespaces/{NAMESPACE}/configmaps", inventory)
    spec = {
        "model": {
            "name": "esp-failure",
            "version": "1.0.0",
            "bundleUri": f"file://{bundles}/{{version}}/{{well}}",
        },
        "wells": [{"id": well} for well in WELLS[:-1]],
        "wellsFrom": [{"configMap": "esp-wells"}],
        "revisionHistoryLimit": 0,
    }
    # A revision named like the one the fleet needs already exists (left by an earlier fleet of
    # the same name): the operator's create meets AlreadyExists and reads the existing one.
    taken = revision_of(ModelDeploymentSpec.model_validate(spec))
    api.create(
        f"/apis/apps/v1/namespaces/{NAMESPACE}/controllerrevisions",
        {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": f"esp-{taken.name}",
                "labels": {"modelfleet.dev/revision": taken.name},
            },
            "data": taken.data(),
            "revision": 1,
        },
    )
    settings = OperatorSettings(
        kubeconfig=str(sim.kubeconfig),
        namespaces=[] if all_namespaces else [NAMESPACE],
        all_namespaces=all_namespaces,
        peering=PEERING,
        liveness=None,
        metrics_port=None,
    )
    fleet_path = f"{MD_PATH}/esp"
    with OperatorThread(settings):
        fleet = {
            "apiVersion": "modelfleet.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "esp"},
            "spec": spec,
        }
        api.create(MD_PATH, fleet)
        api.wait_status(fleet_path, "version 1.0.0 available", _available("1.0.0", 1))
        # Model-only change: bundles swapped in place (pod annotations, proxy nudge, readiness gate).
        api.merge_patch(f"{MD_PATH}/esp", {"spec": {"model": {"version": "2.0.0"}}})
        api.wait_status(fleet_path, "version 2.0.0 available", _available("2.0.0", 2))
        # Runtime change: pods recreated; history limit 0 prunes the older revisions.
        api.merge_patch(
            f"{MD_PATH}/esp",
            {"spec": {"runtime": {"image": "ghcr.io/modelfleet/model-runtime:0.1.1"}}},
        )
        api.wait_status(fleet_path, "new runtime available", _available("2.0.0", 3))
        # A well pod lost: the operator replaces it.
        pod_path = f"/api/v1/namespaces/{NAMESPACE}/pods/esp-w1"
        lost = api.http.delete(pod_path, params={"gracePeriodSeconds": "0"})
        assert lost.status_code == 200, lost.text
        api.wait_for(
            "a ready replacement of esp-w1",
            lambda: _ready_replacement(api.http.get(pod_path), lost.json()),
        )


def _ready_replacement(answer: httpx.Response, lost: KubeObject) -> bool:
    if answer.status_code != 200 or answer.json()["metadata"]["uid"] == lost["metadata"]["uid"]:
        return False
    conditions = answer.json().get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def granted(objects: list[KubeObject], kind: str, *, name_suffix: str = "") -> set[Grant]:
    grants: set[Grant] = set()
    for role in objects:
        if role["kind"] != kind or not role["metadata"]["name"].endswith(name_suffix):
            continue
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        grants.add((group, resource, verb))
    return grants


def _record_operator_run(bundles: Path, tmp_path: Path, *, all_namespaces: bool) -> OperatorRun:
    log = AuditLog()
    kubelet = KubeletConfig(annotation_refresh_delay=30.0)  # slow downward API: the operator nudges
    with recording_kubesim(tmp_path, log, kubelet=kubelet) as sim:
        exercise_operator(sim, bundles, all_namespaces=all_namespaces)
    return OperatorRun(log.records(), all_namespaces)


@pytest.fixture(scope="module")
def namespaced_run(bundles: Path, tmp_path_factory: pytest.TempPathFactory) -> OperatorRun:
    return _record_operator_run(
        bundles, tmp_path_factory.mktemp("namespaced"), all_namespaces=False
    )


@pytest.fixture(scope="module")
def cluster_run(bundles: Path, tmp_path_factory: pytest.TempPathFactory) -> OperatorRun:
    return _record_operator_run(bundles, tmp_path_factory.mktemp("cluster"), all_namespaces=True)


def _chart_roles(chart: helm.Chart, *, all_namespaces: bool) -> list[KubeObject]:
    values = {
        "operator": {"replicas": 2, "allNamespaces": all_namespaces, "watchNamespaces": [NAMESPACE]}
    }
    return render(chart, values, release="fleet", namespace="modelfleet-system").objects


def _diff(called: set[Grant], grants: set[Grant]) -> str:
    return (
        f"called but not granted (the operator would get 403): {sorted(called - grants)}; "
        f"granted but never called (not least privilege): {sorted(grants - called)}"
    )


def test_namespaced_role_grants_exactly_the_namespaced_calls(
    chart: helm.Chart, namespaced_run: OperatorRun
) -> None:
    called = namespaced_run.called(cluster_scoped=False)
    # A Role only grants in its namespace: every namespaced call must be in a watched one.
    namespaces = {r.namespace for r in namespaced_run.operator_requests if r.is_resource_request}
    assert namespaces - {None} == {NAMESPACE}
    roles = _chart_roles(chart, all_namespaces=False)
    assert {r["metadata"]["namespace"] for r in roles if r["kind"] == "Role"} == {NAMESPACE}
    grants = granted(roles, "Role")
    assert called == grants, _diff(called, grants)


def test_scanning_cluster_role_grants_exactly_kopfs_cluster_scoped_calls(
    chart: helm.Chart, namespaced_run: OperatorRun
) -> None:
    called = namespaced_run.called(cluster_scoped=True)
    grants = granted(
        _chart_roles(chart, all_namespaces=False), "ClusterRole", name_suffix="-scanning"
    )
    assert called == grants, _diff(called, grants)


def test_cluster_role_grants_exactly_the_cluster_wide_calls(
    chart: helm.Chart, cluster_run: OperatorRun
) -> None:
    called = cluster_run.called(cluster_scoped=True)
    roles = _chart_roles(chart, all_namespaces=True)
    assert [r for r in roles if r["kind"] == "Role"] == []
    grants = granted(roles, "ClusterRole")
    assert called == grants, _diff(called, grants)


@pytest.mark.parametrize("mode", ["namespaced_run", "cluster_run"])
def test_the_operator_needs_nothing_but_discovery_outside_resources(
    mode: str, request: pytest.FixtureRequest
) -> None:
    # Non-resource URLs are granted to every authenticated user by the system:discovery role.
    operator_run: OperatorRun = request.getfixturevalue(mode)
    others = {r.path for r in operator_run.operator_requests if not r.is_resource_request}
    assert others, "kopf always discovers the API"
    assert all(path.startswith(DISCOVERY_PREFIXES) for path in others), others
    assert {r.verb for r in operator_run.operator_requests if not r.is_resource_request} == {"get"}
