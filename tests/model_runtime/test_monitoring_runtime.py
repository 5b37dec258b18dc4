"""Monitoring on a real runtime: the three views (gauges, /v2/monitoring, /v2 summary) of live
traffic, drift injected by the sensor feed, bad rows counted, and a bundle with no reference."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from runtime_harness import RunningServer, copy_bundle

from bundle_builder.building import BuiltBundle
from bundle_builder.sensors import SENSOR_NAMES
from model_runtime.exposition import render
from model_runtime.manifest import MANIFEST_FILE
from model_runtime.monitoring.collector import MonitoringCollector
from model_runtime.monitoring.config import MonitoringConfig
from model_runtime.monitoring.monitor import BundleMonitor
from modelfleet_dev.sensor_feed import (
    Drift,
    FeedTargetError,
    WellRows,
    check_target,
    infer_body,
    run_feed,
)
from runtime_contract import monitoring as names
from runtime_contract.monitoring import MONITORING_PATH, DriftVerdict

DRIFTED = "motor_temperature_c"


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        yield http


def test_a_fresh_well_reports_insufficient_data_never_a_verdict(client: httpx.Client) -> None:
    client.post("/v2/well/infer", json=infer_body(WellRows("fr-0001").take(3)))
    report = client.get(MONITORING_PATH).json()
    assert report["enabled"] is True
    assert report["min_rows"] == 200
    for model in report["models"].values():
        assert model["verdict"] == DriftVerdict.INSUFFICIENT_DATA
        assert model["rows"] == 3
        assert model["prediction_psi"] is None
        assert all(f["psi"] is None for f in model["features"].values())
    summary = client.get("/v2").json()["monitoring"]
    assert summary["models_insufficient_data"] == len(report["models"])
    assert "insufficient data" in summary["summary"]
    samples = _samples(client.get("/metrics").text)
    assert names.FEATURE_PSI_WORST not in samples  # no verdict, no value: absent, not 0
    by_verdict = {labels["verdict"]: value for labels, value in samples[names.MODELS]}
    assert by_verdict[DriftVerdict.INSUFFICIENT_DATA] == len(report["models"])
    assert samples[names.WINDOW_ROWS_MIN] == [({}, 3.0)]


def test_drift_fed_on_one_sensor_crosses_the_threshold_on_that_feature_only(
    server: RunningServer, client: httpx.Client
) -> None:
    result = run_feed(
        {"fr-0001": server.url},
        rate=2_000,
        duration=30,
        max_rows=400,
        batch=4,
        drifts=[Drift("fr-0001", DRIFTED, 4.0)],
    )
    assert result.rows_sent == {"fr-0001": 400} and result.errors == {"fr-0001": 0}
    report = client.get(MONITORING_PATH).json()
    for name, model in report["models"].items():
        assert model["rows"] == 400
        drift = model["thresholds"]["drift"]
        assert model["verdict"] == DriftVerdict.DRIFTING, name
        assert model["features"][DRIFTED]["psi"] > drift
        assert model["features"][DRIFTED]["verdict"] == DriftVerdict.DRIFTING
        for feature in set(SENSOR_NAMES) - {DRIFTED}:
            assert model["features"][feature]["verdict"] == DriftVerdict.HEALTHY, feature
            assert model["features"][feature]["psi"] < drift
    samples = _samples(client.get("/metrics").text)
    [(labels, value)] = samples[names.FEATURE_PSI_WORST]
    assert labels["feature"] == DRIFTED and value > 0.25
    summary = client.get("/v2").json()["monitoring"]
    assert summary["models_drifting"] == len(report["models"])


def test_undrifted_feed_keeps_every_feature_healthy(
    server: RunningServer, client: httpx.Client
) -> None:
    run_feed({"fr-0001": server.url}, rate=2_000, duration=30, max_rows=400, batch=8)
    report = client.get(MONITORING_PATH).json()
    for model in report["models"].values():
        assert all(f["verdict"] == DriftVerdict.HEALTHY for f in model["features"].values()), model
        assert all(f["out_of_range_rate"] < 0.05 for f in model["features"].values())


def test_rows_refused_for_nan_or_text_are_counted_and_the_window_survives(
    client: httpx.Client,
) -> None:
    rows = WellRows("fr-0001").take(4).astype(float).tolist()
    rows[0][0] = "nan"  # placeholder replaced below: JSON has no NaN literal but json.dumps does
    body = json.dumps(
        {"inputs": [{"name": "sensors", "shape": [4, 7], "datatype": "FP32", "data": rows}]}
    ).replace('"nan"', "NaN")
    assert client.post("/v2/well/infer", content=body).status_code == 400
    text = infer_body(WellRows("fr-0001").take(2))
    text["inputs"][0]["data"] = ["x"] * 14  # type: ignore[index]
    assert client.post("/v2/models/gas-lock-01d/infer", json=text).status_code == 400
    model = client.get(MONITORING_PATH).json()["models"]["gas-lock-01d"]
    assert model["rows"] == 4  # the NaN request's rows: the well sends them, they are counted
    assert model["features"]["intake_pressure_bar"]["missing_rate"] == pytest.approx(0.25)
    assert model["rows_rejected"] == 2  # unreadable rows: counted apart
    assert client.post("/v2/well/infer", json=infer_body(WellRows("fr-0001").take(1))).is_success


@pytest.fixture
def unreferenced_bundle(small_bundle: BuiltBundle, tmp_path: Path) -> Path:
    bundle = copy_bundle(small_bundle.path, tmp_path / "no-reference")
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    del manifest["reference"]
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest))
    return bundle


def test_a_bundle_without_reference_statistics_serves_unmonitored_and_says_so(
    unreferenced_bundle: Path,
) -> None:
    with RunningServer(str(unreferenced_bundle)) as running:
        running.wait_serving()
        with httpx.Client(base_url=running.url) as http:
            assert http.post("/v2/well/infer", json=infer_body(WellRows("fr-0001").take(2)))
            report = http.get(MONITORING_PATH).json()
            summary = http.get("/v2").json()["monitoring"]
            samples = _samples(http.get("/metrics").text)
    assert {m["verdict"] for m in report["models"].values()} == {DriftVerdict.UNMONITORED}
    assert summary["models_unmonitored"] == len(report["models"])
    assert summary["summary"].endswith("unmonitored: the bundle carries no reference statistics")
    by_verdict = {labels["verdict"]: value for labels, value in samples[names.MODELS]}
    assert by_verdict[DriftVerdict.UNMONITORED] == len(report["models"])
    assert names.WINDOW_ROWS_MIN not in samples


def _series(collector: MonitoringCollector) -> int:
    return sum(len(f.samples) for f in text_string_to_metric_families(render([collector]).decode()))


def test_pod_level_series_stay_bounded_and_detail_is_opt_in(small_bundle: BuiltBundle) -> None:
    monitor = BundleMonitor(small_bundle.manifest, MonitoringConfig(window_rows=300, min_rows=50))
    rows = WellRows("fr-0001").take(300)
    monitor.observe_well(rows, {m.name: np.zeros(300) for m in small_bundle.manifest.models})
    pod = MonitoringCollector(lambda: monitor, detail=False)
    detailed = MonitoringCollector(lambda: monitor, detail=True)
    # 4 worst-of gauges, fewest rows, stalest age, 4 verdicts, rows rejected
    assert _series(pod) == 11
    models = len(small_bundle.manifest.models)
    features = len(SENSOR_NAMES)
    # + per model: prediction PSI, then PSI, missing and out-of-range per feature, rejected
    assert _series(detailed) == 11 - 1 + models * (1 + 3 * features + 1)
    [(_, age)] = _samples(render([pod]).decode())[names.LAST_ROW_AGE_SECONDS]
    assert not math.isinf(age)


def test_the_feed_sends_only_to_loopback_or_pod_addresses() -> None:
    assert check_target("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert check_target("http://10.244.1.7:8080") == "http://10.244.1.7:8080"
    for refused in ("http://8.8.8.8:80", "http://example.com:80", "https://127.0.0.1:1"):
        with pytest.raises(FeedTargetError):
            check_target(refused)
