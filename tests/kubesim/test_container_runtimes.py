"""Container-runtime plugins: what runs in a pod is the runtime's, the lifecycle the kubelet's.

A runtime registered from outside answers the pod proxy for the pods it runs; every other pod
runs on the stub runtime (ready, nothing listening); and the product's simulated model runtime,
registered the same way, answers like model-runtime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubesim.harness.cli import installed_factories, load_factory
from kubesim.harness.cluster import KubeSim
from kubesim.harness.testing import run_kubesim
from kubesim.node.kubelet import KubeletConfig
from kubesim.node.runtime import (
    PodContainers,
    PodObject,
    PodSlot,
    ProxyAnswer,
    ProxyRequest,
)
from modelfleet_dev.kubesim_runtime import PLUGIN, SimulatedModelRuntime
from runtime_contract import manifest_digest
from tests.kubesim.conftest import Http, eventually, pod

PODS = "/api/v1/namespaces/default/pods"
WELL_W1 = {"modelfleet.dev/well": "w1"}


def _conditions(p: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}


async def _get(http: Http, name: str) -> dict[str, Any]:
    body: dict[str, Any] = await http.ok("GET", f"{PODS}/{name}")
    return body


class _EchoContainers:
    """Answers every proxied request with what it was asked and the pod's address."""

    def __init__(self, slot: PodSlot) -> None:
        self.slot = slot
        self.refreshed = 0

    async def start(self, pod: PodObject) -> None:
        return None

    def running(self) -> bool:
        return True

    def ready(self, pod: PodObject) -> bool:
        return (pod["metadata"].get("annotations") or {}).get("echo/ready") != "no"

    @property
    def restarts(self) -> int:
        return 0

    def refresh(self, pod: PodObject) -> None:
        self.refreshed += 1

    async def proxy(self, request: ProxyRequest) -> ProxyAnswer:
        answer = {
            "pod": self.slot.name,
            "ip": self.slot.ip,
            "method": request.method,
            "port": request.port,
            "path": request.path,
            "query": dict(request.query),
            "body": request.body.decode(),
        }
        return ProxyAnswer(200, json.dumps(answer).encode())

    def log(self) -> bytes:
        return f"echo in {self.slot.name}\n".encode()

    @property
    def lingers(self) -> bool:
        return False

    async def stop(self, grace_seconds: float) -> None:
        return None


class EchoRuntime:
    """Runs the pods labelled ``runtime=echo``."""

    @property
    def name(self) -> str:
        return "echo"

    def runs(self, pod: PodObject) -> bool:
        return (pod["metadata"].get("labels") or {}).get("runtime") == "echo"

    def create(self, slot: PodSlot, pod: PodObject) -> PodContainers:
        return _EchoContainers(slot)

    async def close(self) -> None:
        return None


async def test_a_runtime_registered_from_outside_answers_the_proxy_for_its_pods(
    tmp_path: Path,
) -> None:
    """The registered runtime answers pods/proxy (method, port, path, query and body reach it)
    and pods/log of the pods it runs, and decides their container readiness; the kubelet keeps
    the lifecycle (podIP, Running, Ready)."""
    async with (
        run_kubesim(tmp_path, container_runtimes=[EchoRuntime]) as sim,
        aiohttp.ClientSession() as session,
    ):
        http = Http(session, sim.url)
        await http.ok("POST", PODS, pod("echo", {"runtime": "echo"}))
        held = pod("held", {"runtime": "echo"})
        held["metadata"]["annotations"] = {"echo/ready": "no"}
        await http.ok("POST", PODS, held)
        await sim.settle()
        echo = await _get(http, "echo")
        assert echo["status"]["phase"] == "Running" and _conditions(echo)["Ready"] == "True"
        assert _conditions(await _get(http, "held"))["ContainersReady"] == "False"
        answer = await http.post(f"{PODS}/echo:8080/proxy/v2/models?x=1", {"k": "v"})
        assert answer.status == 200
        assert answer.body == {
            "pod": "echo",
            "ip": echo["status"]["podIP"],
            "method": "POST",
            "port": "8080",
            "path": "v2/models",
            "query": {"x": "1"},
            "body": json.dumps({"k": "v"}),
        }
        async with session.get(f"{sim.url}{PODS}/echo/log") as resp:
            assert await resp.text() == "echo in echo\n"


