"""Build one well's bundle: simulate its history, train every model, convert, check, write.

The build is all-or-nothing: files go to a temporary directory beside the target and are
renamed into place only after every model passed its parity check, so a failed build leaves
nothing behind that could be mistaken for a bundle. Same inputs give byte-identical output.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from bundle_builder.sensors import FAILURE_MODES, SENSOR_NAMES, generate_history
from bundle_builder.staging import move_into_place, prepare_target
from bundle_builder.statistics import DEFAULT_BINS, classifier_statistics, histogram
from bundle_builder.training import (
    INPUT_NAME,
    LABEL_OUTPUT,
    MODEL_KINDS,
    PARITY_TOLERANCE,
    PROBABILITIES_OUTPUT,
    ModelSpec,
    check_parity,
    onnx_probabilities,
    to_onnx,
    train,
)
from model_runtime.manifest import (
    MANIFEST_FILE,
    MODELS_DIR,
    BundleManifest,
    ModelEntry,
    Parity,
    Provenance,
    ReferenceStatistics,
    TensorSpec,
)

HOLDOUT_FRACTION = 0.2
PARITY_ROWS = 512
_PROVENANCE_PACKAGES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "modelfleet")

ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True)
class BuiltBundle:
    path: Path
    digest: str
    manifest: BundleManifest


def model_specs(count: int, seed: int) -> list[ModelSpec]:
    """`count` models: every failure mode at horizons 1, 2, ... days, estimator kinds rotating."""
    if count < 1:
        raise ValueError(f"--models must be at least 1, got {count}")
    horizons = range(1, math.ceil(count / len(FAILURE_MODES)) + 1)
    pairs = [(mode, horizon) for horizon in horizons for mode in FAILURE_MODES][:count]
    return [
        ModelSpec(
            name=f"{mode.replace('_', '-')}-{horizon:02d}d",
            kind=MODEL_KINDS[index % len(MODEL_KINDS)],
            failure_mode=mode,
            horizon_days=horizon,
            seed=seed * 1_000_003 + index,
        )
        for index, (mode, horizon) in enumerate(pairs)
    ]


def package_versions(packages: tuple[str, ...] = _PROVENANCE_PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def created_at_stamp() -> str:
    """Reproducible-builds convention: SOURCE_DATE_EPOCH if set, else the epoch."""
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_bundle(
    well: str,
    out: Path,
    *,
    models: int = 100,
    version: str = "1.0.0",
    seed: int = 0,
    tolerance: float = PARITY_TOLERANCE,
    progress: ProgressCallback | None = None,
) -> BuiltBundle:
    """Train, convert and check `models` models for `well`; write the bundle to `out` atomically.

    Raises ParityError (nothing written) when any ONNX model diverges beyond `tolerance`.
    """
    prepare_target(out)
    specs = model_specs(models, seed)
    history = generate_history(well, seed)
    features = history.features
    order = np.random.default_rng(seed).permutation(features.shape[0])
    n_holdout = int(features.shape[0] * HOLDOUT_FRACTION)
    holdout_idx, train_idx = np.sort(order[:n_holdout]), np.sort(order[n_holdout:])
    parity_rows = features[holdout_idx[:PARITY_ROWS]]
    # The reference live traffic is compared with: the held-out rows of the simulated history
    # (the models never fit them, so their predictions there are what unseen rows get, not the
    # over-confident scores of the rows they were trained on), as `bundle pack`'s sample is.
    reference_rows = features[holdout_idx]

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / MODELS_DIR).mkdir(parents=True)
    try:
        entries: list[ModelEntry] = []
        for done, spec in enumerate(specs, start=1):
            labels = history.labels(spec.failure_mode, spec.horizon_days)
            estimator = train(spec, features[train_idx], labels[train_idx])
            onnx_model = to_onnx(estimator, len(SENSOR_NAMES), spec.name)
            # One onnxruntime session per model: its scores on the reference rows serve the
            # reference statistics, and their first PARITY_ROWS (the parity rows) the check.
            probabilities = onnx_probabilities(onnx_model, reference_rows)
            max_diff = check_parity(
                spec.name,
                estimator,
                onnx_model,
                parity_rows,
                tolerance,
                onnx_scores=probabilities[: parity_rows.shape[0]],
            )
            relative = f"{MODELS_DIR}/{spec.name}.onnx"
            (staging / relative).write_bytes(onnx_model)
            classes = tuple(int(c) for c in estimator.classes_)
            labels = np.asarray(classes)[np.argmax(probabilities, axis=1)]
            entries.append(
                ModelEntry(
                    name=spec.name,
                    file=relative,
                    sha256=hashlib.sha256(onnx_model).hexdigest(),
                    kind=spec.kind,
                    failure_mode=spec.failure_mode,
                    horizon_days=spec.horizon_days,
                    inputs=[
                        TensorSpec(name=INPUT_NAME, datatype="FP32", shape=[-1, len(SENSOR_NAMES)])
                    ],
                    outputs=[
                        TensorSpec(name=LABEL_OUTPUT, datatype="INT64", shape=[-1]),
                        TensorSpec(name=PROBABILITIES_OUTPUT, datatype="FP32", shape=[-1, 2]),
                    ],
                    classes=list(classes),
                    parity_max_abs_diff=max_diff,
                    prediction_reference=classifier_statistics(classes, labels, probabilities),
                )
            )
            if progress is not None:
                progress(done, len(specs), spec.name)

        manifest = BundleManifest(
            well=well,
            version=version,
            models=entries,
            parity=Parity(tolerance=tolerance, holdout_rows=int(parity_rows.shape[0])),
            provenance=Provenance(
                packages=package_versions(),
                training_data_sha256=history.sha256(),
                training_rows=int(train_idx.size),
                features=list(SENSOR_NAMES),
                parameters={
                    spec.name: {"kind": spec.kind, "seed": spec.seed, **spec.parameters()}
                    for spec in specs
                },
                seed=seed,
                created_at=created_at_stamp(),
            ),
            reference=ReferenceStatistics(
                sample_rows=int(reference_rows.shape[0]),
                sample_sha256=hashlib.sha256(reference_rows.tobytes()).hexdigest(),
                bins=DEFAULT_BINS,
                features={
                    name: histogram(reference_rows[:, index], DEFAULT_BINS)
                    for index, name in enumerate(SENSOR_NAMES)
                },
            ),
        )
        (staging / MANIFEST_FILE).write_bytes(manifest.to_canonical_bytes())
        move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BuiltBundle(path=out, digest=manifest.digest(), manifest=manifest)
