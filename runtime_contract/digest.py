"""A bundle is named by its content: the sha256 of its manifest's canonical JSON.

The manifest pins the sha256 of every model file, so this one digest covers the whole bundle.
Any JSON spelling of the same manifest (key order, indentation) has the same digest.
"""

from __future__ import annotations

import hashlib
import json
from typing import Final

MANIFEST_FILE: Final = "manifest.json"
DIGEST_PREFIX: Final = "sha256:"


class ManifestNotJsonError(ValueError):
    """The manifest's bytes are not JSON (or not UTF-8): it has no digest."""


def canonical_json(obj: object) -> bytes:
    """The one byte form of a JSON value: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def json_digest(obj: object) -> str:
    """`sha256:<hex>` of the canonical JSON of a (parsed) manifest."""
    return DIGEST_PREFIX + hashlib.sha256(canonical_json(obj)).hexdigest()


def parse_manifest_json(raw_manifest: bytes) -> object:
    """The manifest's JSON value; ManifestNotJsonError (naming the problem) if it is not JSON."""
    try:
        return json.loads(raw_manifest)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestNotJsonError(f"{MANIFEST_FILE} is not valid JSON: {exc}") from exc


def manifest_digest(raw_manifest: bytes) -> str:
    """The digest of a manifest as read (any JSON spelling of it); ManifestNotJsonError if it is
    not JSON."""
    return json_digest(parse_manifest_json(raw_manifest))


def normalize_digest(digest: str) -> str:
    """Accept `sha256:<hex>` or a bare hex digest, any case; return `sha256:<lowercase hex>`."""
    value = digest.strip().lower()
    return value if value.startswith(DIGEST_PREFIX) else DIGEST_PREFIX + value


def digest_mismatch_message(uri: str, actual: str, expected: str) -> str:
    """Why a bundle was refused for its digest; tools match on "has digest X, expected Y"."""
    return f"bundle {uri!r} has digest {actual}, expected {expected}"
