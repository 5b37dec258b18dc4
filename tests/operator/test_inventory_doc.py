"""docs/operations.md's ConfigMap inventory walk-through works as written.

The section's files (`wells-1.yaml`, ..., `esp.yaml`) are written out and its kubectl commands run,
in order, with the real kubectl against kubesim; what they stored must resolve into the fleet the
text describes. No operator runs: the example's bundle URI is not on loopback.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from kubesim.harness.testing import KubeSimThread
from modelfleet.api.spec import ModelDeploymentSpec
from modelfleet.logic.inventory import InventorySource, resolve_inventory
from modelfleet_dev.kubectl import environ_with_kubectl, kubectl_binary

from .cluster_harness import ROOT, Api

DOC = ROOT / "docs" / "operations.md"
SECTION = "## Large fleets: wells and digests in ConfigMaps"
FILE_BLOCK = re.compile(r"^`(?P<name>[\w.-]+\.yaml)`.*?\n\n```yaml\n(?P<body>.*?)```", re.M | re.S)

pytestmark = pytest.mark.skipif(kubectl_binary() is None, reason="needs the kubectl binary")


def section() -> str:
    text = DOC.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return text[start:end]


def test_the_walk_through_runs_and_stores_the_fleet_it_describes(
    cluster: KubeSimThread, api: Api, tmp_path: Path
) -> None:
    doc = section()
    files = {m["name"]: m["body"] for m in FILE_BLOCK.finditer(doc)}
    assert set(files) == {"wells-1.yaml", "wells-2.yaml", "digests.yaml", "esp.yaml"}
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    commands = [line[4:] for line in doc.splitlines() if line.startswith("    kubectl ")]
    assert len(commands) >= 5
    env = {**environ_with_kubectl(), "KUBECONFIG": str(cluster.kubeconfig), "HOME": str(tmp_path)}
    for command in commands:
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"

    stored = api.deployment("esp")
    spec = ModelDeploymentSpec.model_validate(stored["spec"])
    maps = api.get("/api/v1/namespaces/default/configmaps")["items"]
    sources: dict[str, InventorySource | None] = {
        m["metadata"]["name"]: InventorySource.from_config_map(m) for m in maps
    }
    resolved = resolve_inventory(spec, "esp", sources)
    assert [w.id for w in resolved.wells] == [
        "ca-pad0001-w00001",
        "ca-pad0001-w00002",
        "ca-pad0002-w00003",
    ]
    assert resolved.wells[1].pin == "2026.10.1"
    assert sorted(resolved.model.digests or {}) == ["ca-pad0001-w00001", "ca-pad0002-w00003"]
