"""The simulated runtime answers what the real runtime answers.

The same requests go to the real runtime (``model_runtime``'s server, in process, on a
loopback port) and to the simulated one (``modelfleet_dev.simulated_runtime``, as
kubesim's pod proxy calls it), and their statuses and JSON bodies must be equal. Normalised,
because they must differ: `version` in `GET /v2` (it tells a simulation from a real server)
and `extensions` (the simulation scores nothing, so it advertises only the bundle load).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundle_builder.building import BuiltBundle
from model_runtime.bundle_state import BundleState
from model_runtime.metrics import RuntimeMetrics
from model_runtime.server import RuntimeServer
from model_runtime.sources import SourceLimits
from modelfleet_dev.simulated_runtime import ManifestCache, SimulatedRuntime
from runtime_contract import (
    BUNDLE_LOAD_PATH,
    HEALTH_READY_PATH,
    MANIFEST_FILE,
    SERVER_METADATA_PATH,
    Extension,
)

Answer = tuple[int, Any]


@dataclass
class Runtimes:
    """A real and a simulated runtime that started alike (no bundle)."""

    real: aiohttp.ClientSession
    simulated: SimulatedRuntime
    cache: ManifestCache

    async def send(self, method: str, path: str, body: bytes = b"") -> tuple[Answer, Answer]:
        response = await self.real.request(method, path, data=body)
        real = (response.status, await response.json())
        status, simulated = await self.simulated.answer(self.cache, method, path, body)
        # Through JSON, as the pod proxy carries it (enum members become their values).
        return real, (status, json.loads(json.dumps(simulated)))

    async def load(self, uri: str, digest: str | None = None) -> tuple[Answer, Answer]:
        body = json.dumps({"uri": uri, "digest": digest}).encode()
        return await self.send("POST", BUNDLE_LOAD_PATH, body)

    async def assert_same_state(self) -> None:
        """`GET /v2` and readiness agree too: a refusal left both serving the same bundle."""
        (real_code, real), (sim_code, simulated) = await self.send("GET", SERVER_METADATA_PATH)
        assert real_code == sim_code == 200
        assert Extension.BUNDLE_LOAD in real["extensions"]
        assert set(simulated.pop("extensions")) <= set(real.pop("extensions"))
        real.pop("version"), simulated.pop("version")
        # Functional monitoring is the real runtime's own (NotRequired in ServerMetadata): the
        # simulated runtime scores no rows, so it has nothing to summarise.
        real.pop("monitoring", None)
        assert simulated == real
        real_ready, sim_ready = await self.send("GET", HEALTH_READY_PATH)
        assert sim_ready == real_ready


#: Both runtimes get the same limits, small enough that "oversized" needs no 64 MiB file.
LIMITS = SourceLimits(max_file_bytes=200_000)


@asynccontextmanager
async def started_runtimes() -> AsyncIterator[Runtimes]:
    metrics = RuntimeMetrics()
    server = RuntimeServer(BundleState(metrics, LIMITS), metrics)
    host, port = (await server.start("127.0.0.1", 0))[0]
    try:
        async with aiohttp.ClientSession(base_url=f"http://{host}:{port}") as client:
            yield Runtimes(client, SimulatedRuntime(None, lambda: None), ManifestCache(LIMITS))
    finally:
        await server.http.close()


@pytest.fixture
async def runtimes() -> AsyncIterator[Runtimes]:
    async with started_runtimes() as started:
        yield started


@pytest.fixture
def good(small_bundle: BuiltBundle, second_bundle: BuiltBundle) -> BuiltBundle:
    for bundle in (small_bundle, second_bundle):  # both within LIMITS, or nothing loads
        assert max(f.stat().st_size for f in (bundle.path / "models").iterdir()) < 200_000
    return small_bundle


def copy_bundle(bundle: BuiltBundle, target: Path) -> Path:
    shutil.copytree(bundle.path, target)
    return target


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def bundle_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A static HTTP server on loopback: (its root directory, its base URL)."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_a_runtime_without_a_bundle_answers_alike(runtimes: Runtimes) -> None:
    await runtimes.assert_same_state()
    real, simulated = await runtimes.send("GET", HEALTH_READY_PATH)
    assert real[0] == 503 and simulated == real


async def test_a_good_bundle_is_served_alike(runtimes: Runtimes, good: BuiltBundle) -> None:
    real, simulated = await runtimes.load(good.path.as_uri(), good.digest)
    assert real[0] == 200 and real[1]["bundle"]["digest"] == good.digest
    assert simulated == real
    await runtimes.assert_same_state()


async def test_a_good_bundle_over_http_is_served_alike(
    runtimes: Runtimes, good: BuiltBundle, bundle_server: tuple[Path, str]
) -> None:
    root, base = bundle_server
    copy_bundle(good, root / "b")
    real, simulated = await runtimes.load(f"{base}/b/", good.digest)
    assert real[0] == 200 and simulated == real
    await runtimes.assert_same_state()


async def test_the_served_digest_from_another_uri_is_served_under_that_uri(
    runtimes: Runtimes, good: BuiltBundle, tmp_path: Path
) -> None:
    await runtimes.load(good.path.as_uri(), good.digest)
    elsewhere = copy_bundle(good, tmp_path / "moved").as_uri()
    real, simulated = await runtimes.load(elsewhere, good.digest)
    assert real[0] == 200 and real[1]["bundle"]["uri"] == elsewhere
    assert simulated == real
    await runtimes.assert_same_state()


def _truncate_a_model_file(bundle: Path) -> None:
    victim = next((bundle / "models").iterdir())
    victim.write_bytes(victim.read_bytes()[:100])


def _truncate_the_manifest(bundle: Path) -> None:
    manifest = bundle / MANIFEST_FILE
    manifest.write_bytes(manifest.read_bytes()[:-40])


def _inflate_a_model_file(bundle: Path) -> None:
    """Over LIMITS.max_file_bytes (the manifest's sha256 no longer matches either: size first)."""
    victim = next((bundle / "models").iterdir())
    victim.write_bytes(victim.read_bytes() + bytes(LIMITS.max_file_bytes))


def _remove_a_model_file(bundle: Path) -> None:
    next((bundle / "models").iterdir()).unlink()


REFUSALS = {
    # name: (how the bundle copy is damaged, 'wrong' to ask for another digest)
    "wrong digest": (None, "wrong"),
    "truncated model file": (_truncate_a_model_file, "right"),
    "truncated manifest": (_truncate_the_manifest, "none"),
    "missing model file": (_remove_a_model_file, "right"),
    "oversized model file": (_inflate_a_model_file, "right"),
}


def _flip_a_byte(bundle: Path) -> None:
    victim = sorted((bundle / "models").iterdir())[-1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))


