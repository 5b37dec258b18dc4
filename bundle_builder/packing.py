"""Pack a data scientist's fitted models and their own sample into one well's bundle.

`pack_bundle` is the Python API (fitted objects in memory); `pack_files` reads them from files
first (inputs.py) and is what `modelfleet bundle pack` calls. Each model is planned (refusing
known ONNX divergences), converted, and kept only if ONNX agrees with scikit-learn on every row
of the sample within the tolerance: double precision first, float32 when the double graph cannot
be made or loaded. All-or-nothing: files are written to a staging directory beside `out` and
renamed into place at the end. The same inputs give the same bytes (SOURCE_DATE_EPOCH sets the
recorded creation time).
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bundle_builder.building import created_at_stamp, package_versions
from bundle_builder.conversion import (
    LABEL_OUTPUT,
    PROBABILITIES_OUTPUT,
    VALUE_OUTPUT,
    ModelPlan,
    Precision,
    Task,
    convert_model,
    plan_model,
    unsupported_step_message,
)
from bundle_builder.errors import PackError, ParityGateError, SampleError, UnsupportedModelError
from bundle_builder.inputs import LoadedEstimator, LoadedSample, load_estimator, load_sample
from bundle_builder.staging import move_into_place, prepare_target
from bundle_builder.statistics import (
    DEFAULT_BINS,
    classifier_statistics,
    histogram,
    regressor_statistics,
)
from bundle_builder.training import INPUT_NAME
from model_runtime.manifest import (
    MANIFEST_FILE,
    MODEL_NAME_PATTERN,
    MODELS_DIR,
    BundleManifest,
    InputFile,
    ModelEntry,
    Parity,
    PredictionStatistics,
    Provenance,
    ReferenceStatistics,
    TensorSpec,
)

PACK_TOLERANCE = 1e-5
WELL_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PACK_PACKAGES = (
    "scikit-learn",
    "skl2onnx",
    "onnx",
    "onnxruntime",
    "numpy",
    "pandas",
    "skops",
    "modelfleet",
)
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_ORT_DATATYPES = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(int64)": "INT64"}

ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True)
class PackedBundle:
    path: Path
    digest: str
    manifest: BundleManifest


@dataclass(frozen=True)
class _Scores:
    """A model's outputs on the sample: labels and probabilities, or values."""

    labels: npt.NDArray[Any] | None
    values: npt.NDArray[np.float64]  # probabilities [rows, classes] or values [rows, 1]


@dataclass(frozen=True)
class _Divergence:
    value: float
    row: int
    detail: str


@dataclass(frozen=True)
class _PackedModel:
    entry: ModelEntry
    onnx_bytes: bytes
    parameters: dict[str, Any]


# -- sample ---------------------------------------------------------------------------------


def _feature_matrix(name: str, frame: Any, features: tuple[str, ...], sample: str) -> Any:
    """The sample's `features` columns as float64 [rows, features]; SampleError on bad columns."""
    import pandas as pd

    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise SampleError(
            f"model {name!r} expects features {list(features)}; sample {sample} lacks {missing}"
        )
    for feature in features:
        column = frame[feature]
        if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
            bad = pd.to_numeric(column, errors="coerce").isna() & column.notna()
            row = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
            raise SampleError(
                f"sample {sample}: column {feature!r} (used by model {name!r}) is not numeric: "
                f"row {row} holds {column.iloc[row]!r}; the runtime takes numbers only"
            )
    matrix = frame.loc[:, list(features)].to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(matrix)
    if infinite.any():
        row, col = (int(i[0]) for i in np.nonzero(infinite))
        raise SampleError(
            f"sample {sample}: column {features[col]!r} row {row} is infinite; the runtime "
            "refuses non-finite inputs, so the sample may not hold them"
        )
    return matrix


