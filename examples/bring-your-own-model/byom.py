"""Bring your own model, end to end: notebook -> verified bundles -> Azure Blob -> every well.

    .venv/bin/python examples/bring-your-own-model/byom.py [--work-dir DIR]

What a data scientist does, in order, each step with the command a user would type:

1. Fit a scikit-learn pipeline per well on that well's sensor history (a CSV with gaps), in
   a notebook, and save it with joblib; keep a holdout CSV.
2. `modelfleet bundle pack-fleet fleet.yaml --out bundles --jobs 2`: every well's models
   converted to ONNX, parity-checked on its own holdout, written as bundles; digests.yaml.
3. `modelfleet bundle push bundles/<well> az://bundles/esp/<version>/<well>` to Azure Blob
   (Azurite here, Microsoft's emulator, on a loopback port), credentials from
   AZURE_STORAGE_CONNECTION_STRING.
4. Apply a ModelDeployment whose bundleUri is `az://bundles/esp/{version}/{well}` with the
   digests from step 2; the operator rolls out one pod per well. On kubesim the pods run the
   real `model-runtime` as local processes, which read the bundles from Azurite.
5. Through the API server's pod proxy, check that each well serves the packed digest and that
   its predictions equal scikit-learn's on the same rows (probabilities within 1e-5).

On kubesim the connection string is given as `runtime.env` (kubesim's process runtime resolves
plain values, not Secrets); on a real cluster put it in a Secret and name it in
`runtime.credentialsSecret`. The rows sent in step 5 have no gaps: JSON carries no NaN, and the
runtime refuses non-finite inputs, so imputation matters for the sample, not for requests.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
WELLS = ("fr-0101", "fr-0102", "fr-0103")
VERSION = "2026.12.1"
DEPLOYMENT = "byom"
NAMESPACE = "default"
CONTAINER = "bundles"
FEATURES = ["intake_pressure", "motor_temp", "vibration", "pump_type"]
TOLERANCE = 1e-5
READY_TIMEOUT_SECONDS = 300.0


def sensor_history(well: str, rows: int = 600) -> Any:
    """A well's sensor history as a data scientist gets it: gaps included."""
    import pandas as pd

    rng = np.random.default_rng(int(well[-4:]))
    frame = pd.DataFrame(
        {
            "intake_pressure": rng.normal(50.0, 5.0, rows),
            "motor_temp": rng.normal(88.0 + int(well[-1]), 9.0, rows),
            "vibration": rng.gamma(2.0, 0.5, rows),
            "pump_type": rng.integers(0, 3, rows).astype(float),
        }
    )
    frame["overheat"] = (frame["motor_temp"] + 3 * frame["vibration"] > 97).astype(int)
    frame.loc[rng.random(rows) < 0.06, "motor_temp"] = np.nan  # sensor dropouts
    return frame


def notebook(work: Path) -> dict[str, Any]:
    """Step 1: fit, save, keep a holdout (what happens before modelfleet is involved)."""
    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    fitted: dict[str, Any] = {}
    for well in WELLS:
        history = sensor_history(well)
        (work / "data").mkdir(parents=True, exist_ok=True)
        history.to_csv(work / "data" / f"{well}.csv", index=False)
        train, holdout = history.iloc[:450], history.iloc[450:]
        holdout[FEATURES].to_csv(work / "data" / f"{well}-holdout.csv", index=False)
        models = work / "models" / well
        models.mkdir(parents=True, exist_ok=True)
        for name, final in (
            (
                "motor-overheat",
                RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0),
            ),
            ("overheat-linear", LogisticRegression(max_iter=500)),
        ):
            pipeline = Pipeline(
                [
                    (
                        "pre",
                        ColumnTransformer(
                            [
                                (
                                    "numeric",
                                    make_pipeline(
                                        SimpleImputer(strategy="median"), StandardScaler()
                                    ),
                                    ["intake_pressure", "motor_temp", "vibration"],
                                ),
                                ("pump", OneHotEncoder(handle_unknown="ignore"), ["pump_type"]),
                            ]
                        ),
                    ),
                    ("model", final),
                ]
            ).fit(train[FEATURES], train["overheat"])
            joblib.dump(pipeline, models / f"{name}.joblib")
            fitted[f"{well}/{name}"] = pipeline
    (work / "fleet.yaml").write_text(
        yaml.safe_dump(
            {
                "version": VERSION,
                "sourceRevision": "example",
                "sample": "data/{well}-holdout.csv",
                "models": ["models/{well}/*.joblib"],
                "wells": list(WELLS),
            }
        )
    )
    return fitted


