"""What a well pod's ``model-runtime`` answers, without running one: the simulated runtime.

Why this exists: the operator confirms an in-place bundle swap by reading the runtime's server
metadata through the pod proxy and nudges reloads with ``POST /v2/repository/bundle/load``. For
the operator's code to be the same on kubesim as on a real cluster, every simulated pod answers
those endpoints as ``model_runtime`` does, built on the same contract (``runtime_contract``):
the same statuses, keys, reasons and messages, the same order of checks (size limits, manifest
digest, every model file's sha256), and a failed load keeps the previous bundle serving.
tests/model_runtime/test_runtime_contract.py sends the same requests to both and compares.

What it leaves out, to stay cheap for 10,000 pods: it scores nothing (inference routes answer
501), loads no model into onnxruntime (an unloadable ONNX file with the right sha256 is served),
checks a manifest's structure but not its schema (a schema error the real runtime refuses may be
served here), does not read tarball bundles, does not follow a symlink to check that a model
file stays inside its bundle, and does not bound a load request's body. A bundle read once is
cached by URI (a digest-less request does not see a bundle rewritten in place), and a model
file's sha256 by the file's identity (device, inode, size, mtime), so 10,000 wells linked to one
bundle hash it once. Over HTTP it fetches only from loopback, with one client per worker
thread kept across loads (its cookies cleared before each), where the runtime makes one per
load: making an httpx client costs ~28 ms of CPU (its TLS context), more than the whole rest of
a small bundle's load. Object stores (s3://, az://, gs://) are read through the runtime's own
reader.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import httpx

from model_runtime.errors import (
    BundleFileMissingError,
    BundleTooLargeError,
    BundleUnreachableError,
)
from model_runtime.object_stores import (
    OBJECT_STORE_SCHEMES,
    ObjectStoreError,
    ObjectTooLargeError,
    open_location,
    read_object,
)
from model_runtime.sources import TARBALL_SUFFIXES, SourceLimits, http_get_limited
from runtime_contract import (
    BUNDLE_DIGEST_ANNOTATION,
    BUNDLE_LOAD_PATH,
    BUNDLE_URI_ANNOTATION,
    HEALTH_LIVE_PATH,
    HEALTH_READY_PATH,
    MANIFEST_FILE,
    READY_REQUIRES_ANNOTATED_BUNDLE_FLAG,
    SERVER_METADATA_PATH,
    SERVER_NAME,
    BundleInfo,
    ErrorBody,
    Extension,
    Health,
    LoadAnswer,
    LoadAttempt,
    LoadFailureReason,
    LoadRefusal,
    LoadRequestError,
    ManifestNotJsonError,
    ServerMetadata,
    digest_mismatch_message,
    json_digest,
    load_answer,
    load_refusal,
    normalize_digest,
    parse_load_request,
    parse_manifest_json,
)

__all__ = [
    "BUNDLE_DIGEST_ANNOTATION",
    "BUNDLE_URI_ANNOTATION",
    "SERVER_VERSION",
    "ManifestCache",
    "SimulatedBundle",
    "SimulatedLoadError",
    "SimulatedRuntime",
]

#: Tells a simulated runtime from a real one in `GET /v2` (the only intended difference).
SERVER_VERSION: Final = "simulated"
#: Files up to this size are read and hashed on the event loop (a thread hop costs more).
INLINE_READ_BYTES: Final = 256 * 1024
_LOOPBACK_NAMES: Final = ("localhost", "::1")
_NOT_SIMULATED_PREFIXES: Final = ("/v2/models", "/v2/well")

ProxyBody = ServerMetadata | Health | LoadAnswer | LoadRefusal | ErrorBody | Mapping[str, bool]


@dataclass(frozen=True)
class SimulatedBundle:
    """A bundle whose manifest digest and model files checked out: what `bundle` reports."""

    digest: str
    well: str | None
    version: str | None
    models: int

    def info(self, uri: str, well_hint: str | None) -> BundleInfo:
        return {
            "digest": self.digest,
            "uri": uri,
            "well": self.well or well_hint,
            "version": self.version,
            "models": self.models,
        }


class SimulatedLoadError(Exception):
    """A refused load, with the reason and message the real runtime gives for the same bundle."""

    def __init__(self, reason: LoadFailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _invalid(message: str) -> SimulatedLoadError:
    return SimulatedLoadError(LoadFailureReason.BUNDLE_INVALID, message)


def _unreachable(message: str) -> SimulatedLoadError:
    return SimulatedLoadError(LoadFailureReason.UNREACHABLE, message)


def _too_large(message: str) -> SimulatedLoadError:
    return SimulatedLoadError(LoadFailureReason.TOO_LARGE, message)


class _NotFound(SimulatedLoadError):
    """A remote file that is not there: Unreachable for the manifest; for a model file, named
    as missing after the digest check (as the runtime does)."""

    def __init__(self, message: str) -> None:
        super().__init__(LoadFailureReason.UNREACHABLE, message)


@dataclass(frozen=True)
class _ModelFile:
    """A manifest entry that names a file (entries without one are schematic: nothing to check)."""

    name: str
    file: str
    sha256: str


@dataclass(frozen=True)
class _Manifest:
    digest: str
    well: str | None
    version: str | None
    models: int
    files: tuple[_ModelFile, ...]

    def bundle(self) -> SimulatedBundle:
        return SimulatedBundle(self.digest, self.well, self.version, self.models)


def _parse_manifest(raw: bytes) -> _Manifest:
    try:
        obj = parse_manifest_json(raw)
    except ManifestNotJsonError as exc:
        raise _invalid(str(exc)) from None
    if not isinstance(obj, dict):
        raise _invalid(f"{MANIFEST_FILE} is invalid: <root>: the manifest must be a JSON object")
    models = obj.get("models")
    entries = models if isinstance(models, list) else []
    files: list[_ModelFile] = []
    for index, entry in enumerate(entries):
        file = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(file, str):
            continue
        parts = file.split("/")
        if file.startswith("/") or "\\" in file or any(p in ("", ".", "..") for p in parts):
            # The runtime's schema says so; here it also keeps every read inside the bundle.
            raise _invalid(
                f"{MANIFEST_FILE} is invalid: models.{index}.file: Value error, "
                f"must be a relative path inside the bundle, got {file!r}"
            )
        files.append(_ModelFile(str(entry.get("name")), file, str(entry.get("sha256"))))
    well, version = obj.get("well"), obj.get("version")
    return _Manifest(
        json_digest(obj),
        well if isinstance(well, str) else None,
        version if isinstance(version, str) else None,
        len(entries),
        tuple(files),
    )


def _check_digest(uri: str, manifest: _Manifest, expected: str | None) -> None:
    if expected is not None and manifest.digest != expected:
        raise _invalid(digest_mismatch_message(uri, manifest.digest, expected))


def _check_file_digest(entry: _ModelFile, actual: str) -> None:
    if actual != entry.sha256:
        raise _invalid(
            f"model {entry.name!r}: file {entry.file} has sha256 {actual}, manifest says {entry.sha256}"
        )


def _is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in _LOOPBACK_NAMES


def _refuse_beyond_loopback(request: httpx.Request) -> None:
    if not _is_loopback(request.url.host):
        raise httpx.ConnectError(
            f"the simulated runtime fetches only from loopback, not {request.url.host}",
            request=request,
        )


# ---------------------------------------------------------------------------------- local files


_FileIdentity = tuple[int, int, int, int]  # device, inode, size, mtime (ns)


def _identity(info: os.stat_result) -> _FileIdentity:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _stat_file(path: Path, limit: int, what: str) -> os.stat_result:
    """The checks of the real runtime's local read, in its order, without reading the file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise _invalid(f"{what} {path} is missing") from None
    except PermissionError as exc:
        raise _unreachable(f"{what} {path} is not readable: {exc.strerror}") from None
    if info.st_size > limit:
        raise _too_large(f"{what} {path} is {info.st_size} bytes, over the limit of {limit}")
    if stat.S_ISDIR(info.st_mode):
        raise _invalid(f"{what} {path} is a directory, expected a file")
    if not os.access(path, os.R_OK):
        raise _unreachable(f"{what} {path} is not readable: Permission denied")
    return info


