"""The real kubectl, run against one kubeconfig: what a user types, driven by tests and the demo.

Why this exists: the demo's steps, the e2e suite, the chart tests and the doc tests all show or
check what kubectl prints and how it applies (strict validation, client-side apply), so they
share one wrapper. Which binary runs is decided once (`kubectl_binary`): MODELFLEET_KUBECTL when
set, else the pinned build `cluster/` puts in the cache (`make install` builds it), never whatever
kubectl the machine happens to carry: its version would decide what the tests see.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelfleet_dev.real_cluster.build import Component, binary_path

#: Environment variable naming the kubectl binary to run (a path, or a name looked up on PATH).
KUBECTL_ENV = "MODELFLEET_KUBECTL"
#: The pinned kubectl (the apiserver's version) that `python -m modelfleet_dev.real_cluster build
#: kubectl` puts in the cache.
PINNED_KUBECTL = binary_path(Component.KUBECTL)

Manifest = Mapping[str, Any]


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message has the command and its stderr."""


def kubectl_binary(environ: Mapping[str, str] = os.environ) -> str | None:
    """The kubectl to run: $MODELFLEET_KUBECTL, else the pinned build; None if there is none
    (callers skip or explain)."""
    chosen = environ.get(KUBECTL_ENV)
    if chosen:
        return shutil.which(chosen) or (chosen if Path(chosen).is_file() else None)
    if os.access(PINNED_KUBECTL, os.X_OK):
        return str(PINNED_KUBECTL)
    return None


def require_kubectl() -> str:
    binary = kubectl_binary()
    if binary is None:
        raise KubectlError(
            f"no kubectl at {PINNED_KUBECTL}: run `make install` (builds the pinned kubectl "
            f"from Go modules) or set {KUBECTL_ENV} to a kubectl of the cluster's version"
        )
    return binary


def environ_with_kubectl(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """`environ` with the chosen kubectl's directory first on PATH, for shell commands (a doc's
    `kubectl ...` lines) that name plain `kubectl`."""
    env = dict(environ)
    binary = kubectl_binary(environ)
    if binary is not None:
        env["PATH"] = os.pathsep.join([str(Path(binary).parent), env.get("PATH", "")])
    return env


@dataclass
class Kubectl:
    """kubectl against one kubeconfig, with its discovery cache in a directory of our own.

    `namespace` None passes no --namespace (objects keep the namespace their manifest names).
    """

    kubeconfig: Path
    cache_dir: Path
    namespace: str | None = "default"
    binary: str = field(default_factory=require_kubectl)
    cwd: Path | None = None
    timeout: float = 120.0
    calls: list[list[str]] = field(default_factory=list)

    def argv(self, *args: str) -> list[str]:
        base = [
            self.binary,
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            str(self.cache_dir),
        ]
        if self.namespace is not None:
            base += ["--namespace", self.namespace]
        return [*base, *args]

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        result = subprocess.run(
            self.argv(*args),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout or self.timeout,
            check=False,
            cwd=self.cwd,
        )
        if check and result.returncode != 0:
            raise KubectlError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def text(self, *args: str, stdin: str | None = None) -> str:
        return self.run(*args, stdin=stdin).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.text(*args, "-o", "json"))

    def apply(self, manifest: Path | Manifest | Sequence[Manifest]) -> str:
        """`kubectl apply -f` a file or directory, one object, or several (as one YAML stream)."""
        if isinstance(manifest, Path):
            return self.text("apply", "-f", str(manifest))
        objects = [manifest] if isinstance(manifest, Mapping) else list(manifest)
        stream = yaml.safe_dump_all([dict(o) for o in objects], sort_keys=False)
        return self.text("apply", "-f", "-", stdin=stream)
