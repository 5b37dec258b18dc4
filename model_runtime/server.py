"""The HTTP adapter: routes that turn requests into DataPlane calls and back.

The transport is model_runtime/http_server.py (chosen by measurement over aiohttp and uvicorn:
docs/benchmarks.md, Runtime). No logic lives here beyond reading headers, mapping errors to
`{"error": ...}` responses and metrics; requests in flight (for the SIGTERM drain and the gauge)
are counted by the transport, from a request's head to its answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from model_runtime.bundle_state import BundleState
from model_runtime.dataplane import DataPlane, InferResponse, RequestLimits
from model_runtime.errors import BadRequestError, BundleError, ModelRuntimeError
from model_runtime.http_server import (
    HandlerResult,
    HttpRequest,
    HttpResponse,
    HttpServer,
    MethodNotAllowed,
    RouteNotFound,
    Router,
)
from model_runtime.metrics import UNKNOWN_MODEL_LABEL, WELL_ENDPOINT_LABEL, RuntimeMetrics
from model_runtime.monitoring.collector import MonitoringCollector
from runtime_contract import (
    BUNDLE_LOAD_PATH,
    HEALTH_LIVE_PATH,
    HEALTH_READY_PATH,
    SERVER_METADATA_PATH,
    LoadRequestError,
    load_answer,
    load_refusal,
    parse_load_request,
)
from runtime_contract.monitoring import MONITORING_PATH

log = logging.getLogger(__name__)

BINARY_HEADER = "Inference-Header-Content-Length"
_BINARY_HEADER_KEY = BINARY_HEADER.lower()
# Bodies above this (about 1,000 rows) are scored in a worker thread.
_INLINE_BODY_BYTES = 64 * 1024
JSON = "application/json"


def _binary_header_length(request: HttpRequest) -> int | None:
    """The binary tensor extension: the JSON part's length, when tensors follow it as bytes."""
    raw = request.headers.get(_BINARY_HEADER_KEY)
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise BadRequestError(f"{BINARY_HEADER} must be a byte count, got {raw[:20]!r}")
    return int(raw)


def json_response(obj: Any, status: int = 200) -> HttpResponse:
    # orjson: a third of the standard library's time on a 100-row response, same numbers (both
    # write the shortest repr of each double).
    return HttpResponse(status, orjson.dumps(obj), JSON)


def error_response(status: int, message: str, **extra: Any) -> HttpResponse:
    return json_response({"error": message, **extra}, status=status)


