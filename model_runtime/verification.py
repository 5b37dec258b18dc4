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


@dataclass(frozen=True)
class VerifiedBundle:
    """Bytes whose manifest digest and file digests all matched."""

    uri: str
    digest: str
    manifest: BundleManifest
    model_bytes: dict[str, bytes] = field(repr=False)  # by model name


def normalize_digest(digest: str) -> str:
    """Accept `sha256:<hex>` or a bare hex digest; return the `sha256:<hex>` form."""
    value = digest.strip().lower()
    return value if value.startswith("sha256:") else f"sha256:{value}"


def verify_bundle(raw: RawBundle, expected_digest: str | None = None) -> VerifiedBundle:
    """Check the manifest digest (if one is expected) and every model file's sha256."""
    digest = manifest_digest(raw.manifest_raw)
    if expected_digest and normalize_digest(expected_digest) != digest:
        raise BundleInvalidError(
            f"bundle {raw.uri!r} has digest {digest}, expected {normalize_digest(expected_digest)}"
        )
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
