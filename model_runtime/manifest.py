"""The bundle manifest: what a bundle contains, how to check it, and where it came from.

A bundle is named by content: its digest is the sha256 of the manifest's canonical JSON, and
the manifest pins the sha256 of every model file. The canonical form and the digest are the
runtime contract's (`runtime_contract.digest`), shared with the operator and the simulated runtime.

The types are `msgspec.Struct`s (issue 16: pydantic and its validators cost a serving pod
~9 MiB, msgspec ~1). Field constraints are `Meta` annotations, checked when a manifest is
decoded (`parse_manifest`) and when one is serialized (`to_canonical_bytes`, so a bundle writer
cannot write what the runtime would refuse); the cross-field checks are `__post_init__`, run on
construction too.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

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

NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
AboveZero = Annotated[float, msgspec.Meta(gt=0.0)]


def manifest_digest(raw_manifest: bytes) -> str:
    """`sha256:<hex>` of the canonical JSON of `raw_manifest` (any JSON spelling of it)."""
    try:
        return runtime_contract.manifest_digest(raw_manifest)
    except ManifestNotJsonError as exc:
        raise BundleInvalidError(str(exc)) from exc


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Frozen, unknown fields refused; each subclass says kw_only=True (not inherited)."""

    pass


class TensorSpec(_Strict, frozen=True, kw_only=True):
    """One input or output tensor; -1 in `shape` is a variable dimension (the batch of rows)."""

    name: NonEmptyStr
    datatype: Datatype
    shape: list[int]

    def __post_init__(self) -> None:
        if any(dim < -1 or dim == 0 for dim in self.shape):
            raise ValueError(f"dimensions must be positive or -1 (variable), got {self.shape}")


class HistogramStatistics(_Strict, frozen=True, kw_only=True):
    """One variable's distribution on the reference sample, for drift checks on live traffic.

    `edges` are quantile bin edges of the non-missing values (strictly increasing). The
    `frequencies` have len(edges) + 1 buckets: an underflow bucket (< edges[0]), one bucket per
    interval [edges[i], edges[i+1]) (the last one closed on the right), and an overflow bucket
    (> edges[-1]). Both overflow buckets are empty on the reference sample by construction: they
    exist for live values outside the reference range. Frequencies are fractions of the
    non-missing values; `missing_rate` is the fraction of all rows that were missing (NaN).
    """

    count: Count
    missing_rate: Fraction
    min: float | None = None
    max: float | None = None
    edges: list[float]
    frequencies: list[float]


class DriftThresholds(_Strict, frozen=True, kw_only=True):
    """PSI thresholds a bundle sets for its own models, beating the runtime's (convention or
    calibrated): above `warn` a model is worth watching, above `drift` it is drifting."""

    warn: AboveZero
    drift: AboveZero

    def __post_init__(self) -> None:
        if self.warn > self.drift:
            raise ValueError(f"warn ({self.warn}) must not exceed drift ({self.drift})")


class ReferenceStatistics(_Strict, frozen=True, kw_only=True):
    """The sample a bundle was checked on (packed) or trained on (built), summarized per feature."""

    sample_rows: Positive
    sample_sha256: str
    bins: Positive
    features: dict[str, HistogramStatistics]
    drift_thresholds: DriftThresholds | None = None


class PredictionStatistics(_Strict, frozen=True, kw_only=True):
    """A model's own predictions on the reference sample: what prediction drift compares with.

    Classifiers: the frequency of each predicted label and the distribution of each class's
    probability (keys `probabilities[<class>]`). Regressors: the distribution of `value`.
    """

    label_frequencies: dict[str, float] | None = None
    outputs: dict[str, HistogramStatistics]


class ModelEntry(_Strict, frozen=True, kw_only=True):
    """One model of the bundle: its file, that file's digest and its tensor signature.

    `failure_mode` and `horizon_days` describe our synthetic ESP models (`bundle build`); a
    packed model (`bundle pack`, a data scientist's own estimator) has `task` and `features`
    instead, and the distribution of its predictions on the packing sample.
    """

    name: Annotated[str, msgspec.Meta(pattern=MODEL_NAME_PATTERN)]
    file: str
    sha256: str
    kind: str
    failure_mode: str | None = None
    horizon_days: Positive | None = None
    task: Literal["classification", "regression"] | None = None
    features: list[str] | None = None
    inputs: Annotated[list[TensorSpec], msgspec.Meta(min_length=1)]
    outputs: Annotated[list[TensorSpec], msgspec.Meta(min_length=1)]
    classes: list[int]
    parity_max_abs_diff: NonNegative
    prediction_reference: PredictionStatistics | None = None

    def __post_init__(self) -> None:
        if not _SHA256_HEX.match(self.sha256):
            raise ValueError("sha256: must be 64 lowercase hex characters (sha256 of the file)")
        parts = self.file.split("/")
        if (
            self.file.startswith("/")
            or "\\" in self.file
            or any(p in ("", ".", "..") for p in parts)
        ):
            raise ValueError(f"file: must be a relative path inside the bundle, got {self.file!r}")


