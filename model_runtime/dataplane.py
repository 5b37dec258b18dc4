"""The Open Inference Protocol (V2) logic, with no HTTP in it.

Handlers in server.py only move bytes in and out; everything the protocol decides (which model,
is the request well-formed, what the response looks like) happens here, so it is tested and
reasoned about without a socket. Request tensors are checked field by field and every problem
becomes a 4xx ModelRuntimeError that names the field, the expected value and the one received.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

import msgspec
import numpy as np
import numpy.typing as npt
import orjson

from model_runtime.bundle_state import BundleState, ServingBundle
from model_runtime.errors import (
    BadRequestError,
    ModelNotFoundError,
    NotReadyError,
    PayloadTooLargeError,
)
from model_runtime.manifest import TensorSpec, to_plain
from model_runtime.monitoring.report import monitoring_report, monitoring_summary
from model_runtime.sessions import ModelSession, numpy_dtype
from runtime_contract import SERVER_NAME, Extension, Health, ServerMetadata
from runtime_contract.monitoring import MonitoringReport

SERVER_VERSION = "0.1.0"
# Failure probability = probability of class 1 in every model of the bundle.
POSITIVE_CLASS = 1

_NUMPY_TO_DATATYPE = {
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
    np.dtype(np.int64): "INT64",
    np.dtype(np.int32): "INT32",
    np.dtype(np.bool_): "BOOL",
}


class RefusedRowsError(BadRequestError):
    """Rows refused for their values (status 400, as any bad request). `values` holds them
    when they are numbers but not finite: monitoring counts them (missing, out of range)."""

    def __init__(self, message: str, rows: int, values: npt.NDArray[Any] | None = None) -> None:
        super().__init__(message)
        self.rows = rows
        self.values = values


@dataclass(frozen=True)
class RequestLimits:
    max_body_bytes: int = 8 * 1024 * 1024
    max_rows: int = 65_536


_NO_NAMES: frozenset[str] = frozenset()


# Not frozen, on the request path: a frozen dataclass's __init__ sets each field through
# object.__setattr__, ~0.4 us a request for these two. Nothing changes them once built.
@dataclass(slots=True)
class ParsedRequest:
    id: str | None
    rows: npt.NDArray[Any]
    outputs: tuple[str, ...] | None
    models: tuple[str, ...] | None  # well endpoint only
    binary_outputs: frozenset[str] = _NO_NAMES  # binary tensor extension: outputs sent as bytes
    binary_output_default: bool = False


class WellOutput(TypedDict):
    """One model's tensor in a whole-well answer: its failure probability (or value) per row."""

    name: str
    datatype: str
    shape: list[int]
    data: list[Any]


@dataclass(slots=True)
class InferResponse:
    """A response body; `blobs` are the raw bytes of binary outputs, appended after the JSON."""

    body: dict[str, Any]
    blobs: tuple[bytes, ...] = ()


def _decode_json(body: bytes, limits: RequestLimits) -> dict[str, Any]:
    if not body:
        raise BadRequestError(
            "request body is empty; expected a JSON inference request with 'inputs'"
        )
    if len(body) > limits.max_body_bytes:
        raise PayloadTooLargeError(
            f"request body is {len(body)} bytes, over the limit of {limits.max_body_bytes}"
        )
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        obj = _decode_json_stdlib(body)
    if not isinstance(obj, dict):
        raise BadRequestError(f"request body must be a JSON object, got {type(obj).__name__}")
    return obj


def _decode_json_stdlib(body: bytes) -> Any:
    """What orjson refuses, the standard library reads or explains: orjson is strict RFC 8259,
    json.loads also takes NaN/Infinity literals (refused later, by name), integers beyond 64
    bits, lone surrogates and UTF-16/32 bodies, and its errors are the ones clients have seen."""
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise BadRequestError(
            f"request body is not UTF-8: {exc.reason} at byte {exc.start}"
        ) from exc
    except RecursionError as exc:
        raise BadRequestError(
            "request body is nested too deeply to be an inference request"
        ) from exc
    except ValueError as exc:  # JSONDecodeError, and int literals beyond Python's digit limit
        raise BadRequestError(f"request body is not valid JSON: {exc}") from exc


def _datatype_of(array: npt.NDArray[Any]) -> str:
    return _NUMPY_TO_DATATYPE.get(array.dtype, "BYTES")


# Exactly these types (a bool is not a number here): checked with map(type, ...) in C, which
# costs a tenth of a generator over the elements on a 100-row body.
_NUMBER_TYPES = frozenset((float, int))


