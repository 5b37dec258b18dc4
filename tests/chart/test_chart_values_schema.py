"""Wrong values fail at install time (values.schema.json), with a message naming the value."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from .chart_rendering import CHART_DIR, country_values, merge_values

VALID_FLEET: dict[str, Any] = {
    "enabled": True,
    "model": {
        "name": "esp-failure",
        "version": "2026.11.2",
        "bundleUri": "file:///bundles/{version}/{well}",
    },
    "wells": [{"id": "fr-0001"}],
}


def _schema_error(chart: helm.Chart, values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.validate_schema(values)
    return str(caught.value)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"operator": {"replicas": -1}}, "at '/operator/replicas': minimum: got -1, want 1"),
        ({"operator": {"replicas": "two"}}, "at '/operator/replicas'"),
        ({"operator": {"qps": -5}}, "at '/operator/qps'"),
        ({"operator": {"watchNamespaces": ["Fleet_FR"]}}, "at '/operator/watchNamespaces/0'"),
        ({"operator": {"namespace": "fleet-fr"}}, "additional properties 'namespace' not allowed"),
        ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'"),
        ({"image": {"digest": "latest"}}, "at '/image/digest'"),
        ({"rbac": {"create": "yes"}}, "at '/rbac/create'"),
        (
            {"metrics": {"serviceMonitor": {"interval": "often"}}},
            "at '/metrics/serviceMonitor/interval'",
        ),
        ({"replicaCount": 2}, "additional properties 'replicaCount' not allowed"),
    ],
)
def test_wrong_chart_value_is_refused_naming_it(
    chart: helm.Chart, values: dict[str, Any], expected: str
) -> None:
    assert expected in _schema_error(chart, values)


def test_unknown_rollout_key_is_refused_naming_it(chart: helm.Chart) -> None:
    values = {"fleet": {**VALID_FLEET, "rollout": {"maxUnavaliable": 1}}}
    message = _schema_error(chart, values)
    assert "at '/fleet/rollout'" in message and "'maxUnavaliable' not allowed" in message


def test_bad_well_id_is_refused_naming_the_well(chart: helm.Chart) -> None:
    values = {"fleet": {**VALID_FLEET, "wells": [{"id": "fr-0001"}, {"id": "FR_0002"}]}}
    message = _schema_error(chart, values)
    assert "at '/fleet/wells/1/id'" in message and "'FR_0002' does not match pattern" in message


def test_negative_max_unavailable_is_refused(chart: helm.Chart) -> None:
    values = {"fleet": {**VALID_FLEET, "rollout": {"maxUnavailable": -1}}}
    assert "at '/fleet/rollout/maxUnavailable'" in _schema_error(chart, values)


def test_percent_above_100_is_refused(chart: helm.Chart) -> None:
    values = {"fleet": {**VALID_FLEET, "rollout": {"maxUnavailable": "150%"}}}
    assert "at '/fleet/rollout/maxUnavailable'" in _schema_error(chart, values)


def test_enabled_fleet_needs_a_model_and_wells(chart: helm.Chart) -> None:
    message = _schema_error(chart, {"fleet": {"enabled": True}})
    assert "at '/fleet/model': missing properties 'name', 'version', 'bundleUri'" in message
    assert "at '/fleet/wells': minItems: got 0, want 1" in message


def test_bundle_uri_without_a_supported_scheme_is_refused(chart: helm.Chart) -> None:
    fleet = merge_values(VALID_FLEET, {"model": {"bundleUri": "ftp://host/{well}"}})
    assert "at '/fleet/model/bundleUri'" in _schema_error(chart, {"fleet": fleet})


def test_more_wells_than_a_modeldeployment_holds_are_refused(chart: helm.Chart) -> None:
    wells = [{"id": f"w{i}"} for i in range(10_001)]
    assert "at '/fleet/wells': maxItems" in _schema_error(
        chart, {"fleet": {**VALID_FLEET, "wells": wells}}
    )


def test_disabled_fleet_needs_nothing(chart: helm.Chart) -> None:
    chart.validate_schema({"fleet": {"enabled": False}})
    chart.validate_schema({})


@pytest.mark.parametrize("country", ["fr", "us", "no"])
def test_example_values_pass_the_schema(chart: helm.Chart, country: str) -> None:
    chart.validate_schema(country_values(country))


def test_helm_install_refuses_wrong_values_before_touching_the_cluster() -> None:
    # The install action itself (client dry run: no cluster), as `helm install` reports it.
    config = helm.Config(namespace="fleet-fr", storage_driver="memory")
    try:
        release = config.install(
            str(CHART_DIR), "fleet-fr", country_values("fr"), namespace="fleet-fr", dry_run="client"
        )
        assert release["status"] == "pending-install"
        assert "kind: ModelDeployment" in release["manifest"]
        assert "get mdep esp-failure" in release["notes"]
        with pytest.raises(helm.HelmReleaseError) as refused:
            config.install(
                str(CHART_DIR),
                "fleet-fr",
                {"fleet": {"rollout": {"paused": "yes"}}},
                namespace="fleet-fr",
                dry_run="client",
            )
        assert "at '/fleet/rollout/paused'" in str(refused.value)
    finally:
        config.close()
