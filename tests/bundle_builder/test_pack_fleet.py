"""`modelfleet bundle pack-fleet`: many wells in parallel, resumable, with digests.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from bundle_builder.fleet import pack_fleet
from model_runtime.manifest import manifest_digest
from tests.bundle_builder.conftest import run_bundle_command

WELLS = ("fr-0001", "fr-0002", "fr-0003")


def _fleet(tmp_path: Path, notebook_files: Path) -> Path:
    """A data scientist's layout: models/<well>/*.joblib, samples/<well>.csv, one fleet file."""
    for well in WELLS:
        models = tmp_path / "models" / well
        models.mkdir(parents=True)
        for name in ("motor-overheat", "gas-lock"):
            shutil.copy(notebook_files / f"{name}.joblib", models / f"{name}.joblib")
        (tmp_path / "samples").mkdir(exist_ok=True)
        shutil.copy(notebook_files / "holdout.csv", tmp_path / "samples" / f"{well}.csv")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        yaml.safe_dump(
            {
                "version": "2026.12.1",
                "sourceRevision": "0123abc",
                "sample": "samples/{well}.csv",
                "models": ["models/{well}/*.joblib"],
                "wells": [
                    *WELLS[:2],
                    {"well": WELLS[2], "models": ["models/{well}/gas-lock.joblib"]},
                ],
            }
        )
    )
    return fleet


def test_pack_fleet_in_parallel_writes_digests_and_resumes(
    tmp_path: Path, notebook_files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = _fleet(tmp_path, notebook_files)
    out = tmp_path / "bundles"
    assert run_bundle_command("pack-fleet", str(fleet), f"--out={out}", "--jobs=2") == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out / "digests.yaml")
    assert "3 wells packed (5 models), 0 skipped, 0 failed" in captured.err
    digests = yaml.safe_load((out / "digests.yaml").read_text())
    assert sorted(digests) == list(WELLS)
    for well in WELLS:
        assert digests[well] == manifest_digest((out / well / "manifest.json").read_bytes())
    # Same inputs on the same machine: the same bundle, whatever the well (the well id differs).
    assert len(set(digests.values())) == 3

    # Resumable: an interrupted run left one well missing and a stale staging directory.
    shutil.rmtree(out / WELLS[1])
    (out / f".{WELLS[1]}.packing-deadbeef").mkdir()
    (out / "digests.yaml").unlink()
    results = pack_fleet(fleet, out, jobs=1)
    assert [(r.well, r.skipped) for r in results] == [
        (WELLS[0], True),
        (WELLS[1], False),
        (WELLS[2], True),
    ]
    assert yaml.safe_load((out / "digests.yaml").read_text()) == digests
    assert not list(out.glob(".*packing*"))


def test_a_failing_well_is_named_and_no_digests_are_written(
    tmp_path: Path, notebook_files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = _fleet(tmp_path, notebook_files)
    (tmp_path / "samples" / f"{WELLS[1]}.csv").write_text("")
    out = tmp_path / "bundles"
    assert run_bundle_command("pack-fleet", str(fleet), f"--out={out}", "--jobs=1", "--quiet") == 1
    err = capsys.readouterr().err
    assert f"samples/{WELLS[1]}.csv is empty" in err
    assert "digests.yaml not written" in err
    assert not (out / "digests.yaml").exists()
    assert not (out / WELLS[1]).exists()
    assert (out / WELLS[0] / "manifest.json").exists()

    # Changed inputs under an existing bundle are refused, not silently skipped.
    shutil.copy(notebook_files / "holdout.csv", tmp_path / "samples" / f"{WELLS[1]}.csv")
    shutil.copy(
        notebook_files / "pump-wear.joblib", tmp_path / "models" / WELLS[0] / "gas-lock.joblib"
    )
    results = pack_fleet(fleet, out, jobs=1)
    refused = next(r for r in results if r.well == WELLS[0])
    assert refused.error is not None and "packed from other inputs" in refused.error