def _sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ManifestCache:
    """Bundles read by URI (one read per URI however many pods load it) and file digests by
    identity; shared by every simulated pod of a kubelet."""

    def __init__(self, limits: SourceLimits | None = None) -> None:
        self.limits = limits or SourceLimits()
        self._bundles: dict[str, SimulatedBundle] = {}
        # Reads under way by (URI, expected digest): a refusal's message names the digest.
        self._inflight: dict[tuple[str, str | None], asyncio.Future[SimulatedBundle]] = {}
        self._file_digests: dict[_FileIdentity, str] = {}
        # Remote reads run in worker threads; each thread keeps its own client (see the module).
        self._thread_http = threading.local()
        self._http_clients: list[httpx.Client] = []
        self._http_clients_lock = threading.Lock()

    def is_fast(self, uri: str) -> bool:
        """Cached, or on a local disk: cheap enough to load inline (no network round trip)."""
        return uri in self._bundles or urlsplit(uri).scheme in ("file", "")

    async def close(self) -> None:
        """Closes the worker threads' HTTP clients (call when no read is under way)."""
        with self._http_clients_lock:
            clients, self._http_clients = self._http_clients, []
        for client in clients:
            client.close()

    async def get(self, uri: str, expected_digest: str | None = None) -> SimulatedBundle:
        """The bundle at `uri`, checked against `expected_digest` (normalized) if given; raises
        SimulatedLoadError. A cached bundle of another digest is read again (rebuilt in place)."""
        cached = self._bundles.get(uri)
        if cached is not None and expected_digest in (None, cached.digest):
            return cached
        key = (uri, expected_digest)
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[SimulatedBundle] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            bundle = await self._read(uri, expected_digest)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a waiter may not exist
            raise
        finally:
            del self._inflight[key]
        self._bundles[uri] = bundle
        future.set_result(bundle)
        return bundle

    async def _read(self, uri: str, expected: str | None) -> SimulatedBundle:
        parts = urlsplit(uri)
        if parts.scheme in ("http", "https"):
            if parts.path.lower().endswith(TARBALL_SUFFIXES):
                raise _invalid(
                    f"the simulated runtime reads bundle directories, not tarball {uri!r}"
                )
            return await asyncio.to_thread(self._read_http, uri, expected)
        if parts.scheme in OBJECT_STORE_SCHEMES:
            if parts.path.lower().endswith(TARBALL_SUFFIXES):
                raise _invalid(
                    f"the simulated runtime reads bundle directories, not tarball {uri!r}"
                )
            return await asyncio.to_thread(self._read_object_store, uri, expected)
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise _invalid(f"file:// URI must name a local path, got host {parts.netloc!r}")
            path = Path(unquote(parts.path))
        elif parts.scheme == "":
            path = Path(uri)
        else:
            raise _invalid(
                f"unsupported bundle URI scheme {parts.scheme!r} in {uri!r}; expected file://, http(s)://, s3://, az:// or gs://"
            )
        try:
            return await self._read_local(uri, path, expected)
        except OSError as exc:  # what the checks above do not name, as the runtime words it
            raise _unreachable(f"cannot read bundle {uri!r}: {exc}") from None

    async def _read_local(self, uri: str, path: Path, expected: str | None) -> SimulatedBundle:
        limits = self.limits
        try:
            top = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise _unreachable(f"bundle path {path} does not exist (from {uri!r})") from None
        if stat.S_ISREG(top.st_mode):
            if path.name != MANIFEST_FILE:
                raise _invalid(
                    f"the simulated runtime reads bundle directories, not tarball {uri!r}"
                )
            path = path.parent
        manifest_path = path / MANIFEST_FILE
        size = _stat_file(manifest_path, limits.max_manifest_bytes, "manifest").st_size
        if size <= INLINE_READ_BYTES:
            raw = manifest_path.read_bytes()
        else:
            raw = await asyncio.to_thread(manifest_path.read_bytes)
        manifest = _parse_manifest(raw)
        total = len(raw)
        sized: list[tuple[_ModelFile, Path, os.stat_result]] = []
        for entry in manifest.files:
            file_path = path / entry.file
            try:
                info = _stat_file(file_path, limits.max_file_bytes, f"model {entry.name!r} file")
            except SimulatedLoadError:
                # The runtime names the resolved path; resolving costs, so only when refusing.
                _stat_file(file_path.resolve(), limits.max_file_bytes, f"model {entry.name!r} file")
                raise
            total += info.st_size
            if total > limits.max_total_bytes:
                raise _too_large(f"bundle {uri!r} exceeds {limits.max_total_bytes} bytes in total")
            sized.append((entry, file_path, info))
        _check_digest(uri, manifest, expected)
        unhashed = [item for item in sized if _identity(item[2]) not in self._file_digests]
        if sum(info.st_size for _, _, info in unhashed) <= INLINE_READ_BYTES:
            self._hash_files(unhashed)
        else:
            await asyncio.to_thread(self._hash_files, unhashed)
        for entry, _, info in sized:
            _check_file_digest(entry, self._file_digests[_identity(info)])
        return manifest.bundle()

    def _hash_files(self, files: list[tuple[_ModelFile, Path, os.stat_result]]) -> None:
        for _, path, info in files:
            self._file_digests[_identity(info)] = _sha256_of(path)

    # ------------------------------------------------------------------------ over the network

    def _read_remote(
        self, uri: str, expected: str | None, read: Callable[[str, int], bytes]
    ) -> SimulatedBundle:
        """The runtime's checks in its order: the manifest, each model file within the limits,
        the manifest digest, then each file present and of its sha256. `read(name, limit)` reads
        a file of the bundle and raises SimulatedLoadError (_NotFound when it is not there)."""
        limits = self.limits
        raw = read(MANIFEST_FILE, limits.max_manifest_bytes)
        manifest = _parse_manifest(raw)
        total = len(raw)
        contents: dict[str, bytes] = {}
        for entry in manifest.files:
            try:
                data = read(entry.file, limits.max_file_bytes)
            except _NotFound:
                continue  # reported below as a missing file of this model
            total += len(data)
            if total > limits.max_total_bytes:
                raise _too_large(f"bundle {uri!r} exceeds {limits.max_total_bytes} bytes in total")
            contents[entry.file] = data
        _check_digest(uri, manifest, expected)
        for entry in manifest.files:
            fetched = contents.get(entry.file)
            if fetched is None:
                raise _invalid(
                    f"model {entry.name!r}: file {entry.file} is missing from the bundle"
                )
            _check_file_digest(entry, hashlib.sha256(fetched).hexdigest())
        return manifest.bundle()

    def _http_client(self) -> httpx.Client:
        """This worker thread's client: the runtime's settings, loopback only."""
        client: httpx.Client | None = getattr(self._thread_http, "client", None)
        if client is None:
            client = httpx.Client(
                timeout=httpx.Timeout(self.limits.http_timeout_seconds),
                follow_redirects=True,
                trust_env=False,
                event_hooks={"request": [_refuse_beyond_loopback]},
            )
            self._thread_http.client = client
            with self._http_clients_lock:
                self._http_clients.append(client)
        return client

    def _read_http(self, uri: str, expected: str | None) -> SimulatedBundle:
        """In a worker thread, with the runtime's synchronous client and its messages."""
        client = self._http_client()
        client.cookies.clear()  # a load starts as the runtime's does: a fresh client's empty jar
        path = urlsplit(uri).path
        base = (
            uri[: -len(MANIFEST_FILE)]
            if path.endswith("/" + MANIFEST_FILE)
            else uri.rstrip("/") + "/"
        )
        return self._read_remote(
            uri, expected, lambda name, limit: _http_get(client, base + name, limit)
        )

    def _read_object_store(self, uri: str, expected: str | None) -> SimulatedBundle:
        """In a worker thread, through the runtime's own object-store reader and its messages."""
        path = urlsplit(uri).path
        base = uri[: -len(MANIFEST_FILE)] if path.endswith("/" + MANIFEST_FILE) else uri
        try:
            location = open_location(base, self.limits.http_timeout_seconds)
        except ObjectStoreError as exc:
            raise _unreachable(exc.message) from None

        def read(name: str, limit: int) -> bytes:
            try:
                return read_object(location, name, limit)
            except ObjectTooLargeError as exc:
                raise _too_large(exc.message) from None
            except ObjectStoreError as exc:
                raise (_NotFound if exc.not_found else _unreachable)(exc.message) from None

        return self._read_remote(uri, expected, read)