class Parity(_Strict, frozen=True, kw_only=True):
    """How ONNX was checked against scikit-learn before the bundle was written."""

    tolerance: AboveZero
    # max_output_divergence (packed bundles): per value |onnx - sklearn| / max(1, |sklearn|)
    # over every output (probabilities, regression values), predicted labels equal exactly.
    metric: Literal["max_abs_probability_diff", "max_output_divergence"] = (
        "max_abs_probability_diff"
    )
    holdout_rows: Positive


class InputFile(_Strict, frozen=True, kw_only=True):
    """A file a packed bundle was made from: its name (not its path) and its sha256."""

    file: str | None = None  # None: an object handed over in memory (the Python API)
    sha256: str | None = None
    trusted_types: list[str] | None = None  # .skops: types trusted beyond skops' defaults


class Provenance(_Strict, frozen=True, kw_only=True):
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


class BundleManifest(_Strict, frozen=True, kw_only=True):
    schema_version: Literal[1] = SCHEMA_VERSION
    well: NonEmptyStr
    version: NonEmptyStr
    models: Annotated[list[ModelEntry], msgspec.Meta(min_length=1)]
    parity: Parity
    provenance: Provenance
    reference: ReferenceStatistics | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for entry in self.models:
            if entry.name in seen:
                raise ValueError(f"models: duplicate model name {entry.name!r}")
            seen.add(entry.name)

    def to_canonical_bytes(self) -> bytes:
        """The canonical JSON, after the same checks `parse_manifest` makes (BundleInvalidError).

        Optional fields left unset are omitted (not written as null): a built bundle's bytes,
        and so its digest, are the same as before those fields existed.
        """
        try:
            # The converted copy, not self: a constructor converts nothing (an int given for a
            # float field stays an int), msgspec.convert does as decoding does (1 -> 1.0).
            checked = msgspec.convert(to_plain(self), type=BundleManifest)
        except msgspec.ValidationError as exc:
            raise _invalid(exc) from exc
        return canonical_json(to_plain(checked))

    def digest(self) -> str:
        return runtime_contract.manifest_digest(self.to_canonical_bytes())


def to_plain(value: Any) -> Any:
    """JSON-ready builtins of a manifest (or any part of it); struct fields that are None are
    left out, None inside free-form dicts (`Provenance.parameters`) is kept, numpy numbers
    become Python's."""
    if isinstance(value, msgspec.Struct):
        return {
            name: to_plain(item)
            for name in value.__struct_fields__
            if (item := getattr(value, name)) is not None
        }
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    if type(value).__module__ == "numpy":  # a builder's numpy scalar or array, as pydantic took
        return value.tolist()
    return value


# msgspec says "Expected `int` >= 1 - at `$.models[0].horizon_days`"; a field's own check
# (`__post_init__`) says "sha256: must be ..." at its object.
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_INDEX = re.compile(r"\[(\d+)\]")
_ABOUT_A_FIELD = re.compile(
    r"^(?:Object (?P<why>missing required|contains unknown) field `(?P<named>[^`]+)`"
    r"|(?P<field>[a-z_][a-z0-9_]*): (?P<rest>.*))$",
    re.DOTALL,
)


def validation_problem(exc: msgspec.ValidationError) -> str:
    """`models.0.horizon_days: Expected `int` >= 1`: the field as a dotted path, then why."""
    found = _AT.match(str(exc))
    assert found is not None  # the pattern matches any text
    path = [p for p in _INDEX.sub(r".\1", found["path"] or "").split(".") if p]
    message = found["msg"]
    about = _ABOUT_A_FIELD.match(message)
    if about is not None and about["named"]:
        path.append(about["named"])
        message = (
            "missing required field" if about["why"] == "missing required" else "unknown field"
        )
    elif about is not None:
        path.append(about["field"])
        message = about["rest"]
    return f"{'.'.join(path) or '<root>'}: {message}"


def _invalid(exc: msgspec.ValidationError) -> BundleInvalidError:
    return BundleInvalidError(f"{MANIFEST_FILE} is invalid: {validation_problem(exc)}")


_DECODER = msgspec.json.Decoder(BundleManifest)


def parse_manifest(raw_manifest: bytes) -> BundleManifest:
    """Parse and validate; every problem becomes a BundleInvalidError naming the field."""
    try:
        return _DECODER.decode(raw_manifest)
    except msgspec.ValidationError as exc:  # a DecodeError too: first
        raise _invalid(exc) from exc
    except msgspec.DecodeError as exc:
        # The contract's message (the standard library's JSON parser), as the simulated runtime
        # and the operator word it; msgspec's own only if that parser took what msgspec did not.
        try:
            runtime_contract.parse_manifest_json(raw_manifest)
        except ManifestNotJsonError as not_json:
            raise BundleInvalidError(str(not_json)) from exc
        raise BundleInvalidError(f"{MANIFEST_FILE} is not valid JSON: {exc}") from exc
