"""The real kubectl, driven by the chart tests against kubesim.

Why this exists: applying the rendered chart with kubectl (its default strict validation, its
client-side apply) is what a user does; two test modules need it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from .chart_rendering import KubeObject

KUBECTL = shutil.which("kubectl")


class Kubectl:
    """The real kubectl against one kubeconfig, with its own discovery cache."""

    def __init__(self, kubeconfig: Path, cache_dir: Path) -> None:
        self.base = [str(KUBECTL), "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache_dir)]

    def run(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*self.base, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"kubectl {' '.join(args)} failed:\n{done.stderr}"
        return done.stdout

    def apply(self, objects: list[KubeObject]) -> str:
        return self.run("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
