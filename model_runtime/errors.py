"""One exception family for the runtime, each class carrying the HTTP status it maps to.

The data plane, the bundle loader and the builder raise these; the HTTP adapter renders any of
them as `{"error": message}` with `status`, so a status is decided once, where the problem is
understood, and never guessed at the edge.
"""

from __future__ import annotations

from runtime_contract import LoadFailureReason

__all__ = [
    "BadRequestError",
    "BundleError",
    "BundleInvalidError",
    "BundleTooLargeError",
    "BundleUnreachableError",
    "LoadFailureReason",
    "ModelNotFoundError",
    "ModelRuntimeError",
    "NotReadyError",
    "ParityError",
    "PayloadTooLargeError",
]


class ModelRuntimeError(Exception):
    """Base class: a message meant for the caller plus the HTTP status that carries it."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequestError(ModelRuntimeError):
    """The request body or its tensors do not match what the model expects."""

    status = 400


class ModelNotFoundError(ModelRuntimeError):
    status = 404

    def __init__(self, model: str, known: int) -> None:
        super().__init__(f"model {model!r} not found in the serving bundle ({known} models)")
        self.model = model


class PayloadTooLargeError(ModelRuntimeError):
    status = 413


class NotReadyError(ModelRuntimeError):
    """No verified bundle serves yet (or any more); retry later."""

    status = 503


class BundleError(ModelRuntimeError):
    """A bundle could not be fetched, verified or loaded; the serving bundle (if any) stays.

    The status follows from the reason (the runtime contract maps each reason to one status).
    """

    reason: LoadFailureReason = LoadFailureReason.BUNDLE_INVALID
    status = reason.http_status


class BundleInvalidError(BundleError):
    """The bundle's content is wrong: digest mismatch, bad manifest, unloadable model, traversal."""


class BundleUnreachableError(BundleError):
    """The bundle source could not be read (connection refused, 404, missing path)."""

    reason = LoadFailureReason.UNREACHABLE
    status = reason.http_status


class BundleFileMissingError(BundleUnreachableError):
    """The source answered that a file is not there (HTTP 404): Unreachable for a manifest,
    a missing file of its model (after the digest check) for a model file."""


class BundleTooLargeError(BundleError):
    """The bundle (or one of its files) exceeds a configured size limit."""

    reason = LoadFailureReason.TOO_LARGE
    status = reason.http_status


class ParityError(Exception):
    """A converted ONNX model disagrees with its scikit-learn original beyond the tolerance."""

    def __init__(self, model: str, max_abs_diff: float, tolerance: float) -> None:
        super().__init__(
            f"parity check failed for model {model!r}: max |onnx - sklearn| probability "
            f"difference {max_abs_diff:.3g} exceeds tolerance {tolerance:.3g}; no bundle written"
        )
        self.model = model
        self.max_abs_diff = max_abs_diff
        self.tolerance = tolerance

    def __reduce__(self) -> tuple[type[ParityError], tuple[str, float, float]]:
        # Builds run in process pools: the error must cross the process boundary intact.
        return (ParityError, (self.model, self.max_abs_diff, self.tolerance))