class SampleViews:
    """The sample's columns for each distinct feature list, checked and converted once.

    100 models of a well usually share their features: selecting and converting the columns
    once, not per model, is a measurable part of packing a well.
    """

    def __init__(self, frame: Any, sample: str) -> None:
        self._frame = frame
        self._sample = sample
        self._views: dict[tuple[str, ...], tuple[Any, Any]] = {}

    def of(self, model: str, features: tuple[str, ...]) -> tuple[Any, Any]:
        """(DataFrame of exactly `features`, float64 matrix of it); SampleError on bad columns."""
        view = self._views.get(features)
        if view is None:
            matrix = _feature_matrix(model, self._frame, features, self._sample)
            view = (self._frame.loc[:, list(features)], matrix)
            self._views[features] = view
        return view


def _sklearn_scores(
    plan: ModelPlan, estimator: Any, frame: Any, matrix: Any, sample: str
) -> _Scores:
    """scikit-learn's own outputs on the sample, as the data scientist would compute them.

    A Pipeline's preprocessing runs once for both labels and probabilities: Pipeline.predict and
    predict_proba are exactly "transform through every step, then the final estimator's".
    """
    from sklearn.pipeline import Pipeline

    uses_names = getattr(estimator, "feature_names_in_", None) is not None
    inputs = frame if uses_names else matrix
    final = estimator
    try:
        if isinstance(estimator, Pipeline) and len(estimator.steps) > 1:
            inputs = estimator[:-1].transform(inputs)
            final = estimator.steps[-1][1]
        if plan.task is Task.CLASSIFICATION:
            probabilities = np.asarray(final.predict_proba(inputs), dtype=np.float64)
            labels = np.asarray(final.predict(inputs))
            return _Scores(labels=labels, values=probabilities)
        values = np.asarray(final.predict(inputs), dtype=np.float64).reshape(-1, 1)
        return _Scores(labels=None, values=values)
    except ValueError as exc:
        missing = np.isnan(matrix)
        if missing.any() and "nan" in str(exc).lower():
            columns = sorted({plan.features[c] for c in np.nonzero(missing)[1]})
            first_row = int(np.nonzero(missing)[0][0])
            raise SampleError(
                f"model {plan.name!r} cannot score missing values: sample {sample} has "
                f"{int(missing.sum())} in columns {columns} (first at row {first_row}) and the "
                "model does not impute them; add a SimpleImputer to the pipeline or drop those rows"
            ) from exc
        raise SampleError(f"model {plan.name!r} cannot score sample {sample}: {exc}") from exc


# -- ONNX side --------------------------------------------------------------------------------


