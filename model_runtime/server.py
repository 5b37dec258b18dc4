"""The HTTP adapter: aiohttp routes that turn requests into DataPlane calls and back.

Chosen by measurement against starlette on uvicorn (docs/benchmarks.md, Runtime): the same
requests/s on this machine within noise, and aiohttp is already a dependency (kopf brings it),
so the runtime image gains nothing. No logic lives here beyond reading bodies, mapping errors to
`{"error": ...}` responses, counting in-flight requests (for the SIGTERM drain) and metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from model_runtime.bundle_state import BundleState
from model_runtime.dataplane import DataPlane, InferResponse, RequestLimits
from model_runtime.errors import (
    BadRequestError,
    BundleError,
    ModelRuntimeError,
    PayloadTooLargeError,
)
from model_runtime.metrics import UNKNOWN_MODEL_LABEL, WELL_ENDPOINT_LABEL, RuntimeMetrics
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

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BINARY_HEADER = "Inference-Header-Content-Length"
# Bodies above this (about 1,000 rows) are scored in a worker thread.
_INLINE_BODY_BYTES = 64 * 1024


def _binary_header_length(request: web.Request) -> int | None:
    """The binary tensor extension: the JSON part's length, when tensors follow it as bytes."""
    raw = request.headers.get(BINARY_HEADER)
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise BadRequestError(f"{BINARY_HEADER} must be a byte count, got {raw[:20]!r}")
    return int(raw)


def json_response(obj: Any, status: int = 200) -> web.Response:
    # orjson: a third of the standard library's time on a 100-row response, same numbers (both
    # write the shortest repr of each double).
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def error_response(status: int, message: str, **extra: Any) -> web.Response:
    return json_response({"error": message, **extra}, status=status)


class RuntimeServer:
    """Holds the state a running server shares between handlers."""

    def __init__(
        self, state: BundleState, metrics: RuntimeMetrics, limits: RequestLimits | None = None
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.limits = limits or RequestLimits()
        self.dataplane = DataPlane(state, self.limits)
        self.in_flight = 0
        # Read at scrape time from the count kept here, rather than a locked inc/dec per request.
        metrics.in_flight.set_function(lambda: self.in_flight)

    # -- plumbing -------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.in_flight += 1
        try:
            return await handler(request)
        except ModelRuntimeError as exc:
            return error_response(exc.status, exc.message)
        except web.HTTPException as exc:  # unknown route, wrong method, body over client_max_size
            message = (
                exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
            )
            if exc.status == 404:
                message = f"no route {request.method} {request.path}; see /v2 for the API"
            elif exc.status == 405:
                message = f"method {request.method} not allowed on {request.path}"
            return error_response(exc.status, message or exc.reason)
        except Exception as exc:
            log.exception("internal error on %s %s", request.method, request.path)
            return error_response(500, f"internal error: {type(exc).__name__}")
        finally:
            self.in_flight -= 1

    async def _body(self, request: web.Request) -> bytes:
        declared = request.content_length
        if declared is not None and declared > self.limits.max_body_bytes:
            raise PayloadTooLargeError(
                f"request body is {declared} bytes, over the limit of {self.limits.max_body_bytes}"
            )
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            raise PayloadTooLargeError(
                f"request body is over the limit of {self.limits.max_body_bytes} bytes"
            ) from exc

    def _model_label(self, name: str) -> str:
        bundle = self.state.current
        return name if bundle is not None and name in bundle.sessions else UNKNOWN_MODEL_LABEL

    async def _score(
        self, label: str, request: web.Request, call: Callable[[bytes, int | None], InferResponse]
    ) -> web.Response:
        """Read the body, score, and record the outcome under `label` whatever it is."""
        started = time.perf_counter()
        status = 500
        try:
            body = await self._body(request)
            header_length = _binary_header_length(request)
            if len(body) > _INLINE_BODY_BYTES:
                # Big batches take milliseconds or more: score them off the event loop (onnxruntime
                # releases the GIL) so health probes and small requests are not held up.
                result = await asyncio.to_thread(call, body, header_length)
            else:
                result = call(body, header_length)  # a thread hop costs more than a few rows
            status = 200
            if not result.blobs:
                return json_response(result.body)
            header = orjson.dumps(result.body)
            return web.Response(
                body=b"".join((header, *result.blobs)),
                content_type="application/octet-stream",
                headers={BINARY_HEADER: str(len(header))},
            )
        except ModelRuntimeError as exc:
            status = exc.status
            raise
        finally:
            self.metrics.observe_request(label, status, time.perf_counter() - started)

    # -- handlers -------------------------------------------------------------------------

    async def live(self, request: web.Request) -> web.Response:
        return json_response({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        health = self.dataplane.health()
        return json_response(health, status=200 if health["ready"] else 503)

    async def server_metadata(self, request: web.Request) -> web.Response:
        return json_response(self.dataplane.server_metadata())

    async def model_metadata(self, request: web.Request) -> web.Response:
        info = request.match_info
        return json_response(self.dataplane.model_metadata(info["model"], info.get("version")))

    async def model_ready(self, request: web.Request) -> web.Response:
        info = request.match_info
        return json_response(self.dataplane.model_ready(info["model"], info.get("version")))

    async def infer(self, request: web.Request) -> web.Response:
        name, version = request.match_info["model"], request.match_info.get("version")
        return await self._score(
            self._model_label(name),
            request,
            lambda body, length: self.dataplane.infer(name, body, version, length),
        )

    async def infer_well(self, request: web.Request) -> web.Response:
        return await self._score(WELL_ENDPOINT_LABEL, request, self.dataplane.infer_well)

    async def load_bundle(self, request: web.Request) -> web.Response:
        """Operator nudge: load a bundle beside the serving one and switch (idempotent)."""
        body = await self._body(request)
        try:
            wanted = parse_load_request(body)
        except LoadRequestError as exc:
            raise BadRequestError(str(exc)) from exc
        try:
            bundle = await self.state.load(wanted["uri"], wanted["digest"])
        except BundleError as exc:
            current = self.state.current
            refusal = load_refusal(exc.reason, exc.message, current.info() if current else None)
            return json_response(refusal, status=exc.status)
        return json_response(load_answer(bundle.info(), self.state.last_load))

    async def metrics_endpoint(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": self.metrics.content_type}
        )

    # -- app ------------------------------------------------------------------------------

    def app(self) -> web.Application:
        # aiohttp enforces client_max_size on chunked bodies too; the check in _body covers
        # Content-Length up front so oversized bodies are refused before being read.
        app = web.Application(
            middlewares=[self._middleware], client_max_size=self.limits.max_body_bytes
        )
        add = app.router.add_route
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
        add("GET", "/metrics", self.metrics_endpoint)
        return app
