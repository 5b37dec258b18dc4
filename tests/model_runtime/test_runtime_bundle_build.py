"""Building bundles: parity, determinism, atomicity, the CLI and its progress output."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bundle_builder.building import BuiltBundle, build_bundle, model_specs
from bundle_builder.sensors import generate_history
from bundle_builder.training import ModelSpec, check_parity, to_onnx, train
from model_runtime.errors import ParityError
from model_runtime.manifest import manifest_digest, parse_manifest, to_plain

MODELFLEET = [sys.executable, "-m", "modelfleet.app.cli"]


def test_digest_is_sha256_of_the_canonical_manifest_file(small_bundle: BuiltBundle) -> None:
    raw = (small_bundle.path / "manifest.json").read_bytes()
    assert small_bundle.digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert manifest_digest(raw) == small_bundle.digest
    # Any other JSON spelling of the same manifest has the same digest.
    assert manifest_digest(json.dumps(json.loads(raw), indent=2).encode()) == small_bundle.digest


def test_manifest_states_tolerance_provenance_and_tensor_signatures(
    small_bundle: BuiltBundle,
) -> None:
    manifest = parse_manifest((small_bundle.path / "manifest.json").read_bytes())
    assert manifest.well == "fr-0001" and manifest.version == "1.0.0"
    assert manifest.parity.tolerance == 1e-5
    assert len(manifest.models) == 8
    assert {m.kind for m in manifest.models} >= {
        "random_forest",
        "extra_trees",
        "gradient_boosting",
        "logistic_regression",
    }
    assert set(manifest.provenance.packages) >= {
        "scikit-learn",
        "skl2onnx",
        "onnxruntime",
        "numpy",
        "onnx",
    }
    assert manifest.provenance.training_data_sha256 == generate_history("fr-0001", 0).sha256()
    assert manifest.provenance.seed == 0
    for entry in manifest.models:
        data = (small_bundle.path / entry.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256
        assert to_plain(entry.inputs[0]) == {
            "name": "sensors",
            "datatype": "FP32",
            "shape": [-1, 7],
        }
        assert [o.name for o in entry.outputs] == ["label", "probabilities"]
        assert entry.parity_max_abs_diff <= manifest.parity.tolerance


def test_same_inputs_build_a_byte_identical_bundle(
    tmp_path: Path, small_bundle: BuiltBundle
) -> None:
    again = build_bundle("fr-0001", tmp_path / "again", models=8, version="1.0.0")
    assert again.digest == small_bundle.digest
    files = sorted(
        p.relative_to(small_bundle.path) for p in small_bundle.path.rglob("*") if p.is_file()
    )
    assert files == sorted(p.relative_to(again.path) for p in again.path.rglob("*") if p.is_file())
    for relative in files:
        assert (again.path / relative).read_bytes() == (small_bundle.path / relative).read_bytes()


def test_another_seed_or_well_gives_another_digest(
    tmp_path: Path, small_bundle: BuiltBundle
) -> None:
    other_well = build_bundle("fr-0002", tmp_path / "w2", models=2)
    other_seed = build_bundle("fr-0001", tmp_path / "s7", models=2, seed=7)
    assert len({small_bundle.digest, other_well.digest, other_seed.digest}) == 3


def test_onnx_probabilities_match_sklearn_within_tolerance_on_holdout(
    small_bundle: BuiltBundle,
) -> None:
    history = generate_history("fr-0001", 0)
    spec = model_specs(8, 0)[0]
    labels = history.labels(spec.failure_mode, spec.horizon_days)
    estimator = train(spec, history.features[:5000], labels[:5000])
    holdout = history.features[5000:5600]
    session = ort.InferenceSession(
        to_onnx(estimator, 7, spec.name), providers=["CPUExecutionProvider"]
    )
    onnx_probabilities = session.run(["probabilities"], {"sensors": holdout})[0]
    assert np.max(np.abs(onnx_probabilities - estimator.predict_proba(holdout))) <= 1e-5


def test_a_diverging_model_fails_the_build_naming_it_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "never"
    # A tolerance no float32 conversion can meet forces a divergence on the first model.
    with pytest.raises(ParityError) as failure:
        build_bundle("fr-0001", out, models=3, tolerance=1e-15)
    assert failure.value.model == "motor-overheat-01d"
    assert "motor-overheat-01d" in str(failure.value) and "max |onnx - sklearn|" in str(
        failure.value
    )
    assert not out.exists()
    assert not list(tmp_path.iterdir()), "the staging directory must be removed too"


def test_parity_check_catches_a_forged_onnx_model() -> None:
    history = generate_history("fr-0001", 0)
    x, holdout = history.features[:3000], history.features[3000:3300]
    good = train(
        ModelSpec("a", "logistic_regression", "gas_lock", 5, 0),
        x,
        history.labels("gas_lock", 5)[:3000],
    )
    other = train(
        ModelSpec("b", "random_forest", "pump_wear", 9, 1), x, history.labels("pump_wear", 9)[:3000]
    )
    with pytest.raises(ParityError) as failure:
        check_parity("a", good, to_onnx(other, 7, "b"), holdout)
    assert failure.value.max_abs_diff > 1e-5


def test_build_refuses_a_non_empty_output_directory(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty directory"):
        build_bundle("fr-0001", tmp_path / "out", models=1)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_cli_builds_100_models_with_progress_well_under_a_minute(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [*MODELFLEET, "bundle", "build", "--well", "fr-0100", "--out", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 60, f"100-model build took {elapsed:.1f}s"
    # Not a TTY here: progress shows as a line every 10 models.
    progress_lines = [line for line in result.stderr.splitlines() if line.startswith("built ")]
    assert len(progress_lines) == 10 and "built 100/100" in progress_lines[-1]
    digest = result.stdout.strip()
    assert digest == manifest_digest((tmp_path / "b" / "manifest.json").read_bytes())
    assert len(list((tmp_path / "b" / "models").glob("*.onnx"))) == 100

    verify = subprocess.run(
        [*MODELFLEET, "bundle", "verify", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.strip() == digest


def test_cli_verify_exits_non_zero_naming_the_corrupt_file(
    tmp_path: Path, small_bundle: BuiltBundle
) -> None:
    import shutil

    bundle = shutil.copytree(small_bundle.path, tmp_path / "b")
    victim = next((bundle / "models").glob("*.onnx"))
    victim.write_bytes(victim.read_bytes()[:-10])
    result = subprocess.run(
        [*MODELFLEET, "bundle", "verify", f"file://{bundle}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert f"models/{victim.name}" in result.stderr and "BundleInvalid" in result.stderr
    assert result.stdout == ""


def test_cli_quiet_build_in_another_process_gives_the_same_digest(
    tmp_path: Path, small_bundle: BuiltBundle
) -> None:
    """Determinism across processes (hash seeds differ), not only within one: skl2onnx's
    opset-import order once followed the string hash seed, so about half the builds differed."""
    import os

    result = subprocess.run(
        [
            *MODELFLEET,
            "bundle",
            "build",
            "--well",
            "fr-0001",
            "--out",
            str(tmp_path / "q"),
            "--models",
            "8",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == small_bundle.digest
    assert "built " not in result.stderr


def test_parity_error_crosses_process_boundaries_intact() -> None:
    """Builds run in process pools (the demo's bundle cache): the error must unpickle."""
    import pickle

    error = pickle.loads(pickle.dumps(ParityError("gas-lock-01d", 0.5, 1e-5)))
    assert (error.model, error.max_abs_diff, error.tolerance) == ("gas-lock-01d", 0.5, 1e-5)
    assert "gas-lock-01d" in str(error)


def test_rare_failure_mode_gradient_boosting_converts_without_overflow(tmp_path: Path) -> None:
    """This well/seed once produced a leaf value beyond float32 range in the gradient-boosted
    electrical-fault model: ONNX scored NaN and the build failed."""
    built = build_bundle("nl-0002", tmp_path / "nl-0002", models=4, version="1.0.0", seed=1)
    assert built.manifest.models[3].name == "electrical-fault-01d"
