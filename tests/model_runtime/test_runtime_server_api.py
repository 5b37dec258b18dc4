"""The OIP V2 endpoints, the well-level endpoint, readiness and metrics of a running server."""

from __future__ import annotations

import httpx
import numpy as np
import onnxruntime as ort
from runtime_harness import RunningServer

from bundle_builder.building import BuiltBundle
from model_runtime.metrics import RuntimeMetrics
from modelfleet_dev.api_poller import wait_until
from modelfleet_dev.ports import free_loopback_port


def sensors(rows: list[list[float]]) -> dict[str, object]:
    return {
        "inputs": [{"name": "sensors", "shape": [len(rows), 7], "datatype": "FP32", "data": rows}]
    }


def test_health_and_server_metadata_name_the_serving_bundle(
    server: RunningServer, small_bundle: BuiltBundle
) -> None:
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
    ready = httpx.get(f"{server.url}/v2/health/ready")
    assert ready.status_code == 200 and ready.json()["bundle"]["digest"] == small_bundle.digest
    meta = httpx.get(f"{server.url}/v2").json()
    assert (
        meta["name"] == "modelfleet-model-runtime"
        and "version" in meta
        and isinstance(meta["extensions"], list)
    )
    assert meta["bundle"] == {
        "digest": small_bundle.digest,
        "uri": str(small_bundle.path),
        "well": "fr-0001",
        "version": "1.0.0",
        "models": 8,
    }
    assert meta["lastLoad"] == {
        "uri": str(small_bundle.path),
        "ok": True,
        "error": None,
        "reason": None,
        "digest": small_bundle.digest,
    }


def test_model_metadata_and_readiness(server: RunningServer) -> None:
    meta = httpx.get(f"{server.url}/v2/models/gas-lock-01d").json()
    assert (
        meta["name"] == "gas-lock-01d"
        and meta["versions"] == ["1.0.0"]
        and meta["platform"] == "onnxruntime_onnx"
    )
    assert meta["inputs"] == [{"name": "sensors", "datatype": "FP32", "shape": [-1, 7]}]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
    assert httpx.get(f"{server.url}/v2/models/gas-lock-01d/ready").status_code == 200
    assert httpx.get(f"{server.url}/v2/models/gas-lock-01d/versions/1.0.0/ready").status_code == 200
    assert httpx.get(f"{server.url}/v2/models/gas-lock-01d/versions/9.9.9/ready").status_code == 404
    assert httpx.get(f"{server.url}/v2/models/no-such-model/ready").status_code == 404


