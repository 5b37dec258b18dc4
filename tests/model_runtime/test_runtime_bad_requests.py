"""Bad input gets a 4xx JSON error naming the problem; never a 5xx, never a crash."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_harness import RunningServer

from model_runtime.dataplane import RequestLimits

ROW = [85.0, 190.0, 95.0, 42.0, 2.5, 55.0, 450.0]


def tensor(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "sensors", "shape": [1, 7], "datatype": "FP32", "data": ROW}
    base.update(overrides)
    return {"inputs": [base]}


@pytest.fixture(scope="module")
def client(shared_server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=shared_server.url, timeout=10)


BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("empty body", b"", 400, "request body is empty"),
    ("malformed JSON", b'{"inputs": [', 400, "not valid JSON"),
    ("not UTF-8", b'{"id": "\xff"}', 400, "not UTF-8"),
    ("a JSON array", b"[1, 2]", 400, "must be a JSON object, got list"),
    ("no inputs", b"{}", 400, "'inputs' must be a non-empty list"),
    ("empty inputs", json.dumps({"inputs": []}).encode(), 400, "'inputs' must be a non-empty list"),
    (
        "unknown tensor name",
        json.dumps(tensor(name="pressure")).encode(),
        400,
        'unknown: ["pressure"]',
    ),
    (
        "two inputs",
        json.dumps({"inputs": [tensor()["inputs"][0]] * 2}).encode(),
        400,
        "exactly one input named 'sensors'",
    ),
    (
        "wrong datatype",
        json.dumps(tensor(datatype="INT64")).encode(),
        400,
        'datatype FP32, request says "INT64"',
    ),
    ("missing datatype", json.dumps(tensor(datatype=None)).encode(), 400, "request says null"),
    (
        "wrong width",
        json.dumps(tensor(shape=[1, 6], data=ROW[:6])).encode(),
        400,
        "expects shape [-1, 7]",
    ),
    ("wrong rank", json.dumps(tensor(shape=[7])).encode(), 400, "expects shape [-1, 7]"),
    ("negative dim", json.dumps(tensor(shape=[-1, 7])).encode(), 400, "non-negative integers"),
    ("zero rows", json.dumps(tensor(shape=[0, 7], data=[])).encode(), 400, "no rows to score"),
    (
        "shape/data mismatch",
        json.dumps(tensor(shape=[2, 7])).encode(),
        400,
        "needs 14 values, data has 7",
    ),
    (
        "string in data",
        json.dumps(tensor(data=[*ROW[:6], "x"])).encode(),
        400,
        'holds "x" (str); expected numbers',
    ),
    (
        "bool in data",
        json.dumps(tensor(data=[*ROW[:6], True])).encode(),
        400,
        "(bool); expected numbers",
    ),
    (
        "ragged rows",
        json.dumps(tensor(shape=[2, 7], data=[[*ROW, 1.0], ROW[:6]])).encode(),
        400,
        "ragged: arrays at depth 1 must hold 7",
    ),
    (
        "too deep",
        json.dumps(tensor(data=[[[v] for v in ROW]])).encode(),
        400,
        "nested deeper than shape",
    ),
    ("NaN", json.dumps(tensor(data=[*ROW[:6], float("nan")])).encode(), 400, "NaN, Infinity"),
    (
        "beyond float32",
        json.dumps(tensor(data=[*ROW[:6], 1e300])).encode(),
        400,
        "beyond FP32 range",
    ),
    ("data not a list", json.dumps(tensor(data=5)).encode(), 400, "data must be a JSON array"),
    (
        "missing data",
        json.dumps({"inputs": [{"name": "sensors", "shape": [1, 7], "datatype": "FP32"}]}).encode(),
        400,
        "data is missing",
    ),
    ("id not a string", json.dumps({"id": 5, **tensor()}).encode(), 400, "'id' must be a string"),
    (
        "unknown output",
        json.dumps({"outputs": [{"name": "nope"}], **tensor()}).encode(),
        400,
        "has no output 'nope'",
    ),
    (
        # OIP's outputs are request-output objects; a bare name crashed the parser (a 500).
        "output named by a bare string",
        json.dumps({"outputs": ["label"], **tensor()}).encode(),
        400,
        "'outputs[0]' is invalid: 'outputs' must hold objects with a string 'name'",
    ),
    (
        "huge integer literal",
        b'{"inputs": [{"data": [' + b"9" * 5000 + b"]}]}",
        400,
        "not valid JSON",
    ),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "message"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES]
)
def test_bad_infer_body_is_a_4xx_naming_the_problem(
    client: httpx.Client, case: str, body: bytes, status: int, message: str
) -> None:
    response = client.post(
        "/v2/models/gas-lock-01d/infer", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert message in response.json()["error"]


def test_bad_well_body_is_a_4xx_too(client: httpx.Client) -> None:
    response = client.post("/v2/well/infer", json=tensor(datatype="FP64"))
    assert response.status_code == 400 and "datatype FP32" in response.json()["error"]
    response = client.post("/v2/well/infer", json={"models": "all", **tensor()})
    assert response.status_code == 400 and "'models' must be a list" in response.json()["error"]


def test_unknown_model_is_404_naming_it(client: httpx.Client) -> None:
    for path in ("/v2/models/unknown-model", "/v2/models/unknown-model/ready"):
        response = client.get(path)
        assert (
            response.status_code == 404
            and "model 'unknown-model' not found" in response.json()["error"]
        )
    response = client.post("/v2/models/unknown-model/infer", json=tensor())
    assert response.status_code == 404 and "'unknown-model' not found" in response.json()["error"]


def test_unknown_route_and_wrong_method_are_json_4xx(client: httpx.Client) -> None:
    response = client.get("/v3/nothing")
    assert response.status_code == 404 and "no route GET /v3/nothing" in response.json()["error"]
    response = client.get("/v2/models/gas-lock-01d/infer")
    assert response.status_code == 405 and "not allowed" in response.json()["error"]


def test_oversized_body_is_413_before_being_read(small_bundle: Any) -> None:
    with RunningServer(
        str(small_bundle.path), limits=RequestLimits(max_body_bytes=2000, max_rows=10)
    ) as running:
        running.wait_serving()
        big = json.dumps(tensor(shape=[80, 7], data=[ROW] * 80)).encode()
        assert len(big) > 2000
        response = httpx.post(f"{running.url}/v2/models/gas-lock-01d/infer", content=big)
        assert response.status_code == 413 and "over the limit of 2000" in response.json()["error"]

        def chunks() -> Any:
            yield big  # no Content-Length: aiohttp's own limit applies while reading

        response = httpx.post(f"{running.url}/v2/models/gas-lock-01d/infer", content=chunks())
        assert response.status_code == 413 and "over the limit" in response.json()["error"]
        too_many_rows = json.dumps(tensor(shape=[11, 7], data=[ROW] * 11)).encode()
        assert len(too_many_rows) < 2000
        response = httpx.post(f"{running.url}/v2/models/gas-lock-01d/infer", content=too_many_rows)
        assert (
            response.status_code == 413
            and "11 rows, over the limit of 10" in response.json()["error"]
        )


BINARY_CASES: list[tuple[str, bytes, str, str]] = [
    (
        "header longer than body",
        b"{}",
        "99",
        "Inference-Header-Content-Length is 99, the body has 2 bytes",
    ),
    ("header not a number", b"{}", "two", "must be a byte count"),
    (
        "size does not match shape",
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "sensors",
                        "shape": [1, 7],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 8},
                    }
                ]
            }
        ).encode()
        + b"\0" * 8,
        "",
        "needs 28 bytes, binary_data_size is 8",
    ),
    (
        "bytes missing",
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "sensors",
                        "shape": [1, 7],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 28},
                    }
                ]
            }
        ).encode()
        + b"\0" * 20,
        "",
        "binary_data_size is 28 but 20 bytes follow",
    ),
    (
        "data and binary",
        json.dumps(tensor(parameters={"binary_data_size": 28})).encode() + b"\0" * 28,
        "",
        "has both 'data' and",
    ),
    (
        "binary size without the header",
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "sensors",
                        "shape": [1, 7],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 28},
                    }
                ]
            }
        ).encode(),
        "none",
        "no Inference-Header-Content-Length header",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "header", "message"), BINARY_CASES, ids=[c[0] for c in BINARY_CASES]
)
def test_bad_binary_tensor_requests_are_400_naming_the_problem(
    client: httpx.Client, case: str, body: bytes, header: str, message: str
) -> None:
    headers = {}
    if header != "none":
        headers["Inference-Header-Content-Length"] = header or str(body.index(b"}]}") + 3)
    response = client.post("/v2/models/gas-lock-01d/infer", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_the_bundle_load_endpoint_validates_its_body(client: httpx.Client) -> None:
    for body in (b"", b"{", b"{}", b'{"uri": 5}', b'{"uri": "x", "digest": 5}'):
        response = client.post("/v2/repository/bundle/load", content=body)
        assert 400 <= response.status_code < 500 and "error" in response.json(), body


# -- property: whatever the body, never a 5xx -----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)
numbers = st.one_of(
    st.floats(width=32, allow_nan=False, allow_infinity=False), st.integers(-1000, 1000)
)
tensors = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["sensors", "x", ""]) | json_values,
        "shape": st.lists(st.integers(-2, 9), max_size=3) | json_values,
        "datatype": st.sampled_from(["FP32", "FP64", "INT64", "BYTES", "fp32"]) | json_values,
        "data": st.lists(numbers, max_size=30)
        | st.lists(st.lists(numbers, min_size=7, max_size=7), max_size=4)
        | json_values,
        "parameters": json_values,
    },
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "inputs": st.lists(tensors, max_size=2) | json_values,
        "outputs": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["label", "probabilities", "x"])}),
            max_size=2,
        )
        | json_values,
        "parameters": json_values,
        "models": st.lists(st.sampled_from(["gas-lock-01d", "nope"]), max_size=2) | json_values,
    },
)
binary_bodies = st.tuples(requests.map(lambda r: json.dumps(r).encode()), st.binary(max_size=64))
raw_bodies = st.one_of(
    requests.map(lambda r: json.dumps(r).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=raw_bodies | binary_bodies,
    path=st.sampled_from(
        ["/v2/models/gas-lock-01d/infer", "/v2/well/infer", "/v2/models/nope/infer"]
    ),
)
def test_random_request_bodies_never_produce_a_5xx(
    client: httpx.Client, body: bytes | tuple[bytes, bytes], path: str
) -> None:
    headers = {"content-type": "application/json"}
    if isinstance(body, tuple):  # the binary tensor extension: JSON header, then raw bytes
        headers["Inference-Header-Content-Length"] = str(len(body[0]))
        body = body[0] + body[1]
    response = client.post(path, content=body, headers=headers)
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code != 200:
        assert isinstance(response.json()["error"], str) and response.json()["error"]
