"""The runtime's HTTP/1.1 transport (model_runtime/http_server.py) on a real loopback socket.

What a client of any HTTP library relies on: keep-alive and pipelining answered in order (a
handler that waits included), bodies by length or chunks however the bytes are split, the body
and head limits, malformed requests, `Expect: 100-continue`, `Connection: close`, HTTP/1.0,
idle connections closed, and the in-flight count the SIGTERM drain waits on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_runtime.http_server import (
    MAX_HEAD_BYTES,
    HttpRequest,
    HttpResponse,
    HttpServer,
    MethodNotAllowed,
    RouteNotFound,
    Router,
)

LIMIT = 1000


def error(status: int, message: str) -> HttpResponse:
    return HttpResponse(status, message.encode(), "text/plain")


class EchoApp:
    """`/echo` answers the body at once; `/wait` answers once `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    def handle(self, request: HttpRequest) -> HttpResponse | asyncio.Future[HttpResponse]:
        if request.path == "/wait":
            return asyncio.ensure_future(self._wait(request))
        return HttpResponse(200, f"{request.method} {request.path} ".encode() + request.body, "x/y")

    async def _wait(self, request: HttpRequest) -> HttpResponse:
        await self.release.wait()
        return HttpResponse(200, b"waited " + request.body, "x/y")


@dataclass
class Served:
    app: EchoApp
    http: HttpServer
    port: int

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    app = EchoApp()
    http = HttpServer(app.handle, error, max_body_bytes=LIMIT, keepalive_timeout=0.3)
    await http.start("127.0.0.1", 0)
    yield Served(app, http, http.addresses[0][1])
    await http.close()


def post(path: str, body: bytes, *, close: bool = False) -> bytes:
    connection = b"connection: close\r\n" if close else b""
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n".encode()
    return head + connection + b"\r\n" + body


def chunked(path: str, chunks: list[bytes], *, close: bool = False) -> bytes:
    connection = b"connection: close\r\n" if close else b""
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n".encode()
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"
    return head + connection + b"\r\n" + encoded


def split_responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """(status, headers, body) of each response in a byte stream, by Content-Length."""
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers.get("content-length", "0"))
        found.append((status, headers, rest[:length]))
        raw = rest[length:]
    return found


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes the connection."""
    return await asyncio.wait_for(reader.read(), timeout=10)


async def test_pipelined_requests_are_answered_in_order_even_behind_one_that_waits(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    writer.write(post("/echo", b"1") + post("/wait", b"2") + post("/echo", b"3", close=True))
    await writer.drain()
    # Nothing of the third may overtake the second, which is still waiting.
    await asyncio.wait_for(reader.readuntil(b"POST /echo 1"), timeout=10)
    served.app.release.set()
    rest = split_responses(await read_all(reader))
    assert [body for _, _, body in rest] == [b"waited 2", b"POST /echo 3"]
    assert rest[-1][1]["connection"] == "close"
    writer.close()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    bodies=st.lists(st.binary(max_size=40), min_size=1, max_size=5),
    use_chunks=st.lists(st.booleans(), min_size=5, max_size=5),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=8),
)
async def test_any_split_of_the_byte_stream_gives_the_same_answers(
    served: Served, bodies: list[bytes], use_chunks: list[bool], cuts: list[int]
) -> None:
    stream = b""
    for index, body in enumerate(bodies):
        last = index == len(bodies) - 1
        if use_chunks[index]:
            stream += chunked("/echo", [body[:7], body[7:]], close=last)
        else:
            stream += post("/echo", body, close=last)
    reader, writer = await served.connect()
    start = 0
    for cut in sorted(set(cuts)):
        writer.write(stream[start:cut])
        await writer.drain()
        start = max(start, cut)
    writer.write(stream[start:])
    answers = split_responses(await read_all(reader))
    assert [(status, body) for status, _, body in answers] == [
        (200, b"POST /echo " + body) for body in bodies
    ]
    writer.close()


async def test_keep_alive_serves_several_requests_and_http_1_0_closes_unless_asked(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    for body in (b"a", b"b"):
        writer.write(post("/echo", body))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert b"connection: close" not in head
        assert await reader.readexactly(len(b"POST /echo ") + 1) == b"POST /echo " + body
    writer.write(b"GET /old HTTP/1.0\r\n\r\n")
    ((status, headers, body),) = split_responses(await read_all(reader))
    assert (status, body, headers["connection"]) == (200, b"GET /old ", "close")
    writer.close()


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(f"POST /echo HTTP/1.1\r\ncontent-length: {LIMIT + 1}\r\n\r\n".encode())
    ((status, headers, body),) = split_responses(await read_all(reader))
    assert status == 413 and headers["connection"] == "close"
    assert body == f"request body is {LIMIT + 1} bytes, over the limit of {LIMIT}".encode()
    writer.close()


async def test_a_chunked_body_over_the_limit_is_refused_while_it_is_read(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(chunked("/echo", [b"x" * 600, b"y" * 600]))
    ((status, _, body),) = split_responses(await read_all(reader))
    assert (status, body) == (413, f"request body is over the limit of {LIMIT} bytes".encode())
    writer.close()


async def test_a_head_over_the_limit_and_a_malformed_request_are_refused_and_closed(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    writer.write(b"GET /echo HTTP/1.1\r\nx-big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n")
    ((status, _, _),) = split_responses(await read_all(reader))
    assert status == 431
    writer.close()
    reader, writer = await served.connect()
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    ((status, _, body),) = split_responses(await read_all(reader))
    assert status == 400 and body.startswith(b"malformed HTTP request")
    writer.close()


async def test_expect_100_continue_gets_its_interim_answer_before_the_body_is_sent(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    writer.write(b"POST /echo HTTP/1.1\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n")
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"ok")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    assert head.startswith(b"HTTP/1.1 200 OK")
    writer.close()


async def test_a_request_is_in_flight_from_its_head_to_its_answer_or_its_hang_up(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    request = post("/echo", b"0123456789")
    writer.write(request[:-5])
    await writer.drain()
    await asyncio.wait_for(until(lambda: served.http.in_flight == 1), timeout=10)
    writer.write(request[-5:])
    await asyncio.wait_for(reader.readuntil(b"0123456789"), timeout=10)
    assert served.http.in_flight == 0
    writer.write(request[:-5])  # and a client that hangs up gives its count back
    await writer.drain()
    await asyncio.wait_for(until(lambda: served.http.in_flight == 1), timeout=10)
    writer.close()
    await asyncio.wait_for(until(lambda: served.http.in_flight == 0), timeout=10)


async def test_an_idle_keep_alive_connection_is_closed(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(post("/echo", b"x"))
    await asyncio.wait_for(reader.readuntil(b"POST /echo x"), timeout=10)
    # keepalive_timeout is 0.3 s: the server closes, the read sees the end of the stream.
    assert await asyncio.wait_for(reader.read(), timeout=10) == b""
    writer.close()


async def until(condition: object) -> None:
    """Poll a condition on the loop (the state changes in this loop's own callbacks)."""
    assert callable(condition)
    while not condition():
        await asyncio.sleep(0.005)


def test_the_router_remembers_matches_without_changing_them_and_within_its_bound() -> None:
    def infer(request: HttpRequest) -> HttpResponse:
        return error(200, "infer")

    router = Router()
    router.add("POST", "/v2/models/{model}/infer", infer)
    router.add("GET", "/v2/models/{model}/ready", lambda request: error(200, "ready"))
    for _ in range(2):  # the second time from memory, the same answer
        handler, match_info = router.resolve("POST", "/v2/models/a%2Fb/infer")
        assert handler is infer and match_info == {"model": "a/b"}
        match_info["model"] = "changed by a handler"
    with pytest.raises(MethodNotAllowed) as refused:
        router.resolve("GET", "/v2/models/x/infer")
    assert refused.value.allowed == ("POST",)
    with pytest.raises(RouteNotFound):
        router.resolve("POST", "/v2/models/x/infer/")
    for index in range(Router.MATCH_CACHE_SIZE + 10):
        router.resolve("POST", f"/v2/models/probe-{index}/infer")
    assert len(router._matched) == Router.MATCH_CACHE_SIZE
    assert router.resolve("POST", "/v2/models/late/infer")[1] == {"model": "late"}
