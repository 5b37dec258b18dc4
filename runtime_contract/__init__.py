"""The wire contract between a well pod's runtime and everything that talks to it.

The runtime (`model_runtime`), the operator (`modelfleet`) and the simulated runtime
(`modelfleet_dev.simulated_runtime`) all speak through these names, shapes and formats, so each
is defined once, here: the pod annotations that name a bundle, the readiness-gate condition and
its message, the load-failure reasons and the HTTP statuses that carry them, the JSON of a load
attempt, the `/v2` metadata and the load request and answer, and the bundle digest.

Standard library only, importing nothing else: the operator image holds neither numpy nor
onnxruntime nor the runtime, and this package must import there (an import contract and
tests/chart/test_images.py check it).
"""

from runtime_contract.digest import (
    DIGEST_PREFIX,
    MANIFEST_FILE,
    ManifestNotJsonError,
    canonical_json,
    digest_mismatch_message,
    json_digest,
    manifest_digest,
    normalize_digest,
    parse_manifest_json,
)
from runtime_contract.pod import (
    BUNDLE_CONDITION,
    BUNDLE_DIGEST_ANNOTATION,
    BUNDLE_URI_ANNOTATION,
    GATE_MESSAGE_LIMIT,
    READY_REQUIRES_ANNOTATED_BUNDLE_FLAG,
    GateBundle,
    GateReason,
    parse_gate_message,
    refused_message,
    served_message,
)
from runtime_contract.wire import (
    BUNDLE_LOAD_PATH,
    HEALTH_LIVE_PATH,
    HEALTH_READY_PATH,
    SERVER_METADATA_PATH,
    SERVER_NAME,
    BundleInfo,
    ErrorBody,
    Extension,
    Health,
    LoadAnswer,
    LoadAttempt,
    LoadAttemptJson,
    LoadFailureReason,
    LoadRefusal,
    LoadRequest,
    LoadRequestError,
    ServerMetadata,
    load_answer,
    load_refusal,
    parse_load_request,
)

__all__ = [
    "BUNDLE_CONDITION",
    "BUNDLE_DIGEST_ANNOTATION",
    "BUNDLE_LOAD_PATH",
    "BUNDLE_URI_ANNOTATION",
    "DIGEST_PREFIX",
    "GATE_MESSAGE_LIMIT",
    "HEALTH_LIVE_PATH",
    "HEALTH_READY_PATH",
    "MANIFEST_FILE",
    "READY_REQUIRES_ANNOTATED_BUNDLE_FLAG",
    "SERVER_METADATA_PATH",
    "SERVER_NAME",
    "BundleInfo",
    "ErrorBody",
    "Extension",
    "GateBundle",
    "GateReason",
    "Health",
    "LoadAnswer",
    "LoadAttempt",
    "LoadAttemptJson",
    "LoadFailureReason",
    "LoadRefusal",
    "LoadRequest",
    "LoadRequestError",
    "ManifestNotJsonError",
    "ServerMetadata",
    "canonical_json",
    "digest_mismatch_message",
    "json_digest",
    "load_answer",
    "load_refusal",
    "manifest_digest",
    "normalize_digest",
    "parse_gate_message",
    "parse_load_request",
    "parse_manifest_json",
    "refused_message",
    "served_message",
]