def _all_numbers(values: list[Any]) -> bool:
    return _NUMBER_TYPES.issuperset(map(type, values))


def _flatten(data: Any, shape: list[int], where: str) -> list[Any]:
    """Row-major elements of `data` (flat or nested to `shape`), each checked to be a number."""
    if not isinstance(data, list):
        raise BadRequestError(f"{where}.data must be a JSON array, got {type(data).__name__}")
    flat: list[Any]
    if _all_numbers(data):
        flat = data
    else:
        level: list[Any] = data
        for depth in range(len(shape)):
            if _all_numbers(level):
                break
            non_lists = [v for v in level if not isinstance(v, list)]
            if non_lists:
                bad = next(
                    (v for v in non_lists if type(v) is not float and type(v) is not int), None
                )
                if bad is None:
                    raise BadRequestError(f"{where}.data mixes numbers and nested arrays")
                raise BadRequestError(
                    f"{where}.data holds {json.dumps(bad)[:40]} ({type(bad).__name__}); expected numbers"
                )
            if depth == len(shape) - 1:
                raise BadRequestError(f"{where}.data is nested deeper than shape {shape}")
            if any(len(sub) != shape[depth + 1] for sub in level):
                raise BadRequestError(
                    f"{where}.data is ragged: arrays at depth {depth + 1} must hold {shape[depth + 1]} values (shape {shape})"
                )
            level = [v for sub in level for v in sub]
        else:
            raise BadRequestError(f"{where}.data is nested deeper than shape {shape}")
        flat = level
    return flat


def _binary_tensor(
    raw: dict[str, Any], spec: TensorSpec, shape: list[int], binary: bytes, where: str
) -> npt.NDArray[Any]:
    """The binary tensor extension: the tensor's bytes follow the JSON header."""
    size = raw["parameters"]["binary_data_size"]
    if type(size) is not int or size < 0:
        raise BadRequestError(f"{where}.parameters.binary_data_size must be a non-negative integer")
    if "data" in raw:
        raise BadRequestError(f"{where} has both 'data' and parameters.binary_data_size; send one")
    dtype = np.dtype(numpy_dtype(spec.datatype))
    expected = math.prod(shape) * dtype.itemsize
    if size != expected:
        raise BadRequestError(
            f"input {spec.name!r}: shape {shape} of {spec.datatype} needs {expected} bytes, binary_data_size is {size}"
        )
    if len(binary) != size:
        raise BadRequestError(
            f"input {spec.name!r}: binary_data_size is {size} but {len(binary)} bytes follow the JSON header"
        )
    return np.frombuffer(binary, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)


def _parse_tensor(
    raw: Any, spec: TensorSpec, index: int, limits: RequestLimits, binary: bytes | None = None
) -> npt.NDArray[Any]:
    where = f"inputs[{index}]"
    if not isinstance(raw, dict):
        raise BadRequestError(f"{where} must be an object with name, shape, datatype and data")
    datatype = raw.get("datatype")
    if datatype != spec.datatype:
        raise BadRequestError(
            f"input {spec.name!r} has datatype {spec.datatype}, request says {json.dumps(datatype)[:40]}"
        )
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise BadRequestError(
            f"{where}.shape must be a list of non-negative integers, got {json.dumps(shape)[:60]}"
        )
    if len(shape) != len(spec.shape) or any(
        e != -1 and e != d for e, d in zip(spec.shape, shape, strict=False)
    ):
        raise BadRequestError(
            f"input {spec.name!r} expects shape {spec.shape} (-1: any number of rows), got {shape}"
        )
    rows = shape[0] if shape else 1
    if rows == 0:
        raise BadRequestError(f"input {spec.name!r} has shape {shape}: no rows to score")
    if rows > limits.max_rows:
        raise PayloadTooLargeError(
            f"input {spec.name!r} has {rows} rows, over the limit of {limits.max_rows}"
        )
    try:
        return _tensor_values(raw, spec, shape, where, binary)
    except RefusedRowsError:
        raise
    except BadRequestError as exc:
        raise RefusedRowsError(exc.message, rows) from exc