def _http_get(client: httpx.Client, url: str, limit: int) -> bytes:
    """The runtime's own GET (its limits and messages), its errors as this module's."""
    try:
        return http_get_limited(client, url, limit)
    except BundleFileMissingError as exc:
        raise _NotFound(exc.message) from None
    except BundleTooLargeError as exc:
        raise _too_large(exc.message) from None
    except BundleUnreachableError as exc:
        raise _unreachable(exc.message) from None


# ------------------------------------------------------------------------------------- the pod


def requires_annotated_bundle(pod: Mapping[str, Any]) -> bool:
    """The pod's runtime runs with `--ready-requires-annotated-bundle` (bundleConfirmation
    ReadinessProbe)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    return any(READY_REQUIRES_ANNOTATED_BUNDLE_FLAG in (c.get("args") or []) for c in containers)


class SimulatedRuntime:
    """One simulated pod's runtime: the bundle it serves and its last load attempt."""

    __slots__ = (
        "_serving",
        "last_load",
        "on_change",
        "served_uri",
        "strict",
        "wanted",
        "well_hint",
    )

    def __init__(
        self, well_hint: str | None, on_change: Callable[[], None], *, strict: bool = False
    ) -> None:
        self._serving: SimulatedBundle | None = None
        self.served_uri = ""
        self.last_load: LoadAttempt | None = None
        self.well_hint = well_hint
        self.on_change = on_change
        # As BundleState's ready_requires_wanted: ready only while serving what the pod's
        # annotations (as its downward-API file last showed them) name.
        self.strict = strict
        self.wanted: tuple[str, str | None] | None = None

    @property
    def serving(self) -> bool:
        return self._serving is not None

    @property
    def ready(self) -> bool:
        current = self._serving
        if current is None or not self.strict:
            return current is not None
        if self.wanted is None:
            return False
        uri, digest = self.wanted
        return uri == self.served_uri and (digest is None or digest == current.digest)

    async def load_annotated(
        self, cache: ManifestCache, uri: str, digest: str | None
    ) -> LoadAttempt:
        """What the runtime does when its annotations file names a bundle: want it, load it."""
        self.wanted = (uri, normalize_digest(digest) if digest else None)
        swapping = self._serving is not None
        attempt = await self.load(cache, uri, digest)
        if self.strict and swapping:
            self.on_change()  # readiness may have changed: the kubelet probes again
        return attempt

    @property
    def bundle(self) -> BundleInfo | None:
        if self._serving is None:
            return None
        return self._serving.info(self.served_uri, self.well_hint)

    async def load(self, cache: ManifestCache, uri: str, digest: str | None) -> LoadAttempt:
        """As `BundleState.load`: the digest and URI that serve answer at once; anything else is
        read and checked, and a refusal keeps the serving bundle."""
        expected = normalize_digest(digest) if digest else None
        current = self._serving
        if current is not None and expected == current.digest and uri == self.served_uri:
            self.last_load = LoadAttempt.succeeded(uri, current.digest)
            return self.last_load
        try:
            bundle = await cache.get(uri, expected)
        except SimulatedLoadError as exc:
            self.last_load = LoadAttempt.failed(uri, exc.reason, exc.message, expected)
            return self.last_load
        self._serving, self.served_uri = bundle, uri
        self.last_load = LoadAttempt.succeeded(uri, bundle.digest)
        if current is None:
            self.on_change()
        return self.last_load

    def server_metadata(self) -> ServerMetadata:
        return {
            "name": SERVER_NAME,
            "version": SERVER_VERSION,
            "extensions": [Extension.BUNDLE_LOAD.value],
            "bundle": self.bundle,
            "lastLoad": self.last_load.to_json() if self.last_load else None,
        }

    def health(self) -> Health:
        return {
            "live": True,
            "ready": self.ready,
            "draining": False,
            "bundle": self.bundle,
            "lastLoad": self.last_load.to_json() if self.last_load else None,
        }

    async def answer(
        self, cache: ManifestCache, method: str, path: str, body: bytes
    ) -> tuple[int, ProxyBody]:
        """(status, JSON body) for a request the pod proxy forwards to this runtime."""
        path = "/" + path.strip("/")
        routes = {
            SERVER_METADATA_PATH: "GET",
            HEALTH_LIVE_PATH: "GET",
            HEALTH_READY_PATH: "GET",
            BUNDLE_LOAD_PATH: "POST",
        }
        if path in routes and method != routes[path]:
            return 405, {"error": f"method {method} not allowed on {path}"}
        if path == SERVER_METADATA_PATH:
            return 200, self.server_metadata()
        if path == HEALTH_LIVE_PATH:
            return 200, {"live": True}
        if path == HEALTH_READY_PATH:
            return (200 if self.ready else 503), self.health()
        if path == BUNDLE_LOAD_PATH:
            return await self._load_request(cache, body)
        if path.startswith(_NOT_SIMULATED_PREFIXES):
            return 501, {"error": f"the simulated runtime scores nothing: {method} {path}"}
        return 404, {"error": f"no route {method} {path}; see /v2 for the API"}

    async def _load_request(
        self, cache: ManifestCache, body: bytes
    ) -> tuple[int, LoadAnswer | LoadRefusal | ErrorBody]:
        try:
            wanted = parse_load_request(body)
        except LoadRequestError as exc:
            return 400, {"error": str(exc)}
        attempt = await self.load(cache, wanted["uri"], wanted["digest"])
        bundle = self.bundle
        if attempt.ok and bundle is not None:
            return 200, load_answer(bundle, attempt)
        reason = attempt.reason or LoadFailureReason.BUNDLE_INVALID
        return reason.http_status, load_refusal(reason, attempt.error or "", bundle)
