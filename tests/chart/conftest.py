"""Fixtures for the chart tests: the chart loaded once, and each country's rendered release."""

from __future__ import annotations

from collections.abc import Iterator

import helm_python as helm
import pytest

from .chart_rendering import CHART_DIR, COUNTRY_VALUES, Rendered, country_values, render


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    loaded = helm.Chart.load(CHART_DIR)
    try:
        yield loaded
    finally:
        loaded.close()


@pytest.fixture(scope="session", params=["default", *COUNTRY_VALUES])
def scenario(request: pytest.FixtureRequest) -> str:
    """The chart's default values, then each example country."""
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def rendered(chart: helm.Chart, scenario: str) -> Rendered:
    values = {} if scenario == "default" else country_values(scenario)
    namespace = "modelfleet" if scenario == "default" else f"fleet-{scenario}"
    return render(chart, values, release=namespace, namespace=namespace)
