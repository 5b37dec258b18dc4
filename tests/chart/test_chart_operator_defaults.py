"""The chart's operator defaults are the operator's own: values.yaml's `operator:` section and
OperatorSettings agree, so a release with default values runs the operator as its docs say."""

from __future__ import annotations

from urllib.parse import urlsplit

import yaml

from modelfleet.app.settings import OperatorSettings

from .chart_rendering import CHART_DIR


def test_values_operator_section_matches_the_operator_settings_defaults() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["operator"]
    defaults = OperatorSettings.model_construct()
    assert values["qps"] == defaults.qps
    assert values["burst"] == defaults.burst
    assert values["concurrency"] == defaults.concurrency
    assert values["metricsPort"] == defaults.metrics_port
    assert values["healthPort"] == urlsplit(defaults.liveness or "").port
    assert values["allNamespaces"] is defaults.all_namespaces
    assert values["verbose"] is defaults.verbose
