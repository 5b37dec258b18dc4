"""One ModelDeployment whose well runs the real model-runtime, and the check that a real
Prometheus found its pod through the cluster's API and scraped it with the pod's labels.

Shared by the kubesim test (tests/monitoring) and the real control plane's
(tests/real_cluster/test_prometheus_discovery.py): the same manifest, the same assertion.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelfleet.logic.wellpod import pod_name
from modelfleet_dev.bundle_cache import BundleKey, ensure_bundles
from modelfleet_dev.demo_fleet import model_deployment, version_seed
from modelfleet_dev.fleet_manifest import MODEL_NAME, ModelDeploymentManifest
from modelfleet_dev.model_store import ModelStore
from modelfleet_dev.prometheus_server import (
    RunningPrometheus,
    prometheus_config,
    well_pods_scrape_config,
)
from runtime_contract.monitoring import MODELS, DriftVerdict

VERSION = "1.0.0"
#: A real runtime imports onnxruntime and loads its bundle: seconds, more on a loaded machine.
READY_TIMEOUT_SECONDS = 180.0


@contextmanager
def store_with_bundles(wells: list[str]) -> Iterator[ModelStore]:
    """A loopback model store serving one single-model bundle per well (cached builds)."""
    store = ModelStore(MODEL_NAME)
    store.start()
    try:
        built = ensure_bundles(BundleKey(w, VERSION, 1, version_seed(VERSION)) for w in wells)
        store.publish({(VERSION, key.well): bundle.path for key, bundle in built.items()})
        yield store
    finally:
        store.stop()


def fleet_manifest(
    name: str, namespace: str, wells: list[str], store: ModelStore, *, image: str | None = None
) -> ModelDeploymentManifest:
    manifest = model_deployment(
        name=name,
        namespace=namespace,
        wells=wells,
        version=VERSION,
        bundle_uri=store.uri_template(),
        progress_deadline_seconds=int(READY_TIMEOUT_SECONDS),
    )
    if image is not None:
        manifest["spec"]["runtime"]["image"] = image
    return manifest


def discovery_config(kubeconfig: Path, namespace: str) -> dict[str, object]:
    return prometheus_config([well_pods_scrape_config(kubeconfig, namespaces=[namespace])])


def assert_scraped_with_pod_labels(
    prometheus: RunningPrometheus, *, namespace: str, fleet: str, well: str
) -> None:
    """The well's runtime series reached Prometheus through discovery, labelled by the
    relabelling with its fleet, well, namespace and pod (and nothing else named it so)."""
    expr = f'modelfleet_runtime_ready{{fleet="{fleet}", well="{well}"}} == 1'
    [sample] = prometheus.wait_for(expr, timeout=READY_TIMEOUT_SECONDS)
    labels = sample["labels"]
    assert labels["namespace"] == namespace
    assert labels["pod"] == pod_name(fleet, well)
    assert labels["job"] == "modelfleet-wells"
    # The pod's own metric families name the well too: its `well` label must not be overridden
    # by the exporter's (honor_labels stays off, so a pod cannot claim another well).
    [info] = prometheus.query(f'modelfleet_runtime_bundle_info{{fleet="{fleet}", well="{well}"}}')
    assert info["labels"]["exported_well"] == well
    assert info["labels"]["version"] == VERSION
    # The drift series the alert rules read arrive the same way: its one model has seen no
    # rows, so it has no verdict yet (never "healthy", never "drifting").
    verdicts = {
        s["labels"]["verdict"]: s["value"]
        for s in prometheus.query(f'{MODELS}{{fleet="{fleet}", well="{well}"}}')
    }
    assert verdicts[DriftVerdict.INSUFFICIENT_DATA] == 1
    assert verdicts.get(DriftVerdict.DRIFTING, 0) == 0
    assert verdicts.get(DriftVerdict.HEALTHY, 0) == 0
