"""Every command the README shows runs as shown (with /tmp paths moved to a test directory).

`make demo` and `make test` are what CI and tests/e2e/test_demo.py run; this file runs the
building-block commands and applies the README's example ModelDeployment to kubesim.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

from modelfleet_dev.api_poller import wait_until
from modelfleet_dev.kubectl import Kubectl
from modelfleet_dev.ports import free_loopback_port

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def fenced(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def commands() -> list[str]:
    lines = []
    for block in fenced("sh"):
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if command:
                lines.append(command)
    return lines


def test_readme_opens_with_the_demo_and_the_test_command() -> None:
    assert commands()[:2] == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@contextmanager
def background(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_readme_building_block_commands_run(tmp_path: Path) -> None:
    shown = [c for c in commands() if c.startswith(".venv/bin/")]
    assert len(shown) == 6, shown
    runtime_port, metrics_port = free_loopback_port(), free_loopback_port()

    def argv(command: str) -> list[str]:
        command = command.replace("/tmp/", f"{tmp_path}/").replace(
            "--port 8080", f"--port {runtime_port}"
        )
        command = command.replace("--out crds/modeldeployment.yaml", f"--out {tmp_path}/crd.yaml")
        return shlex.split(command)

    build, verify, serve, kubesim, crd, operator = (argv(c) for c in shown)
    assert build[1:3] == ["bundle", "build"]
    subprocess.run(build, cwd=ROOT, check=True, capture_output=True, timeout=300)
    digest = subprocess.run(
        verify, cwd=ROOT, check=True, capture_output=True, text=True, timeout=120
    ).stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)

    with background(serve, tmp_path / "runtime.log"):
        wait_until(
            "the runtime",
            lambda: up(f"http://127.0.0.1:{runtime_port}/v2/health/ready"),
            timeout=60,
        )
        served = httpx.get(f"http://127.0.0.1:{runtime_port}/v2").json()["bundle"]["digest"]
        assert served == digest

    subprocess.run(crd, cwd=ROOT, check=True, capture_output=True, timeout=60)
    assert (tmp_path / "crd.yaml").read_text() == (
        ROOT / "crds" / "modeldeployment.yaml"
    ).read_text()

    kubeconfig = tmp_path / "kubesim.kubeconfig"
    with background(kubesim, tmp_path / "kubesim.log"):
        wait_until("the kubeconfig", kubeconfig.exists, timeout=60)
        with background(
            [*operator, "--metrics-port", str(metrics_port), "--liveness", ""],
            tmp_path / "operator.log",
        ):
            wait_until(
                "the operator's metrics",
                lambda: up(f"http://127.0.0.1:{metrics_port}/metrics"),
                timeout=60,
            )
            kubectl = Kubectl(kubeconfig, tmp_path / "cache", namespace=None)
            kubectl.apply(ROOT / "crds" / "modeldeployment.yaml")
            example = yaml.safe_load(fenced("yaml")[0])
            kubectl.text("create", "namespace", example["metadata"]["namespace"])
            (tmp_path / "esp-fr.yaml").write_text(yaml.safe_dump(example))
            kubectl.apply(tmp_path / "esp-fr.yaml")
            listed = kubectl.text("get", "mdep", "-n", "fleet-fr")
            assert listed.split()[:7] == [
                "NAME",
                "MODEL",
                "WELLS",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "PHASE",
            ]
