"""The real operator on kubesim with spec.monitoring pointing at a real Prometheus (fed by a
loopback exporter of the contract's gauges): status.monitoring and ModelsHealthy follow what
Prometheus says, one query per interval for the whole fleet and no status write while the
answer stays the same; a canary analysis holds the roll-out on missing data, lets it proceed
when it passes and rolls it back with AnalysisFailed when a canary well's value fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from kubesim.harness.testing import KubeSimThread
from modelfleet_dev.operator_thread import OperatorThread
from modelfleet_dev.ports import LOOPBACK, free_loopback_port
from runtime_contract import monitoring as m

from .cluster_harness import MD_PATH, Api, model_deployment
from .conftest import WELLS
from .monitoring_fixtures import Prometheus, running_prometheus
from .test_monitoring_on_prometheus import serve_well
from .test_operator_on_kubesim import is_available, writes_so_far

Bundles = tuple[Path, dict[tuple[str, str], str]]
CANARY = WELLS[:2]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with running_prometheus(tmp_path_factory.mktemp("prometheus")) as prom:
        yield prom


def monitored(
    name: str,
    version: str,
    bundles: Path,
    address: str,
    analysis: dict[str, Any] | None = None,
    **rollout: Any,
) -> dict[str, Any]:
    md: dict[str, Any] = dict(model_deployment(name, WELLS, version, bundles, **rollout))
    md["spec"]["monitoring"] = {"prometheus": {"address": address}, "intervalSeconds": 1}
    if analysis is not None:
        md["spec"].setdefault("rollout", {})["analysis"] = analysis
    return md


def queries_counted(deployment: str, purpose: str, result: str) -> float:
    """The operator's own count of the Prometheus queries it sent for a fleet."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "modelfleet_operator_prometheus_queries"
        for sample in metric.samples
        if sample.name.endswith("_total")
        and sample.labels["deployment"] == deployment
        and (sample.labels["purpose"], sample.labels["result"]) == (purpose, result)
    )


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions") or []}


def condition_reason(ctype: str, reason: str) -> Any:
    return lambda s: conditions(s).get(ctype, {}).get("reason") == reason


def serve_fleet(prom: Prometheus, fleet: str, **per_well: dict[str, Any]) -> None:
    prom.exporter.clear(fleet=fleet)
    for well in WELLS:
        serve_well(prom, well, fleet=fleet, **per_well.get(well, {}))


def test_status_follows_prometheus_with_one_query_per_interval_and_no_idle_writes(
    cluster: KubeSimThread, api: Api, bundles: Bundles, prometheus: Prometheus
) -> None:
    root, _ = bundles
    serve_fleet(prometheus, "watched", w3={"feature_psi": 0.62, "model": "m2", "feature": "flow"})
    prometheus.wait_scraped(f'{m.FEATURE_PSI_WORST}{{fleet="watched",well="w3"}} > 0.6')
    with OperatorThread.standalone(cluster.kubeconfig):
        r = api.create(MD_PATH, monitored("watched", "1.0.0", root, prometheus.url))
        assert r.status_code == 201, r.text
        api.wait_status("watched", is_available("1.0.0", len(WELLS)))
        drifting = api.wait_status("watched", condition_reason("ModelsHealthy", "Drifting"))
        shown = drifting["monitoring"]
        assert (shown["wellsReporting"], shown["wellsOverThreshold"]) == (8, 1)
        assert shown["worstWells"][0] == {
            "well": "w3",
            "model": "m2",
            "feature": "flow",
            "psi": 0.62,
        }
        healthy = conditions(drifting)["ModelsHealthy"]
        assert healthy["status"] == "False"
        assert "well w3 model m2 feature flow PSI 0.62" in healthy["message"]

        # kubectl get -o wide shows DRIFTING (a priority-1 column of the CRD's table).
        table = api.http.get(
            f"{MD_PATH}/watched",
            headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        ).json()
        columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
        drifting_at = columns.index(("Drifting", 1))
        assert table["rows"][0]["cells"][drifting_at] == 1

        # The same answer, interval after interval: no write. One query per interval.
        writes, queries = writes_so_far(), prometheus.queries_answered()
        counted = queries_counted("watched", "monitoring", "ok")
        started = time.monotonic()
        time.sleep(5)
        elapsed = time.monotonic() - started
        assert writes_so_far() == writes
        sent = prometheus.queries_answered() - queries
        assert 0.5 * elapsed <= sent <= elapsed + 2, (sent, elapsed)
        assert abs(queries_counted("watched", "monitoring", "ok") - counted - sent) <= 1

        serve_fleet(prometheus, "watched")  # the drift is gone
        fine = api.wait_status("watched", condition_reason("ModelsHealthy", "AsExpected"))
        assert fine["monitoring"]["wellsOverThreshold"] == 0
        assert conditions(fine)["ModelsHealthy"]["status"] == "True"
    reasons = {e["reason"] for e in api.get("/api/v1/namespaces/default/events")["items"]}
    assert {"Drifting", "AsExpected"} <= reasons


