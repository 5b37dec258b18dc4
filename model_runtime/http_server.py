"""The runtime's HTTP/1.1 server: httptools parses, and a request is answered where it completes.

Why not a framework (docs/benchmarks.md, Runtime; `bench/runtime_throughput.py
--transport-table-only`): the same hello handler under wrk, side by side, did 463-762 requests/s
at 8 connections on aiohttp, 837-1,059 on uvicorn (raw ASGI, httptools) and 1,514-2,057 here,
at 39, 32 and 26 MiB RSS (on a machine loaded 20x over; p50 at one connection 0.26-0.40 ms,
0.20 and 0.06-0.18 in a quieter scratch run). A
well's requests are small and synchronous (parse, one onnxruntime run, dump), so the cheapest
answer is written from `data_received` itself: no task, no loop iteration, no framework objects.
A handler that must wait (a bundle load, a big batch scored in a thread) returns an awaitable
instead, and its connection answers it when it is done.

It knows nothing of inference: the application gives one `handle` callable and the rendering of
the errors this layer detects. What it does, and nothing more:
- HTTP/1.1 and 1.0, bodies by Content-Length or chunked (httptools decodes them);
- keep-alive (HTTP/1.1 by default, 1.0 when asked) and pipelining: answers in request order;
- `Expect: 100-continue`;
- a body limit: 413 before reading when the declared length is over it, while reading when
  chunked, then the connection closes (the rest of the body is not read);
- a limit on the request head (431), malformed requests (400), both closing the connection;
- idle keep-alive connections closed after `keepalive_timeout`;
- back-pressure: a connection whose client does not read its answers stops being read.
No TLS, upgrades or chunked responses: the runtime needs none of them.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

import httptools

log = logging.getLogger(__name__)

#: Request line and headers together; aiohttp's default limits are 8 KiB per line and field.
MAX_HEAD_BYTES = 64 * 1024


@dataclass(slots=True)
class HttpRequest:
    """One complete request. Header names are lower-case; `match_info` is set by the router."""

    method: str
    path: str  # percent-decoded, without the query
    raw_path: str  # as sent: the router matches it, so an escaped "/" stays in its segment
    headers: dict[str, str]
    body: bytes
    match_info: dict[str, str] = field(default_factory=dict)


# Not frozen: built once per request, and a frozen dataclass's __init__ costs 0.3 us more.
@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


HandlerResult = HttpResponse | Awaitable[HttpResponse]
Handler = Callable[[HttpRequest], HandlerResult]
ErrorRenderer = Callable[[int, str], HttpResponse]


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over MAX_HEAD_BYTES."""


class RouteNotFound(Exception):
    """No route has this path (404)."""


class MethodNotAllowed(Exception):
    """The path exists, not with this method (405); `allowed` names the methods it has."""

    def __init__(self, allowed: Iterable[str]) -> None:
        super().__init__()
        self.allowed = tuple(sorted(allowed))


class Router:
    """Paths as segments, `{name}` matching one non-empty segment (percent-decoded).

    Static paths are one dict lookup; a dynamic path is compared with the patterns of its
    segment count, once: its match is remembered (a well's paths are its few model names), up to
    MATCH_CACHE_SIZE paths, so a client probing random names cannot grow it without bound."""

    MATCH_CACHE_SIZE = 4096

    def __init__(self) -> None:
        self._static: dict[str, dict[str, Handler]] = {}
        self._dynamic: dict[int, list[tuple[tuple[str, ...], dict[str, Handler]]]] = {}
        self._matched: dict[str, tuple[dict[str, Handler], dict[str, str]]] = {}

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        segments = tuple(pattern.split("/")[1:])
        if not any(s.startswith("{") for s in segments):
            self._static.setdefault(pattern, {})[method] = handler
            return
        candidates = self._dynamic.setdefault(len(segments), [])
        for known, handlers in candidates:
            if known == segments:
                handlers[method] = handler
                return
        candidates.append((segments, {method: handler}))

    def resolve(self, method: str, raw_path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and the path's parameters; RouteNotFound or MethodNotAllowed."""
        handlers = self._static.get(raw_path)
        match_info: dict[str, str] = {}
        if handlers is None:
            matched = self._matched.get(raw_path)
            if matched is None:
                matched = self._match_dynamic(raw_path)
            handlers, match_info = matched
        handler = handlers.get(method)
        if handler is None:
            raise MethodNotAllowed(handlers)
        return handler, dict(match_info)  # a copy: the remembered one is shared

    def _match_dynamic(self, raw_path: str) -> tuple[dict[str, Handler], dict[str, str]]:
        parts = raw_path.split("/")[1:]
        for segments, handlers in self._dynamic.get(len(parts), ()):
            found = _match(segments, parts)
            if found is not None:
                if len(self._matched) < self.MATCH_CACHE_SIZE:
                    self._matched[raw_path] = (handlers, found)
                return handlers, found
        raise RouteNotFound()


def _match(segments: tuple[str, ...], parts: list[str]) -> dict[str, str] | None:
    found: dict[str, str] = {}
    for segment, part in zip(segments, parts, strict=True):
        if segment.startswith("{"):
            if not part:
                return None
            found[segment[1:-1]] = unquote(part)
        elif segment != part:
            return None
    return found


_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in HTTPStatus
}