async def test_pods_no_runtime_claims_run_on_the_stub(kubesim: KubeSim, http: Http) -> None:
    """Without a plugin, every pod still runs (stub): Running and Ready, and the proxy answers
    503 ServiceUnavailable as when nothing listens in a pod; a pod carrying the product's
    labels and annotations is no exception."""
    body = pod("plain", WELL_W1)
    body["metadata"]["annotations"] = {"modelfleet.dev/bundle-uri": "file:///nowhere/w1"}
    await http.ok("POST", PODS, body)
    await kubesim.settle()
    plain = await _get(http, "plain")
    assert plain["status"]["phase"] == "Running" and _conditions(plain)["Ready"] == "True"
    refused = await http.get(f"{PODS}/plain/proxy/v2")
    assert refused.status == 503 and refused.body["reason"] == "ServiceUnavailable"


def test_kubesim_serve_finds_the_runtimes_installed_packages_register() -> None:
    """``python -m kubesim serve`` asks the ``kubesim.container_runtimes`` entry points too: the
    product registers its simulated model runtime there, so a kubesim started by hand serves
    well pods as the demo's does (kubesim itself names no runtime it does not ship)."""
    assert SimulatedModelRuntime in installed_factories()


def test_the_cli_loads_a_runtime_factory_by_its_import_path() -> None:
    """``--container-runtime MODULE:FACTORY`` names a callable; errors name the flag's value."""
    assert load_factory(PLUGIN) is SimulatedModelRuntime
    for bad, reason in (
        ("no_colon", "is not MODULE:FACTORY"),
        ("no_such_module_here:x", "cannot import"),
        ("modelfleet_dev.kubesim_runtime:nothing", "has no callable 'nothing'"),
    ):
        with pytest.raises(ValueError, match=reason):
            load_factory(bad)


# -- the product's simulated model runtime, registered as a plugin ---------------------------------


