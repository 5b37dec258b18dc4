"""pytest fixtures for kubesim: ``kubesim`` (async, in the test's loop) and ``kubesim_thread``
(sync, own loop in a thread). Register with ``pytest_plugins = ["kubesim.pytest_plugin"]``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from kubesim.cluster import KubeSim
from kubesim.testing import KubeSimThread, kubesim_in_thread, run_kubesim


@pytest_asyncio.fixture
async def kubesim(tmp_path: Path) -> AsyncIterator[KubeSim]:
    async with run_kubesim(tmp_path) as sim:
        yield sim


@pytest.fixture
def kubesim_thread(tmp_path: Path) -> Iterator[KubeSimThread]:
    with kubesim_in_thread(tmp_path) as sim:
        yield sim
