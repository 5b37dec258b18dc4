"""The bundle manifest: what a bundle contains, how to check it, and where it came from.

A bundle is named by content: its digest is the sha256 of the manifest's canonical JSON, and
the manifest pins the sha256 of every model file. The canonical form and the digest are the
runtime contract's (`runtime_contract.digest`), shared with the operator and the simulated runtime.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

import runtime_contract
from model_runtime.errors import BundleInvalidError
from runtime_contract import MANIFEST_FILE as MANIFEST_FILE
from runtime_contract import ManifestNotJsonError
from runtime_contract import canonical_json as canonical_json

MODELS_DIR = "models"
SCHEMA_VERSION: Literal[1] = 1
# Model names become URL path segments and file names: keep them boring.
MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,127}$"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

Datatype = Literal["FP32", "FP64", "INT64", "INT32", "BOOL", "BYTES"]


def manifest_digest(raw_manifest: bytes) -> str:
    """`sha256:<hex>` of the canonical JSON of `raw_manifest` (any JSON spelling of it)."""
    try:
        return runtime_contract.manifest_digest(raw_manifest)
    except ManifestNotJsonError as exc:
        raise BundleInvalidError(str(exc)) from exc


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """One input or output tensor; -1 in `shape` is a variable dimension (the batch of rows)."""

    name: str = Field(min_length=1)
    datatype: Datatype
    shape: list[int]

    @field_validator("shape")
    @classmethod
    def _dims_are_sizes_or_variable(cls, shape: list[int]) -> list[int]:
        if any(dim < -1 or dim == 0 for dim in shape):
            raise ValueError(f"dimensions must be positive or -1 (variable), got {shape}")
        return shape


class HistogramStatistics(_Strict):
    """One variable's distribution on the reference sample, for drift checks on live traffic.

    `edges` are quantile bin edges of the non-missing values (strictly increasing). The
    `frequencies` have len(edges) + 1 buckets: an underflow bucket (< edges[0]), one bucket per
    interval [edges[i], edges[i+1]) (the last one closed on the right), and an overflow bucket
    (> edges[-1]). Both overflow buckets are empty on the reference sample by construction: they
    exist for live values outside the reference range. Frequencies are fractions of the
    non-missing values; `missing_rate` is the fraction of all rows that were missing (NaN).
    """

    count: int = Field(ge=0)
    missing_rate: float = Field(ge=0.0, le=1.0)
    min: float | None = None
    max: float | None = None
    edges: list[float]
    frequencies: list[float]


class DriftThresholds(_Strict):
    """PSI thresholds a bundle sets for its own models, beating the runtime's (convention or
    calibrated): above `warn` a model is worth watching, above `drift` it is drifting."""

    warn: float = Field(gt=0.0)
    drift: float = Field(gt=0.0)

    @model_validator(mode="after")
    def _warn_before_drift(self) -> DriftThresholds:
        if self.warn > self.drift:
            raise ValueError(f"warn ({self.warn}) must not exceed drift ({self.drift})")
        return self


class ReferenceStatistics(_Strict):
    """The sample a bundle was checked on (packed) or trained on (built), summarized per feature."""

    sample_rows: int = Field(ge=1)
    sample_sha256: str
    bins: int = Field(ge=1)
    features: dict[str, HistogramStatistics]
    drift_thresholds: DriftThresholds | None = None


class PredictionStatistics(_Strict):
    """A model's own predictions on the reference sample: what prediction drift compares with.

    Classifiers: the frequency of each predicted label and the distribution of each class's
    probability (keys `probabilities[<class>]`). Regressors: the distribution of `value`.
    """

    label_frequencies: dict[str, float] | None = None
    outputs: dict[str, HistogramStatistics]


class ModelEntry(_Strict):
    """One model of the bundle: its file, that file's digest and its tensor signature.

    `failure_mode` and `horizon_days` describe our synthetic ESP models (`bundle build`); a
    packed model (`bundle pack`, a data scientist's own estimator) has `task` and `features`
    instead, and the distribution of its predictions on the packing sample.
    """

    name: str = Field(pattern=MODEL_NAME_PATTERN)
    file: str
    sha256: str
    kind: str
    failure_mode: str | None = None
    horizon_days: int | None = Field(default=None, ge=1)
    task: Literal["classification", "regression"] | None = None
    features: list[str] | None = None
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    classes: list[int]
    parity_max_abs_diff: float = Field(ge=0.0)
    prediction_reference: PredictionStatistics | None = None

    @field_validator("sha256")
    @classmethod
    def _is_hex_sha256(cls, value: str) -> str:
        if not _SHA256_HEX.match(value):
            raise ValueError("must be 64 lowercase hex characters (sha256 of the file)")
        return value

    @field_validator("file")
    @classmethod
    def _stays_inside_bundle(cls, value: str) -> str:
        parts = value.split("/")
        if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"must be a relative path inside the bundle, got {value!r}")
        return value


class Parity(_Strict):
    """How ONNX was checked against scikit-learn before the bundle was written."""

    tolerance: float = Field(gt=0.0)
    # max_output_divergence (packed bundles): per value |onnx - sklearn| / max(1, |sklearn|)
    # over every output (probabilities, regression values), predicted labels equal exactly.
    metric: Literal["max_abs_probability_diff", "max_output_divergence"] = (
        "max_abs_probability_diff"
    )
    holdout_rows: int = Field(ge=1)


class InputFile(_Strict):
    """A file a packed bundle was made from: its name (not its path) and its sha256."""

    file: str | None = None  # None: an object handed over in memory (the Python API)
    sha256: str | None = None
    trusted_types: list[str] | None = None  # .skops: types trusted beyond skops' defaults


class Provenance(_Strict):
    """Everything needed to rebuild the bundle byte for byte.

    A built bundle (our trainer) records its training data and seed; a packed bundle records
    the files it was packed from (`inputs`: each model file and the sample) and, when given,
    the source revision of the code that fitted them.
    """

    packages: dict[str, str]
    training_data_sha256: str | None = None
    training_rows: int | None = None
    features: list[str]
    parameters: dict[str, dict[str, Any]]
    seed: int | None = None
    created_at: str  # deterministic: SOURCE_DATE_EPOCH or the epoch, never the wall clock
    inputs: dict[str, InputFile] | None = None
    source_revision: str | None = None


class BundleManifest(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    well: str = Field(min_length=1)
    version: str = Field(min_length=1)
    models: list[ModelEntry] = Field(min_length=1)
    parity: Parity
    provenance: Provenance
    reference: ReferenceStatistics | None = None

    @field_validator("models")
    @classmethod
    def _names_unique(cls, models: list[ModelEntry]) -> list[ModelEntry]:
        seen: set[str] = set()
        for entry in models:
            if entry.name in seen:
                raise ValueError(f"duplicate model name {entry.name!r}")
            seen.add(entry.name)
        return models

    def to_canonical_bytes(self) -> bytes:
        # Optional fields left unset are omitted (not written as null): a built bundle's bytes,
        # and so its digest, are the same as before those fields existed.
        return canonical_json(self.model_dump(mode="json", exclude_none=True))

    def digest(self) -> str:
        return runtime_contract.manifest_digest(self.to_canonical_bytes())


def parse_manifest(raw_manifest: bytes) -> BundleManifest:
    """Parse and validate; every problem becomes a BundleInvalidError naming the field."""
    try:
        obj = json.loads(raw_manifest)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleInvalidError(f"{MANIFEST_FILE} is not valid JSON: {exc}") from exc
    try:
        return BundleManifest.model_validate(obj)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise BundleInvalidError(f"{MANIFEST_FILE} is invalid: {problems}") from exc
