"""The plain-request fast path answers only what the full parser accepts, and the same way."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_runtime.dataplane import (
    ParsedRequest,
    RequestLimits,
    _parse_full_request,
    _parse_plain_request,
)
from model_runtime.errors import ModelRuntimeError
from model_runtime.manifest import TensorSpec

LIMITS = RequestLimits(max_rows=4)
SPECS = [
    TensorSpec(name="sensors", datatype="FP32", shape=[-1, 3]),
    TensorSpec(name="sensors", datatype="FP64", shape=[-1, 3]),
    TensorSpec(name="sensors", datatype="INT64", shape=[-1, 3]),
    TensorSpec(name="sensors", datatype="FP32", shape=[2, 3]),
    TensorSpec(name="sensors", datatype="FP32", shape=[-1]),
    TensorSpec(name="sensors", datatype="FP32", shape=[-1, -1]),
]
ABSENT = object()

modest = st.one_of(st.floats(min_value=-1e4, max_value=1e4), st.integers(min_value=-5, max_value=5))
numbers = st.one_of(
    modest,
    modest,
    modest,
    modest,
    modest,
    modest,
    modest,
    modest,
    st.floats(allow_nan=False, allow_infinity=False),  # beyond float32 too
    st.integers(min_value=-(2**70), max_value=2**70),
)
odd_values = st.one_of(
    st.booleans(), st.none(), st.text(max_size=3), st.just(float("nan")), st.just(float("inf"))
)


#: One change at most per drawn request, so that most requests are valid and each kind of
#: invalid (or unusual) request is drawn often.
MUTATIONS: dict[str, Any] = {
    "id": [None, 7],
    "parameters": [{}, {"binary_data_output": 1}, None, []],
    "outputs": [None, [], ["label"], [{"name": 3}], {}, [{"name": "label", "parameters": "x"}]],
    "models": [None, [], [1], "a"],
    "inputs": [[], "x", [None]],
    "tensor.name": ["other", None],
    "tensor.datatype": ["FP64", "INT64", None],
    "tensor.shape": [[2], [-1, 3], [True, 3], [1, 3, 1], "x", [], [3], [0, 3], [2, -3]],
    "tensor.parameters": [{}, None, "x", {"binary_data_size": 4}, {"other": 1}],
    "tensor.data": ["x", None],
}


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    rows = draw(st.integers(min_value=0, max_value=5))
    count = draw(st.sampled_from([rows * 3] * 6 + [rows * 3 + 1, max(rows * 3 - 1, 0)]))
    values = draw(st.lists(numbers, min_size=count, max_size=count))
    if draw(st.integers(0, 5)) == 0 and values:
        values[draw(st.integers(0, len(values) - 1))] = draw(odd_values)
    data: Any = values
    if draw(st.integers(0, 6)) == 0 and rows and count == rows * 3:
        data = [values[i * 3 : i * 3 + 3] for i in range(rows)]  # nested
    tensor: dict[str, Any] = {
        "name": "sensors",
        "shape": [rows, 3],
        "datatype": "FP32",
        "data": data,
    }
    body: dict[str, Any] = {"inputs": [tensor]}
    for key, choices in (
        ("id", ["req-1"]),
        ("parameters", [{"binary_data_output": True}, {"binary_data_output": False}]),
        (
            "outputs",
            [
                [{"name": "label"}],
                [{"name": "probabilities", "parameters": {"binary_data": True}}, {"name": "label"}],
            ],
        ),
        ("models", [["a", "b"]]),
    ):
        if draw(st.booleans()):
            body[key] = draw(st.sampled_from(choices))
    if draw(st.booleans()):
        body["extra"] = {"ignored": [1, 2]}
    mutation = draw(st.sampled_from([None] * 10 + sorted(MUTATIONS)))
    if mutation is not None:
        value = draw(st.sampled_from(MUTATIONS[mutation]))
        if mutation.startswith("tensor."):
            tensor[mutation.removeprefix("tensor.")] = value
        else:
            body[mutation] = value
    if draw(st.integers(0, 9)) == 0:
        body["inputs"] = [tensor, dict(tensor)]  # two inputs
    return body


def same(fast: ParsedRequest, full: ParsedRequest) -> bool:
    return (
        fast.rows.dtype == full.rows.dtype
        and fast.rows.shape == full.rows.shape
        and np.array_equal(fast.rows, full.rows)
        and (fast.id, fast.outputs, fast.models, fast.binary_outputs, fast.binary_output_default)
        == (full.id, full.outputs, full.models, full.binary_outputs, full.binary_output_default)
    )


@settings(max_examples=800, deadline=None)
@given(
    request=requests(),
    spec=st.sampled_from(SPECS),
    well=st.booleans(),
    nan_literals=st.booleans(),
)
def test_the_fast_path_accepts_only_what_the_full_parser_accepts_and_parses_it_alike(
    request: dict[str, Any], spec: TensorSpec, well: bool, nan_literals: bool
) -> None:
    body = json.dumps(request, allow_nan=nan_literals).encode() if nan_literals else None
    if body is None:
        try:
            body = json.dumps(request, allow_nan=False).encode()
        except ValueError:
            return  # NaN or Infinity with no literal to write them as
    fast = _parse_plain_request(body, spec, LIMITS, well)
    try:
        full = _parse_full_request(body, spec, LIMITS, well, None)
    except ModelRuntimeError as exc:
        assert fast is None, f"fast path accepted what the full parser refuses: {exc.message}"
        return
    if fast is not None:
        assert same(fast, full)


@pytest.mark.parametrize(
    "request_body",
    [
        {
            "inputs": [
                {"name": "sensors", "shape": [1, 3], "datatype": "FP32", "data": [1.5, 2, -3e3]}
            ]
        },
        {
            "id": "a",
            "parameters": {"binary_data_output": True},
            "inputs": [{"name": "sensors", "shape": [2, 3], "datatype": "FP32", "data": [0.0] * 6}],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        },
    ],
)
def test_the_usual_requests_take_the_fast_path(request_body: dict[str, Any]) -> None:
    body = json.dumps(request_body).encode()
    fast = _parse_plain_request(body, SPECS[0], LIMITS, well=False)
    assert fast is not None
    assert same(fast, _parse_full_request(body, SPECS[0], LIMITS, False, None))