def modelfleet(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the `modelfleet` command as a user would; its stdout (digest or path) is returned."""
    binary = Path(sys.executable).parent / "modelfleet"
    print(f"$ modelfleet {' '.join(args)}", flush=True)
    result = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, env=env, check=False
    )
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"modelfleet {args[0]} {args[1]} failed ({result.returncode})")
    return result.stdout.strip()


def check_well(observer: Any, well: str, digest: str, fitted: dict[str, Any], work: Path) -> bool:
    """Step 5: the served digest is the packed one, predictions equal scikit-learn's."""
    import pandas as pd

    from modelfleet.logic.wellpod import pod_name

    pod = pod_name(DEPLOYMENT, well)
    rows = pd.read_csv(work / "data" / f"{well}-holdout.csv").dropna().head(25)
    matrix = rows[FEATURES].to_numpy(np.float64)
    served = observer.well_infer(
        pod,
        8080,
        {
            "inputs": [
                {
                    "name": "sensors",
                    "shape": list(matrix.shape),
                    "datatype": "FP64",
                    "data": matrix.ravel().tolist(),
                }
            ]
        },
    )
    ok = served["bundle_digest"] == digest
    print(
        f"{well}: serves {served['bundle_digest']} ({'the packed one' if ok else 'NOT ' + digest})"
    )
    for model in ("motor-overheat", "overheat-linear"):
        response = observer.http.post(
            f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}:8080/proxy/v2/models/{model}/infer",
            json={
                "inputs": [
                    {
                        "name": "sensors",
                        "shape": list(matrix.shape),
                        "datatype": "FP64",
                        "data": matrix.ravel().tolist(),
                    }
                ]
            },
        )
        response.raise_for_status()
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        probabilities = np.array(outputs["probabilities"]["data"]).reshape(
            outputs["probabilities"]["shape"]
        )
        expected = fitted[f"{well}/{model}"].predict_proba(rows[FEATURES])
        worst = float(np.max(np.abs(probabilities - expected)))
        same = worst <= TOLERANCE
        print(
            f"  {model}: max |served - scikit-learn| = {worst:.2e} over {len(rows)} rows ({'ok' if same else 'TOO FAR'})"
        )
        ok = ok and same
    return ok


def run(work: Path) -> int:
    from modelfleet.api.spec import EnvVar, RuntimeSpec
    from modelfleet_dev.fleet_manifest import model_deployment
    from modelfleet_dev.fleet_observer import FleetObserver
    from modelfleet_dev.local_cluster import running_local_cluster
    from modelfleet_dev.object_store_servers import azurite_server

    work.mkdir(parents=True, exist_ok=True)
    print("1. notebook: fit per-well pipelines on sensor data with gaps", flush=True)
    fitted = notebook(work)
    print("2. pack every well", flush=True)
    digests_file = modelfleet(
        "bundle",
        "pack-fleet",
        str(work / "fleet.yaml"),
        f"--out={work / 'bundles'}",
        "--jobs=2",
        "--quiet",
    )
    digests: dict[str, str] = yaml.safe_load(Path(digests_file).read_text())
    with azurite_server(work / "azurite") as azure:
        azure.create_container(CONTAINER)
        env = {**os.environ, **azure.environment()}
        print("3. push to Azure Blob (Azurite)", flush=True)
        for well in WELLS:
            uri = f"az://{CONTAINER}/esp/{VERSION}/{well}"
            pushed = modelfleet("bundle", "push", str(work / "bundles" / well), uri, env=env)
            assert pushed == digests[well], (pushed, digests[well])
        print("4. roll out", flush=True)
        run_selector = f"modelfleet.dev/well in ({','.join(WELLS)})"
        with running_local_cluster(work / "cluster", run_selector=run_selector) as cluster:
            manifest = model_deployment(
                DEPLOYMENT,
                version=VERSION,
                bundle_uri=f"az://{CONTAINER}/esp/{{version}}/{{well}}",
                wells=WELLS,
                namespace=NAMESPACE,
                digests=digests,
                runtime=RuntimeSpec(
                    env=[
                        EnvVar(
                            name="AZURE_STORAGE_CONNECTION_STRING", value=azure.connection_string()
                        )
                    ]
                ),
            )
            cluster.kubectl.apply(dict(manifest))
            observer = FleetObserver(cluster.kubeconfig, NAMESPACE, DEPLOYMENT)
            try:
                observer.wait(
                    "every well serving its packed bundle",
                    lambda s: (
                        s.ready_pods == len(WELLS)
                        and all(s.served_digests.get(w) == digests[w] for w in WELLS)
                    ),
                    READY_TIMEOUT_SECONDS,
                )
                print("5. check through the API server's pod proxy", flush=True)
                results = [check_well(observer, w, digests[w], fitted, work) for w in WELLS]
            finally:
                observer.close()
    ok = all(results)
    print("bring-your-own-model: " + ("every well serves what was validated" if ok else "FAILED"))
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", help="where to keep everything (default: a temp dir)")
    args = parser.parse_args()
    if args.work_dir:
        return run(Path(args.work_dir))
    with tempfile.TemporaryDirectory(prefix="byom-") as tmp:
        return run(Path(tmp))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