def test_an_unreachable_prometheus_is_reported_and_changes_no_pod(
    cluster: KubeSimThread, api: Api, bundles: Bundles
) -> None:
    root, _ = bundles
    dead = f"http://{LOOPBACK}:{free_loopback_port()}"
    with OperatorThread.standalone(cluster.kubeconfig):
        api.create(MD_PATH, monitored("blind", "1.0.0", root, dead))
        status = api.wait_status(
            "blind",
            lambda s: (
                is_available("1.0.0", len(WELLS))(s)
                and condition_reason("ModelsHealthy", "PrometheusUnreachable")(s)
            ),
        )
        assert queries_counted("blind", "monitoring", "unreachable") >= 1
        assert queries_counted("blind", "monitoring", "ok") == 0
    healthy = conditions(status)["ModelsHealthy"]
    assert healthy["status"] == "Unknown" and dead in healthy["message"]
    assert status["phase"] == "Available"


ANALYSIS = {
    "queries": [
        {
            "name": "prediction-psi",
            "query": f'max by (well, model) ({m.PREDICTION_PSI_WORST}{{namespace="{{{{namespace}}}}",fleet="{{{{fleet}}}}",well=~"{{{{wells}}}}"}})',
            "operator": "LessThan",
            "threshold": 0.25,
        }
    ],
    "intervalSeconds": 1,
    "measurements": 2,
    "minRows": 100,
}


def start_rollout(api: Api, root: Path, prometheus: Prometheus) -> dict[str, Any]:
    md = monitored(
        "esp",
        "1.0.0",
        root,
        prometheus.url,
        analysis=ANALYSIS,
        canary={"wells": 2},
        maxUnavailable=2,
        progressDeadlineSeconds=600,
    )
    assert api.create(MD_PATH, md).status_code == 201
    good = api.wait_status("esp", is_available("1.0.0", len(WELLS)))
    api.merge_patch(f"{MD_PATH}/esp", {"spec": {"model": {"version": "2.0.0"}}})
    return good


def versions(api: Api) -> dict[str, str]:
    return {
        p["metadata"]["labels"]["modelfleet.dev/well"]: p["metadata"]["annotations"][
            "modelfleet.dev/version"
        ]
        for p in api.pods()
    }


def test_a_failing_canary_analysis_rolls_back_naming_the_well_and_value(
    cluster: KubeSimThread, api: Api, bundles: Bundles, prometheus: Prometheus
) -> None:
    root, _ = bundles
    serve_fleet(prometheus, "esp", w1={"prediction_psi": 0.71, "model": "m5"})
    prometheus.wait_scraped(f'{m.PREDICTION_PSI_WORST}{{fleet="esp",well="w1"}} > 0.7')
    with OperatorThread.standalone(cluster.kubeconfig):
        good = start_rollout(api, root, prometheus)
        final = api.wait_status(
            "esp",
            lambda s: (
                s.get("rolledBackFrom") is not None
                and s.get("availableWells") == 8
                and set(versions(api).values()) == {"1.0.0"}
            ),
            timeout=60,
        )
    assert final["currentRevision"] == good["currentRevision"]
    progressing = conditions(final)["Progressing"]
    assert (progressing["status"], progressing["reason"]) == ("False", "AnalysisFailed")
    assert 'well="w1"' in progressing["message"] and 'model="m5"' in progressing["message"]
    assert "= 0.71, needs < 0.25" in progressing["message"]
    assert conditions(final)["Degraded"]["reason"] == "AnalysisFailed"
    assert final["analysis"]["phase"] == "Failed"
    offending = final["analysis"]["results"][0]
    assert (offending["passed"], offending["labels"]["well"], offending["value"]) == (
        False,
        "w1",
        "0.71",
    )
    events = api.get("/api/v1/namespaces/default/events")["items"]
    assert any(e["reason"] == "AnalysisFailed" and "0.71" in e["message"] for e in events)


