"""Wells whose pods run the real model-runtime answer what their models predict, through the
apiserver's pod proxy, before and after an in-place roll-out to a new version.

Which image really runs model-runtime depends on the cluster: the real-cluster harness runs
pods of `HOST_PROCESS_IMAGE` as processes in its pod network (`python -m
modelfleet_dev.real_cluster test` sets MODELFLEET_E2E_RUNTIME_IMAGE to it); on another cluster,
set it to a built runtime image. Without it the test is skipped (kubesim's simulated runtime
scores nothing).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from modelfleet.logic.wellpod import pod_name

from .conftest import Fleet, wells_named

V1, V2 = "1.0.0", "2.0.0"
RUNTIME_PORT = 8080
RUNTIME_IMAGE = os.environ.get("MODELFLEET_E2E_RUNTIME_IMAGE")
#: Three pumps: nominal, hot and shaking, starved of intake pressure (the seven sensors).
ROWS = [
    [24.0, 180.0, 95.0, 42.0, 2.1, 50.0, 310.0],
    [23.0, 175.0, 141.0, 61.0, 9.8, 52.0, 240.0],
    [6.5, 120.0, 118.0, 55.0, 4.4, 48.0, 150.0],
]

pytestmark = pytest.mark.skipif(
    RUNTIME_IMAGE is None,
    reason="MODELFLEET_E2E_RUNTIME_IMAGE names no image that runs the real model-runtime",
)


def _apply_on_the_real_runtime(fleet: Fleet, wells: list[str], version: str) -> None:
    # A real runtime process starts in seconds, more on a loaded machine (60-80 s seen at load
    # 15-20, onnxruntime's import): the progress deadline (20 s in the other tests) must not roll
    # the fleet back meanwhile, and the waits below allow for the operator's retry back-off.
    manifest = fleet.manifest(wells, version, progress_deadline_seconds=180)
    manifest["spec"]["runtime"]["image"] = RUNTIME_IMAGE
    fleet.kubectl.apply(manifest)


def _expected(bundle: Path) -> dict[str, list[list[float]]]:
    """Each model's probabilities for ROWS, from onnxruntime on the bundle's own files."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    rows = np.asarray(ROWS, dtype=np.float32)
    expected = {}
    for model in manifest["models"]:
        session = ort.InferenceSession(str(bundle / model["file"]))
        outputs = dict(
            zip(
                [o.name for o in session.get_outputs()],
                session.run(None, {"sensors": rows}),
                strict=True,
            )
        )
        expected[model["name"]] = np.asarray(outputs["probabilities"]).tolist()
    return expected


def _assert_serves_its_models(fleet: Fleet, well: str, version: str) -> None:
    bundle = fleet.shelf.bundles[(version, well)]
    base = f"/api/v1/namespaces/default/pods/{pod_name(fleet.name, well)}:{RUNTIME_PORT}/proxy"
    http = fleet.observer.http
    meta = http.get(f"{base}/v2")
    assert meta.status_code == 200, meta.text
    assert meta.json()["bundle"]["digest"] == bundle.digest
    for model, probabilities in _expected(bundle.path).items():
        body: dict[str, Any] = {
            "inputs": [
                {
                    "name": "sensors",
                    "shape": [len(ROWS), len(ROWS[0])],
                    "datatype": "FP32",
                    "data": [x for row in ROWS for x in row],
                }
            ]
        }
        answer = http.post(f"{base}/v2/models/{model}/infer", json=body)
        assert answer.status_code == 200, answer.text
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        served = np.asarray(outputs["probabilities"]["data"]).reshape(len(ROWS), -1)
        np.testing.assert_allclose(served, probabilities, rtol=0, atol=1e-6)


def test_wells_on_the_real_runtime_answer_what_their_models_predict(fleet: Fleet) -> None:
    wells = wells_named("real", 2)
    fleet.shelf.ensure(wells, [V1, V2])
    _apply_on_the_real_runtime(fleet, wells, V1)
    fleet.wait_available(V1, len(wells), timeout=300)
    for well in wells:
        _assert_serves_its_models(fleet, well, V1)
    # Same pod template, new bundles: the operator patches the pods' annotations in place, the
    # runtime reads them from its downward-API file and loads the new bundle.
    _apply_on_the_real_runtime(fleet, wells, V2)
    fleet.wait_available(V2, len(wells), timeout=300)
    for well in wells:
        _assert_serves_its_models(fleet, well, V2)
