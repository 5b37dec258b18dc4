"""The responder's CPU per pod start-up and per runtime request, measured without a cluster.

Why this exists: at 2,000 wells the real cluster's pods waited on the responder (ledger item 9
of cluster/README.md); this puts a number on its costs. Run as root (it makes a network
namespace ``mf-measure-<pid>`` where 10.244.0.0/16 is local, as in the harness's pod network,
and deletes it at the end):

    .venv/bin/python -m tests.real_cluster.measure_responder --pods 500 --requests 5000

What runs where: the Responder (this process, on the host) binds every pod's IP in that
namespace as the real one does (``NetnsBinder``) and answers through the real aiohttp server;
pods are fed to ``observe`` as kwok shows them once Running (an IP, a readinessProbe, a bundle
annotated by URI and digest); the apiserver is an in-process fake that accepts every pods/status
patch; the model store (``python -m http.server`` on the host's loopback) and the HTTP client
(inside the namespace, keep-alive connections to each pod IP as the apiserver's pods/proxy
holds them) are child processes, so their CPU is not counted. Figures are this process's user +
system CPU (every thread) over each phase, first with an HTTP client made per bundle load (the
runtime's way, the baseline), then with the simulated runtime's client per worker thread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
from aiohttp import web

from modelfleet_dev.real_cluster.netns import POD_GATEWAY, NetnsBinder
from modelfleet_dev.real_cluster.responder import WELL_LABEL, Responder
from modelfleet_dev.simulated_runtime import ManifestCache
from runtime_contract import (
    BUNDLE_DIGEST_ANNOTATION,
    BUNDLE_LOAD_PATH,
    BUNDLE_URI_ANNOTATION,
    HEALTH_READY_PATH,
    MANIFEST_FILE,
    SERVER_METADATA_PATH,
    json_digest,
)

PORT: Final = 8000
MODEL_BYTES: Final = 16 * 1024

# The client child: GET /v2 (the operator's confirm) and POST bundle/load (its nudge), spread
# over every pod IP with `concurrency` requests in flight. Prints its wall seconds, the answers
# that were not 200, and the pods whose GET /v2 did not name their own bundle.
_CLIENT = r"""
import asyncio, json, sys, time
import aiohttp
targets = json.loads(sys.stdin.read())
requests, concurrency, load_path, metadata_path = (
    int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
async def main():
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=4)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait((i % 2, targets[i % len(targets)]))
        not_200, wrong = 0, set()
        async def worker():
            nonlocal not_200
            while not queue.empty():
                is_load, (ip, uri, digest) = queue.get_nowait()
                if is_load:
                    resp = await session.post(f"http://{ip}:8000{load_path}",
                                              json={"uri": uri, "digest": digest})
                else:
                    resp = await session.get(f"http://{ip}:8000{metadata_path}")
                body = await resp.json()
                not_200 += resp.status != 200
                bundle = body.get("bundle") or {}
                if (bundle.get("uri"), bundle.get("digest")) != (uri, digest):
                    wrong.add(ip)
        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        print(json.dumps({"wall": time.monotonic() - start, "not_200": not_200,
                          "wrong": len(wrong)}))
