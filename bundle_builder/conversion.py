"""A data scientist's fitted estimator -> one ONNX model the runtime can serve, or a precise refusal.

Every packed model takes one input, `sensors`, a [rows, features] FP64 tensor whose columns are
the model's features in the recorded order, so every model of a bundle shares its input and the
well endpoint scores them together. Inside, the graph runs in double precision where skl2onnx
and onnxruntime support it (scikit-learn computes in float64; trees then compare against double
thresholds), and otherwise casts to float32 first. Which one is chosen by the parity gate on the
user's sample (packing.py), never by trust in the converter.

Known silent divergences (../shared/MONITORING.md) are refused before conversion: native
categorical splits of HistGradientBoosting, encoders whose unknown or missing categories ONNX
would encode differently from scikit-learn, FunctionTransformer other than identity, and
classifiers whose classes are not integers (the runtime serves integer labels).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from bundle_builder.errors import SampleError, UnsupportedModelError
from bundle_builder.training import INPUT_NAME, ONNX_ML_OPSET, TARGET_OPSET

LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
VALUE_OUTPUT = "value"


class Precision(StrEnum):
    DOUBLE = "double"
    FLOAT = "float"


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


@dataclass(frozen=True)
class ModelPlan:
    """What inspection decided about one estimator, before any conversion."""

    name: str
    task: Task
    features: tuple[str, ...]
    named_columns: bool  # a ColumnTransformer selects columns by name: one ONNX input per column
    classes: tuple[int, ...]
    kind: str  # the final estimator's class name, e.g. RandomForestClassifier


@dataclass(frozen=True)
class ConvertedModel:
    plan: ModelPlan
    precision: Precision
    onnx_bytes: bytes


def iter_steps(estimator: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every estimator inside `estimator` (itself included), with a readable path to it."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    yield path, estimator
    if isinstance(estimator, Pipeline):
        for step_name, step in estimator.steps:
            if step is not None and step != "passthrough":
                yield from iter_steps(step, f"{path}/{step_name}")
    elif isinstance(estimator, ColumnTransformer):
        for step_name, step, _columns in getattr(estimator, "transformers_", []):
            if not isinstance(step, str):
                yield from iter_steps(step, f"{path}/{step_name}")
    elif isinstance(estimator, FeatureUnion):
        for step_name, step in estimator.transformer_list:
            if not isinstance(step, str):
                yield from iter_steps(step, f"{path}/{step_name}")


def _final_estimator(estimator: Any) -> Any:
    from sklearn.pipeline import Pipeline

    while isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    return estimator


def _refuse_known_divergences(name: str, estimator: Any) -> bool:
    """Raise on any step ONNX would silently score differently; True if columns go by name."""
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder

    named_columns = False
    for path, step in iter_steps(estimator, type(estimator).__name__):
        where = f"model {name!r}: step {path} ({type(step).__name__})"
        containers = (Pipeline, ColumnTransformer, FeatureUnion)
        if not isinstance(step, containers) and type(step) not in sklearn_operator_name_map:
            raise UnsupportedModelError(
                f"{where} has no ONNX converter in skl2onnx; replace the step or pack without it"
            )
        if isinstance(step, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
            categorical = getattr(step, "is_categorical_", None)
            if categorical is not None and bool(np.any(categorical)):
                raise UnsupportedModelError(
                    f"{where} uses native categorical splits, which skl2onnx does not convert "
                    "(predictions would diverge); one-hot encode those features instead"
                )
        elif isinstance(step, FunctionTransformer):
            if step.func is not None or step.inverse_func is not None:
                raise UnsupportedModelError(
                    f"{where}: only the identity FunctionTransformer converts to ONNX; "
                    "a custom function cannot be exported"
                )
        elif isinstance(step, OneHotEncoder):
            if step.handle_unknown == "error":
                raise UnsupportedModelError(
                    f"{where}: handle_unknown='error' raises in scikit-learn on an unseen category "
                    "but ONNX silently encodes it as all zeros; refit with handle_unknown='ignore'"
                )
            if any(c is not None for c in (getattr(step, "infrequent_categories_", None) or [])):
                raise UnsupportedModelError(
                    f"{where}: infrequent categories (min_frequency/max_categories) do not "
                    "convert faithfully to ONNX; refit without them"
                )
            for column, categories in enumerate(step.categories_):
                values = np.asarray(categories)
                if values.dtype.kind not in "biuf":
                    raise UnsupportedModelError(
                        f"{where}: column {column} has non-numeric categories; the runtime takes "
                        "numeric inputs only (encode categories as numbers)"
                    )
                if values.dtype.kind == "f" and bool(np.isnan(values).any()):
                    raise UnsupportedModelError(
                        f"{where}: column {column} has missing values (NaN) as a category, which "
                        "ONNX does not encode like scikit-learn; impute before the encoder"
                    )
        elif isinstance(step, OrdinalEncoder):
            raise UnsupportedModelError(
                f"{where}: OrdinalEncoder's unknown and missing values are not converted "
                "faithfully to ONNX; use OneHotEncoder(handle_unknown='ignore')"
            )
        elif isinstance(step, SimpleImputer):
            if np.asarray(step.statistics_).dtype.kind not in "biuf":
                raise UnsupportedModelError(
                    f"{where}: a string SimpleImputer does not convert; the runtime takes "
                    "numeric inputs only"
                )
        elif isinstance(step, ColumnTransformer):
            for step_name, _transformer, columns in step.transformers_:
                if callable(columns):
                    raise UnsupportedModelError(
                        f"{where}: transformer {step_name!r} selects columns with a callable; "
                        "list the columns by name or index"
                    )
                listed = [columns] if isinstance(columns, str | int) else list(columns)
                if any(isinstance(c, str) for c in listed):
                    named_columns = True
    return named_columns


def plan_model(name: str, estimator: Any, features: tuple[str, ...] | None) -> ModelPlan:
    """Check `estimator` can be packed faithfully and decide its features, task and classes."""
    from sklearn.base import is_classifier, is_regressor
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError as exc:
        raise UnsupportedModelError(f"model {name!r} is not fitted: {exc}") from exc
    except TypeError as exc:
        raise UnsupportedModelError(f"model {name!r} is not a scikit-learn estimator") from exc
    named_columns = _refuse_known_divergences(name, estimator)

    fitted_names = getattr(estimator, "feature_names_in_", None)
    if fitted_names is not None:
        fitted = tuple(str(f) for f in fitted_names)
        if features is not None and tuple(features) != fitted:
            raise SampleError(
                f"model {name!r} was fitted on features {list(fitted)}, --features says "
                f"{list(features)}; drop --features or make it match"
            )
        features = fitted
    if features is None:
        raise SampleError(
            f"model {name!r} records no feature names (fitted on an array): name its input "
            "columns in order with --features a,b,c"
        )
    n_in = getattr(estimator, "n_features_in_", None)
    if n_in is not None and int(n_in) != len(features):
        raise SampleError(
            f"model {name!r} expects {n_in} features, --features names {len(features)}: "
            f"{list(features)}"
        )
    if INPUT_NAME in features:
        raise SampleError(
            f"model {name!r}: a feature may not be called {INPUT_NAME!r} (the bundle's input name)"
        )

    final = _final_estimator(estimator)
    classes: tuple[int, ...] = ()
    if is_classifier(estimator):
        task = Task.CLASSIFICATION
        raw = np.asarray(getattr(estimator, "classes_", []))
        if raw.dtype.kind not in "iu":
            raise UnsupportedModelError(
                f"model {name!r}: classes {raw.tolist()[:5]} are not integers; the runtime serves "
                "integer labels (encode the target as 0, 1, ... before fitting)"
            )
        classes = tuple(int(c) for c in raw)
    elif is_regressor(estimator):
        task = Task.REGRESSION
    else:
        raise UnsupportedModelError(
            f"model {name!r}: {type(final).__name__} is neither a classifier nor a regressor"
        )
    return ModelPlan(
        name=name,
        task=task,
        features=tuple(features),
        named_columns=named_columns,
        classes=classes,
        kind=type(final).__name__,
    )


# -- conversion -----------------------------------------------------------------------------

_imputer_registered = False


def _register_double_imputer() -> None:
    """SimpleImputer in double precision: onnxruntime's Imputer op is float-only.

    NaN placeholders are replaced with `Where(IsNaN(x), statistics, x)`, in the input's own type;
    any other configuration goes to skl2onnx's own converter unchanged.
    """
    global _imputer_registered
    if _imputer_registered:
        return
    from onnx import TensorProto
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
    from sklearn.impute import SimpleImputer

    def convert(scope: Any, operator: Any, container: Any) -> None:
        imputer = operator.raw_operator
        statistics = np.asarray(imputer.statistics_)
        plain = (
            all(isinstance(i.type, DoubleTensorType) for i in operator.inputs)
            and isinstance(imputer.missing_values, float)
            and math.isnan(imputer.missing_values)
            and not imputer.add_indicator
            and statistics.dtype.kind == "f"
            and bool(np.isfinite(statistics).all())
        )
        if not plain:
            convert_sklearn_imputer(scope, operator, container)
            return
        features = concatenate_variables(scope, operator.inputs, container)
        values = scope.get_unique_variable_name("imputer_statistics")
        container.add_initializer(
            values, TensorProto.DOUBLE, [1, statistics.size], statistics.astype(np.float64).tolist()
        )
        missing = scope.get_unique_variable_name("imputer_missing")
        container.add_node(
            "IsNaN", [features], [missing], name=scope.get_unique_operator_name("IsNaN")
        )
        container.add_node(
            "Where",
            [missing, values, features],
            [operator.outputs[0].full_name],
            name=scope.get_unique_operator_name("Where"),
        )

    update_registered_converter(
        SimpleImputer,
        "SklearnSimpleImputer",
        calculate_sklearn_imputer_output_shapes,
        convert,
        overwrite=True,
    )
    _imputer_registered = True


_skl2onnx_tuned = False


def _tune_skl2onnx() -> None:
    """Two per-conversion costs of skl2onnx that do not depend on the model, paid once.

    Measured on 100 packed pipelines: each conversion rebuilt the table of every ONNX operator
    schema (~30 ms) and walked the whole estimator with `dir()` twice to re-attach options given
    to Pipelines (~30 ms). The table is the same for the whole process (it depends only on the
    onnx package); options here are keyed by classifiers, never by a Pipeline, so that walk can
    change nothing. Both are skipped; if skl2onnx's internals move, conversion just stays slower.
    """
    global _skl2onnx_tuned
    if _skl2onnx_tuned:
        return
    _skl2onnx_tuned = True
    try:
        import skl2onnx.convert as convert_module
        from skl2onnx.common._container import ModelComponentContainer
    except ImportError:
        return
    build = getattr(ModelComponentContainer, "_build_op_version", None)
    if build is not None:
        table: dict[Any, Any] = {}

        def build_once(self: Any) -> None:
            if not table:
                build(self)
                table.update(self._op_versions)
            self._op_versions = table

        ModelComponentContainer._build_op_version = build_once
    import skl2onnx._parse as parse_module

    for module in (convert_module, parse_module):
        _skip_pipeline_option_walk(module)


def _skip_pipeline_option_walk(module: Any) -> None:
    if hasattr(module, "_process_options"):
        process = module._process_options

        def process_options(model: Any, options: Any) -> Any:
            from sklearn.pipeline import Pipeline

            if not options:
                return options
            if all(isinstance(k, int) for k in options):
                keyed = {k for k in options}
                if not any(
                    id(step) in keyed
                    for _p, step in iter_steps(model, "")
                    if isinstance(step, Pipeline)
                ):
                    return options
            return process(model, options)

        module._process_options = process_options


def _zipmap_off(estimator: Any) -> dict[int, dict[str, Any]]:
    from sklearn.base import is_classifier
    from sklearn.pipeline import Pipeline

    options: dict[int, dict[str, Any]] = {}
    for _path, step in iter_steps(estimator, ""):
        # Keyed by the classifier itself, never by the Pipeline holding it (is_classifier is
        # true for both): skl2onnx would otherwise walk the whole pipeline to forward it.
        if is_classifier(step) and not isinstance(step, Pipeline):
            options[id(step)] = {"zipmap": False}
    return options


def unsupported_step_message(name: str, exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    found = re.search(r"<class '([^']+)'>", text)
    if found:
        return f"model {name!r}: step {found.group(1)} has no ONNX converter in skl2onnx"
    return f"model {name!r}: skl2onnx cannot convert it: {text}"


def convert_model(plan: ModelPlan, estimator: Any, precision: Precision) -> bytes:
    """ONNX bytes with one FP64 `sensors` input [rows, features]; skl2onnx errors propagate."""
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    _register_double_imputer()
    _tune_skl2onnx()
    tensor_type = DoubleTensorType if precision is Precision.DOUBLE else FloatTensorType
    width = len(plan.features)
    if plan.named_columns:
        initial_types = [(f, tensor_type([None, 1])) for f in plan.features]
    else:
        initial_types = [("features_in", tensor_type([None, width]))]
    model = convert_sklearn(
        estimator,
        name=plan.name,
        initial_types=initial_types,
        target_opset={"": TARGET_OPSET, "ai.onnx.ml": ONNX_ML_OPSET},
        options=_zipmap_off(estimator),
    )
    graph = model.graph
    # The one input the runtime feeds, then the nodes that turn it into what skl2onnx expects.
    prefix: list[onnx.NodeProto] = []
    source = INPUT_NAME
    if precision is Precision.FLOAT:
        prefix.append(
            helper.make_node(
                "Cast", [INPUT_NAME], ["sensors_float32"], to=TensorProto.FLOAT, name="CastInput"
            )
        )
        source = "sensors_float32"
    if plan.named_columns:
        for index, feature in enumerate(plan.features):
            indices = f"column_index_{index}"
            graph.initializer.append(helper.make_tensor(indices, TensorProto.INT64, [1], [index]))
            prefix.append(
                helper.make_node(
                    "Gather", [source, indices], [feature], axis=1, name=f"Column_{index}"
                )
            )
    else:
        prefix.append(helper.make_node("Identity", [source], ["features_in"], name="InputFeatures"))
    nodes = [*prefix, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE, [None, width]))
    if plan.task is Task.REGRESSION:
        (output,) = graph.output
        graph.node.append(helper.make_node("Identity", [output.name], [VALUE_OUTPUT], name="Value"))
        output.name = VALUE_OUTPUT
    # skl2onnx collects opset imports in a set: sort them so the bytes never depend on hashing.
    opsets = sorted(model.opset_import, key=lambda o: o.domain)
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    return bytes(model.SerializeToString())
