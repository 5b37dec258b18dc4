"""Train one scikit-learn model, convert it to ONNX and prove the two agree.

A bundle is only worth serving if the ONNX file scores like the estimator the data scientist
validated. Every model is therefore converted with a pinned opset, run once in onnxruntime on
held-out rows, and refused when any probability differs by more than the stated tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from model_runtime.errors import ParityError

INPUT_NAME = "sensors"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
TARGET_OPSET = 17
ONNX_ML_OPSET = 3
PARITY_TOLERANCE = 1e-5

MODEL_KINDS: tuple[str, ...] = (
    "random_forest",
    "logistic_regression",
    "extra_trees",
    "gradient_boosting",
)


@dataclass(frozen=True)
class ModelSpec:
    """What to train: one failure mode at one horizon, with one estimator kind."""

    name: str
    kind: str
    failure_mode: str
    horizon_days: int
    seed: int

    def parameters(self) -> dict[str, Any]:
        """Estimator hyper-parameters; small on purpose (per-well models, microsecond scoring)."""
        if self.kind == "random_forest":
            return {"n_estimators": 12, "max_depth": 6, "min_samples_leaf": 5}
        if self.kind == "extra_trees":
            return {"n_estimators": 12, "max_depth": 6, "min_samples_leaf": 5}
        if self.kind == "gradient_boosting":
            # Leaves of at least 20 rows: on a rare failure mode a tiny leaf gets an extreme
            # Newton step (|value| > float32 max), and the float32 ONNX model then yields NaN.
            return {
                "n_estimators": 15,
                "max_depth": 3,
                "learning_rate": 0.2,
                "min_samples_leaf": 20,
            }
        if self.kind == "logistic_regression":
            return {"C": 1.0, "max_iter": 500}
        raise ValueError(f"unknown model kind {self.kind!r}; expected one of {MODEL_KINDS}")


def make_estimator(spec: ModelSpec) -> Any:
    """A fresh, unfitted estimator for `spec` (single-threaded, seeded: deterministic)."""
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    params = spec.parameters()
    if spec.kind == "random_forest":
        return RandomForestClassifier(random_state=spec.seed, n_jobs=1, **params)
    if spec.kind == "extra_trees":
        return ExtraTreesClassifier(random_state=spec.seed, n_jobs=1, **params)
    if spec.kind == "gradient_boosting":
        return GradientBoostingClassifier(random_state=spec.seed, **params)
    # Sensors live on very different scales (bar, degC, m3/d): scale before the linear model.
    return make_pipeline(StandardScaler(), LogisticRegression(random_state=spec.seed, **params))


def train(spec: ModelSpec, features: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> Any:
    """Fit on float32 features, the precision ONNX will score with (honest parity for trees)."""
    estimator = make_estimator(spec)
    estimator.fit(features.astype(np.float32), labels)
    return estimator


def to_onnx(estimator: Any, n_features: int, name: str) -> bytes:
    """Convert with a pinned opset and plain probability tensors (no ZipMap)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    model = convert_sklearn(
        estimator,
        name=name,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset={"": TARGET_OPSET, "ai.onnx.ml": ONNX_ML_OPSET},
        options={id(estimator): {"zipmap": False}},
        final_types=None,
    )
    # skl2onnx collects opset imports in a set: their order follows the process's string hash
    # seed, so two builds of the same model serialized differently. Sort them by domain.
    opsets = sorted(model.opset_import, key=lambda o: o.domain)
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    # skl2onnx stamps its own version into producer fields: keep them, they are deterministic.
    return bytes(model.SerializeToString())


def onnx_probabilities(
    onnx_model: bytes, features: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
    probabilities = session.run([PROBABILITIES_OUTPUT], {INPUT_NAME: features})[0]
    return np.asarray(probabilities, dtype=np.float32)


def check_parity(
    name: str,
    estimator: Any,
    onnx_model: bytes,
    holdout: npt.NDArray[np.float32],
    tolerance: float = PARITY_TOLERANCE,
    onnx_scores: npt.NDArray[np.float32] | None = None,
) -> float:
    """Max |onnx - sklearn| over held-out probabilities; raise ParityError beyond `tolerance`.

    `onnx_scores`: the ONNX model's probabilities on `holdout` when the caller has them already
    (the builder scores its reference rows once, for parity and for the reference statistics)."""
    expected = np.asarray(estimator.predict_proba(holdout), dtype=np.float64)
    scores = onnx_probabilities(onnx_model, holdout) if onnx_scores is None else onnx_scores
    actual = scores.astype(np.float64)
    if actual.shape != expected.shape:
        raise ParityError(name, float("inf"), tolerance)
    max_abs_diff = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    if not max_abs_diff <= tolerance:  # also catches NaN
        raise ParityError(name, max_abs_diff, tolerance)
    return max_abs_diff
