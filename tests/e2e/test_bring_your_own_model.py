"""examples/bring-your-own-model, run as a user would: notebook pipelines -> pack-fleet -> push
to Azurite -> ModelDeployment on kubesim with real runtimes -> the pod proxy answers with the
packed digest and scikit-learn's predictions (within 1e-5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bring-your-own-model" / "byom.py"

# Its own kubesim, operator and Azurite (whose first use on a machine installs it from npm).
pytestmark = [pytest.mark.kubelet, pytest.mark.timeout(1500)]


def test_bring_your_own_model_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    example = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--work-dir", str(tmp_path / "byom")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        out, _ = example.communicate(timeout=1400)
    finally:
        if example.poll() is None:
            os.killpg(example.pid, signal.SIGKILL)
    assert example.returncode == 0, out
    assert out.count("(the packed one)") == 3, out
    assert out.count("(ok)") == 6, out
    assert "every well serves what was validated" in out
