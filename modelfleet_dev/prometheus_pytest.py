"""pytest fixtures for a real Prometheus: ``prometheus_install`` (session: builds the pinned
binaries when missing) and ``start_prometheus`` (a factory; every server it started is stopped
at the end of the test). Registered for the whole suite in tests/conftest.py.

    def test_scraped(start_prometheus):
        prom = start_prometheus(prometheus_config([static_scrape_config("x", [address])]))
        prom.wait_for('up{job="x"} == 1')
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from modelfleet_dev.prometheus_server import (
    PrometheusInstall,
    RunningPrometheus,
    ensure_installed,
    running_prometheus,
)

StartPrometheus = Callable[[Mapping[str, Any]], RunningPrometheus]


@pytest.fixture(scope="session")
def prometheus_install() -> PrometheusInstall:
    """The pinned Prometheus and promtool; a cold machine builds them first (minutes)."""
    return ensure_installed()


@pytest.fixture
def start_prometheus(
    prometheus_install: PrometheusInstall, tmp_path: Path
) -> Iterator[StartPrometheus]:
    """`start_prometheus(config)`: a ready server under tmp_path; stopped after the test."""
    with contextlib.ExitStack() as stack:
        count = 0

        def start(config: Mapping[str, Any]) -> RunningPrometheus:
            nonlocal count
            count += 1
            return stack.enter_context(
                running_prometheus(
                    config, tmp_path / f"prometheus-{count}", install=prometheus_install
                )
            )

        yield start