def _status_line(status: int) -> bytes:
    return _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n".encode()


class HttpServer:
    """Listens, keeps the connections, counts requests in flight (head read, not yet answered).

    `handle` must answer every request (its own errors included); this layer renders only what
    it detects itself (malformed, too large) through `render_error`.
    """

    def __init__(
        self,
        handle: Handler,
        render_error: ErrorRenderer,
        *,
        max_body_bytes: int,
        keepalive_timeout: float = 75.0,
    ) -> None:
        self.handle = handle
        self.render_error = render_error
        self.max_body_bytes = max_body_bytes
        self.keepalive_timeout = keepalive_timeout
        self.in_flight = 0
        self.connections: set[HttpConnection] = set()
        self._listener: asyncio.AbstractServer | None = None
        self._date_second = -1
        self._date_header = b""

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            lambda: HttpConnection(self), host, port, reuse_address=True
        )

    @property
    def addresses(self) -> list[tuple[str, int]]:
        sockets: Iterable[Any] = getattr(self._listener, "sockets", None) or ()
        return [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in sockets]

    def stop_listening(self) -> None:
        """New connections are refused; open ones keep being answered."""
        if self._listener is not None:
            self._listener.close()

    async def close(self) -> None:
        """Stop listening and close every connection (answers not yet written are dropped)."""
        self.stop_listening()
        for connection in list(self.connections):
            connection.close()
        if self._listener is not None:
            await self._listener.wait_closed()

    def date_header(self) -> bytes:
        """`Date:` (RFC 9110 asks an origin server with a clock for it), formatted once a second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date_header = b"date: " + email.utils.formatdate(now, usegmt=True).encode()
        return self._date_header


class HttpConnection(asyncio.Protocol):
    """One TCP connection: parses requests, answers them in order, one handler at a time."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        # What to answer next, in order: a request, or the answer to one refused while read; and
        # whether the connection stays open after it.
        self.queue: deque[tuple[HttpRequest | HttpResponse, bool]] = deque()
        self.task: asyncio.Future[HttpResponse] | None = None
        self.task_keep_alive = True
        # Requests counted in server.in_flight and not answered yet (given back if we are cut off).
        self.counted = 0
        self.closing = False  # no more requests are read; close once the queue is answered
        self.reading_paused = False
        self.writing_paused = False
        self.last_active = self.loop.time()
        self.idle_timer: asyncio.TimerHandle | None = None
        self._reset_message()

    def _reset_message(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.in_head = True
        self.head_bytes = 0
        self.refused = False  # this message was already answered (too large): ignore its body

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        self.idle_timer = self.loop.call_later(self.server.keepalive_timeout, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.server.in_flight -= self.counted
        self.counted = 0
        self.queue.clear()
        self.closing = True
        if self.idle_timer is not None:
            self.idle_timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_active = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if self.head_bytes > MAX_HEAD_BYTES:  # raised by on_url or on_header
                self._refuse(431, f"request head is over {MAX_HEAD_BYTES} bytes")
            else:
                raise
        except httptools.HttpParserUpgrade:
            # No upgrades: what was asked before is answered, then the connection closes.
            self.closing = True
            self._pause_reading()
            self._dispatch()
        except httptools.HttpParserError as exc:
            if not self.closing:
                self._refuse(400, f"malformed HTTP request: {exc}")

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.task is None:
            self._resume_reading()

    # -- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset_message()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self.headers.get(key)
        self.headers[key] = text if previous is None else f"{previous}, {text}"

    def _count_head(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge()  # stops the parser: feed_data raises HttpParserCallbackError

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.server.in_flight += 1
        self.counted += 1
        declared = self.headers.get("content-length")
        limit = self.server.max_body_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self.refused = True
            self._answer_last(
                self.server.render_error(
                    413, f"request body is {declared} bytes, over the limit of {limit}"
                )
            )
            return
        if self.headers.get("expect", "").lower() == "100-continue" and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        if self.refused:
            return
        self.body_bytes += len(chunk)
        if self.body_bytes > self.server.max_body_bytes:
            self.refused = True
            self._answer_last(
                self.server.render_error(
                    413, f"request body is over the limit of {self.server.max_body_bytes} bytes"
                )
            )
            return
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        self.in_head, self.head_bytes = True, 0  # what follows is the next request's head
        if self.refused or self.closing:
            return
        raw_path = httptools.parse_url(self.url).path.decode("latin-1")
        request = HttpRequest(
            method=self.parser.get_method().decode("ascii"),
            path=unquote(raw_path),
            raw_path=raw_path,
            headers=self.headers,
            body=self.body[0] if len(self.body) == 1 else b"".join(self.body),
        )
        self.queue.append((request, self.parser.should_keep_alive()))
        self._dispatch()

    # -- answering --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Answer queued requests in order; stop at one that must wait, resume when it is done."""
        while self.queue and self.task is None and self._writable():
            request, keep_alive = self.queue.popleft()
            if isinstance(request, HttpResponse):  # refused while it was read
                self._write(request, keep_alive)
                continue
            try:
                result = self.server.handle(request)
            except Exception as exc:  # handle() maps its own errors: this is a bug, answer 500
                log.exception("unhandled error on %s %s", request.method, request.path)
                result = self.server.render_error(500, f"internal error: {type(exc).__name__}")
            if isinstance(result, HttpResponse):
                self._write(result, keep_alive)
                continue
            self.task = asyncio.ensure_future(result)
            self.task_keep_alive = keep_alive
            self.task.add_done_callback(self._task_done)
            self._pause_reading()
            return
        if self.closing and not self.queue and self.task is None and self._writable():
            assert self.transport is not None
            self.transport.close()

    def _writable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def _task_done(self, task: asyncio.Future[HttpResponse]) -> None:
        self.task = None
        if task.cancelled():
            response = self.server.render_error(503, "request cancelled")
        elif (exc := task.exception()) is not None:
            log.error("unhandled error in a request", exc_info=exc)
            response = self.server.render_error(500, f"internal error: {type(exc).__name__}")
        else:
            response = task.result()
        if not self._writable():
            return
        self._write(response, self.task_keep_alive)
        if not self.writing_paused:
            self._resume_reading()
        self._dispatch()

    def _write(self, response: HttpResponse, keep_alive: bool) -> None:
        assert self.transport is not None
        head = [
            _status_line(response.status),
            b"content-type: ",
            response.content_type.encode("latin-1"),
            b"\r\ncontent-length: ",
            str(len(response.body)).encode(),
            b"\r\n",
            self.server.date_header(),
            b"\r\n",
        ]
        for name, value in response.headers:
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        if not keep_alive:
            head.append(b"connection: close\r\n")
            self.closing = True
            self.queue.clear()  # pipelined after a "close": not answered, as RFC 9112 says
        head.append(b"\r\n")
        head.append(response.body)
        self.transport.write(b"".join(head))  # one buffer: one send, no Nagle wait
        if self.counted > 0:
            self.counted -= 1
            self.server.in_flight -= 1
        if self.closing and not self.queue and self.task is None:
            self.transport.close()

    def _answer_last(self, response: HttpResponse) -> None:
        """Answer the message being read (after those before it), then close: its body is
        not read, so nothing after it on this connection can be parsed."""
        self.closing = True
        self._pause_reading()
        self.queue.append((response, False))
        self._dispatch()

    def _refuse(self, status: int, message: str) -> None:
        """A request we cannot parse: count it if its head was not, answer, close."""
        if self.in_head:
            self.server.in_flight += 1
            self.counted += 1
        self._answer_last(self.server.render_error(status, message))

    # -- flow and idleness ------------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused and not self.closing and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    def _check_idle(self) -> None:
        """One timer per connection, re-armed for the time left (not one per request)."""
        timeout = self.server.keepalive_timeout
        idle = self.loop.time() - self.last_active
        busy = self.task is not None or bool(self.queue) or not self.in_head or self.head_bytes > 0
        if not busy and idle >= timeout:
            self.close()
            return
        self.idle_timer = self.loop.call_later(max(timeout - idle, 1.0), self._check_idle)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
