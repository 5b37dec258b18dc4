"""Functional monitoring, the whole chain through the cluster's API: real-runtime wells fed
sensor rows, a real Prometheus discovering their pods (kubernetes_sd_configs, the chart's
relabelling) and evaluating the chart's alert rules, the operator reading it (spec.monitoring)
into status.monitoring and ModelsHealthy, and a canary analysis (spec.rollout.analysis) that
stops a version whose predictions on the canary's live data are not the ones it was validated
on, and rolls the fleet back.

The wells' rows come from the history version 1 was trained on (`sensor_feed.WellRows`, seed 1);
version 2 was trained on another simulated history of each well (seed 2: other operating
points), so on the same live rows its predictions leave their reference distribution. Windows,
intervals and `for` durations are short (settings and chart values) to keep it bounded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from modelfleet_dev.api_poller import wait_until
from modelfleet_dev.demo_fleet import version_seed
from modelfleet_dev.demo_monitoring import (
    DRIFT_SD,
    DRIFT_SENSOR,
    PREDICTION_PSI_CHECK,
    PSI_THRESHOLD,
    RUNTIME_PORT,
    WELL_DRIFTING_ALERT,
    Alert,
    LiveFeed,
    alerts,
    firing,
    monitoring_prometheus_config,
    monitoring_spec,
    pod_targets,
    prediction_psi_analysis,
    runtime_monitoring_env,
    write_rule_file,
)
from modelfleet_dev.fleet_observer import FleetSnapshot
from modelfleet_dev.prometheus_server import RunningPrometheus, running_prometheus
from runtime_contract import monitoring as contract

from .conftest import (
    EXTERNAL_KUBECONFIG,
    NAMESPACE,
    REAL_RUNTIME_IMAGE,
    REAL_RUNTIME_WELLS,
    E2ECluster,
    Fleet,
)

V1, V2 = "1.0.0", "2.0.0"
WELLS = list(REAL_RUNTIME_WELLS[:3])
CANARY, STEADY, DRIFTING = WELLS
WINDOW_ROWS, MIN_ROWS = 300, 100

pytestmark = pytest.mark.skipif(
    EXTERNAL_KUBECONFIG is not None and REAL_RUNTIME_IMAGE is None,
    reason="MODELFLEET_E2E_RUNTIME_IMAGE names no image that runs the real model-runtime",
)


def _manifest(fleet: Fleet, prometheus_url: str) -> dict[str, Any]:
    manifest: dict[str, Any] = dict(fleet.manifest(WELLS, V1, progress_deadline_seconds=180))
    spec = manifest["spec"]
    spec["wells"][WELLS.index(CANARY)]["labels"]["ring"] = "canary"
    spec["runtime"]["env"] = runtime_monitoring_env(window_rows=WINDOW_ROWS, min_rows=MIN_ROWS)
    if REAL_RUNTIME_IMAGE is not None:
        spec["runtime"]["image"] = REAL_RUNTIME_IMAGE
    spec["monitoring"] = monitoring_spec(prometheus_url, interval_seconds=1)
    spec["rollout"]["canary"] = {"selector": {"matchLabels": {"ring": "canary"}}}
    spec["rollout"]["analysis"] = prediction_psi_analysis(
        threshold=PSI_THRESHOLD,
        interval_seconds=1,
        measurements=3,
        min_rows=MIN_ROWS,
    )
    return manifest


def _models_healthy(reason: str) -> Any:
    return lambda s: s.condition("ModelsHealthy").get("reason") == reason


def _on(s: FleetSnapshot, version: str) -> bool:
    return s.pods_by_version.get(version, 0) == len(WELLS) and s.ready_pods == len(WELLS)


def test_a_drifting_sensor_is_seen_and_a_canary_with_degraded_predictions_rolls_back(
    e2e_cluster: E2ECluster, fleet: Fleet, tmp_path: Path
) -> None:
    fleet.shelf.ensure(WELLS, [V1, V2])
    rules = write_rule_file(tmp_path / "rules.yaml", {"driftFor": "2s"})
    config = monitoring_prometheus_config(
        e2e_cluster.kubeconfig, rules, namespaces=[NAMESPACE], interval_seconds=1
    )
    with running_prometheus(config, tmp_path / "prometheus") as prometheus:
        fleet.kubectl.apply(_manifest(fleet, prometheus.url))
        fleet.wait_available(V1, len(WELLS), timeout=120)
        targets = pod_targets(fleet.observer.pods(), WELLS, RUNTIME_PORT)
        assert sorted(targets) == sorted(WELLS), targets
        with LiveFeed(targets, seed=version_seed(V1)) as feed:
            # Rows as trained: every well reports, none drifts.
            # (Wells are scraped one by one: the first AsExpected may count only some of them.)
            healthy = fleet.wait(
                "ModelsHealthy AsExpected with every well reporting",
                lambda s: (
                    _models_healthy("AsExpected")(s)
                    and (s.get("monitoring") or {}).get("wellsReporting") == len(WELLS)
                ),
                60,
            )
            assert healthy.get("monitoring")["wellsOverThreshold"] == 0

            feed.drift(DRIFTING, DRIFT_SENSOR, DRIFT_SD)
            psi = f'{contract.FEATURE_PSI_WORST}{{namespace="{NAMESPACE}",fleet="{fleet.name}"}}'
            climbed = prometheus.wait_for(
                psi,
                lambda v: any(
                    s["labels"]["well"] == DRIFTING and s["value"] > PSI_THRESHOLD for s in v
                ),
                timeout=60,
            )
            by_well = {s["labels"]["well"]: s for s in climbed}
            assert by_well[DRIFTING]["labels"]["feature"] == DRIFT_SENSOR
            assert all(by_well[w]["value"] < PSI_THRESHOLD for w in (CANARY, STEADY)), by_well
            fired = _drift_alert_fires(prometheus, fleet.name)
            assert fired[0]["labels"]["namespace"] == NAMESPACE

            drifting = fleet.wait("ModelsHealthy Drifting", _models_healthy("Drifting"), 60)
            shown = drifting.get("monitoring")
            assert (shown["wellsReporting"], shown["wellsOverThreshold"]) == (len(WELLS), 1)
            assert shown["worstWells"][0]["well"] == DRIFTING
            assert shown["worstWells"][0]["feature"] == DRIFT_SENSOR
            condition = drifting.condition("ModelsHealthy")
            assert condition["status"] == "False"
            assert f"well {DRIFTING}" in condition["message"], condition
            wide = fleet.kubectl.text("get", "mdep", fleet.name, "-o", "wide")
            header, row = wide.splitlines()[:2]
            assert row.split()[header.split().index("DRIFTING")] == "1", wide

            # Version 2 reaches the canary first; its predictions there are not its reference's.
            # Its digests are pinned, so the analysis counts only series scraped from the
            # canary serving exactly that bundle (the runtime's and the operator's spelling of
            # a digest must agree, or the analysis would hold instead of failing).
            pinned = {w: d for (_, w), d in fleet.shelf.ensure(WELLS, [V2]).items()}
            patch = {"spec": {"model": {"version": V2, "digests": pinned}}}
            fleet.kubectl.run(
                "patch", "mdep", fleet.name, "--type", "merge", "-p", json.dumps(patch)
            )
            final = fleet.wait(
                "rolled back to 1.0.0 by the analysis",
                lambda s: bool(s.get("rolledBackFrom")) and _on(s, V1),
                timeout=90,
            )
            counts = feed.counts()
    assert all(counts.rows_sent[w] >= MIN_ROWS for w in WELLS), counts
    progressing = final.condition("Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "AnalysisFailed")
    message = progressing["message"]
    assert PREDICTION_PSI_CHECK in message and f'well="{CANARY}"' in message, message
    measured = re.search(rf"= ([0-9.]+), needs < {re.escape(f'{PSI_THRESHOLD:g}')}", message)
    assert measured is not None and float(measured.group(1)) > PSI_THRESHOLD, message
    assert final.condition("Degraded")["reason"] == "AnalysisFailed"
    analysis = final.get("analysis")
    assert analysis["phase"] == "Failed"
    offending = analysis["results"][0]
    assert offending["labels"]["well"] == CANARY and not offending["passed"], analysis


def _drift_alert_fires(prometheus: RunningPrometheus, fleet_name: str) -> list[Alert]:
    """The chart's well-drift alert, firing for the drifting well (GET /api/v1/alerts)."""
    return wait_until(
        f"{WELL_DRIFTING_ALERT} firing for {DRIFTING}",
        lambda: firing(alerts(prometheus), WELL_DRIFTING_ALERT, fleet=fleet_name, well=DRIFTING),
        timeout=30,
        interval=0.5,
    )
