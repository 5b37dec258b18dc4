"""`modelfleet bundle push DIR URI`: publish a verified bundle where production reads it.

The bundle is verified before anything is sent (every digest, as the runtime will check it).
Files go first and `manifest.json` last, so a reader, which starts from the manifest, never
sees half a bundle. A target that already holds a manifest is refused unless it is the same
bundle (same digest: pushing again is a no-op), and the manifest is written with a
create-only condition where the store supports it, so two pushes racing for one path cannot
both win. When a push fails midway, the files it wrote are deleted (best effort: a store that
went away cannot be cleaned, but without a manifest nothing there is a bundle).

`file://` targets are written to a staging directory beside the target and renamed into place.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bundle_builder.errors import PublishError
from bundle_builder.staging import move_into_place
from model_runtime.errors import BundleError
from model_runtime.manifest import MANIFEST_FILE, manifest_digest
from model_runtime.object_stores import (
    OBJECT_STORE_SCHEMES,
    ObjectStoreError,
    StoreLocation,
    describe_error,
    open_location,
    read_object,
)
from model_runtime.sources import read_bundle
from model_runtime.verification import verify_bundle

PUSH_CONCURRENCY = 16


@dataclass(frozen=True)
class PushResult:
    uri: str
    digest: str
    files: int
    already_there: bool


def _local_bundle(directory: Path) -> tuple[str, bytes, dict[str, bytes]]:
    try:
        raw = read_bundle(str(directory))
        verified = verify_bundle(raw)
    except BundleError as exc:
        raise PublishError(f"{directory} is not a valid bundle: {exc.message}") from exc
    return verified.digest, raw.manifest_raw, dict(raw.files)


def _push_local(
    target: Path, uri: str, digest: str, manifest: bytes, files: dict[str, bytes]
) -> PushResult:
    existing = target / MANIFEST_FILE
    if existing.is_file():
        found = manifest_digest(existing.read_bytes())
        if found == digest:
            return PushResult(uri, digest, len(files), already_there=True)
        raise PublishError(
            f"{uri} already holds bundle {found}; refusing to replace it with {digest}"
        )
    if target.exists() and any(target.iterdir()):
        raise PublishError(f"{uri} exists and is not an empty directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.pushing-{digest[7:19]}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for relative, data in files.items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).write_bytes(data)
        (staging / MANIFEST_FILE).write_bytes(manifest)
        move_into_place(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise PublishError(f"cannot write {uri}: {exc}") from exc
    return PushResult(uri, digest, len(files), already_there=False)


def _existing_digest(location: StoreLocation) -> str | None:
    try:
        return manifest_digest(read_object(location, MANIFEST_FILE, 64 * 1024 * 1024))
    except ObjectStoreError as exc:
        if exc.not_found:
            return None
        raise PublishError(f"cannot read {location.url(MANIFEST_FILE)}: {exc.message}") from exc
    except BundleError:
        return "(an unreadable manifest)"


def _push_store(
    location: StoreLocation, digest: str, manifest: bytes, files: dict[str, bytes]
) -> PushResult:
    import obstore
    from obstore.exceptions import AlreadyExistsError, NotSupportedError, PreconditionError

    found = _existing_digest(location)
    if found == digest:
        return PushResult(location.uri, digest, len(files), already_there=True)
    if found is not None:
        raise PublishError(
            f"{location.uri} already holds bundle {found}; refusing to replace it with {digest}"
        )
    written: list[str] = []

    def put(item: tuple[str, bytes]) -> str:
        obstore.put(location.store, location.key(item[0]), item[1])
        written.append(location.key(item[0]))  # list.append is atomic under the GIL
        return item[0]

    try:
        # Files concurrently (a store answers each PUT after a round trip), the manifest only
        # once every one of them is there.
        with ThreadPoolExecutor(max_workers=PUSH_CONCURRENCY) as pool:
            for _ in pool.map(put, sorted(files.items())):
                pass
        try:
            obstore.put(location.store, location.key(MANIFEST_FILE), manifest, mode="create")
        except NotSupportedError:
            obstore.put(location.store, location.key(MANIFEST_FILE), manifest)
    except (AlreadyExistsError, PreconditionError) as exc:
        raise PublishError(
            f"{location.uri}: another bundle was published there meanwhile; not replaced"
        ) from exc
    except Exception as exc:  # obstore's errors, transport errors
        _delete_quietly(location, written)
        raise PublishError(
            f"push to {location.uri} failed after {len(written)} of {len(files)} files "
            f"(manifest not written, so no bundle is visible there): {describe_error(exc)}"
        ) from exc
    return PushResult(location.uri, digest, len(files), already_there=False)


def _delete_quietly(location: StoreLocation, keys: list[str]) -> None:
    import obstore

    for key in keys:
        try:
            obstore.delete(location.store, key)
        except Exception:  # the store may be gone; without a manifest this is no bundle
            continue


def push_bundle(directory: Path, uri: str) -> PushResult:
    """Verify the bundle in `directory` and publish it at `uri` (file://, s3://, az://, gs://)."""
    digest, manifest, files = _local_bundle(directory)
    parts = urlsplit(uri)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise PublishError(f"file:// URI must name a local path, got host {parts.netloc!r}")
        return _push_local(Path(unquote(parts.path)), uri, digest, manifest, files)
    if parts.scheme not in OBJECT_STORE_SCHEMES:
        raise PublishError(f"cannot push to {uri!r}: expected file://, s3://, az:// or gs://")
    try:
        location = open_location(uri)
    except ObjectStoreError as exc:
        raise PublishError(exc.message) from exc
    return _push_store(location, digest, manifest, files)