def _tensor_values(
    raw: dict[str, Any], spec: TensorSpec, shape: list[int], where: str, binary: bytes | None
) -> npt.NDArray[Any]:
    parameters = raw.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadRequestError(f"{where}.parameters must be an object")
    if parameters and "binary_data_size" in parameters:
        if binary is None:
            raise BadRequestError(
                f"{where} declares binary_data_size but the request has no Inference-Header-Content-Length header"
            )
        array = _binary_tensor(raw, spec, shape, binary, where)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise RefusedRowsError(
                f"input {spec.name!r}: data holds NaN or Infinity", shape[0], array
            )
        return array
    if "data" not in raw:
        raise BadRequestError(
            f"{where}.data is missing (or parameters.binary_data_size for binary data)"
        )
    flat = _flatten(raw["data"], shape, where)
    expected = math.prod(shape)
    if len(flat) != expected:
        raise BadRequestError(
            f"input {spec.name!r}: shape {shape} needs {expected} values, data has {len(flat)}"
        )
    dtype = numpy_dtype(spec.datatype)
    if dtype in _FLOAT_DTYPES and _well_inside_float32(flat):
        # The usual request: no value can overflow the cast nor be NaN or infinite, so neither
        # the overflow guard nor the finiteness check below can change the answer (together
        # they were a third of a 1-row request's own work).
        return np.array(flat, dtype=dtype).reshape(shape)
    try:
        # Values beyond the dtype's range become inf and are refused just below.
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.array(flat, dtype=dtype).reshape(shape)
    except (OverflowError, ValueError, TypeError) as exc:
        raise BadRequestError(
            f"input {spec.name!r}: data cannot be read as {spec.datatype}: {exc}"
        ) from exc
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise RefusedRowsError(
            f"input {spec.name!r}: data holds NaN, Infinity or values beyond {spec.datatype} range",
            shape[0],
            array,
        )
    return array


_FLOAT_DTYPES = (np.float32, np.float64)
# Below float32's largest value (3.4028235e38) by more than any rounding of the cast.
_FLOAT32_SAFE = 3.0e38


def _well_inside_float32(flat: list[Any]) -> bool:
    """True only if every value is finite and within +-_FLOAT32_SAFE; False when unsure.

    The sum is NaN or infinite if any value is (max and min alone can step over a NaN), and
    finite sums of in-range values stay finite; OverflowError: an int too large for a float,
    ValueError: no values."""
    try:
        return (
            math.isfinite(sum(flat)) and max(flat) <= _FLOAT32_SAFE and min(flat) >= -_FLOAT32_SAFE
        )
    except (OverflowError, ValueError):
        return False


def _split_binary(body: bytes, header_length: int | None) -> tuple[bytes, bytes | None]:
    if header_length is None:
        return body, None
    if not 0 < header_length <= len(body):
        raise BadRequestError(
            f"Inference-Header-Content-Length is {header_length}, the body has {len(body)} bytes"
        )
    return body[:header_length], body[header_length:]


class _PlainTensor(msgspec.Struct):
    """An input tensor as most clients send it: flat numbers, no binary extension."""

    name: str
    shape: list[int]
    datatype: str
    data: list[int | float]  # ints stay ints: the same values orjson or json would give
    parameters: dict[str, Any] | None = None


class _PlainOutput(msgspec.Struct):
    name: str
    parameters: Any = None


class _PlainRequest(msgspec.Struct):
    inputs: list[_PlainTensor]
    id: str | None = None
    # A JSON null fails here (the full path refuses it by name): not `dict | None`.
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    outputs: list[_PlainOutput] | None = None
    models: list[str] | None = None


_PLAIN_REQUEST = msgspec.json.Decoder(_PlainRequest)


def _parse_plain_request(
    body: bytes, spec: TensorSpec, limits: RequestLimits, well: bool
) -> ParsedRequest | None:
    """The usual request, decoded and checked in one pass in C; None: take the full path.

    Invariant: this answers only requests the full path accepts, with the same ParsedRequest;
    anything unusual (nested or binary data, NaN literals, a value beyond float32, a non-float
    input, any field the full path would refuse) is left to the full path, which says what is
    wrong by name (pinned by a hypothesis test against it).
    """
    try:
        request = _PLAIN_REQUEST.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    inputs = request.inputs
    if len(inputs) != 1:
        return None
    plain = _plain_input(spec)
    if plain is None:
        return None
    tensor = inputs[0]
    shape = tensor.shape
    if (
        tensor.name != plain.name
        or tensor.datatype != plain.datatype
        or tensor.parameters
        # Also the rank: a shorter or longer shape has another tail.
        or shape[1:] != plain.tail
        or not shape
        or not 0 < shape[0] <= limits.max_rows
        or (plain.rows != -1 and shape[0] != plain.rows)
        or len(tensor.data) != shape[0] * plain.row_size
    ):
        return None
    flat = tensor.data
    if not _well_inside_float32(flat):
        return None
    outputs = request.outputs
    parsed = ParsedRequest(
        request.id,
        np.array(flat, dtype=plain.dtype).reshape(shape),
        None if outputs is None else tuple(o.name for o in outputs),
        (None if request.models is None else tuple(request.models)) if well else None,
    )
    if outputs:
        parsed.binary_outputs = frozenset(
            o.name
            for o in outputs
            if isinstance(o.parameters, dict) and o.parameters.get("binary_data") is True
        )
    if request.parameters:
        parsed.binary_output_default = request.parameters.get("binary_data_output") is True
    return parsed


