"""Fixtures for the real-cluster harness tests (marker ``real_cluster``).

Why a conftest of its own: the marker is registered here rather than in pyproject.toml, and the
tests skip with a reason when the binaries are not built (or not root), or when not asked for,
so the default suite stays fast.
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


def _asked_for(config: pytest.Config, here: Path) -> bool:
    """Run only when asked: ``-m real_cluster``, a path in this folder, or the env variable.

    A plain ``make test`` on a machine that has the binaries stays fast, and does not collide
    with a cluster started by hand (one pod network per machine).
    """
    if os.environ.get("MODELFLEET_REAL_CLUSTER") == "1":
        return True
    if "real_cluster" in (config.getoption("-m") or ""):
        return True
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == here or here in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent.resolve()
    reason = SKIP_REASON
    if reason is None and not _asked_for(config, here):
        reason = (
            "real-cluster tests run when asked: pytest tests/real_cluster, -m real_cluster or "
            "MODELFLEET_REAL_CLUSTER=1"
        )
    for item in items:
        # Only tests that start a cluster carry the marker (test_build.py runs anywhere).
        if here in item.path.parents and item.get_closest_marker("real_cluster") and reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """One cluster per test module: start-up costs ~10 s, the tests only read and write pods."""
    options = ClusterOptions(nodes=2, work_dir=tmp_path_factory.mktemp("real-cluster"))
    with running_real_cluster(options) as cluster:
        yield cluster