def _respell_the_manifest(bundle: Path) -> None:
    """Same JSON, other bytes: the digest (of the canonical form) does not change."""
    manifest = bundle / MANIFEST_FILE
    manifest.write_text(json.dumps(json.loads(manifest.read_bytes()), indent=4))


DAMAGES: dict[str, Callable[[Path], None]] = {
    "truncate a model file": _truncate_a_model_file,
    "flip a byte of a model file": _flip_a_byte,
    "remove a model file": _remove_a_model_file,
    "inflate a model file": _inflate_a_model_file,
    "truncate the manifest": _truncate_the_manifest,
    "respell the manifest": _respell_the_manifest,
}


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    damages=st.sets(st.sampled_from(sorted(DAMAGES)), max_size=3),
    ask=st.sampled_from(["right", "wrong", "none", "bare hex"]),
    served=st.sampled_from(["file", "http"]),
)
def test_any_mix_of_damage_and_digest_is_answered_alike(
    good: BuiltBundle,
    second_bundle: BuiltBundle,
    bundle_server: tuple[Path, str],
    damages: set[str],
    ask: str,
    served: str,
) -> None:
    """Checks come in the runtime's order (sizes, manifest digest, files), whatever the mix."""
    root, base = bundle_server
    target = root / "mixed"
    shutil.rmtree(target, ignore_errors=True)
    bundle = copy_bundle(second_bundle, target)
    for damage in sorted(damages):
        DAMAGES[damage](bundle)
    digest = {
        "right": second_bundle.digest,
        "wrong": good.digest,
        "none": None,
        "bare hex": second_bundle.digest.removeprefix("sha256:").upper(),
    }[ask]
    uri = bundle.as_uri() if served == "file" else f"{base}/mixed/"

    async def compare() -> None:
        async with started_runtimes() as runtimes:
            await runtimes.load(good.path.as_uri(), good.digest)
            real, simulated = await runtimes.load(uri, digest)
            assert simulated == real
            await runtimes.assert_same_state()

    asyncio.run(compare())


