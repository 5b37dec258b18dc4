"""pytest fixtures for kubesim: ``kubesim`` (async, in the test's loop) and ``kubesim_thread``
(sync, own loop in a thread). Register with ``pytest_plugins = ["kubesim.harness.pytest_plugin"]``.

Configure one test's kubesim with a marker::

    @pytest.mark.kubesim(kubelet=KubeletConfig(delay_seconds=1), faults=FaultConfig([...]))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from kubesim.harness.cluster import KubeSim
from kubesim.harness.testing import KubeSimThread, kubesim_in_thread, run_kubesim


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "kubesim(kubelet=KubeletConfig, faults=FaultConfig, run_kubelet=bool, "
        "container_runtimes=[factory, ...]): configure the "
        "kubesim / kubesim_thread fixture of this test",
    )


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("kubesim")
    return dict(marker.kwargs) if marker is not None else {}


@pytest_asyncio.fixture
async def kubesim(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[KubeSim]:
    async with run_kubesim(tmp_path, **_options(request)) as sim:
        yield sim


@pytest.fixture
def kubesim_thread(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[KubeSimThread]:
    with kubesim_in_thread(tmp_path, **_options(request)) as sim:
        yield sim
