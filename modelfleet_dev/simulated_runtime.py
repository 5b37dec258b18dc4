"""What a simulated pod's ``model-runtime`` would answer, without running one.

Why this exists: the operator confirms an in-place bundle swap by reading the runtime's OIP
server metadata through the pod proxy and nudges reloads with ``POST /v2/repository/bundle/load``.
For the operator's code to be identical on kubesim and on a real cluster, every simulated pod
must answer those endpoints with the real runtime's shapes and rules: load the bundle its
annotations name, verify the manifest digest, and on failure keep serving the previous bundle.
To stay cheap for 10,000 pods it fetches only ``manifest.json`` (cached by URI) and computes
the digest the way ``model_runtime.manifest.manifest_digest`` does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlparse

import httpx

__all__ = [
    "BUNDLE_DIGEST_ANNOTATION",
    "BUNDLE_URI_ANNOTATION",
    "LoadOutcome",
    "ManifestCache",
    "SimulatedRuntime",
]

BUNDLE_URI_ANNOTATION: Final = "modelfleet.dev/bundle-uri"
BUNDLE_DIGEST_ANNOTATION: Final = "modelfleet.dev/bundle-digest"
SERVER_NAME: Final = "modelfleet-model-runtime"
SERVER_VERSION: Final = "kubesim-simulated"


def _digest(raw: bytes) -> str:
    try:
        from model_runtime.manifest import manifest_digest

        return str(manifest_digest(raw))
    except ImportError:  # the runtime package is optional for kubesim
        obj = json.loads(raw)
        canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _manifest_url(uri: str) -> str:
    if uri.endswith(".json"):
        return uri
    return uri.rstrip("/") + "/manifest.json"


#: Local manifests up to this size are read on the event loop.
INLINE_READ_BYTES = 256 * 1024


@dataclass(frozen=True)
class Manifest:
    digest: str
    well: str | None
    version: str | None
    models: int


class ManifestError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ManifestCache:
    """Fetched manifests by URI; one fetch per URI however many pods load it."""

    def __init__(self) -> None:
        self._cache: dict[str, Manifest] = {}
        self._inflight: dict[str, asyncio.Future[Manifest]] = {}
        self._client: httpx.AsyncClient | None = None

    def is_fast(self, uri: str) -> bool:
        """Cached, or a local file: cheap enough to load inline (no network round trip)."""
        return uri in self._cache or urlparse(_manifest_url(uri)).scheme == "file"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _fetch(self, uri: str) -> bytes:
        url = _manifest_url(uri)
        parsed = urlparse(url)
        if parsed.scheme == "file":
            path = Path(unquote(parsed.path))
            try:
                # A manifest is a few KiB on a local disk: reading it inline costs less than a
                # thread hop (which was 13% of kubesim's CPU at 10,000 wells); only an unusually
                # large file goes to a thread.
                if path.stat().st_size <= INLINE_READ_BYTES:
                    return path.read_bytes()
                return await asyncio.to_thread(path.read_bytes)
            except OSError as exc:
                raise ManifestError("Unreachable", f"cannot read {url}: {exc}") from None
        if parsed.scheme == "http":
            host = parsed.hostname or ""
            if not (host.startswith("127.") or host in ("localhost", "::1")):
                raise ManifestError(
                    "Unreachable", f"kubesim only fetches from loopback, not {host}"
                )
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=5.0)
            try:
                resp = await self._client.get(url)
            except httpx.HTTPError as exc:
                raise ManifestError("Unreachable", f"GET {url}: {exc}") from None
            if resp.status_code != 200:
                raise ManifestError("Unreachable", f"GET {url}: HTTP {resp.status_code}")
            return resp.content
        raise ManifestError(
            "Unreachable", f"unsupported bundle URI scheme {parsed.scheme!r} in {uri}"
        )

    async def get(self, uri: str) -> Manifest:
        cached = self._cache.get(uri)
        if cached is not None:
            return cached
        pending = self._inflight.get(uri)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Manifest] = asyncio.get_running_loop().create_future()
        self._inflight[uri] = future
        try:
            raw = await self._fetch(uri)
            try:
                obj = json.loads(raw)
                if not isinstance(obj, dict):
                    raise ValueError("manifest is not a JSON object")
            except ValueError as exc:
                raise ManifestError("BundleInvalid", f"manifest {uri}: {exc}") from None
            models = obj.get("models")
            manifest = Manifest(
                _digest(raw),
                obj.get("well"),
                obj.get("version"),
                len(models) if isinstance(models, list | dict) else 0,
            )
            self._cache[uri] = manifest
            future.set_result(manifest)
            return manifest
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved
            raise
        finally:
            self._inflight.pop(uri, None)


@dataclass(frozen=True)
class LoadOutcome:
    uri: str
    ok: bool
    error: str | None
    reason: str | None
    digest: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "ok": self.ok,
            "error": self.error,
            "reason": self.reason,
            "digest": self.digest,
        }


class SimulatedRuntime:
    """One simulated pod's runtime state: the bundle it serves and its last load attempt."""

    __slots__ = ("bundle", "last_load", "on_change", "well_hint")

    def __init__(self, well_hint: str | None, on_change: Callable[[], None]) -> None:
        self.bundle: dict[str, Any] | None = None
        self.last_load: LoadOutcome | None = None
        self.well_hint = well_hint
        self.on_change = on_change

    @property
    def serving(self) -> bool:
        return self.bundle is not None

    async def load(self, cache: ManifestCache, uri: str, digest: str | None) -> LoadOutcome:
        if (
            self.bundle is not None
            and self.bundle["uri"] == uri
            and (not digest or self.bundle["digest"] == digest)
        ):
            outcome = LoadOutcome(uri, True, None, None, self.bundle["digest"])
            self.last_load = outcome
            return outcome
        try:
            manifest = await cache.get(uri)
        except ManifestError as exc:
            outcome = LoadOutcome(uri, False, str(exc), exc.reason, None)
        else:
            if digest and manifest.digest != digest:
                outcome = LoadOutcome(
                    uri,
                    False,
                    f"bundle digest {manifest.digest} does not match the expected {digest}",
                    "BundleInvalid",
                    manifest.digest,
                )
            else:
                was_serving = self.bundle is not None
                self.bundle = {
                    "digest": manifest.digest,
                    "uri": uri,
                    "well": manifest.well or self.well_hint,
                    "version": manifest.version,
                    "models": manifest.models,
                }
                outcome = LoadOutcome(uri, True, None, None, manifest.digest)
                if not was_serving:
                    self.on_change()
        self.last_load = outcome
        return outcome

    def server_metadata(self) -> dict[str, Any]:
        return {
            "name": SERVER_NAME,
            "version": SERVER_VERSION,
            "extensions": ["modelfleet_bundle_load"],
            "bundle": self.bundle,
            "lastLoad": self.last_load.to_json() if self.last_load else None,
        }

    async def answer(
        self, cache: ManifestCache, method: str, path: str, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) for a request the pod proxy forwards to this runtime."""
        path = "/" + path.strip("/")
        if method == "GET" and path == "/v2":
            return 200, self.server_metadata()
        if method == "GET" and path == "/v2/health/live":
            return 200, {"live": True}
        if method == "GET" and path == "/v2/health/ready":
            return (200 if self.serving else 503), {"ready": self.serving}
        if method == "POST" and path == "/v2/repository/bundle/load":
            try:
                req = json.loads(body or b"{}")
                uri = req["uri"]
                if not isinstance(uri, str):
                    raise TypeError("uri must be a string")
            except (ValueError, KeyError, TypeError) as exc:
                return 400, {
                    "error": f'body must be JSON {{"uri": str, "digest": str|null}}: {exc}'
                }
            outcome = await self.load(cache, uri, req.get("digest"))
            if outcome.ok:
                return 200, {"bundle": self.bundle, "lastLoad": outcome.to_json()}
            status = 502 if outcome.reason == "Unreachable" else 422
            return status, {
                "error": outcome.error,
                "reason": outcome.reason,
                "lastLoad": outcome.to_json(),
            }
        return 404, {"error": f"kubesim simulated runtime does not serve {method} {path}"}
