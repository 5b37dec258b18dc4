"""Bench: `bundle pack` of one well's models on one core, and `bundle pack-fleet` with N jobs.

    python bench/bundle_pack.py pack --models 100            # pack of 100 models, one well
    python bench/bundle_pack.py fleet --wells 100 --models 100 --jobs 2
    python bench/bundle_pack.py store --models 100          # push to / load from Azurite

The models are what a data scientist's notebook would hold for one well: pipelines with an
imputer, a scaler and a one-hot encoder in a ColumnTransformer in front of small random
forests, logistic regressions and gradient-boosting regressors, fitted on a 500-row sample with
gaps. Fitting is not timed (it happens in the notebook); loading the joblib files, converting,
the parity gate, statistics and writing are. Pin to one core with `taskset -c 0`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bundle_builder.conftest import column_transformer, sensor_frame


def fit_models(count: int, folder: Path) -> None:
    import joblib
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    frame = sensor_frame(rows=500)
    target = (frame["motor_temp"].fillna(90.0) + 3 * frame["vibration"] > 96).astype(int)
    value = frame["intake_pressure"] * 0.3 + frame["vibration"] * 2.0
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        kind = index % 3
        if kind == 0:
            final, y = (
                RandomForestClassifier(n_estimators=12, max_depth=6, random_state=index),
                target,
            )
        elif kind == 1:
            final, y = LogisticRegression(max_iter=300), target
        else:
            final, y = (
                GradientBoostingRegressor(n_estimators=15, max_depth=3, random_state=index),
                value,
            )
        model = Pipeline([("pre", column_transformer()), ("model", final)]).fit(frame, y)
        joblib.dump(model, folder / f"model-{index:03d}.joblib")
    frame.to_csv(folder / "holdout.csv", index=False)


def bench_pack(models: int) -> dict[str, float]:
    from bundle_builder.packing import pack_files

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "notebook"
        fit_models(models, folder)
        files = {p.stem: p for p in sorted(folder.glob("*.joblib"))}
        import onnxruntime  # noqa: F401  (imports are paid once per process, not per bundle)
        import skl2onnx  # noqa: F401

        started, cpu_started = time.perf_counter(), time.process_time()
        packed = pack_files("fr-0001", "1", files, folder / "holdout.csv", Path(tmp) / "out")
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        from model_runtime.bundle_state import load_bundle

        load = load_bundle(str(packed.path)).load_seconds
        size = sum(p.stat().st_size for p in packed.path.rglob("*") if p.is_file())
    return {
        "models": models,
        "pack_seconds": round(seconds, 2),
        # The machine is shared: CPU seconds of this process are the cost, wall time the wait.
        "pack_cpu_seconds": round(cpu, 2),
        "load_seconds": round(load, 3),
        "bundle_bytes": size,
    }


def bench_fleet(wells: int, models: int, jobs: int) -> dict[str, float]:
    import yaml

    from bundle_builder.fleet import pack_fleet

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "notebook"
        fit_models(models, folder)
        fleet = Path(tmp) / "fleet.yaml"
        # One set of fitted files for every well: packing cost does not depend on who fitted.
        fleet.write_text(
            yaml.safe_dump(
                {
                    "version": "1",
                    "sample": str(folder / "holdout.csv"),
                    "models": [str(folder / "*.joblib")],
                    "wells": [f"fr-{i:04d}" for i in range(wells)],
                }
            )
        )
        started = time.perf_counter()
        done = [0]

        def progress(_result: object, count: int, total: int) -> None:
            done[0] = count
            if count % 10 == 0:
                print(
                    f"{count}/{total} wells, {time.perf_counter() - started:.0f}s", file=sys.stderr
                )

        results = pack_fleet(fleet, Path(tmp) / "out", jobs=jobs, progress=progress)
        seconds = time.perf_counter() - started
        assert all(r.error is None for r in results), [r.error for r in results if r.error]
        started = time.perf_counter()
        pack_fleet(fleet, Path(tmp) / "out", jobs=jobs)
        resume = time.perf_counter() - started
        shutil.rmtree(Path(tmp) / "out")
    return {
        "wells": wells,
        "models_per_well": models,
        "jobs": jobs,
        "seconds": round(seconds, 1),
        "models_per_second": round(wells * models / seconds, 1),
        "resume_all_skipped_seconds": round(resume, 2),
    }


def bench_store(models: int) -> dict[str, float]:
    """Push a packed bundle to Azurite and load it back as the runtime does (verify + sessions)."""
    import os

    from bundle_builder.packing import pack_files
    from bundle_builder.publishing import push_bundle
    from model_runtime.bundle_state import load_bundle
    from modelfleet_dev.object_store_servers import azurite_server

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "notebook"
        fit_models(models, folder)
        files = {p.stem: p for p in sorted(folder.glob("*.joblib"))}
        packed = pack_files("fr-0001", "1", files, folder / "holdout.csv", Path(tmp) / "out")
        with azurite_server(Path(tmp) / "azurite") as azure:
            azure.create_container("bundles")
            os.environ.update(azure.environment())
            uri = "az://bundles/esp/fr-0001/1"
            started = time.perf_counter()
            push_bundle(packed.path, uri)
            push = time.perf_counter() - started
            loads = []
            for _ in range(3):
                started = time.perf_counter()
                serving = load_bundle(uri, expected_digest=packed.digest)
                loads.append(time.perf_counter() - started)
            assert serving.digest == packed.digest
    return {
        "models": models,
        "push_seconds": round(push, 2),
        "load_seconds_best_of_3": round(min(loads), 3),
        "load_seconds_all": [round(x, 3) for x in loads],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    pack = sub.add_parser("pack")
    pack.add_argument("--models", type=int, default=100)
    fleet = sub.add_parser("fleet")
    fleet.add_argument("--wells", type=int, default=100)
    fleet.add_argument("--models", type=int, default=100)
    fleet.add_argument("--jobs", type=int, default=2)
    store = sub.add_parser("store")
    store.add_argument("--models", type=int, default=100)
    args = parser.parse_args()
    if args.what == "pack":
        result = bench_pack(args.models)
    elif args.what == "store":
        result = bench_store(args.models)
    else:
        result = bench_fleet(args.wells, args.models, args.jobs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