def _session(onnx_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def _onnx_scores(plan: ModelPlan, session: Any, matrix: Any) -> _Scores:
    if plan.task is Task.CLASSIFICATION:
        labels, probabilities = session.run(
            [LABEL_OUTPUT, PROBABILITIES_OUTPUT], {INPUT_NAME: matrix}
        )
        return _Scores(labels=np.asarray(labels), values=np.asarray(probabilities, np.float64))
    (values,) = session.run([VALUE_OUTPUT], {INPUT_NAME: matrix})
    return _Scores(labels=None, values=np.asarray(values, np.float64).reshape(-1, 1))


def _divergence(expected: _Scores, actual: _Scores, tolerance: float) -> _Divergence:
    """Worst row: max |onnx - sklearn| / max(1, |sklearn|) over its outputs; a flipped label
    counts as divergence 1 unless scikit-learn itself was within `tolerance` of a tie."""
    if actual.values.shape != expected.values.shape:
        return _Divergence(
            math.inf,
            0,
            f"ONNX outputs shape {list(actual.values.shape)}, scikit-learn {list(expected.values.shape)}",
        )
    scaled = np.abs(actual.values - expected.values) / np.maximum(1.0, np.abs(expected.values))
    per_row = np.where(np.isnan(scaled), np.inf, scaled).max(axis=1)
    if expected.labels is not None and actual.labels is not None:
        flipped = expected.labels.ravel() != actual.labels.ravel()
        top_two = np.sort(expected.values, axis=1)[:, -2:]
        tie = (top_two[:, -1] - top_two[:, 0]) <= tolerance if top_two.shape[1] == 2 else False
        per_row = np.where(flipped & ~tie, np.maximum(per_row, 1.0), per_row)
    row = int(np.argmax(per_row))
    detail = f"scikit-learn {expected.values[row].tolist()}, ONNX {actual.values[row].tolist()}"
    if expected.labels is not None and actual.labels is not None:
        detail += f", labels {expected.labels[row]!r} vs {actual.labels[row]!r}"
    return _Divergence(float(per_row[row]), row, detail)


def _output_specs(plan: ModelPlan, session: Any) -> list[TensorSpec]:
    types = {o.name: _ORT_DATATYPES.get(o.type, "FP32") for o in session.get_outputs()}
    if plan.task is Task.CLASSIFICATION:
        return [
            TensorSpec(name=LABEL_OUTPUT, datatype=types[LABEL_OUTPUT], shape=[-1]),  # type: ignore[arg-type]
            TensorSpec(
                name=PROBABILITIES_OUTPUT,
                datatype=types[PROBABILITIES_OUTPUT],  # type: ignore[arg-type]
                shape=[-1, len(plan.classes)],
            ),
        ]
    return [TensorSpec(name=VALUE_OUTPUT, datatype=types[VALUE_OUTPUT], shape=[-1, 1])]  # type: ignore[arg-type]


def _double_tree_regressors_run() -> bool:
    """Whether onnxruntime runs a double-precision tree-ensemble regressor (asked once).

    skl2onnx writes TreeEnsembleRegressor with double attributes, which onnxruntime 1.32 has no
    kernel for at ai.onnx.ml opset 3. Probing a 4-row tree once per process, instead of trying
    every forest in double first, saves a conversion per model; the answer depends only on the
    installed packages, so whether a model is packed in double never depends on which models a
    process packed before it (bundles stay reproducible across --jobs and resumed runs).
    """
    global _double_tree_regressors
    if _double_tree_regressors is None:
        from sklearn.tree import DecisionTreeRegressor

        tree = DecisionTreeRegressor(max_depth=1).fit(
            np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0.0, 0.0, 1.0, 1.0])
        )
        plan = ModelPlan("probe", Task.REGRESSION, ("x",), False, (), "DecisionTreeRegressor")
        try:
            session = _session(convert_model(plan, tree, Precision.DOUBLE))
            session.run(None, {INPUT_NAME: np.array([[0.5]])})
            _double_tree_regressors = True
        except Exception:  # no kernel: onnxruntime's untyped error
            _double_tree_regressors = False
    return _double_tree_regressors


_double_tree_regressors: bool | None = None
_TREE_REGRESSORS = (
    "DecisionTreeRegressor",
    "ExtraTreeRegressor",
    "RandomForestRegressor",
    "ExtraTreesRegressor",
    "GradientBoostingRegressor",
    "HistGradientBoostingRegressor",
)


# -- parameters -----------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """A deterministic JSON value for a hyper-parameter (no memory addresses, no NaN)."""
    from sklearn.base import BaseEstimator

    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else repr(number)
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, BaseEstimator):
        return type(value).__name__
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__name__)}"
    return f"{type(value).__module__}.{type(value).__qualname__}"


def estimator_parameters(estimator: Any) -> dict[str, Any]:
    params = estimator.get_params(deep=True)
    return {
        "estimator": type(estimator).__name__,
        **{k: _json_safe(v) for k, v in sorted(params.items())},
    }


# -- one model ------------------------------------------------------------------------------