def test_too_little_canary_traffic_holds_until_it_comes_then_the_analysis_passes(
    cluster: KubeSimThread, api: Api, bundles: Bundles, prometheus: Prometheus
) -> None:
    root, _ = bundles
    serve_fleet(prometheus, "esp", w0={"rows": 7}, w1={"rows": 7})
    prometheus.wait_scraped(f'{m.WINDOW_ROWS_MIN}{{fleet="esp",well="w0"}} == 7')
    with OperatorThread.standalone(cluster.kubeconfig):
        start_rollout(api, root, prometheus)
        held = api.wait_status(
            "esp", condition_reason("Progressing", "AnalysisInconclusive"), timeout=40
        )
        assert (
            "canary well w0 has 7 rows in its window (minRows 100)"
            in (conditions(held)["Progressing"]["message"])
        )
        time.sleep(3)  # held: only the canary moved
        on = versions(api)
        assert {w for w, v in on.items() if v == "2.0.0"} == set(CANARY)
        assert conditions(api.deployment("esp")["status"])["AnalysisPassed"]["status"] == "Unknown"

        serve_fleet(prometheus, "esp")  # traffic arrives, predictions look as trained
        done = api.wait_status("esp", is_available("2.0.0", len(WELLS)), timeout=60)
    assert done["analysis"]["phase"] == "Successful"
    assert done["analysis"]["successfulMeasurements"] == 2
    assert conditions(done)["AnalysisPassed"]["status"] == "True"
    reasons = {e["reason"] for e in api.get("/api/v1/namespaces/default/events")["items"]}
    assert {"AnalysisInconclusive", "AnalysisPassed"} <= reasons


def test_a_restarted_operator_keeps_the_measurements_the_analysis_already_passed(
    cluster: KubeSimThread, api: Api, bundles: Bundles, prometheus: Prometheus
) -> None:
    root, _ = bundles
    serve_fleet(prometheus, "esp")
    prometheus.wait_scraped(f'count({m.WINDOW_ROWS_MIN}{{fleet="esp"}}) == 8')
    slow = {**ANALYSIS, "intervalSeconds": 2, "measurements": 3}
    operator = OperatorThread.standalone(cluster.kubeconfig)
    operator.start()
    try:
        md = monitored("esp", "1.0.0", root, prometheus.url, analysis=slow, canary={"wells": 2})
        assert api.create(MD_PATH, md).status_code == 201
        api.wait_status("esp", is_available("1.0.0", len(WELLS)))
        api.merge_patch(f"{MD_PATH}/esp", {"spec": {"model": {"version": "2.0.0"}}})
        first = api.wait_status(
            "esp", lambda s: (s.get("analysis") or {}).get("successfulMeasurements") == 1
        )
    finally:
        operator.stop()
    seen: set[tuple[int, str]] = set()

    def watched(s: dict[str, Any]) -> bool:
        a = s.get("analysis") or {}
        seen.add((a.get("successfulMeasurements"), a.get("measuredAt")))
        return bool(is_available("2.0.0", len(WELLS))(s))

    with OperatorThread.standalone(cluster.kubeconfig):
        done = api.wait_status("esp", watched, timeout=60)
    assert done["analysis"]["successfulMeasurements"] == 3
    # Counting on from status: after the restart no measurement was the first one again.
    restarted_at_one = {t for n, t in seen if n == 1 and t != first["analysis"]["measuredAt"]}
    assert restarted_at_one == set()
    assert {n for n, _ in seen} >= {2, 3}
