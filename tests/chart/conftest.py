"""Fixtures for the chart tests: the chart loaded once, and each country's rendered release."""

from __future__ import annotations

from collections.abc import Iterator

import helm_python as helm
import pytest

from .chart_rendering import (
    CHART_DIR,
    Rendered,
    render,
    scenario_namespace,
    scenario_values,
    scenarios,
)


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    loaded = helm.Chart.load(CHART_DIR)
    try:
        yield loaded
    finally:
        loaded.close()


@pytest.fixture(scope="session", params=scenarios())
def scenario(request: pytest.FixtureRequest) -> str:
    """The chart's default values, its ci/ scenarios, then each example country."""
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def rendered(chart: helm.Chart, scenario: str) -> Rendered:
    namespace = scenario_namespace(scenario)
    return render(chart, scenario_values(scenario), release=namespace, namespace=namespace)
