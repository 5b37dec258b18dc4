"""Why a pack is refused: one exception family, each message naming the model, file, field or row.

The CLI prints the message on one line and exits 1; nothing is written when any is raised.
"""

from __future__ import annotations


class PackError(ValueError):
    """A bundle cannot be packed from these inputs; the message says which input and why."""


class ModelFileError(PackError):
    """A model file cannot be read as a fitted scikit-learn estimator (corrupt, foreign, untrusted)."""


class SampleError(PackError):
    """The sample cannot be used (unreadable, empty, missing columns, non-numeric values)."""


class UnsupportedModelError(PackError):
    """The estimator (or one of its steps) has no faithful ONNX conversion."""


class ParityGateError(PackError):
    """ONNX disagrees with scikit-learn on the user's own sample beyond the tolerance."""


class PublishError(RuntimeError):
    """A bundle cannot be pushed to its target (refused credentials, unreachable store, conflict)."""
