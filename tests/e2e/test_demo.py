"""`modelfleet demo` tells the truth, and Ctrl-C leaves nothing running.

The story ends with functional monitoring (a real Prometheus, a sensor feed, the operator's
spec.monitoring and a canary analysis): the machine needs the Prometheus of `make prometheus`,
which the demo builds when it is missing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelfleet_dev.local_cluster import descendants, start_kubesim

pytestmark = pytest.mark.kubelet


def _demo(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["COLUMNS"] = "160"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelfleet.app.cli",
            "demo",
            "--work-dir",
            str(tmp_path / "demo"),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


def test_demo_story_ends_with_fleet_rolled_back_to_version_2(tmp_path: Path) -> None:
    demo = _demo(tmp_path, "--wells", "24")
    try:
        out, _ = demo.communicate(timeout=420)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    assert demo.returncode == 0, out
    out = " ".join(out.split())  # rich wraps long lines
    # the fleet came up, a real runtime answered with the digest that was built...
    assert re.search(r"esp\s+esp-failure@1\.0\.0\s+24\s+24\s+24\s+24\s+Available", out), out
    assert out.count("the same") == 3, out
    # ...the roll-out stayed within its budget...
    assert re.search(r"esp\s+esp-failure@2\.0\.0\s+24\s+24\s+24\s+24\s+Available", out), out
    assert "(budget 2): within budget" in out
    # ...and the broken version was refused by the runtime, then rolled back.
    assert re.search(r"unhealthy: \S+ BundleInvalid: .* has digest sha256:\w+, expected", out), out
    assert re.search(r"esp\s+esp-failure@3\.0\.0\s+24\s+24\s+24\s+24\s+Degraded", out), out
    assert "RolledBack" in out
    # Monitoring: the drifting well is seen by Prometheus, its alert and the operator...
    drifting = "dk-0024"  # the last real-runtime well (FleetPlan.drifting_well)
    assert "ModelFleetWellDrifting [firing]" in out, out
    assert re.search(rf"well={drifting}\b", out), out
    assert re.search(r"ModelsHealthy\s+False\s+Drifting: .*well " + drifting, out), out
    assert re.search(r"DRIFTING AGE esp esp-failure@\S+ 24 24 24 24 \w+ 1 ", out), out
    # ...and 4.0.0 is stopped on its canary (the first real-runtime well) and rolled back.
    assert re.search(r"Progressing\s+False\s+AnalysisFailed: .*well=\"no-0022\"", out), out
    assert "every pod back on 2.0.0: yes" in out, out
    # The sensor repaired, the window forgets the drift and the alert resolves.
    assert f"ModelFleetWellDrifting for {drifting} resolved" in out, out


def test_ctrl_c_stops_every_process_the_demo_started(tmp_path: Path) -> None:
    # Started as a shell starts a background job, with SIGINT ignored: the demo still stops
    # on it (a CI that runs the suite so once saw this demo never stop).
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        demo = _demo(tmp_path, "--wells", "6", "--keep")
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert demo.stdout is not None
    seen: list[str] = []
    children: list[int] = []
    deadline = time.monotonic() + 360
    try:
        for line in demo.stdout:
            seen.append(line)
            if "Ctrl-C stops everything" in line:
                break
            assert time.monotonic() < deadline, "".join(seen)
        children = descendants(demo.pid)
        assert any("kubesim" in _cmdline(pid) for pid in children), children
        assert any("model-runtime" in _cmdline(pid) for pid in children), children
        assert any("prometheus" in _cmdline(pid) for pid in children), children
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    assert demo.returncode == 130, "".join(seen) + rest
    assert "everything the demo started is stopped" in rest
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists() and _cmdline(pid)]
    assert alive == [], [(pid, _cmdline(pid)) for pid in alive]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_demo_with_kubeconfig_set_runs_the_story_against_that_cluster(tmp_path: Path) -> None:
    """A kubesim started by hand stands in for "a cluster the user already has"."""
    cluster = start_kubesim(
        tmp_path / "cluster", run_selector="modelfleet.dev/well in (no-0004,nl-0005,dk-0006)"
    )
    kubeconfig = tmp_path / "cluster" / "kubeconfig"
    try:
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "COLUMNS": "160"}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelfleet.app.cli",
                "demo",
                "--wells",
                "6",
                "--work-dir",
                str(tmp_path / "demo"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=360,
            check=False,
        )
    finally:
        cluster.stop()
    out = " ".join(result.stdout.split())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KUBECONFIG is set: the story runs against http://127.0.0.1:" in out
    assert re.search(r"esp\s+esp-failure@3\.0\.0\s+6\s+6\s+6\s+6\s+Degraded", out), out
    assert 'modeldeployment.modelfleet.dev "esp" deleted' in out