def _bundle(tmp: Path, name: str, version: str) -> tuple[str, str]:
    directory = tmp / name
    directory.mkdir(parents=True)
    raw = json.dumps(
        {"well": "w1", "version": version, "models": [{"name": "m"}]},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    (directory / "manifest.json").write_bytes(raw)
    return directory.as_uri(), manifest_digest(raw)


async def test_simulated_runtime_serves_bundle_from_annotations_through_pod_proxy(
    tmp_path: Path,
) -> None:
    """The pod proxy reaches what runs in the pod; simulated pods answer like model-runtime: the
    bundle named by annotations (after the downward-API refresh delay), digest-verified, and a
    failed load keeps the previous bundle. https://kubernetes.io/docs/concepts/workloads/pods/downward-api/"""
    uri1, digest1 = _bundle(tmp_path, "b1", "1")
    uri2, digest2 = _bundle(tmp_path, "b2", "2")
    config = KubeletConfig(annotation_refresh_delay=0.2)
    async with (
        run_kubesim(tmp_path, kubelet=config, container_runtimes=[SimulatedModelRuntime]) as sim,
        aiohttp.ClientSession() as session,
    ):
        http = Http(session, sim.url)
        body = pod("sim", WELL_W1)
        body["metadata"]["annotations"] = {
            "modelfleet.dev/bundle-uri": uri1,
            "modelfleet.dev/bundle-digest": digest1,
        }
        await http.ok("POST", PODS, body)
        await sim.settle()
        assert _conditions(await _get(http, "sim"))["Ready"] == "True"
        meta = await http.ok("GET", f"{PODS}/sim/proxy/v2")
        assert meta["bundle"]["digest"] == digest1 and meta["bundle"]["version"] == "1"
        # A wrong digest is refused, the old bundle keeps serving.
        refused = await http.post(
            f"{PODS}/sim/proxy/v2/repository/bundle/load", {"uri": uri2, "digest": digest1}
        )
        assert refused.status == 422 and refused.body["reason"] == "BundleInvalid"
        meta = await http.ok("GET", f"{PODS}/sim/proxy/v2")
        assert meta["bundle"]["digest"] == digest1 and meta["lastLoad"]["ok"] is False
        # An annotation change reaches the runtime after the refresh delay.
        await http.ok(
            "PATCH",
            f"{PODS}/sim",
            {
                "metadata": {
                    "annotations": {
                        "modelfleet.dev/bundle-uri": uri2,
                        "modelfleet.dev/bundle-digest": digest2,
                    }
                }
            },
            content_type="application/merge-patch+json",
        )
        assert (await http.ok("GET", f"{PODS}/sim/proxy/v2"))["bundle"]["digest"] == digest1

        async def swapped() -> bool:
            return bool(
                (await http.ok("GET", f"{PODS}/sim/proxy/v2"))["bundle"]["digest"] == digest2
            )

        await eventually(swapped)
        assert (await http.ok("GET", f"{PODS}/sim:8080/proxy/v2/health/ready"))["ready"] is True


async def test_simulated_pod_with_unreachable_bundle_is_not_ready(tmp_path: Path) -> None:
    """Container readiness of a simulated pod = profile AND a verified bundle served.
    https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-probes"""
    async with (
        run_kubesim(tmp_path, container_runtimes=[SimulatedModelRuntime]) as sim,
        aiohttp.ClientSession() as session,
    ):
        http = Http(session, sim.url)
        body = pod("nobundle", WELL_W1)
        body["metadata"]["annotations"] = {
            "modelfleet.dev/bundle-uri": (tmp_path / "missing").as_uri()
        }
        await http.ok("POST", PODS, body)
        await sim.settle()
        assert _conditions(await _get(http, "nobundle"))["ContainersReady"] == "False"
        meta = await http.ok("GET", f"{PODS}/nobundle/proxy/v2")
        assert meta["bundle"] is None and meta["lastLoad"]["reason"] == "Unreachable"


async def test_simulated_runtime_fetches_http_bundle_manifest_without_blocking(
    tmp_path: Path,
) -> None:
    """A bundle served over http://127.x: only manifest.json is fetched; the pod is Running but
    not Ready until its bundle is loaded, like a runtime loading at start.
    https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-probes"""
    from aiohttp import web

    _, digest = _bundle(tmp_path, "b1", "7")
    fetched: list[str] = []

    async def manifest(request: web.Request) -> web.Response:
        fetched.append(request.path)
        return web.Response(body=(tmp_path / "b1" / "manifest.json").read_bytes())

    app = web.Application()
    app.router.add_get("/bundles/b1/manifest.json", manifest)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with (
            run_kubesim(tmp_path / "ks", container_runtimes=[SimulatedModelRuntime]) as sim,
            aiohttp.ClientSession() as session,
        ):
            http = Http(session, sim.url)
            for name in ("h1", "h2"):
                body = pod(name, WELL_W1)
                body["metadata"]["annotations"] = {
                    "modelfleet.dev/bundle-uri": f"http://127.0.0.1:{port}/bundles/b1",
                    "modelfleet.dev/bundle-digest": digest,
                }
                await http.ok("POST", PODS, body)

            async def ready() -> bool:
                return all(
                    [_conditions(await _get(http, n)).get("Ready") == "True" for n in ("h1", "h2")]
                )

            await eventually(ready)
            meta = await http.ok("GET", f"{PODS}/h2/proxy/v2")
            assert meta["bundle"] == {
                "digest": digest,
                "uri": f"http://127.0.0.1:{port}/bundles/b1",
                "well": "w1",
                "version": "7",
                "models": 1,
            }
            assert fetched == ["/bundles/b1/manifest.json"]  # cached by URI
    finally:
        await runner.cleanup()