@pytest.mark.parametrize("case", sorted(REFUSALS))
@pytest.mark.parametrize("served", ["file", "http"])
async def test_a_refused_bundle_is_refused_alike_and_the_old_one_keeps_serving(
    runtimes: Runtimes,
    good: BuiltBundle,
    second_bundle: BuiltBundle,
    bundle_server: tuple[Path, str],
    case: str,
    served: str,
) -> None:
    await runtimes.load(good.path.as_uri(), good.digest)
    damage, ask = REFUSALS[case]
    root, base = bundle_server
    bundle = copy_bundle(second_bundle, root / "next")
    if damage is not None:
        damage(bundle)
    digest = {"wrong": good.digest, "right": second_bundle.digest, "none": None}[ask]
    uri = bundle.as_uri() if served == "file" else f"{base}/next/"
    real, simulated = await runtimes.load(uri, digest)
    assert real[0] in (413, 422) and real[1]["bundle"]["digest"] == good.digest, real
    assert simulated == real
    await runtimes.assert_same_state()


async def test_an_unreachable_bundle_is_refused_alike(
    runtimes: Runtimes,
    good: BuiltBundle,
    tmp_path: Path,
    closed_port: int,
    bundle_server: tuple[Path, str],
) -> None:
    _, base = bundle_server
    for uri in (
        (tmp_path / "nowhere").as_uri(),
        f"http://127.0.0.1:{closed_port}/b/",
        f"{base}/absent/",
    ):
        real, simulated = await runtimes.load(uri, good.digest)
        assert real[0] == 502 and real[1]["reason"] == "Unreachable", real
        assert simulated == real
        await runtimes.assert_same_state()


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b'{"digest": "sha256:00"}',
        b'{"uri": "file:///b", "digest": 7}',
        b"[" * 100_000,
    ],
    ids=["empty", "not JSON", "no uri", "digest not a string", "nested too deeply"],
)
async def test_a_malformed_load_request_is_refused_alike(runtimes: Runtimes, body: bytes) -> None:
    real, simulated = await runtimes.send("POST", BUNDLE_LOAD_PATH, body)
    assert real[0] == 400 and simulated == real


async def test_an_unsupported_scheme_is_refused_alike(runtimes: Runtimes) -> None:
    real, simulated = await runtimes.load("gopher://127.0.0.1/b/", None)
    assert real[0] == 422 and simulated == real


async def test_the_wrong_method_and_an_unknown_route_are_refused_alike(
    runtimes: Runtimes,
) -> None:
    for method, path in (("GET", BUNDLE_LOAD_PATH), ("POST", SERVER_METADATA_PATH)):
        real, simulated = await runtimes.send(method, path)
        assert real[0] == 405 and simulated == real
    real, simulated = await runtimes.send("GET", "/v3/nothing")
    assert real[0] == 404 and simulated == real


async def test_concurrent_loads_of_one_uri_read_it_once_in_the_simulation(
    good: BuiltBundle,
) -> None:
    cache = ManifestCache(LIMITS)
    pods = [SimulatedRuntime(None, lambda: None) for _ in range(20)]
    attempts = await asyncio.gather(
        *(pod.load(cache, good.path.as_uri(), good.digest) for pod in pods)
    )
    assert all(a.ok and a.digest == good.digest for a in attempts)
    assert cache.is_fast(good.path.as_uri())
