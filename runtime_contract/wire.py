"""The runtime's HTTP answers the operator relies on: `/v2` metadata, health, and the load nudge.

The operator reads a pod's `GET /v2` through the API server's pod proxy to learn which bundle
serves and how the last load went, and asks for a bundle with `POST /v2/repository/bundle/load`.
Shapes are TypedDicts of the JSON on the wire; a refusal's HTTP status follows from its reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NotRequired, TypedDict

from runtime_contract.monitoring import MonitoringSummary

SERVER_NAME: Final = "modelfleet-model-runtime"
SERVER_METADATA_PATH: Final = "/v2"
HEALTH_LIVE_PATH: Final = "/v2/health/live"
HEALTH_READY_PATH: Final = "/v2/health/ready"
BUNDLE_LOAD_PATH: Final = "/v2/repository/bundle/load"


class Extension(StrEnum):
    """OIP server-metadata extensions: what a runtime serves beyond the standard protocol."""

    WELL_INFER = "modelfleet_well_infer"
    BUNDLE_LOAD = "modelfleet_bundle_load"


class LoadFailureReason(StrEnum):
    """Why a bundle load failed: `lastLoad.reason`, a refusal's `reason`, a metrics label."""

    BUNDLE_INVALID = "BundleInvalid"
    UNREACHABLE = "Unreachable"
    TOO_LARGE = "TooLarge"
    NO_BUNDLE_URI = "NoBundleUri"

    @property
    def http_status(self) -> int:
        """The status of a load request refused for this reason."""
        return _REFUSAL_STATUS[self]

    @classmethod
    def parse(cls, value: object) -> LoadFailureReason | None:
        """The reason `value` names, or None for anything else (another server's answer)."""
        try:
            return cls(value) if isinstance(value, str) else None
        except ValueError:
            return None


_REFUSAL_STATUS: Final = {
    LoadFailureReason.BUNDLE_INVALID: 422,
    LoadFailureReason.UNREACHABLE: 502,
    LoadFailureReason.TOO_LARGE: 413,
    LoadFailureReason.NO_BUNDLE_URI: 422,
}


class BundleInfo(TypedDict):
    """The bundle a runtime serves."""

    digest: str
    uri: str
    well: str | None
    version: str | None
    models: int


class LoadAttemptJson(TypedDict):
    """`lastLoad`: the outcome of the most recent load attempt."""

    uri: str
    ok: bool
    error: str | None
    reason: str | None
    digest: str | None  # the digest loaded (ok) or the one expected (failure), if known


@dataclass(frozen=True)
class LoadAttempt:
    uri: str
    ok: bool
    error: str | None = None
    reason: LoadFailureReason | None = None
    digest: str | None = None

    @classmethod
    def succeeded(cls, uri: str, digest: str) -> LoadAttempt:
        return cls(uri=uri, ok=True, digest=digest)

    @classmethod
    def failed(
        cls, uri: str, reason: LoadFailureReason, error: str, expected_digest: str | None
    ) -> LoadAttempt:
        return cls(uri=uri, ok=False, error=error, reason=reason, digest=expected_digest)

    def to_json(self) -> LoadAttemptJson:
        return {
            "uri": self.uri,
            "ok": self.ok,
            "error": self.error,
            "reason": None if self.reason is None else self.reason.value,
            "digest": self.digest,
        }


# The JSON's own key spelling (`lastLoad`), so these dicts are what is on the wire.
class ServerMetadata(TypedDict):
    """`GET /v2`: OIP server metadata, plus the serving bundle and the last load attempt."""

    name: str
    version: str
    extensions: list[str]
    bundle: BundleInfo | None
    lastLoad: LoadAttemptJson | None
    monitoring: NotRequired[MonitoringSummary]  # absent while no bundle serves


class Health(TypedDict):
    """`GET /v2/health/ready` (200 when ready, else 503)."""

    live: bool
    ready: bool
    draining: bool
    bundle: BundleInfo | None
    lastLoad: LoadAttemptJson | None


class LoadAnswer(TypedDict):
    """A successful load (200): the bundle now serving."""

    bundle: BundleInfo
    lastLoad: LoadAttemptJson | None


class LoadRequest(TypedDict):
    uri: str
    digest: str | None  # `sha256:<hex>` (or bare hex); None: whatever the URI holds


class LoadRefusal(TypedDict):
    """A failed load (status `LoadFailureReason.http_status`); the serving bundle stays."""

    error: str
    reason: str
    bundle: BundleInfo | None


class ErrorBody(TypedDict):
    """Any other refusal: a malformed request (400), an unknown route (404), ..."""

    error: str


class LoadRequestError(ValueError):
    """The load request's body is not a LoadRequest (status 400)."""


def parse_load_request(body: bytes) -> LoadRequest:
    """The body of `POST /v2/repository/bundle/load`, or LoadRequestError saying what is wrong."""
    try:
        obj = json.loads(body) if body else None
    except RecursionError as exc:
        raise LoadRequestError("request body is nested too deeply to be a load request") from exc
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise LoadRequestError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("uri"), str) or not obj["uri"]:
        raise LoadRequestError('expected {"uri": "<bundle uri>", "digest": "sha256:<hex>" or null}')
    digest = obj.get("digest")
    if digest is not None and not isinstance(digest, str):
        raise LoadRequestError("'digest' must be a string like sha256:<hex>, or null")
    return {"uri": obj["uri"], "digest": digest or None}


def load_answer(bundle: BundleInfo, attempt: LoadAttempt | None) -> LoadAnswer:
    return {"bundle": bundle, "lastLoad": attempt.to_json() if attempt else None}


def load_refusal(reason: LoadFailureReason, error: str, serving: BundleInfo | None) -> LoadRefusal:
    return {"error": error, "reason": reason.value, "bundle": serving}