def pack_model(
    name: str,
    estimator: Any,
    frame: Any,
    sample: str,
    *,
    features: tuple[str, ...] | None = None,
    tolerance: float = PACK_TOLERANCE,
    bins: int = DEFAULT_BINS,
    views: SampleViews | None = None,
) -> _PackedModel:
    """Plan, convert and parity-check one model on the sample; raise PackError to refuse it."""
    if not _MODEL_NAME.match(name):
        raise PackError(
            f"model name {name!r} is not valid: lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 128 characters"
        )
    plan = plan_model(name, estimator, features)
    if views is None:
        views = SampleViews(frame, sample)
    view_frame, matrix = views.of(name, plan.features)
    expected = _sklearn_scores(plan, estimator, view_frame, matrix, sample)
    failures: list[str] = []
    best: tuple[_Divergence, Precision] | None = None
    precisions: tuple[Precision, ...] = (Precision.DOUBLE, Precision.FLOAT)
    if plan.kind in _TREE_REGRESSORS and not _double_tree_regressors_run():
        precisions = (Precision.FLOAT,)
        failures.append("double: onnxruntime has no double tree-ensemble regressor kernel")
    for precision in precisions:
        try:
            onnx_bytes = convert_model(plan, estimator, precision)
        except Exception as exc:  # skl2onnx raises many unrelated types
            if precision is Precision.FLOAT:
                raise UnsupportedModelError(unsupported_step_message(name, exc)) from exc
            failures.append(f"double: {unsupported_step_message(name, exc)}")
            continue
        try:
            session = _session(onnx_bytes)
            actual = _onnx_scores(plan, session, matrix)
        except Exception as exc:  # onnxruntime's errors are untyped
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            failures.append(f"{precision.value}: onnxruntime: {first}")
            continue
        divergence = _divergence(expected, actual, tolerance)
        if divergence.value <= tolerance:
            if plan.task is Task.CLASSIFICATION:
                assert actual.labels is not None
                prediction: PredictionStatistics = classifier_statistics(
                    plan.classes, actual.labels, actual.values, bins
                )
            else:
                prediction = regressor_statistics(actual.values, bins)
            entry = ModelEntry(
                name=name,
                file=f"{MODELS_DIR}/{name}.onnx",
                sha256=hashlib.sha256(onnx_bytes).hexdigest(),
                kind=plan.kind,
                task=plan.task.value,
                features=list(plan.features),
                inputs=[
                    TensorSpec(name=INPUT_NAME, datatype="FP64", shape=[-1, len(plan.features)])
                ],
                outputs=_output_specs(plan, session),
                classes=list(plan.classes),
                parity_max_abs_diff=divergence.value,
                prediction_reference=prediction,
            )
            parameters = {"precision": precision.value, **estimator_parameters(estimator)}
            return _PackedModel(entry=entry, onnx_bytes=onnx_bytes, parameters=parameters)
        if best is None or divergence.value < best[0].value:
            best = (divergence, precision)
        failures.append(f"{precision.value}: divergence {divergence.value:.3g}")
    if best is None:
        raise UnsupportedModelError(
            f"model {name!r}: no ONNX graph of it runs in onnxruntime ({'; '.join(failures)})"
        )
    divergence, precision = best
    raise ParityGateError(
        f"model {name!r}: ONNX ({precision.value}) diverges from scikit-learn on sample {sample}: "
        f"worst row {divergence.row} (0-based data row), divergence {divergence.value:.3g} > "
        f"tolerance {tolerance:g} ({divergence.detail}); tried {'; '.join(failures)}"
    )


# -- one bundle -----------------------------------------------------------------------------


def _sample_of(sample: Any) -> LoadedSample:
    if isinstance(sample, LoadedSample):
        return sample
    import pandas as pd

    if not isinstance(sample, pd.DataFrame):
        raise SampleError(f"sample must be a pandas DataFrame, got {type(sample).__name__}")
    if len(sample) == 0:
        raise SampleError("sample (in memory) has no rows")
    # An in-memory sample has no file: its digest is that of its CSV rendering (deterministic).
    digest = hashlib.sha256(sample.to_csv(index=False).encode()).hexdigest()
    return LoadedSample(frame=sample, file=None, sha256=digest)


def _estimator_of(model: Any) -> LoadedEstimator:
    if isinstance(model, LoadedEstimator):
        return model
    return LoadedEstimator(estimator=model, file=None, sha256=None)


