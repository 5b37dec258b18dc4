"""Decide whether a bundle's bytes may be served: every digest checked, nothing taken on trust.

Verification is pure (bytes in, verdict out), so the loader, `modelfleet bundle verify` and the
tests share it. Loading each model into onnxruntime is the last check and lives in sessions.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from model_runtime.errors import BundleInvalidError
from model_runtime.manifest import BundleManifest, manifest_digest
from model_runtime.sources import RawBundle
from runtime_contract import digest_mismatch_message, normalize_digest


@dataclass(frozen=True)
class VerifiedBundle:
    """Bytes whose manifest digest and file digests all matched."""

    uri: str
    digest: str
    manifest: BundleManifest
    model_bytes: dict[str, bytes] = field(repr=False)  # by model name


def verify_bundle(raw: RawBundle, expected_digest: str | None = None) -> VerifiedBundle:
    """Check the manifest digest (if one is expected) and every model file's sha256."""
    digest = manifest_digest(raw.manifest_raw)
    expected = normalize_digest(expected_digest) if expected_digest else None
    if expected is not None and expected != digest:
        raise BundleInvalidError(digest_mismatch_message(raw.uri, digest, expected))
    model_bytes: dict[str, bytes] = {}
    for entry in raw.manifest.models:
        data = raw.files.get(entry.file)
        if data is None:
            raise BundleInvalidError(
                f"model {entry.name!r}: file {entry.file} is missing from the bundle"
            )
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry.sha256:
            raise BundleInvalidError(
                f"model {entry.name!r}: file {entry.file} has sha256 {actual}, manifest says {entry.sha256}"
            )
        model_bytes[entry.name] = data
    return VerifiedBundle(
        uri=raw.uri, digest=digest, manifest=raw.manifest, model_bytes=model_bytes
    )
