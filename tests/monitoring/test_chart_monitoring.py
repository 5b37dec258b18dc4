"""The chart's monitoring objects: the PodMonitor labels series as the contract says, the alert
rules pass promtool's unit tests, and every rule and dashboard expression parses with
Prometheus's own parser and reads only metrics the operator, the runtime or Prometheus export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from modelfleet.logic.wellpod import LABEL_DEPLOYMENT
from modelfleet_dev.prometheus_server import (
    RUNTIME_PORT_NAME,
    WELL_POD_TARGET_LABELS,
    PrometheusInstall,
)
from tests.chart.chart_rendering import CHART_DIR, Rendered, render

from .conftest import MONITORING_ON, RELEASE

HERE = Path(__file__).parent
DASHBOARD = CHART_DIR / "dashboards" / "modelfleet.json"


def _rule_groups(release: Rendered) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = release.one("PrometheusRule")["spec"]["groups"]
    return groups


def _promtool(install: PrometheusInstall, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [str(install.promtool), *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def _dashboard_targets() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of the dashboard."""
    return [
        (panel["title"], target["expr"])
        for panel in _dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*\w+\)$")


def _variable_selectors() -> list[tuple[str, str]]:
    """The selectors Grafana's `label_values(selector, label)` variable queries read."""
    found = []
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = _LABEL_VALUES.match(variable["query"]["query"])
        assert match, f"variable {variable['name']}: not a label_values() query"
        found.append((f"variable {variable['name']}", match["selector"]))
    return found


def _as_promql(grafana_expr: str) -> str:
    """Grafana's variables replaced by what they expand to: a range, or an all-values regex."""
    expr = grafana_expr.replace("$__rate_interval", "5m")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def _selected_metrics(install: PrometheusInstall, exprs: list[str]) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(install.promql_selectors)],
        input=json.dumps(exprs),
        capture_output=True,
        text=True,
        check=True,
    )
    parsed: list[dict[str, Any]] = json.loads(result.stdout)
    return parsed


# --- PodMonitor ------------------------------------------------------------------------------


def test_pod_monitor_labels_series_as_the_tests_prometheus_does(
    monitoring_release: Rendered,
) -> None:
    monitor = monitoring_release.one("PodMonitor")
    assert monitor["spec"]["selector"] == {
        "matchExpressions": [{"key": LABEL_DEPLOYMENT, "operator": "Exists"}]
    }
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == (RUNTIME_PORT_NAME, "/metrics")
    targets = {
        r["targetLabel"]: r["sourceLabels"]
        for r in endpoint["relabelings"]
        if r["action"] == "replace"
    }
    assert targets == {label: [source] for label, source in WELL_POD_TARGET_LABELS.items()}
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [RELEASE]}


def test_pod_monitor_follows_the_namespaces_the_operator_watches(chart: helm.Chart) -> None:
    some = {**MONITORING_ON, "operator": {"watchNamespaces": ["fleet-fr", "fleet-fr-pilot"]}}
    every = {**MONITORING_ON, "operator": {"allNamespaces": True}}
    assert render(chart, some, release="r", namespace="ops").one("PodMonitor")["spec"][
        "namespaceSelector"
    ] == {"matchNames": ["fleet-fr", "fleet-fr-pilot"]}
    assert render(chart, every, release="r", namespace="ops").one("PodMonitor")["spec"][
        "namespaceSelector"
    ] == {"any": True}


