"""A chart-rendered fleet may read its wells and digests from ConfigMaps made outside the chart."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from .chart_rendering import render

MODEL = {
    "name": "esp-failure",
    "version": "2026.11.2",
    "bundleUri": "file:///bundles/{version}/{well}",
}


def _fleet(**fields: Any) -> dict[str, Any]:
    return {"fleet": {"enabled": True, "model": dict(MODEL), **fields}}


def test_a_fleet_from_config_maps_needs_no_inline_wells(chart: helm.Chart) -> None:
    values = _fleet(wellsFrom=[{"configMap": "fr-wells-1"}, {"configMap": "fr-wells-2"}])
    values["fleet"]["model"]["digestsFrom"] = [{"configMap": "esp-2026.11.2-digests"}]
    spec = render(chart, values, release="fleet-fr", namespace="fleet-fr").one("ModelDeployment")[
        "spec"
    ]
    assert spec["wellsFrom"] == [{"configMap": "fr-wells-1"}, {"configMap": "fr-wells-2"}]
    assert spec["model"]["digestsFrom"] == [{"configMap": "esp-2026.11.2-digests"}]
    assert "wells" not in spec


def test_inline_wells_and_config_maps_render_together(chart: helm.Chart) -> None:
    values = _fleet(wells=[{"id": "fr-0001"}], wellsFrom=[{"configMap": "fr-wells"}])
    spec = render(chart, values, release="fleet-fr", namespace="fleet-fr").one("ModelDeployment")[
        "spec"
    ]
    assert spec["wells"] == [{"id": "fr-0001"}] and spec["wellsFrom"] == [{"configMap": "fr-wells"}]


def test_an_inline_fleet_renders_no_wells_from(chart: helm.Chart) -> None:
    values = _fleet(wells=[{"id": "fr-0001"}])
    spec = render(chart, values, release="fleet-fr", namespace="fleet-fr").one("ModelDeployment")[
        "spec"
    ]
    assert "wellsFrom" not in spec


def test_a_fleet_with_neither_wells_nor_config_maps_is_refused(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.validate_schema(_fleet())
    assert "at '/fleet/wells': minItems: got 0, want 1" in str(caught.value)


def test_a_config_map_name_is_checked_at_install(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.validate_schema(_fleet(wellsFrom=[{"configMap": "FR_wells"}]))
    assert "at '/fleet/wellsFrom/0/configMap'" in str(caught.value)
