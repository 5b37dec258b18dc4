"""A real Prometheus discovers the well pods through the real kube-apiserver
(`kubernetes_sd_configs`, role pod, with the cluster's admin kubeconfig: client certificates,
client-go's list and watch) and scrapes the well whose pod runs the real model-runtime.

The pod runs inside the harness's pod network namespace, bound to its 10.244.x.y pod IP; the
host routes 10.244.0.0/16 into that namespace through the harness's veth pair, so Prometheus
runs on the host and scrapes the pod IP as it would in a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfleet_dev.kubectl import Kubectl
from modelfleet_dev.local_cluster import CRD_PATH, start_operator
from modelfleet_dev.prometheus_pytest import StartPrometheus
from modelfleet_dev.real_cluster import RealCluster
from modelfleet_dev.real_cluster.host_process import HOST_PROCESS_IMAGE
from tests.monitoring.well_discovery import (
    assert_scraped_with_pod_labels,
    discovery_config,
    fleet_manifest,
    store_with_bundles,
)

pytestmark = pytest.mark.real_cluster

NAMESPACE = "default"
FLEET = "mon-sd"
WELL = "mon-real-1"


def test_prometheus_finds_the_real_runtime_well_on_the_real_control_plane(
    real_cluster: RealCluster, start_prometheus: StartPrometheus, tmp_path: Path
) -> None:
    kubectl = Kubectl(real_cluster.kubeconfig, tmp_path / "kubectl-cache", NAMESPACE)
    kubectl.apply(CRD_PATH)
    kubectl.run("wait", "--for=condition=Established", "crd/modeldeployments.modelfleet.dev")
    operator, _ = start_operator(
        real_cluster.kubeconfig, tmp_path / "operator", namespace=NAMESPACE
    )
    try:
        with store_with_bundles([WELL]) as store:
            prometheus = start_prometheus(discovery_config(real_cluster.kubeconfig, NAMESPACE))
            kubectl.apply(fleet_manifest(FLEET, NAMESPACE, [WELL], store, image=HOST_PROCESS_IMAGE))
            assert_scraped_with_pod_labels(prometheus, namespace=NAMESPACE, fleet=FLEET, well=WELL)
            [target] = [t for t in prometheus.targets() if t["labels"].get("well") == WELL]
            assert target["scrapeUrl"].startswith("http://10.244."), target
    finally:
        operator.stop()