@dataclass(frozen=True, slots=True)
class _PlainInput:
    """What the fast path checks a tensor against, read once from a TensorSpec."""

    name: str
    datatype: str
    dtype: Any
    rows: int  # the first dimension: -1 (any number of rows) or fixed
    tail: list[int]  # every other dimension, each fixed
    row_size: int  # values in a row: the product of `tail`


# id(spec) -> (spec, its checks): the spec is held, so its id is not reused while cached.
_PLAIN_INPUTS: dict[int, tuple[TensorSpec, _PlainInput | None]] = {}
_MAX_PLAIN_INPUTS = 64  # specs of the serving bundle and of the one replacing it


def _plain_input(spec: TensorSpec) -> _PlainInput | None:
    """The spec's checks for the fast path; None when the fast path never applies (a variable
    dimension after the first, no dimension, a non-float input)."""
    cached = _PLAIN_INPUTS.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    dims = spec.shape
    dtype = numpy_dtype(spec.datatype)
    plain = None
    if dims and -1 not in dims[1:] and dtype in _FLOAT_DTYPES:
        plain = _PlainInput(
            spec.name, spec.datatype, dtype, dims[0], list(dims[1:]), math.prod(dims[1:])
        )
    if len(_PLAIN_INPUTS) >= _MAX_PLAIN_INPUTS:
        _PLAIN_INPUTS.clear()
    _PLAIN_INPUTS[id(spec)] = (spec, plain)
    return plain


def parse_infer_request(
    body: bytes,
    spec: TensorSpec,
    limits: RequestLimits,
    *,
    well: bool = False,
    header_length: int | None = None,
) -> ParsedRequest:
    """Validate an OIP infer request against a model's single input."""
    if len(body) > limits.max_body_bytes:
        raise PayloadTooLargeError(
            f"request body is {len(body)} bytes, over the limit of {limits.max_body_bytes}"
        )
    if header_length is None and body:
        plain = _parse_plain_request(body, spec, limits, well)
        if plain is not None:
            return plain
    return _parse_full_request(body, spec, limits, well, header_length)


def _parse_full_request(
    body: bytes, spec: TensorSpec, limits: RequestLimits, well: bool, header_length: int | None
) -> ParsedRequest:
    """Every check, field by field, each refusal naming what is wrong."""
    header, binary = _split_binary(body, header_length)
    obj = _decode_json(header, limits)
    request_id = obj.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequestError(f"'id' must be a string, got {type(request_id).__name__}")
    parameters = obj.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadRequestError("'parameters' must be an object")
    inputs = obj.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequestError(
            f"'inputs' must be a non-empty list of tensors; expected one input {spec.name!r}"
        )
    names = [i.get("name") if isinstance(i, dict) else None for i in inputs]
    if names != [spec.name]:
        unknown = [n for n in names if n != spec.name]
        raise BadRequestError(
            f"expected exactly one input named {spec.name!r}, got {json.dumps(names)[:80]}"
            + (f" (unknown: {json.dumps(unknown)[:60]})" if unknown else "")
        )
    rows = _parse_tensor(inputs[0], spec, 0, limits, binary)
    outputs = _parse_name_list(obj.get("outputs"), "outputs", objects=True)
    binary_outputs = frozenset(
        o["name"]
        for o in obj.get("outputs") or []
        if isinstance(o.get("parameters"), dict) and o["parameters"].get("binary_data") is True
    )
    models = _parse_name_list(obj.get("models"), "models", objects=False) if well else None
    return ParsedRequest(
        id=request_id,
        rows=rows,
        outputs=outputs,
        models=models,
        binary_outputs=binary_outputs,
        binary_output_default=parameters.get("binary_data_output") is True,
    )


