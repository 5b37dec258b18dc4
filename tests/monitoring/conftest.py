"""Fixtures of the monitoring tests: the chart rendered with every monitoring object on, and the
metric names the components export (taken from their own code, never retyped here)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

from model_runtime.metrics import RuntimeMetrics
from runtime_contract import monitoring as contract
from tests.chart.chart_rendering import CHART_DIR, Rendered, render

RELEASE = "fleet-fr"

MONITORING_ON: dict[str, Any] = {
    "monitoring": {
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    }
}


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    loaded = helm.Chart.load(CHART_DIR)
    try:
        yield loaded
    finally:
        loaded.close()


@pytest.fixture(scope="session")
def monitoring_release(chart: helm.Chart) -> Rendered:
    return render(chart, MONITORING_ON, release=RELEASE, namespace=RELEASE)


def _sample_names(family: Metric) -> set[str]:
    """The series names a prometheus_client family is exposed under."""
    match family.type:
        case "counter":
            return {family.name + "_total", family.name + "_created"}
        case "histogram":
            return {family.name + suffix for suffix in ("_bucket", "_count", "_sum", "_created")}
        case "summary":
            return {family.name + suffix for suffix in ("", "_count", "_sum", "_created")}
        case "info":
            return {family.name + "_info"}
        case _:
            return {family.name}


def operator_metric_names() -> set[str]:
    """What the operator's process exposes: its default registry once the operator is imported."""
    import modelfleet.app.operator_main  # noqa: F401  (the operator process: registers its metrics)

    return {name for family in REGISTRY.collect() for name in _sample_names(family)}


def runtime_metric_names() -> set[str]:
    """The runtime's own registry, plus the functional-monitoring names of its contract."""
    names = {n for family in RuntimeMetrics().collect() for n in family.series_names()}
    names |= {
        value
        for value in vars(contract).values()
        if isinstance(value, str)
        and value.startswith(contract.METRIC_PREFIX)
        and value != contract.METRIC_PREFIX
    }
    return names


#: Series Prometheus itself makes for every target (the alert on unscrapeable well pods).
PROMETHEUS_SERIES = frozenset({"up"})


@pytest.fixture(scope="session")
def exported_metric_names() -> frozenset[str]:
    return frozenset(operator_metric_names() | runtime_metric_names() | PROMETHEUS_SERIES)