def test_infer_scores_many_rows_like_onnxruntime_in_process(
    server: RunningServer, small_bundle: BuiltBundle, sensor_rows: list[list[float]]
) -> None:
    response = httpx.post(
        f"{server.url}/v2/models/pump-wear-01d/infer", json={"id": "r1", **sensors(sensor_rows)}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (
        body["model_name"] == "pump-wear-01d"
        and body["model_version"] == "1.0.0"
        and body["id"] == "r1"
    )
    outputs = {o["name"]: o for o in body["outputs"]}
    assert (
        outputs["probabilities"]["shape"] == [3, 2]
        and outputs["probabilities"]["datatype"] == "FP32"
    )
    assert outputs["label"]["shape"] == [3] and outputs["label"]["datatype"] == "INT64"
    session = ort.InferenceSession(str(small_bundle.path / "models" / "pump-wear-01d.onnx"))
    expected = session.run(["probabilities"], {"sensors": np.array(sensor_rows, dtype=np.float32)})[
        0
    ]
    np.testing.assert_allclose(
        np.array(outputs["probabilities"]["data"]).reshape(3, 2), expected, rtol=0, atol=1e-7
    )


def test_infer_accepts_flat_data_and_an_output_selection(
    server: RunningServer, sensor_rows: list[list[float]]
) -> None:
    flat = [v for row in sensor_rows for v in row]
    body = {
        "inputs": [{"name": "sensors", "shape": [3, 7], "datatype": "FP32", "data": flat}],
        "outputs": [{"name": "probabilities"}],
    }
    response = httpx.post(f"{server.url}/v2/models/pump-wear-01d/versions/1.0.0/infer", json=body)
    assert response.status_code == 200
    assert [o["name"] for o in response.json()["outputs"]] == ["probabilities"]


def test_well_endpoint_scores_every_model_for_the_same_rows(
    server: RunningServer, small_bundle: BuiltBundle, sensor_rows: list[list[float]]
) -> None:
    response = httpx.post(f"{server.url}/v2/well/infer", json={"id": "w", **sensors(sensor_rows)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (
        body["well"] == "fr-0001"
        and body["bundle_digest"] == small_bundle.digest
        and body["id"] == "w"
    )
    assert [o["name"] for o in body["outputs"]] == [m.name for m in small_bundle.manifest.models]
    single = httpx.post(
        f"{server.url}/v2/models/gas-lock-02d/infer", json=sensors(sensor_rows)
    ).json()
    probabilities = next(o for o in single["outputs"] if o["name"] == "probabilities")["data"]
    well_scores = next(o for o in body["outputs"] if o["name"] == "gas-lock-02d")
    assert well_scores["shape"] == [3] and well_scores["data"] == probabilities[1::2]


def test_well_endpoint_can_score_a_subset_of_models(
    server: RunningServer, sensor_rows: list[list[float]]
) -> None:
    response = httpx.post(
        f"{server.url}/v2/well/infer",
        json={"models": ["gas-lock-01d", "pump-wear-01d"], **sensors(sensor_rows)},
    )
    assert [o["name"] for o in response.json()["outputs"]] == ["gas-lock-01d", "pump-wear-01d"]
    unknown = httpx.post(
        f"{server.url}/v2/well/infer", json={"models": ["nope"], **sensors(sensor_rows)}
    )
    assert unknown.status_code == 404 and "'nope' not found" in unknown.json()["error"]


def test_metrics_expose_requests_latency_load_duration_and_the_bundle_digest(
    server: RunningServer, small_bundle: BuiltBundle, sensor_rows: list[list[float]]
) -> None:
    httpx.post(f"{server.url}/v2/models/gas-lock-01d/infer", json=sensors(sensor_rows))
    httpx.post(f"{server.url}/v2/models/gas-lock-01d/infer", content=b"{")
    httpx.post(f"{server.url}/v2/models/whatever/infer", json=sensors(sensor_rows))
    text = httpx.get(f"{server.url}/metrics").text
    # Without per-model labels (the default), every model's /infer shares one label.
    assert 'modelfleet_runtime_requests_total{code="200",model="_models"} 1.0' in text
    assert 'modelfleet_runtime_requests_total{code="400",model="_models"} 1.0' in text
    assert 'modelfleet_runtime_requests_total{code="404",model="_unknown"} 1.0' in text
    assert (
        'modelfleet_runtime_request_duration_seconds_bucket{code="200",le="0.005",model="_models"}'
        in text
    )
    request_series = [
        line for line in text.splitlines() if line.startswith("modelfleet_runtime_req")
    ]
    assert not [line for line in request_series if "gas-lock-01d" in line]
    assert "modelfleet_runtime_bundle_load_duration_seconds_count 1.0" in text
    assert f'modelfleet_runtime_bundle_info{{digest="{small_bundle.digest}"' in text
    assert "modelfleet_runtime_ready 1.0" in text


def test_request_metrics_are_labelled_per_model_only_when_asked() -> None:
    labelled, shared = RuntimeMetrics(per_model_labels=True), RuntimeMetrics()
    for metrics in (labelled, shared):
        metrics.observe_request("gas-lock-01d", 200, 0.001)
        metrics.observe_request("pump-wear-01d", 200, 0.001)
        metrics.observe_request("_well", 200, 0.002)
    per_model = labelled.render().decode()
    assert 'requests_total{code="200",model="gas-lock-01d"} 1.0' in per_model
    assert 'requests_total{code="200",model="pump-wear-01d"} 1.0' in per_model
    assert 'requests_total{code="200",model="_models"} 2.0' in shared.render().decode()
    assert 'requests_total{code="200",model="_well"} 1.0' in shared.render().decode()


def test_a_server_without_a_loadable_bundle_is_live_but_not_ready() -> None:
    uri = f"http://127.0.0.1:{free_loopback_port()}/bundle/"
    with RunningServer(uri) as running:
        wait_until("first load attempt", lambda: running.state.last_load is not None)
        assert httpx.get(f"{running.url}/v2/health/live").status_code == 200
        ready = httpx.get(f"{running.url}/v2/health/ready")
        assert ready.status_code == 503
        assert ready.json()["lastLoad"]["reason"] == "Unreachable"
        meta = httpx.get(f"{running.url}/v2").json()
        assert (
            meta["bundle"] is None
            and meta["lastLoad"]["ok"] is False
            and "ConnectError" in meta["lastLoad"]["error"]
        )
        infer = httpx.post(f"{running.url}/v2/models/x/infer", json={})
        assert infer.status_code == 503 and "no verified bundle is serving" in infer.json()["error"]
        assert "modelfleet_runtime_ready 0.0" in httpx.get(f"{running.url}/metrics").text


def test_an_unreachable_first_bundle_is_retried_until_it_appears(
    tmp_path: object, small_bundle: BuiltBundle
) -> None:
    import shutil
    from pathlib import Path

    target = Path(str(tmp_path)) / "later"
    with RunningServer(str(target)) as running:
        wait_until("first load attempt", lambda: running.state.last_load is not None)
        assert running.state.current is None
        shutil.copytree(small_bundle.path, target)
        running.wait_serving(small_bundle.digest)


def test_a_large_batch_is_scored_off_the_event_loop_and_matches(
    server: RunningServer, small_bundle: BuiltBundle
) -> None:
    rows = np.random.default_rng(3).normal(
        [85, 190, 95, 42, 2.5, 55, 450], [2, 4, 2, 1, 0.3, 0.6, 12], (5000, 7)
    )
    response = httpx.post(f"{server.url}/v2/well/infer", json=sensors(rows.tolist()), timeout=30)
    assert response.status_code == 200
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["sand-ingress-01d"]["shape"] == [5000]
    session = ort.InferenceSession(str(small_bundle.path / "models" / "sand-ingress-01d.onnx"))
    expected = session.run(["probabilities"], {"sensors": rows.astype(np.float32)})[0][:, 1]
    np.testing.assert_allclose(outputs["sand-ingress-01d"]["data"], expected, atol=1e-7, rtol=0)
