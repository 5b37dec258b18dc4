"""Fixtures for operator integration tests: real bundles, kubesim, the real operator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesim.harness.testing import KubeSimThread, kubesim_in_thread
from kubesim.node.kubelet import KubeletConfig
from modelfleet_dev.kubesim_runtime import SimulatedModelRuntime

from .cluster_harness import Api

WELLS = [f"w{i}" for i in range(8)]
VERSIONS = ("1.0.0", "2.0.0", "3.0.0")


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[str, str], str]]:
    """One real one-model bundle per well and version: <root>/<version>/<well>; and digests."""
    from bundle_builder.building import build_bundle

    root = tmp_path_factory.mktemp("bundles")
    digests = {}
    for version in VERSIONS:
        for well in WELLS:
            built = build_bundle(well, root / version / well, models=1, version=version)
            digests[(version, well)] = built.digest
    return root, digests


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KubeSimThread]:
    kubelet = KubeletConfig(annotation_refresh_delay=30.0)
    with kubesim_in_thread(
        tmp_path, kubelet=kubelet, container_runtimes=[SimulatedModelRuntime]
    ) as ks:
        Api(ks.url).install_crd()
        yield ks


@pytest.fixture
def slow_cluster(tmp_path: Path) -> Iterator[KubeSimThread]:
    """Pods take ~0.3 s to start: recreation makes wells visibly unavailable."""
    kubelet = KubeletConfig(
        delay_seconds=0.2, jitter_seconds=0.2, annotation_refresh_delay=30.0, seed=7
    )
    with kubesim_in_thread(
        tmp_path, kubelet=kubelet, container_runtimes=[SimulatedModelRuntime]
    ) as ks:
        Api(ks.url).install_crd()
        yield ks


@pytest.fixture
def api(cluster: KubeSimThread) -> Api:
    return Api(cluster.url)
