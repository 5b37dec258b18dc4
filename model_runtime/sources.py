"""Read a bundle's bytes from wherever it lives: a directory or a .tar.gz, on disk, over HTTP or
in an object store (s3://, az://, gs://: object_stores.py).

Everything is read into memory and handed to verification as bytes, so nothing is ever
extracted to disk: a tarball entry that tries to leave the bundle (`../x`, `/etc/x`, links,
devices) is refused by name, before any content is used. Size limits bound memory for every
source, including a gzip bomb (sizes are checked on the declared and the actual bytes).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from model_runtime.errors import (
    BundleFileMissingError,
    BundleInvalidError,
    BundleTooLargeError,
    BundleUnreachableError,
)
from model_runtime.manifest import MANIFEST_FILE, BundleManifest, parse_manifest
from model_runtime.object_stores import (
    OBJECT_STORE_SCHEMES,
    ObjectStoreError,
    ObjectTooLargeError,
    open_location,
    read_object,
)

if TYPE_CHECKING:
    import httpx

_MIB = 1024 * 1024
TARBALL_SUFFIXES = (".tar.gz", ".tgz")
STORE_READ_CONCURRENCY = 16


@dataclass(frozen=True)
class SourceLimits:
    max_manifest_bytes: int = 4 * _MIB
    max_file_bytes: int = 64 * _MIB
    max_total_bytes: int = 1024 * _MIB
    max_tar_members: int = 10_000
    http_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class RawBundle:
    """A bundle's unverified bytes: the manifest as read, and every file it names."""

    uri: str
    manifest_raw: bytes
    manifest: BundleManifest
    files: dict[str, bytes] = field(repr=False)


def _is_tarball(name: str) -> bool:
    return name.lower().endswith(TARBALL_SUFFIXES)


def read_bundle(uri: str, limits: SourceLimits | None = None) -> RawBundle:
    """Read the bundle at `uri` (file://, http(s)://, or a plain path) into memory."""
    limits = limits or SourceLimits()
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return _read_http(uri, limits)
    if parts.scheme in OBJECT_STORE_SCHEMES:
        return _read_object_store(uri, limits)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise BundleInvalidError(
                f"file:// URI must name a local path, got host {parts.netloc!r}"
            )
        path = Path(unquote(parts.path))
    elif parts.scheme == "" or (len(parts.scheme) == 1 and uri[1:3] == ":\\"):
        path = Path(uri)
    else:
        raise BundleInvalidError(
            f"unsupported bundle URI scheme {parts.scheme!r} in {uri!r}; expected file://, http(s)://, s3://, az:// or gs://"
        )
    return _read_path(uri, path, limits)


# -- local ----------------------------------------------------------------------------------