def pack_bundle(
    well: str,
    version: str,
    models: Mapping[str, Any],
    sample: Any,
    out: Path,
    *,
    features: tuple[str, ...] | None = None,
    source_revision: str | None = None,
    tolerance: float = PACK_TOLERANCE,
    bins: int = DEFAULT_BINS,
    progress: ProgressCallback | None = None,
) -> PackedBundle:
    """Pack fitted `models` (name -> estimator or LoadedEstimator) checked on `sample`
    (a DataFrame or LoadedSample) into the bundle directory `out`; print nothing, write atomically."""
    if not WELL_PATTERN.match(well):
        raise PackError(f"well id {well!r} is not a DNS-1123 label (lowercase, digits, '-')")
    if not version:
        raise PackError("version must not be empty")
    if not models:
        raise PackError("no models to pack: give at least one --model NAME=PATH")
    loaded_sample = _sample_of(sample)
    sample_label = loaded_sample.file or "(in memory)"
    prepare_target(out)

    packed: list[_PackedModel] = []
    views = SampleViews(loaded_sample.frame, sample_label)
    for done, (name, model) in enumerate(sorted(models.items()), start=1):
        loaded = _estimator_of(model)
        packed.append(
            pack_model(
                name,
                loaded.estimator,
                loaded_sample.frame,
                sample_label,
                features=features,
                tolerance=tolerance,
                bins=bins,
                views=views,
            )
        )
        if progress is not None:
            progress(done, len(models), name)

    all_features: list[str] = []
    for model in packed:
        for feature in model.entry.features or []:
            if feature not in all_features:
                all_features.append(feature)
    matrix = loaded_sample.frame.loc[:, all_features].to_numpy(dtype=np.float64, na_value=np.nan)
    inputs = {
        f"model:{name}": InputFile(
            file=loaded.file,
            sha256=loaded.sha256,
            trusted_types=list(loaded.trusted_types) or None,
        )
        for name, loaded in ((n, _estimator_of(m)) for n, m in models.items())
    }
    inputs["sample"] = InputFile(file=loaded_sample.file, sha256=loaded_sample.sha256)
    manifest = BundleManifest(
        well=well,
        version=version,
        models=[m.entry for m in packed],
        parity=Parity(
            tolerance=tolerance,
            metric="max_output_divergence",
            holdout_rows=len(loaded_sample.frame),
        ),
        provenance=Provenance(
            packages=package_versions(_PACK_PACKAGES),
            features=all_features,
            parameters={m.entry.name: m.parameters for m in packed},
            created_at=created_at_stamp(),
            inputs=dict(sorted(inputs.items())),
            source_revision=source_revision,
        ),
        reference=ReferenceStatistics(
            sample_rows=len(loaded_sample.frame),
            sample_sha256=loaded_sample.sha256,
            bins=bins,
            features={f: histogram(matrix[:, i], bins) for i, f in enumerate(all_features)},
        ),
    )
    files = {m.entry.file: m.onnx_bytes for m in packed}
    write_bundle(out, files, manifest.to_canonical_bytes())
    return PackedBundle(path=out, digest=manifest.digest(), manifest=manifest)


def write_bundle(out: Path, files: Mapping[str, bytes], manifest_bytes: bytes) -> None:
    """Write files then the manifest into a staging directory and rename it to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.packing-{hashlib.sha256(manifest_bytes).hexdigest()[:12]}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for relative, data in files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (staging / MANIFEST_FILE).write_bytes(manifest_bytes)
        move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def pack_files(
    well: str,
    version: str,
    model_files: Mapping[str, Path],
    sample_file: Path,
    out: Path,
    *,
    features: tuple[str, ...] | None = None,
    trusted_types: tuple[str, ...] = (),
    source_revision: str | None = None,
    tolerance: float = PACK_TOLERANCE,
    bins: int = DEFAULT_BINS,
    progress: ProgressCallback | None = None,
) -> PackedBundle:
    """`modelfleet bundle pack`: load every model file and the sample, then pack_bundle."""
    for name in model_files:
        if not _MODEL_NAME.match(name):
            raise PackError(
                f"model name {name!r} is not valid: lowercase letters, digits, '.', '_' and '-', "
                "starting with a letter or digit, at most 128 characters"
            )
    prepare_target(out)
    sample = load_sample(sample_file)
    models = {
        name: load_estimator(path, model=name, trusted_types=trusted_types)
        for name, path in model_files.items()
    }
    return pack_bundle(
        well,
        version,
        models,
        sample,
        out,
        features=features,
        source_revision=source_revision,
        tolerance=tolerance,
        bins=bins,
        progress=progress,
    )
