"""`modelfleet bundle pack` and pack_bundle: a data scientist's own models become a verified bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bundle_builder.errors import (
    ModelFileError,
    PackError,
    ParityGateError,
    SampleError,
    UnsupportedModelError,
)
from bundle_builder.packing import pack_bundle, pack_files
from model_runtime.bundle_state import load_bundle
from tests.bundle_builder.conftest import FEATURES, Notebook, run_bundle_command, sensor_frame


def _serve(bundle_dir: Path, model: str, rows: np.ndarray) -> list[np.ndarray]:
    """What the runtime answers: the same loader and sessions the pods use."""
    serving = load_bundle(str(bundle_dir))
    session = serving.sessions[model]
    return session.run(rows.astype(np.float64))


def test_cli_pack_prints_the_digest_and_the_runtime_serves_sklearns_predictions(
    notebook: Notebook, notebook_files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    code = run_bundle_command(
        "pack",
        "--well=fr-0001",
        "--version=2026.12.1",
        f"--model=motor-overheat={notebook_files / 'motor-overheat.joblib'}",
        f"--model=pump-wear={notebook_files / 'pump-wear.joblib'}",
        f"--sample={notebook_files / 'holdout.csv'}",
        "--source-revision=0123abc",
        f"--out={out}",
        "--quiet",
    )
    assert code == 0, capsys.readouterr().err
    digest = capsys.readouterr().out.strip()
    serving = load_bundle(str(out), expected_digest=digest)
    assert serving.digest == digest
    manifest = serving.manifest
    assert [m.name for m in manifest.models] == ["motor-overheat", "pump-wear"]

    rows = notebook.sample.loc[:, list(FEATURES)].to_numpy(np.float64)
    overheat = manifest.models[0]
    assert overheat.task == "classification" and overheat.features == list(FEATURES)
    assert [o.name for o in overheat.outputs] == ["label", "probabilities"]  # no ZipMap
    labels, probabilities = _serve(out, "motor-overheat", rows)
    expected = notebook.models["motor-overheat"].predict_proba(notebook.sample)
    assert probabilities.shape == expected.shape
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_array_equal(
        labels, notebook.models["motor-overheat"].predict(notebook.sample)
    )

    (value,) = _serve(out, "pump-wear", rows)
    np.testing.assert_allclose(
        value.ravel(), notebook.models["pump-wear"].predict(notebook.sample), rtol=1e-5, atol=1e-5
    )

    provenance = manifest.provenance
    assert provenance.source_revision == "0123abc"
    assert provenance.inputs is not None
    assert provenance.inputs["sample"].file == "holdout.csv"
    assert provenance.inputs["model:pump-wear"].file == "pump-wear.joblib"
    assert provenance.parameters["motor-overheat"]["model__n_estimators"] == 8
    assert {"scikit-learn", "skl2onnx", "onnxruntime"} <= set(provenance.packages)


def test_same_inputs_give_the_same_bytes(notebook: Notebook, tmp_path: Path) -> None:
    first = pack_bundle("fr-0001", "1", notebook.models, notebook.sample, tmp_path / "a")
    second = pack_bundle("fr-0001", "1", notebook.models, notebook.sample, tmp_path / "b")
    assert first.digest == second.digest
    for path in sorted((tmp_path / "a").rglob("*")):
        if path.is_file():
            twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
            assert path.read_bytes() == twin.read_bytes(), path.name


def test_reference_statistics_describe_the_sample_and_the_predictions(
    notebook: Notebook, tmp_path: Path
) -> None:
    packed = pack_bundle("fr-0001", "1", notebook.models, notebook.sample, tmp_path / "b")
    reference = packed.manifest.reference
    assert reference is not None and reference.sample_rows == len(notebook.sample)
    temp = reference.features["motor_temp"]
    assert temp.missing_rate == pytest.approx(notebook.sample["motor_temp"].isna().mean())
    assert temp.min == notebook.sample["motor_temp"].min()
    assert len(temp.frequencies) == len(temp.edges) + 1
    assert temp.frequencies[0] == 0.0 and temp.frequencies[-1] == 0.0  # overflow buckets
    assert sum(temp.frequencies) == pytest.approx(1.0)
    overheat = next(m for m in packed.manifest.models if m.name == "motor-overheat")
    assert overheat.prediction_reference is not None
    labels = overheat.prediction_reference.label_frequencies
    assert labels is not None and sum(labels.values()) == pytest.approx(1.0)
    assert set(overheat.prediction_reference.outputs) == {"probabilities[0]", "probabilities[1]"}
    wear = next(m for m in packed.manifest.models if m.name == "pump-wear")
    assert wear.prediction_reference is not None
    assert set(wear.prediction_reference.outputs) == {"value"}


def test_double_precision_where_the_converter_supports_it(
    notebook: Notebook, tmp_path: Path
) -> None:
    packed = pack_bundle("fr-0001", "1", notebook.models, notebook.sample, tmp_path / "b")
    precision = {m: p["precision"] for m, p in packed.manifest.provenance.parameters.items()}
    # skl2onnx 1.20 + onnxruntime: classifiers (trees included) convert in double; the
    # TreeEnsembleRegressor has no double kernel at ai.onnx.ml opset 3, so it falls back to
    # float32 behind a Cast, and the parity gate proved it on the sample.
    assert precision["motor-overheat"] == "double"
    assert precision["gas-lock"] == "double"
    assert precision["pump-wear"] in ("double", "float")
    for entry in packed.manifest.models:
        assert entry.inputs[0].datatype == "FP64"


def test_array_fitted_estimator_needs_features(tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge

    frame = sensor_frame().fillna(0.0)
    ridge = Ridge().fit(frame.to_numpy(), frame["vibration"])
    with pytest.raises(SampleError, match=r"model 'ridge' records no feature names.*--features"):
        pack_bundle("fr-0001", "1", {"ridge": ridge}, frame, tmp_path / "x")
    with pytest.raises(SampleError, match=r"model 'ridge' expects 4 features, --features names 3"):
        pack_bundle("fr-0001", "1", {"ridge": ridge}, frame, tmp_path / "x", features=FEATURES[:3])
    packed = pack_bundle(
        "fr-0001", "1", {"ridge": ridge}, frame, tmp_path / "ok", features=FEATURES
    )
    assert packed.manifest.models[0].features == list(FEATURES)
    assert not (tmp_path / "x").exists()


def test_missing_values_without_an_imputer_are_refused_clearly(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = sensor_frame()
    clean = frame.fillna(90.0)
    model = LogisticRegression(max_iter=300).fit(clean, (clean["vibration"] > 1).astype(int))
    with pytest.raises(
        SampleError,
        match=r"model 'risk' cannot score missing values: .*\['motor_temp'\] \(first at row 0\).*SimpleImputer",
    ):
        pack_bundle("fr-0001", "1", {"risk": model}, frame, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def _fitted_with(step: Any, frame: pd.DataFrame | None = None) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    frame = sensor_frame().fillna(90.0) if frame is None else frame
    return make_pipeline(step, LogisticRegression(max_iter=300)).fit(
        frame, (frame["vibration"] > 1).astype(int)
    )


def test_unsupported_step_is_refused_naming_model_and_step(tmp_path: Path) -> None:
    from sklearn.preprocessing import SplineTransformer

    model = _fitted_with(SplineTransformer(n_knots=3))
    with pytest.raises(UnsupportedModelError, match=r"model 'spline': .*SplineTransformer"):
        pack_bundle("fr-0001", "1", {"spline": model}, sensor_frame().fillna(90.0), tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_known_silent_divergences_are_refused(tmp_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    frame = sensor_frame().fillna(90.0)
    target = (frame["vibration"] > 1).astype(int)
    hgb = HistGradientBoostingClassifier(max_iter=5, categorical_features=[3]).fit(frame, target)
    with pytest.raises(UnsupportedModelError, match=r"model 'hgb': .*native categorical splits"):
        pack_bundle("fr-0001", "1", {"hgb": hgb}, frame, tmp_path / "x")
    strict = _fitted_with(OneHotEncoder(handle_unknown="error", sparse_output=False))
    with pytest.raises(UnsupportedModelError, match=r"handle_unknown='error'"):
        pack_bundle("fr-0001", "1", {"strict": strict}, frame, tmp_path / "x")
    custom = _fitted_with(FunctionTransformer(np.log1p))
    with pytest.raises(UnsupportedModelError, match=r"model 'log': .*FunctionTransformer"):
        pack_bundle("fr-0001", "1", {"log": custom}, frame, tmp_path / "x")


def test_parity_gate_names_model_worst_row_and_divergence(
    notebook: Notebook, tmp_path: Path
) -> None:
    with pytest.raises(
        ParityGateError,
        match=r"model 'pump-wear': ONNX \((double|float)\) diverges .*worst row \d+ .*divergence [0-9.e-]+ > tolerance 1e-30",
    ):
        pack_bundle(
            "fr-0001",
            "1",
            {"pump-wear": notebook.models["pump-wear"]},
            notebook.sample,
            tmp_path / "x",
            tolerance=1e-30,
        )
    assert not (tmp_path / "x").exists()


def test_bad_inputs_get_one_precise_error_and_nothing_written(
    notebook: Notebook, notebook_files: Path, tmp_path: Path
) -> None:
    import joblib

    sample = notebook_files / "holdout.csv"
    corrupt = tmp_path / "corrupt.joblib"
    corrupt.write_bytes(b"\x80\x04not a pickle at all")
    foreign = tmp_path / "foreign.pkl"
    joblib.dump({"weights": [1, 2, 3]}, foreign)
    out = tmp_path / "out"
    cases: list[tuple[dict[str, Path], Path, type[PackError], str]] = [
        ({"m": corrupt}, sample, ModelFileError, r"model 'm': .*corrupt.joblib is not a readable"),
        ({"m": foreign}, sample, ModelFileError, r"holds a builtins.dict, not a scikit-learn"),
        ({"Bad Name": corrupt}, sample, PackError, r"model name 'Bad Name' is not valid"),
        ({"m": tmp_path / "absent.joblib"}, sample, ModelFileError, r"does not exist"),
    ]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(FEATURES) + "\n")
    wrong_columns = tmp_path / "wrong.csv"
    notebook.sample.rename(columns={"vibration": "vib"}).to_csv(wrong_columns, index=False)
    model = notebook_files / "gas-lock.joblib"
    cases += [
        ({"m": model}, empty, SampleError, r"sample .*empty.csv is empty"),
        ({"m": model}, header_only, SampleError, r"has a header but no rows"),
        (
            {"m": model},
            wrong_columns,
            SampleError,
            r"model 'm' expects features .* lacks \['vibration'\]",
        ),
    ]
    for models, sample_file, error, message in cases:
        with pytest.raises(error, match=message):
            pack_files("fr-0001", "1", models, sample_file, out)
        assert not out.exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_non_numeric_sample_column_is_refused_naming_column_and_row(
    notebook: Notebook, tmp_path: Path
) -> None:
    frame = notebook.sample.copy()
    frame["vibration"] = frame["vibration"].astype(object)
    frame.loc[4, "vibration"] = "n/a"
    with pytest.raises(SampleError, match=r"column 'vibration' .* row 4 holds 'n/a'"):
        pack_bundle("fr-0001", "1", {"m": notebook.models["gas-lock"]}, frame, tmp_path / "x")


def test_skops_files_load_with_listed_trusted_types(notebook: Notebook, tmp_path: Path) -> None:
    import skops.io

    path = tmp_path / "overheat.skops"
    skops.io.dump(notebook.models["motor-overheat"], path)
    untrusted = skops.io.get_untrusted_types(file=path)
    sample = tmp_path / "holdout.parquet"
    notebook.sample.to_parquet(sample)
    if untrusted:
        with pytest.raises(ModelFileError, match=r"types skops does not trust.*--trust"):
            pack_files("fr-0001", "1", {"overheat": path}, sample, tmp_path / "x")
    packed = pack_files(
        "fr-0001", "1", {"overheat": path}, sample, tmp_path / "ok", trusted_types=tuple(untrusted)
    )
    assert packed.manifest.provenance.inputs is not None
    recorded = packed.manifest.provenance.inputs["model:overheat"]
    assert recorded.file == "overheat.skops"
    assert (recorded.trusted_types or []) == sorted(untrusted)
    manifest = json.loads((tmp_path / "ok" / "manifest.json").read_bytes())
    assert manifest["provenance"]["inputs"]["sample"]["file"] == "holdout.parquet"


def test_the_well_endpoint_answers_classifiers_and_regressors_of_a_packed_bundle(
    notebook: Notebook, tmp_path: Path
) -> None:
    from model_runtime.bundle_state import BundleState
    from model_runtime.dataplane import DataPlane
    from model_runtime.metrics import RuntimeMetrics

    packed = pack_bundle("fr-0001", "1", notebook.models, notebook.sample, tmp_path / "b")
    state = BundleState(RuntimeMetrics())
    state.current = load_bundle(str(packed.path))
    rows = notebook.sample.loc[:4, list(FEATURES)].fillna(90.0)
    body = {
        "inputs": [
            {
                "name": "sensors",
                "shape": [len(rows), len(FEATURES)],
                "datatype": "FP64",
                "data": rows.to_numpy().ravel().tolist(),
            }
        ]
    }
    answer = DataPlane(state).infer_well(json.dumps(body).encode()).body
    outputs = {o["name"]: o["data"] for o in answer["outputs"]}
    assert answer["bundle_digest"] == packed.digest
    np.testing.assert_allclose(
        outputs["pump-wear"], notebook.models["pump-wear"].predict(rows), rtol=1e-5
    )
    np.testing.assert_allclose(
        outputs["motor-overheat"],
        notebook.models["motor-overheat"].predict_proba(rows)[:, 1],
        atol=1e-5,
    )