class RuntimeServer:
    """Holds the state a running server shares between handlers, and its HTTP transport."""

    def __init__(
        self,
        state: BundleState,
        metrics: RuntimeMetrics,
        limits: RequestLimits | None = None,
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.limits = limits or RequestLimits()
        self.dataplane = DataPlane(state, self.limits)
        self.router = self.routes()
        self.http = HttpServer(
            self.handle, error_response, max_body_bytes=self.limits.max_body_bytes
        )
        # Read at scrape time from the transport's own count, not an inc/dec per request.
        metrics.in_flight = lambda: self.http.in_flight
        metrics.register(
            MonitoringCollector(
                lambda: state.current.monitor if state.current else None,
                detail=state.monitoring.detail,
            )
        )

    @property
    def in_flight(self) -> int:
        return self.http.in_flight

    async def start(self, host: str, port: int) -> list[tuple[str, int]]:
        """Listen; the addresses listened on (port 0 picks a free one)."""
        await self.http.start(host, port)
        return self.http.addresses

    # -- plumbing -------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HandlerResult:
        """Route and answer; every error becomes its `{"error": ...}` response, here or in
        `_guarded` for the handlers that must wait."""
        try:
            handler, request.match_info = self.router.resolve(request.method, request.raw_path)
            result = handler(request)
        except Exception as exc:
            return self._error(request, exc)
        if isinstance(result, HttpResponse):
            return result
        return self._guarded(request, result)

    async def _guarded(
        self, request: HttpRequest, pending: Awaitable[HttpResponse]
    ) -> HttpResponse:
        try:
            return await pending
        except Exception as exc:
            return self._error(request, exc)

    def _error(self, request: HttpRequest, exc: Exception) -> HttpResponse:
        if isinstance(exc, ModelRuntimeError):
            return error_response(exc.status, exc.message)
        if isinstance(exc, RouteNotFound):
            return error_response(
                404, f"no route {request.method} {request.path}; see /v2 for the API"
            )
        if isinstance(exc, MethodNotAllowed):
            response = error_response(405, f"method {request.method} not allowed on {request.path}")
            return HttpResponse(
                response.status, response.body, JSON, (("allow", ",".join(exc.allowed)),)
            )
        log.error("internal error on %s %s", request.method, request.path, exc_info=exc)
        return error_response(500, f"internal error: {type(exc).__name__}")

    def _model_label(self, name: str) -> str:
        bundle = self.state.current
        return name if bundle is not None and name in bundle.sessions else UNKNOWN_MODEL_LABEL

    def _score(
        self, label: str, request: HttpRequest, call: Callable[[bytes, int | None], InferResponse]
    ) -> HandlerResult:
        """Score, and record the outcome under `label` whatever it is."""
        started = time.perf_counter()
        if len(request.body) > _INLINE_BODY_BYTES:
            # Big batches take milliseconds or more: score them off the event loop (onnxruntime
            # releases the GIL) so health probes and small requests are not held up.
            return self._score_in_thread(label, request, call, started)
        status = 500
        try:
            result = call(request.body, _binary_header_length(request))
            status = 200
            return self._scored(result)
        except ModelRuntimeError as exc:
            status = exc.status
            raise
        finally:
            self.metrics.observe_request(label, status, time.perf_counter() - started)

    async def _score_in_thread(
        self,
        label: str,
        request: HttpRequest,
        call: Callable[[bytes, int | None], InferResponse],
        started: float,
    ) -> HttpResponse:
        status = 500
        try:
            header_length = _binary_header_length(request)
            result = await asyncio.to_thread(call, request.body, header_length)
            status = 200
            return self._scored(result)
        except ModelRuntimeError as exc:
            status = exc.status
            raise
        finally:
            self.metrics.observe_request(label, status, time.perf_counter() - started)

    @staticmethod
    def _scored(result: InferResponse) -> HttpResponse:
        if not result.blobs:
            return json_response(result.body)
        header = orjson.dumps(result.body)
        return HttpResponse(
            200,
            b"".join((header, *result.blobs)),
            "application/octet-stream",
            ((BINARY_HEADER, str(len(header))),),
        )

    # -- handlers -------------------------------------------------------------------------

    def live(self, request: HttpRequest) -> HttpResponse:
        return json_response({"live": True})

    def ready(self, request: HttpRequest) -> HttpResponse:
        health = self.dataplane.health()
        return json_response(health, status=200 if health["ready"] else 503)

    def server_metadata(self, request: HttpRequest) -> HttpResponse:
        return json_response(self.dataplane.server_metadata())

    def model_metadata(self, request: HttpRequest) -> HttpResponse:
        info = request.match_info
        return json_response(self.dataplane.model_metadata(info["model"], info.get("version")))

    def model_ready(self, request: HttpRequest) -> HttpResponse:
        info = request.match_info
        return json_response(self.dataplane.model_ready(info["model"], info.get("version")))

    def infer(self, request: HttpRequest) -> HandlerResult:
        name, version = request.match_info["model"], request.match_info.get("version")
        return self._score(
            self._model_label(name),
            request,
            lambda body, length: self.dataplane.infer(name, body, version, length),
        )

    def infer_well(self, request: HttpRequest) -> HandlerResult:
        return self._score(WELL_ENDPOINT_LABEL, request, self.dataplane.infer_well)

    async def load_bundle(self, request: HttpRequest) -> HttpResponse:
        """Operator nudge: load a bundle beside the serving one and switch (idempotent)."""
        try:
            wanted = parse_load_request(request.body)
        except LoadRequestError as exc:
            raise BadRequestError(str(exc)) from exc
        try:
            bundle = await self.state.load(wanted["uri"], wanted["digest"])
        except BundleError as exc:
            current = self.state.current
            refusal = load_refusal(exc.reason, exc.message, current.info() if current else None)
            return json_response(refusal, status=exc.status)
        return json_response(load_answer(bundle.info(), self.state.last_load))

    def monitoring(self, request: HttpRequest) -> HttpResponse:
        return json_response(self.dataplane.monitoring())

    def metrics_endpoint(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, self.metrics.render(), self.metrics.content_type)

    # -- routes ---------------------------------------------------------------------------

    def routes(self) -> Router:
        router = Router()
        add = router.add
        add("GET", HEALTH_LIVE_PATH, self.live)
        add("GET", HEALTH_READY_PATH, self.ready)
        add("GET", SERVER_METADATA_PATH, self.server_metadata)
        add("GET", "/v2/models/{model}", self.model_metadata)
        add("GET", "/v2/models/{model}/ready", self.model_ready)
        add("GET", "/v2/models/{model}/versions/{version}", self.model_metadata)
        add("GET", "/v2/models/{model}/versions/{version}/ready", self.model_ready)
        add("POST", "/v2/models/{model}/infer", self.infer)
        add("POST", "/v2/models/{model}/versions/{version}/infer", self.infer)
        add("POST", "/v2/well/infer", self.infer_well)
        add("POST", BUNDLE_LOAD_PATH, self.load_bundle)
        add("GET", MONITORING_PATH, self.monitoring)
        add("GET", "/metrics", self.metrics_endpoint)
        return router