def _parse_name_list(raw: Any, field: str, *, objects: bool) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise BadRequestError(f"'{field}' must be a list")
    names: list[str] = []
    for index, item in enumerate(raw):
        # An object's name, or a bare string; never a bare string where objects are due.
        named = item.get("name") if isinstance(item, dict) else None
        name = named if objects else item
        if not isinstance(name, str):
            shape = "objects with a string 'name'" if objects else "strings"
            raise BadRequestError(f"'{field}[{index}]' is invalid: '{field}' must hold {shape}")
        names.append(name)
    return tuple(names)


def _after_answer(work: Callable[[], None]) -> None:
    """Run `work` once the current event-loop step is over (the response written), so it is
    off the request's latency; inline in a worker thread (big requests)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        work()
        return
    loop.call_soon(work)


def _tensor_json(name: str, array: npt.NDArray[Any]) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": _datatype_of(array),
        "shape": list(array.shape),
        "data": array.ravel().tolist(),
    }


def _score_for_well(
    session: ModelSession, rows: npt.NDArray[Any]
) -> tuple[WellOutput, npt.NDArray[Any]]:
    """One model's part of a whole-well answer: its output tensor and the monitored prediction."""
    entry = session.entry
    if entry.task == "regression":
        # A packed regressor (bundle pack) answers its value, not a failure probability.
        value = np.asarray(session.run(rows, ("value",))[0]).reshape(-1)
        datatype = _datatype_of(value)
        prediction = value
    else:
        probabilities = session.run(rows, ("probabilities",))[0]
        classes = entry.classes
        if POSITIVE_CLASS in classes:
            prediction = probabilities[:, classes.index(POSITIVE_CLASS)]
        else:
            prediction = np.zeros(rows.shape[0], dtype=np.float32)
        datatype = "FP32"
    output: WellOutput = {
        "name": entry.name,
        "datatype": datatype,
        "shape": [rows.shape[0]],
        "data": prediction.tolist(),
    }
    return output, prediction


