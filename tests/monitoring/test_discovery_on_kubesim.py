"""A real Prometheus discovers the well pods through kubesim's API (`kubernetes_sd_configs`,
role pod, with the cluster's kubeconfig: client-go's list and watch) and scrapes the well that
runs the real model-runtime, its series labelled with fleet, well, namespace and pod.

kubesim's kubelet runs the pods its run selector names as real processes bound to their
127.x pod IP, so Prometheus on the host reaches them directly; the other well stays on the
simulated runtime, which answers only through the pod proxy (its target is down)."""

from __future__ import annotations

from pathlib import Path

from modelfleet_dev.local_cluster import running_local_cluster
from modelfleet_dev.prometheus_pytest import StartPrometheus

from .well_discovery import (
    assert_scraped_with_pod_labels,
    discovery_config,
    fleet_manifest,
    store_with_bundles,
)

NAMESPACE = "default"
FLEET = "mon-sd"
REAL_WELL, SIMULATED_WELL = "mon-real-1", "mon-sim-1"


def test_prometheus_finds_the_real_runtime_well_on_kubesim_and_labels_its_series(
    start_prometheus: StartPrometheus, tmp_path: Path
) -> None:
    wells = [REAL_WELL, SIMULATED_WELL]
    with (
        store_with_bundles(wells) as store,
        running_local_cluster(
            tmp_path / "cluster", run_selector=f"modelfleet.dev/well in ({REAL_WELL})"
        ) as cluster,
    ):
        prometheus = start_prometheus(discovery_config(cluster.kubeconfig, NAMESPACE))
        cluster.kubectl.apply(fleet_manifest(FLEET, NAMESPACE, wells, store))
        assert_scraped_with_pod_labels(prometheus, namespace=NAMESPACE, fleet=FLEET, well=REAL_WELL)
        # Both pods were discovered (the watch delivered both): one target per well pod.
        [simulated] = prometheus.wait_for(f'up{{well="{SIMULATED_WELL}"}}', timeout=60)
        assert simulated["labels"]["fleet"] == FLEET
