"""OIP V2 conformance, checked by an independent real client: Triton's tritonclient.http."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton_http
from runtime_harness import RunningServer
from tritonclient.utils import InferenceServerException

from bundle_builder.building import BuiltBundle


@pytest.fixture(scope="module")
def triton(shared_server: RunningServer) -> triton_http.InferenceServerClient:
    return triton_http.InferenceServerClient(url=shared_server.url.removeprefix("http://"))


def test_server_and_model_health(triton: triton_http.InferenceServerClient) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("motor-overheat-01d")
    assert not triton.is_model_ready("no-such-model")


def test_server_and_model_metadata(
    triton: triton_http.InferenceServerClient, small_bundle: BuiltBundle
) -> None:
    server = triton.get_server_metadata()
    assert (
        server["name"] == "modelfleet-model-runtime"
        and server["bundle"]["digest"] == small_bundle.digest
    )
    model = triton.get_model_metadata("motor-overheat-01d")
    assert model["inputs"][0] == {"name": "sensors", "datatype": "FP32", "shape": [-1, 7]}
    with pytest.raises(InferenceServerException, match="not found"):
        triton.get_model_metadata("no-such-model")


def test_infer_fp32_rows(
    triton: triton_http.InferenceServerClient, small_bundle: BuiltBundle
) -> None:
    rows = np.array(
        [[85, 190, 95, 42, 2.5, 55, 450], [84, 180, 104, 47, 3.1, 55, 430]], dtype=np.float32
    )
    tensor = triton_http.InferInput("sensors", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    outputs = [
        triton_http.InferRequestedOutput("probabilities", binary_data=False),
        triton_http.InferRequestedOutput("label", binary_data=False),
    ]
    result = triton.infer("electrical-fault-01d", [tensor], outputs=outputs, request_id="t1")
    assert result.get_response()["id"] == "t1"
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (2, 2) and probabilities.dtype == np.float32
    expected = ort.InferenceSession(
        str(small_bundle.path / "models" / "electrical-fault-01d.onnx")
    ).run(None, {"sensors": rows})
    np.testing.assert_array_equal(result.as_numpy("label"), expected[0])
    np.testing.assert_allclose(probabilities, expected[1], atol=1e-7, rtol=0)


def test_infer_with_the_binary_tensor_extension_tritonclients_default(
    triton: triton_http.InferenceServerClient, small_bundle: BuiltBundle
) -> None:
    rows = np.random.default_rng(1).normal(100, 50, (64, 7)).astype(np.float32)
    tensor = triton_http.InferInput("sensors", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)  # binary_data=True by default
    outputs = [
        triton_http.InferRequestedOutput("probabilities"),
        triton_http.InferRequestedOutput("label", binary_data=False),
    ]
    result = triton.infer("sand-ingress-01d", [tensor], outputs=outputs)
    expected = ort.InferenceSession(
        str(small_bundle.path / "models" / "sand-ingress-01d.onnx")
    ).run(None, {"sensors": rows})
    # Tree sums may round differently across session settings: 1e-6, well under the parity tolerance.
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected[1], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(result.as_numpy("label"), expected[0])
    everything = triton.infer("sand-ingress-01d", [tensor])  # no outputs named: all, as JSON
    np.testing.assert_allclose(everything.as_numpy("probabilities"), expected[1], atol=1e-6, rtol=0)


def test_infer_errors_surface_as_client_exceptions(
    triton: triton_http.InferenceServerClient,
) -> None:
    tensor = triton_http.InferInput("sensors", [1, 3], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32), binary_data=False)
    with pytest.raises(InferenceServerException, match=r"expects shape \[-1, 7\]"):
        triton.infer("electrical-fault-01d", [tensor])