class DataPlane:
    """OIP V2 operations over the serving bundle of a BundleState."""

    def __init__(
        self,
        state: BundleState,
        limits: RequestLimits | None = None,
    ) -> None:
        self.state = state
        self.limits = limits or RequestLimits()

    # -- server ---------------------------------------------------------------------------

    def serving(self) -> ServingBundle:
        bundle = self.state.current
        # Still serving while draining: readiness already says "go elsewhere", and requests that
        # arrive on kept-alive connections during the drain deserve an answer.
        if bundle is None:
            raise NotReadyError("no verified bundle is serving" + self._last_error_suffix())
        return bundle

    def _last_error_suffix(self) -> str:
        last = self.state.last_load
        return (
            f"; last load of {last.uri!r} failed ({last.reason}): {last.error}"
            if last and not last.ok
            else ""
        )

    def health(self) -> Health:
        bundle = self.state.current
        return {
            "live": True,
            "ready": self.state.ready,
            "draining": self.state.draining,
            "bundle": bundle.info() if bundle else None,
            "lastLoad": self.state.last_load.to_json() if self.state.last_load else None,
        }

    def server_metadata(self) -> ServerMetadata:
        bundle = self.state.current
        metadata: ServerMetadata = {
            "name": SERVER_NAME,
            "version": SERVER_VERSION,
            "extensions": [Extension.WELL_INFER.value, Extension.BUNDLE_LOAD.value],
            "bundle": bundle.info() if bundle else None,
            "lastLoad": self.state.last_load.to_json() if self.state.last_load else None,
        }
        if bundle is not None and bundle.monitor is not None:
            monitor = bundle.monitor
            report = monitoring_report(monitor)
            metadata["monitoring"] = monitoring_summary(report, monitor.unmonitored.values())
        elif bundle is not None:
            metadata["monitoring"] = {
                "summary": "monitoring off",
                "models_drifting": 0,
                "models_insufficient_data": 0,
                "models_unmonitored": len(bundle.sessions),
            }
        return metadata

    def monitoring(self) -> MonitoringReport:
        """`GET /v2/monitoring`: every model's window, feature by feature."""
        bundle = self.serving()
        if bundle.monitor is None:
            config = self.state.monitoring
            return {
                "enabled": False,
                "window_rows": config.window_rows,
                "min_rows": config.min_rows,
                "models": {},
            }
        return monitoring_report(bundle.monitor)

    # -- models ---------------------------------------------------------------------------

    def model(self, name: str, version: str | None = None) -> tuple[ServingBundle, ModelSession]:
        bundle = self.serving()
        session = bundle.sessions.get(name)
        if session is None:
            raise ModelNotFoundError(name, len(bundle.sessions))
        if version is not None and version != bundle.manifest.version:
            raise ModelNotFoundError(
                f"{name} version {version} (serving version {bundle.manifest.version})",
                len(bundle.sessions),
            )
        return bundle, session

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        bundle, session = self.model(name, version)
        entry = session.entry
        return {
            "name": entry.name,
            "versions": [bundle.manifest.version],
            "platform": "onnxruntime_onnx",
            "inputs": [to_plain(i) for i in entry.inputs],
            "outputs": [to_plain(o) for o in entry.outputs],
            "parameters": {
                "kind": entry.kind,
                "failure_mode": entry.failure_mode,
                "horizon_days": entry.horizon_days,
                "sha256": entry.sha256,
                "bundle_digest": bundle.digest,
            },
        }

    def model_ready(self, name: str, version: str | None = None) -> dict[str, Any]:
        self.model(name, version)
        return {"name": name, "ready": True}

    def infer(
        self, name: str, body: bytes, version: str | None = None, header_length: int | None = None
    ) -> InferResponse:
        bundle, session = self.model(name, version)
        try:
            request = parse_infer_request(
                body, session.input, self.limits, header_length=header_length
            )
        except RefusedRowsError as exc:
            if bundle.monitor is not None:
                bundle.monitor.observe_refused(name, exc.values, exc.rows)
            raise
        wanted = request.outputs
        if wanted is not None:
            unknown = [o for o in wanted if o not in session.output_names]
            if unknown:
                raise BadRequestError(
                    f"model {name!r} has no output {unknown[0]!r}; outputs: {list(session.output_names)}"
                )
        names = wanted or session.output_names
        results = session.run(request.rows, names)
        # Queued in a few operations; the counting is batched, after the answer.
        monitor = bundle.monitor
        if monitor is not None and monitor.observe_model(name, request.rows, names, results):
            _after_answer(monitor.fold_all)
        response: dict[str, Any] = {
            "model_name": name,
            "model_version": bundle.manifest.version,
        }
        if request.id is not None:
            response["id"] = request.id
        if not request.binary_outputs and not request.binary_output_default:
            response["outputs"] = [_tensor_json(n, r) for n, r in zip(names, results, strict=True)]
            return InferResponse(response)
        outputs: list[dict[str, Any]] = []
        blobs: list[bytes] = []
        for output_name, result in zip(names, results, strict=True):
            if output_name in request.binary_outputs or (
                wanted is None and request.binary_output_default
            ):
                blob = np.ascontiguousarray(result).astype(result.dtype.newbyteorder("<")).tobytes()
                blobs.append(blob)
                outputs.append(
                    {
                        "name": output_name,
                        "datatype": _datatype_of(result),
                        "shape": list(result.shape),
                        "parameters": {"binary_data_size": len(blob)},
                    }
                )
            else:
                outputs.append(_tensor_json(output_name, result))
        response["outputs"] = outputs
        return InferResponse(response, tuple(blobs))

    def infer_well(self, body: bytes, header_length: int | None = None) -> InferResponse:
        """Score the same rows with every model (or `models`) of the well in one request."""
        bundle = self.serving()
        if bundle.shared_input is None:
            raise BadRequestError(
                "this bundle's models do not share one input; call each model's /infer"
            )
        try:
            request = parse_infer_request(
                body, bundle.shared_input, self.limits, well=True, header_length=header_length
            )
        except RefusedRowsError as exc:
            if bundle.monitor is not None:
                bundle.monitor.observe_refused(None, exc.values, exc.rows)
            raise
        if request.models is not None:
            missing = [m for m in request.models if m not in bundle.sessions]
            if missing:
                raise ModelNotFoundError(missing[0], len(bundle.sessions))
            sessions = [bundle.sessions[m] for m in request.models]
        else:
            sessions = list(bundle.sessions.values())
        rows = request.rows
        scored = [_score_for_well(session, rows) for session in sessions]
        outputs = [output for output, _ in scored]
        predictions = {
            session.entry.name: prediction
            for session, (_, prediction) in zip(sessions, scored, strict=True)
        }
        if bundle.monitor is not None and bundle.monitor.observe_well(rows, predictions):
            _after_answer(bundle.monitor.fold_all)
        response: dict[str, Any] = {
            "well": bundle.manifest.well,
            "model_version": bundle.manifest.version,
            "bundle_digest": bundle.digest,
            "outputs": outputs,
        }
        if request.id is not None:
            response["id"] = request.id
        return InferResponse(response)
