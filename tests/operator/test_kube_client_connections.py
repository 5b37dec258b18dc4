"""The operator's API client keeps its TLS connections: a request reuses an idle connection
instead of paying a new handshake, and a long watch never takes a request's connection.

On a real kube-apiserver 26% of the operator's CPU samples were TLS handshakes (kubesim has no
TLS, so it never showed). The server here is a local aiohttp one over TLS, with certificates
from the real-cluster harness's PKI; `KubeClient.connections` counts what the client did.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import connector as aiohttp_connector
from aiohttp import web

from modelfleet.io.kube import ClientSettings, Connection, ConnectionCounts, KubeClient
from modelfleet_dev.real_cluster.pki import make_pki


@dataclass
class TlsServer:
    connection: Connection
    release_watches: asyncio.Event
    watches_open: asyncio.Condition
    watching: int = 0

    async def wait_watching(self, count: int) -> None:
        async with self.watches_open:
            await self.watches_open.wait_for(lambda: self.watching >= count)


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    pki = make_pki(tmp_path / "pki", ["127.0.0.1"])
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(pki.serving.cert, pki.serving.key)
    server: TlsServer | None = None
    release = asyncio.Event()

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"major": "1"})

    async def watch(request: web.Request) -> web.StreamResponse:
        stream = web.StreamResponse()
        await stream.prepare(request)
        assert server is not None
        async with server.watches_open:
            server.watching += 1
            server.watches_open.notify_all()
        await release.wait()  # a watch stays open for minutes
        return stream

    app = web.Application()
    app.router.add_get("/version", version)
    app.router.add_get("/api/v1/pods", watch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=serving)
    await site.start()
    port = runner.addresses[0][1]
    connection = Connection(
        host=f"https://127.0.0.1:{port}",
        headers={},
        verify=str(pki.ca_cert),
        cert=(str(pki.admin.cert), str(pki.admin.key)),
    )
    server = TlsServer(connection, release, asyncio.Condition())
    yield server
    release.set()
    await runner.cleanup()


async def test_a_connection_idle_for_half_a_minute_is_reused_not_handshaken_again(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between two waves of a roll-out the operator can be idle for tens of seconds; the
    # apiserver keeps an idle connection 90 s. The pool's clock is moved rather than slept on.
    client = KubeClient(tls_server.connection, ClientSettings(qps=0))
    await client.get("/version", "version")
    later = time.monotonic() + 30.0
    monkeypatch.setattr(aiohttp_connector, "monotonic", lambda: later)
    await client.get("/version", "version")
    await client.close()
    assert client.connections == ConnectionCounts(new=1, reused=1)


async def test_open_watches_leave_every_request_slot_its_connection(
    tls_server: TlsServer,
) -> None:
    client = KubeClient(tls_server.connection, ClientSettings(qps=0, concurrency=2))

    async def follow() -> None:
        async for _event in client.watch("/api/v1/pods", "pods", resource_version="1"):
            pass

    watches = [asyncio.create_task(follow()) for _ in range(2)]
    await tls_server.wait_watching(2)
    answers = await asyncio.wait_for(
        asyncio.gather(*(client.get("/version", "version") for _ in range(4))), timeout=10
    )
    assert answers == [{"major": "1"}] * 4
    tls_server.release_watches.set()
    await asyncio.gather(*watches)
    await client.close()