def _read_local_file(path: Path, limit: int, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise BundleTooLargeError(f"{what} {path} is {size} bytes, over the limit of {limit}")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise BundleInvalidError(f"{what} {path} is missing") from exc
    except IsADirectoryError as exc:
        raise BundleInvalidError(f"{what} {path} is a directory, expected a file") from exc
    except PermissionError as exc:
        raise BundleUnreachableError(f"{what} {path} is not readable: {exc.strerror}") from exc


def _read_path(uri: str, path: Path, limits: SourceLimits) -> RawBundle:
    if not path.exists():
        raise BundleUnreachableError(f"bundle path {path} does not exist (from {uri!r})")
    if path.is_file():
        if path.name == MANIFEST_FILE:
            path = path.parent
        else:
            data = _read_local_file(path, limits.max_total_bytes, "bundle tarball")
            return _read_tarball(uri, data, limits)
    manifest_raw = _read_local_file(path / MANIFEST_FILE, limits.max_manifest_bytes, "manifest")
    manifest = parse_manifest(manifest_raw)
    files: dict[str, bytes] = {}
    total = len(manifest_raw)
    root = path.resolve()
    for entry in manifest.models:
        file_path = (path / entry.file).resolve()
        # The manifest validator already refuses `..`; a symlink inside the bundle could still
        # point outside it, so compare resolved paths too.
        if not file_path.is_relative_to(root):
            raise BundleInvalidError(
                f"model {entry.name!r}: file {entry.file!r} resolves outside the bundle"
            )
        data = _read_local_file(file_path, limits.max_file_bytes, f"model {entry.name!r} file")
        total += len(data)
        if total > limits.max_total_bytes:
            raise BundleTooLargeError(
                f"bundle {uri!r} exceeds {limits.max_total_bytes} bytes in total"
            )
        files[entry.file] = data
    return RawBundle(uri=uri, manifest_raw=manifest_raw, manifest=manifest, files=files)


# -- tarball --------------------------------------------------------------------------------


def _safe_member_name(name: str) -> str:
    """The member's normalized relative path, or BundleInvalidError if it could escape."""
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise BundleInvalidError(f"tarball member {name!r} has an absolute path; refused")
    normalized = posixpath.normpath(name)
    if normalized == ".." or normalized.startswith("../") or "/../" in f"/{name}/":
        raise BundleInvalidError(
            f"tarball member {name!r} escapes the bundle directory (path traversal); refused"
        )
    return "" if normalized == "." else normalized


def _read_tarball(uri: str, data: bytes, limits: SourceLimits) -> RawBundle:
    contents: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for count, member in enumerate(tar, start=1):
                if count > limits.max_tar_members:
                    raise BundleTooLargeError(
                        f"tarball {uri!r} has more than {limits.max_tar_members} members"
                    )
                name = _safe_member_name(member.name)
                if member.isdir():
                    continue
                if not member.isfile():
                    kind = "a link" if (member.issym() or member.islnk()) else "not a regular file"
                    raise BundleInvalidError(f"tarball member {member.name!r} is {kind}; refused")
                if member.size > limits.max_file_bytes:
                    raise BundleTooLargeError(
                        f"tarball member {member.name!r} is {member.size} bytes, over the limit of {limits.max_file_bytes}"
                    )
                total += member.size
                if total > limits.max_total_bytes:
                    raise BundleTooLargeError(
                        f"tarball {uri!r} unpacks to more than {limits.max_total_bytes} bytes"
                    )
                extracted = tar.extractfile(member)
                if extracted is None:
                    raise BundleInvalidError(f"tarball member {member.name!r} cannot be read")
                contents[name] = extracted.read(member.size + 1)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleInvalidError(f"bundle {uri!r} is not a readable .tar.gz: {exc}") from exc

    prefix = _bundle_root(uri, contents)
    manifest_raw = contents[prefix + MANIFEST_FILE]
    if len(manifest_raw) > limits.max_manifest_bytes:
        raise BundleTooLargeError(f"manifest in {uri!r} is over {limits.max_manifest_bytes} bytes")
    manifest = parse_manifest(manifest_raw)
    files = {
        entry.file: contents[prefix + entry.file]
        for entry in manifest.models
        if prefix + entry.file in contents
    }
    return RawBundle(uri=uri, manifest_raw=manifest_raw, manifest=manifest, files=files)


def _bundle_root(uri: str, contents: dict[str, bytes]) -> str:
    """'' when manifest.json is at the top, 'dir/' when the tarball wraps the bundle in one dir."""
    if MANIFEST_FILE in contents:
        return ""
    candidates = [
        name[: -len(MANIFEST_FILE)] for name in contents if name.endswith("/" + MANIFEST_FILE)
    ]
    top_level = [c for c in candidates if c.count("/") == 1]
    if len(top_level) != 1:
        raise BundleInvalidError(
            f"tarball {uri!r} has no {MANIFEST_FILE} at its top level (or in one top directory)"
        )
    return top_level[0]


# -- HTTP -----------------------------------------------------------------------------------


def http_get_limited(client: httpx.Client, url: str, limit: int) -> bytes:
    """GET `url` whole, refusing more than `limit` bytes (by Content-Length, then while
    reading); BundleFileMissingError on 404, BundleUnreachableError on any other failure."""
    import httpx

    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                message = f"GET {url} answered HTTP {response.status_code}"
                if response.status_code == 404:
                    raise BundleFileMissingError(message)
                raise BundleUnreachableError(message)
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise BundleTooLargeError(f"GET {url}: {declared} bytes, over the limit of {limit}")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise BundleTooLargeError(f"GET {url}: more than {limit} bytes; refused")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise BundleUnreachableError(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc


def _read_http(uri: str, limits: SourceLimits) -> RawBundle:
    # Imported here: a pod serving a file:// or object-store bundle never pays its ~6 MiB
    # (docs/benchmarks.md, Runtime); obstore is imported the same way (object_stores.py).
    import httpx

    timeout = httpx.Timeout(limits.http_timeout_seconds)
    with httpx.Client(timeout=timeout, follow_redirects=True, trust_env=False) as client:
        path = urlsplit(uri).path
        if _is_tarball(path):
            return _read_tarball(uri, http_get_limited(client, uri, limits.max_total_bytes), limits)
        base = (
            uri[: -len(MANIFEST_FILE)]
            if path.endswith("/" + MANIFEST_FILE)
            else uri.rstrip("/") + "/"
        )
        manifest_raw = http_get_limited(client, base + MANIFEST_FILE, limits.max_manifest_bytes)
        manifest = parse_manifest(manifest_raw)
        files: dict[str, bytes] = {}
        total = len(manifest_raw)
        for entry in manifest.models:
            try:
                data = http_get_limited(client, base + entry.file, limits.max_file_bytes)
            except BundleFileMissingError:
                continue  # reported by verification as a missing file of this model
            total += len(data)
            if total > limits.max_total_bytes:
                raise BundleTooLargeError(
                    f"bundle {uri!r} exceeds {limits.max_total_bytes} bytes in total"
                )
            files[entry.file] = data
        return RawBundle(uri=uri, manifest_raw=manifest_raw, manifest=manifest, files=files)


# -- object stores (s3://, az://, gs://) ----------------------------------------------------


def _store_get(location: Any, relative: str, limit: int) -> bytes:
    try:
        return read_object(location, relative, limit)
    except ObjectTooLargeError as exc:
        raise BundleTooLargeError(exc.message) from exc
    except ObjectStoreError as exc:
        raise BundleUnreachableError(exc.message) from exc


def _read_object_store(uri: str, limits: SourceLimits) -> RawBundle:
    """Like HTTP: the manifest first, then each file it names (a bundle is published files
    first and manifest last, so a manifest that is there names files that are there)."""
    path = urlsplit(uri).path
    try:
        if _is_tarball(path):
            head, _, name = uri.rstrip("/").rpartition("/")
            location = open_location(head, limits.http_timeout_seconds)
            data = _store_get(location, name, limits.max_total_bytes)
            return _read_tarball(uri, data, limits)
        base = uri[: -len(MANIFEST_FILE)] if path.endswith("/" + MANIFEST_FILE) else uri
        location = open_location(base, limits.http_timeout_seconds)
    except ObjectStoreError as exc:
        raise BundleUnreachableError(exc.message) from exc
    manifest_raw = _store_get(location, MANIFEST_FILE, limits.max_manifest_bytes)
    manifest = parse_manifest(manifest_raw)
    files: dict[str, bytes] = {}
    total = len(manifest_raw)

    def fetch(file: str) -> bytes | ObjectStoreError:
        try:
            return read_object(location, file, limits.max_file_bytes)
        except ObjectStoreError as exc:
            return exc

    # A store answers each GET after a round trip: fetch the files concurrently (100 models'
    # files in a few round trips, not 100), keeping the manifest's order for the checks below.
    with ThreadPoolExecutor(max_workers=STORE_READ_CONCURRENCY) as pool:
        fetched = list(pool.map(fetch, [entry.file for entry in manifest.models]))
    for entry, result in zip(manifest.models, fetched, strict=True):
        if isinstance(result, ObjectTooLargeError):
            raise BundleTooLargeError(result.message) from result
        if isinstance(result, ObjectStoreError):
            if result.not_found:
                continue  # reported by verification as a missing file of this model
            raise BundleUnreachableError(result.message) from result
        total += len(result)
        if total > limits.max_total_bytes:
            raise BundleTooLargeError(
                f"bundle {uri!r} exceeds {limits.max_total_bytes} bytes in total"
            )
        files[entry.file] = result
    return RawBundle(uri=uri, manifest_raw=manifest_raw, manifest=manifest, files=files)
