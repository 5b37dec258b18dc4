"""Fixtures for the real-cluster harness tests (marker ``real_cluster``).

Why a conftest of its own: the marker is registered here rather than in pyproject.toml, and the
tests skip with a reason when the binaries are not built (or not root), so the default suite
stays fast on a machine that never ran ``python -m modelfleet_dev.real_cluster build``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelfleet_dev.real_cluster import (
    ClusterOptions,
    RealCluster,
    missing_binaries,
    running_real_cluster,
)

_MISSING = missing_binaries()
SKIP_REASON: str | None = (
    "real-cluster binaries not built (run `python -m modelfleet_dev.real_cluster build`): "
    + ", ".join(c.value for c in _MISSING)
    if _MISSING
    else ("the real cluster needs root (network namespace)" if os.geteuid() != 0 else None)
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_cluster: starts a real control plane (built binaries and root needed; skipped "
        "otherwise)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.real_cluster)
            if SKIP_REASON:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """One cluster per test module: start-up costs ~10 s, the tests only read and write pods."""
    options = ClusterOptions(nodes=2, work_dir=tmp_path_factory.mktemp("real-cluster"))
    with running_real_cluster(options) as cluster:
        yield cluster