asyncio.run(main())
"""


@contextlib.contextmanager
def pod_network(netns: str) -> Iterator[None]:
    """A named network namespace where 10.244.0.0/16 is local (the harness's, without the veth
    pair: the responder's sockets live there, the process and the model store stay on the
    host, the client runs inside)."""
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        for command in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "addr", "add", f"{POD_GATEWAY}/16", "dev", "lo"],
        ):
            subprocess.run(["ip", "netns", "exec", netns, *command], check=True)
        yield
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=False)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _make_bundles(root: Path, wells: list[str]) -> dict[str, str]:
    """One bundle directory per well (a manifest and one model file); well -> digest."""
    digests = {}
    for index, well in enumerate(wells):
        model = hashlib.sha256(well.encode()).digest() * (MODEL_BYTES // 32)
        manifest = {
            "well": well,
            "version": "v1",
            "models": [
                {
                    "name": f"model-{index}",
                    "file": "model.onnx",
                    "sha256": hashlib.sha256(model).hexdigest(),
                }
            ],
        }
        (root / well).mkdir()
        (root / well / "model.onnx").write_bytes(model)
        (root / well / MANIFEST_FILE).write_text(json.dumps(manifest))
        digests[well] = json_digest(manifest)
    return digests


def _pod(index: int, well: str, uri: str, digest: str) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "default",
            "name": f"pod-{index}",
            "uid": f"uid-{index}",
            "labels": {WELL_LABEL: well},
            "annotations": {BUNDLE_URI_ANNOTATION: uri, BUNDLE_DIGEST_ANNOTATION: digest},
        },
        "spec": {
            "containers": [
                {
                    "name": "runtime",
                    "ports": [{"containerPort": PORT}],
                    "readinessProbe": {"httpGet": {"path": HEALTH_READY_PATH, "port": PORT}},
                }
            ]
        },
        "status": {
            "podIP": f"10.244.{1 + index // 250}.{1 + index % 250}",
            "containerStatuses": [{"name": "runtime", "ready": False}],
        },
    }


class ClientPerLoad(ManifestCache):
    """The baseline: an HTTP client made for every bundle load, as the real runtime does (and
    the simulated one did before it kept one per worker thread)."""

    def _http_client(self) -> httpx.Client:
        client = httpx.Client(
            timeout=httpx.Timeout(self.limits.http_timeout_seconds),
            follow_redirects=True,
            trust_env=False,
        )
        with self._http_clients_lock:
            self._http_clients.append(client)  # closed by close(), with the others
        return client


async def _store_up(port: int) -> None:
    for _ in range(200):  # it binds within a second or two
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise SystemExit(f"the model store did not listen on 127.0.0.1:{port}")


async def _measure(
    netns: str,
    manifests: ManifestCache,
    objects: list[dict[str, Any]],
    requests: int,
    concurrency: int,
) -> dict[str, float]:
    """One responder's start-up of every pod in `objects` (until every one is patched ready),
    then `requests` runtime requests to them."""
    pods = len(objects)
    patched: set[str] = set()
    all_ready = asyncio.Event()

    def apiserver(request: httpx.Request) -> httpx.Response:
        patched.add(request.url.path)
        if len(patched) == pods:
            all_ready.set()
        return httpx.Response(200, json={})

    client = httpx.AsyncClient(
        base_url="https://apiserver", transport=httpx.MockTransport(apiserver)
    )
    app = web.Application()
    runner = web.AppRunner(app, access_log=None)

    binder = NetnsBinder(netns)

    async def listen(ip: str, port: int) -> asyncio.AbstractServer:  # as the responder's main
        sock = await binder.listen(ip, port)
        assert runner.server is not None
        return await asyncio.get_running_loop().create_server(runner.server, sock=sock)

    responder = Responder(client, listen)
    responder.manifests = manifests
    app.router.add_route("*", "/{tail:.*}", responder.handle)
    await runner.setup()
    cpu, wall = _cpu(), time.monotonic()
    for obj in objects:
        responder.observe(obj)
    await all_ready.wait()
    start_cpu, start_wall = _cpu() - cpu, time.monotonic() - wall

    targets = [
        (
            o["status"]["podIP"],
            o["metadata"]["annotations"][BUNDLE_URI_ANNOTATION],
            o["metadata"]["annotations"][BUNDLE_DIGEST_ANNOTATION],
        )
        for o in objects
    ]
    cpu = _cpu()
    child = await asyncio.create_subprocess_exec(
        *("ip", "netns", "exec", netns, sys.executable),
        "-c",
        _CLIENT,
        str(requests),
        str(concurrency),
        BUNDLE_LOAD_PATH,
        SERVER_METADATA_PATH,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate(json.dumps(targets).encode())
    request_cpu = _cpu() - cpu
    result = json.loads(out)
    for pod in responder.by_uid.values():
        for server in pod.servers:
            server.close()
    binder.close()
    await runner.cleanup()
    await manifests.close()
    await client.aclose()
    return {
        "start_wall_s": round(start_wall, 3),
        "start_cpu_s": round(start_cpu, 3),
        "start_cpu_ms_per_pod": round(1000 * start_cpu / pods, 3),
        "requests_not_200": result["not_200"],
        "pods_answering_another_bundle": result["wrong"],
        "requests_wall_s": round(result["wall"], 3),
        "request_cpu_s": round(request_cpu, 3),
        "request_cpu_ms_each": round(1000 * request_cpu / requests, 3),
    }


async def _compare(
    netns: str, pods: int, requests: int, concurrency: int, baseline: bool
) -> dict[str, Any]:
    wells = [f"well-{i:05d}" for i in range(pods)]
    figures: dict[str, Any] = {"pods": pods, "requests": requests, "concurrency": concurrency}
    with tempfile.TemporaryDirectory() as tmp:
        digests = _make_bundles(Path(tmp), wells)
        store_port = _free_port()
        serve = ["http.server", "--bind", "127.0.0.1", "--directory", tmp, str(store_port)]
        store = subprocess.Popen(
            [sys.executable, "-m", *serve], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            await _store_up(store_port)
            objects = [
                _pod(i, w, f"http://127.0.0.1:{store_port}/{w}", digests[w])
                for i, w in enumerate(wells)
            ]
            if baseline:
                figures["client_per_load"] = await _measure(
                    netns, ClientPerLoad(), objects, requests, concurrency
                )
            figures["client_per_thread"] = await _measure(
                netns, ManifestCache(), objects, requests, concurrency
            )
        finally:
            store.terminate()
            store.wait()
    if baseline:
        figures["start_cpu_ratio_per_thread_to_per_load"] = round(
            figures["client_per_thread"]["start_cpu_s"] / figures["client_per_load"]["start_cpu_s"],
            3,
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the run with a client per load (the runtime's way; ~30 ms of CPU per pod)",
    )
    args = parser.parse_args()
    netns = f"mf-measure-{os.getpid()}"
    with pod_network(netns):
        figures = asyncio.run(
            _compare(netns, args.pods, args.requests, args.concurrency, not args.no_baseline)
        )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