def test_operator_series_keep_the_namespace_of_the_fleet_they_describe(chart: helm.Chart) -> None:
    # The rules group operator series by `namespace`: the fleet's, not the operator pod's.
    values = {"metrics": {"serviceMonitor": {"enabled": True}}, "operator": {"allNamespaces": True}}
    monitor = render(chart, values, release="r", namespace="ops").one("ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True


def test_monitoring_objects_are_off_by_default(chart: helm.Chart) -> None:
    bare = render(chart, {}, release="r", namespace="ns")
    assert bare.of_kind("PodMonitor") == []
    assert bare.of_kind("PrometheusRule") == []
    assert [
        c for c in bare.of_kind("ConfigMap") if c["metadata"]["name"].endswith("-dashboard")
    ] == []


# --- Alert rules -----------------------------------------------------------------------------


def test_alert_rules_pass_promtools_unit_tests(
    monitoring_release: Rendered, prometheus_install: PrometheusInstall, tmp_path: Path
) -> None:
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump({"groups": _rule_groups(monitoring_release)})
    )
    shutil.copy(HERE / "alerts_test.yaml", tmp_path)
    out = _promtool(prometheus_install, "test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert "SUCCESS" in out


def test_promtools_unit_tests_catch_a_moved_threshold(
    chart: helm.Chart, prometheus_install: PrometheusInstall, tmp_path: Path
) -> None:
    # The unit tests pin the defaults: at a 0.7 missing-rate threshold the 60 % case is quiet.
    values = {"monitoring": {"prometheusRule": {"enabled": True, "missingRate": 0.7}}}
    groups = _rule_groups(render(chart, values, release=RELEASE, namespace=RELEASE))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(HERE / "alerts_test.yaml", tmp_path)
    result = subprocess.run(
        [str(prometheus_install.promtool), "test", "rules", "alerts_test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "alertname: ModelFleetWellDataMissing, time: 12m" in result.stderr


def test_every_alert_has_a_unit_test(monitoring_release: Rendered) -> None:
    alerts = {r["alert"] for g in _rule_groups(monitoring_release) for r in g["rules"]}
    tests = yaml.safe_load((HERE / "alerts_test.yaml").read_text())["tests"]
    firing = {
        case["alertname"] for t in tests for case in t["alert_rule_test"] if case["exp_alerts"]
    }
    assert alerts == firing


def test_alert_labels_add_routing_labels_but_keep_the_severity(chart: helm.Chart) -> None:
    values = {
        "monitoring": {
            "prometheusRule": {
                "enabled": True,
                "alertLabels": {"team": "field-ops", "severity": "page-everyone"},
                "missingRate": 0.05,
            }
        }
    }
    rules = {
        r["alert"]: r
        for g in _rule_groups(render(chart, values, release="r", namespace="ns"))
        for r in g["rules"]
    }
    assert rules["ModelFleetDegraded"]["labels"] == {"severity": "critical", "team": "field-ops"}
    assert rules["ModelFleetWellDataMissing"]["expr"].endswith("> 0.05")


# --- Every expression parses and reads exported metrics ---------------------------------------


def test_rules_and_dashboard_expressions_pass_promtools_check(
    monitoring_release: Rendered, prometheus_install: PrometheusInstall, tmp_path: Path
) -> None:
    (tmp_path / "chart-rules.yaml").write_text(
        yaml.safe_dump({"groups": _rule_groups(monitoring_release)})
    )
    # The dashboard's queries, as recording rules: promtool checks their PromQL the same way.
    queries = _dashboard_targets() + _variable_selectors()
    recorded = [
        {"record": f"dashboard:query_{i}", "expr": _as_promql(expr)}
        for i, (_, expr) in enumerate(queries)
    ]
    (tmp_path / "dashboard-rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]})
    )
    out = _promtool(
        prometheus_install,
        "check",
        "rules",
        "chart-rules.yaml",
        "dashboard-rules.yaml",
        cwd=tmp_path,
    )
    assert "SUCCESS: 10 rules found" in out
    assert f"SUCCESS: {len(recorded)} rules found" in out


def test_every_expression_reads_only_metrics_the_components_export(
    monitoring_release: Rendered,
    prometheus_install: PrometheusInstall,
    exported_metric_names: frozenset[str],
) -> None:
    named = [
        (f"alert {r['alert']}", r["expr"])
        for g in _rule_groups(monitoring_release)
        for r in g["rules"]
    ]
    named += [(f"panel {title!r}", expr) for title, expr in _dashboard_targets()]
    named += _variable_selectors()
    parsed = _selected_metrics(prometheus_install, [_as_promql(expr) for _, expr in named])
    problems = []
    for (where, _), result in zip(named, parsed, strict=True):
        if result["error"]:
            problems.append(f"{where}: {result['error']}")
            continue
        if not result["metrics"]:
            problems.append(f"{where}: reads no metric")
        unknown = sorted(set(result["metrics"]) - exported_metric_names)
        if unknown:
            problems.append(f"{where}: {unknown} exported by no component")
    assert problems == []


def test_metric_check_catches_a_misspelt_metric(
    prometheus_install: PrometheusInstall, exported_metric_names: frozenset[str]
) -> None:
    # The check above is only as good as the parser's answer: a typo must come back as a name.
    [typo, broken] = _selected_metrics(
        prometheus_install,
        ["max by (well) (modelfleet_runtime_feature_psi_wrost)", "sum by (well (up)"],
    )
    assert typo == {
        "expr": "max by (well) (modelfleet_runtime_feature_psi_wrost)",
        "error": "",
        "metrics": ["modelfleet_runtime_feature_psi_wrost"],
    }
    assert "modelfleet_runtime_feature_psi_wrost" not in exported_metric_names
    assert broken["error"] != ""


# --- Dashboard ---------------------------------------------------------------------------------


def test_dashboard_configmap_carries_the_checked_json_for_grafanas_sidecar(
    monitoring_release: Rendered,
) -> None:
    [configmap] = [
        c
        for c in monitoring_release.of_kind("ConfigMap")
        if c["metadata"]["name"].endswith("-dashboard")
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["modelfleet.json"]) == _dashboard()


def test_dashboard_panels_query_the_selected_data_source_and_fleets() -> None:
    dashboard = _dashboard()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in (
        "Fleet phase",
        "Roll-out progress",
        "Wells by state",
        "Top drifting wells: feature PSI",
        "Missing values: worst rate per well",
        "Inference latency p50 / p99",
    ):
        assert wanted in titles
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            # Every query is scoped to the dashboard's namespace/fleet selection, except the
            # operator-wide reconcile duration (it has no fleet label).
            if "reconcile_duration" not in target["expr"]:
                assert '=~"$namespace"' in target["expr"], (panel["title"], target["expr"])
                assert '=~"$fleet"' in target["expr"], (panel["title"], target["expr"])


def test_chart_with_monitoring_on_passes_helm_lint_strictly() -> None:
    result = helm.lint(CHART_DIR, MONITORING_ON, strict=True)
    assert result["errors"] == [], result
    assert [m for m in result["messages"] if m["severity"] > 1] == [], result["messages"]


def test_schema_refuses_a_threshold_outside_zero_to_one(chart: helm.Chart) -> None:
    values = {"monitoring": {"prometheusRule": {"enabled": True, "missingRate": 20}}}
    with pytest.raises(Exception, match="missingRate"):
        render(chart, values, release="r", namespace="ns")
