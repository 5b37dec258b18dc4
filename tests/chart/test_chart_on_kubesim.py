"""`kubectl apply` of the rendered chart on kubesim: the objects are accepted (CRD schemas and
CEL rules included, with kubectl's default strict validation) and exist afterwards; and a real
Helm 4 install, upgrade and uninstall (server-side apply) of one country.

Every kind the chart renders must be served by kubesim, except those listed in KUBESIM_GAPS
(none since kubesim added Deployment, RBAC, PodDisruptionBudget and NetworkPolicy); custom
resources are served once their CRDs are applied (the chart's crds/, and minimal ServiceMonitor,
PodMonitor and PrometheusRule CRDs standing in for the Prometheus Operator's).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import httpx
import pytest
import yaml

from kubesim.harness.testing import KubeSimThread, kubesim_in_thread
from modelfleet_dev.kubectl import Kubectl, kubectl_binary
from tests.crd_bodies import prometheus_operator_crd

from .chart_rendering import (
    CHART_DIR,
    KubeObject,
    country_values,
    render,
    scenario_namespace,
    scenario_values,
    scenarios,
)

pytestmark = pytest.mark.skipif(kubectl_binary() is None, reason="kubectl is not installed")

#: Built-in kinds the chart renders that kubesim does not serve (reported to kubesim's owner).
#: Empty since kubesim 45ad651 serves Deployment, RBAC, PodDisruptionBudget and NetworkPolicy.
KUBESIM_GAPS: set[tuple[str, str]] = set()
#: Served from minimal CRDs (tests.crd_bodies) standing in for the Prometheus Operator's.
PROMETHEUS_OPERATOR_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeSimThread]:
    with kubesim_in_thread(tmp_path_factory.mktemp("kubesim"), run_kubelet=False) as sim:
        yield sim


@pytest.fixture(scope="module")
def kubectl(cluster: KubeSimThread, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    client = Kubectl(cluster.kubeconfig, tmp_path_factory.mktemp("kubectl-cache"), namespace=None)
    # The chart's crds/ first, as Helm does, with kubectl's default (strict) validation.
    client.text("apply", "-f", str(CHART_DIR / "crds"))
    client.apply([prometheus_operator_crd(kind) for kind in PROMETHEUS_OPERATOR_KINDS])
    return client


def _served_kinds(url: str, api_versions: set[str]) -> set[tuple[str, str]]:
    served: set[tuple[str, str]] = set()
    with httpx.Client(base_url=url, timeout=10) as http:
        for api_version in api_versions:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            answer = http.get(path)
            if answer.status_code == 404:
                continue
            answer.raise_for_status()
            served |= {
                (api_version, r["kind"]) for r in answer.json()["resources"] if "/" not in r["name"]
            }
    return served


def _get(kubectl: Kubectl, obj: KubeObject) -> dict[str, Any]:
    group, _, _version = obj["apiVersion"].rpartition("/")
    kind = f"{obj['kind'].lower()}.{group}" if group else obj["kind"].lower()
    namespace = obj["metadata"].get("namespace")
    args = ["get", kind, obj["metadata"]["name"], "-o", "json"]
    if namespace:
        args += ["-n", namespace]
    result: dict[str, Any] = json.loads(kubectl.text(*args))
    return result


@pytest.mark.parametrize("scenario", scenarios())
def test_rendered_release_applies_to_kubesim_and_its_objects_exist(
    chart: helm.Chart, cluster: KubeSimThread, kubectl: Kubectl, scenario: str
) -> None:
    namespace = scenario_namespace(scenario)
    release = render(chart, scenario_values(scenario), release=namespace, namespace=namespace)
    # The release namespace (helm --create-namespace) and the watched ones (the user's).
    for name in sorted(
        {namespace}
        | {o["metadata"]["namespace"] for o in release.objects if "namespace" in o["metadata"]}
    ):
        if kubectl.text("get", "namespace", name, "--ignore-not-found") == "":
            kubectl.text("create", "namespace", name)

    kinds = {(obj["apiVersion"], obj["kind"]) for obj in release.objects}
    served = _served_kinds(cluster.url, {api_version for api_version, _ in kinds})
    missing = kinds - served
    assert missing <= KUBESIM_GAPS, (
        f"kinds neither served by kubesim nor known gaps: {missing - KUBESIM_GAPS}"
    )
    applied = [obj for obj in release.objects if (obj["apiVersion"], obj["kind"]) in served]
    assert applied, f"kubesim serves none of {sorted(kinds)}"

    output = kubectl.apply(applied)

    assert output.count("created") == len(applied), output
    for obj in applied:
        live = _get(kubectl, obj)
        assert live["metadata"]["name"] == obj["metadata"]["name"]
        assert live["metadata"]["labels"] == obj["metadata"].get(
            "labels", live["metadata"]["labels"]
        )
    for model_deployment in release.of_kind("ModelDeployment"):
        fleet = _get(kubectl, model_deployment)
        assert len(fleet["spec"]["wells"]) == len(model_deployment["spec"]["wells"])
        # CRD defaults were applied by the apiserver for what the values left out.
        assert fleet["spec"]["rollout"]["maxSurge"] == 0
        listing = kubectl.text("get", "mdep", "-n", namespace)
        assert model_deployment["metadata"]["name"] in listing


def test_fleet_the_crd_rejects_is_refused_by_kubectl_apply(
    chart: helm.Chart, kubectl: Kubectl
) -> None:
    # maxSurge must be 0 (a CEL rule the values schema cannot express): the apiserver says so.
    values = country_values("fr")
    values["fleet"]["rollout"]["maxSurge"] = 1
    release = render(chart, values, release="fleet-bad", namespace="fleet-bad")
    kubectl.text("create", "namespace", "fleet-bad")
    done = kubectl.run(
        "apply", "-f", "-", stdin=yaml.safe_dump(release.one("ModelDeployment")), check=False
    )
    assert done.returncode != 0
    assert "spec.rollout.maxSurge" in done.stderr and "maxSurge must be 0" in done.stderr


def test_helm_install_upgrade_and_uninstall_of_a_country_on_kubesim(tmp_path: Path) -> None:
    """A real Helm 4 install (server-side apply, CRDs included), an upgrade that changes a value
    and an uninstall, against kubesim."""
    with kubesim_in_thread(tmp_path, run_kubelet=False) as sim:
        config = helm.Config(kubeconfig_path=str(sim.kubeconfig), namespace="fleet-fr")
        local = Kubectl(sim.kubeconfig, tmp_path / "kubectl-cache", namespace=None)
        try:
            values = country_values("fr")
            release = config.install(
                str(CHART_DIR),
                "fleet-fr",
                values,
                namespace="fleet-fr",
                create_namespace=True,
                timeout=60,
            )
            assert release["status"] == "deployed"
            assert "esp-failure" in local.text("get", "mdep", "-n", "fleet-fr")
            assert "fleet-fr-modelfleet" in local.text("get", "deployment", "-n", "fleet-fr")

            values["fleet"]["rollout"]["maxUnavailable"] = 3
            upgraded = config.upgrade(
                str(CHART_DIR), "fleet-fr", values, namespace="fleet-fr", timeout=60
            )
            assert upgraded["status"] == "deployed"
            mdep = json.loads(
                local.text(
                    "get",
                    "mdep",
                    "esp-failure",
                    "-n",
                    "fleet-fr",
                    "-o",
                    "json",
                    "--show-managed-fields",
                )
            )
            assert mdep["spec"]["rollout"]["maxUnavailable"] == 3
            assert [e["operation"] for e in mdep["metadata"]["managedFields"]] == ["Apply"]

            config.uninstall("fleet-fr", timeout=60)
            left = local.text("get", "mdep,deployment", "-n", "fleet-fr", "-o", "name")
            assert left.strip() == ""
        finally:
            config.close()


def test_helm_install_of_norway_with_4000_wells_fits_with_its_managed_fields(
    tmp_path: Path,
) -> None:
    """Server-side apply at Norway's scale: the ModelDeployment's managedFields (one entry per
    well) count against the object size limit, as on a real cluster, and still fit."""
    with kubesim_in_thread(tmp_path, run_kubelet=False) as sim:
        local = Kubectl(sim.kubeconfig, tmp_path / "kubectl-cache", namespace=None)
        local.apply([prometheus_operator_crd(kind) for kind in PROMETHEUS_OPERATOR_KINDS])
        config = helm.Config(kubeconfig_path=str(sim.kubeconfig), namespace="fleet-no")
        try:
            release = config.install(
                str(CHART_DIR),
                "fleet-no",
                country_values("no"),
                namespace="fleet-no",
                create_namespace=True,
                timeout=60,
            )
        finally:
            config.close()
        assert release["status"] == "deployed"
        mdeps = json.loads(
            local.text("get", "mdep", "-n", "fleet-no", "-o", "json", "--show-managed-fields")
        )["items"]
        (mdep,) = mdeps
        wells = mdep["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:wells"]
        assert len(wells) == len(mdep["spec"]["wells"]) == 4000
        assert len(json.dumps(mdep, separators=(",", ":"))) < 1536 * 1024
