"""docs/operations.md is a runbook that works: every `$` command in it, in order, on a fleet."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from modelfleet_dev.kubectl import environ_with_kubectl

from .conftest import E2ECluster, Fleet, wells_named

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
DOC_NAME = re.compile(r"(?<![\w-])esp(?![\w-])")
V1, V2 = "1.0.0", "2.0.0"


def doc_commands() -> list[str]:
    return [line.strip()[2:] for line in DOC.read_text().splitlines() if line.startswith("    $ ")]


def test_the_doc_has_commands_for_looking_pausing_resuming_rolling_back_and_metrics() -> None:
    text = "\n".join(doc_commands())
    for needle in ('"paused":true', '"paused":false', "kubectl wait", "describe mdep", "/metrics"):
        assert needle in text


def test_every_command_of_the_operations_doc_runs_in_order(
    fleet: Fleet, e2e_cluster: E2ECluster, tmp_path: Path
) -> None:
    wells = wells_named("ops", 4)
    fleet.shelf.ensure(wells, [V1, V2])
    fleet.apply(wells, V1)
    fleet.wait_available(V1, 4)
    env = environ_with_kubectl()
    env["KUBECONFIG"] = str(e2e_cluster.kubeconfig)
    env["KUBECACHEDIR"] = str(tmp_path / "kubectl-cache")
    for command in doc_commands():
        command = DOC_NAME.sub(fleet.name, command)
        if "/metrics" in command:
            if e2e_cluster.metrics_port is None:
                continue  # the operator runs in the cluster; its port is not ours to reach
            command = command.replace("127.0.0.1:9090", f"127.0.0.1:{e2e_cluster.metrics_port}")
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        if "/metrics" in command:
            assert f'deployment="{fleet.name}"' in result.stdout, result.stdout
        if '"version":"2.0.0"' in command:  # a roll-out asked for while paused changes nothing
            paused = fleet.wait("paused", lambda s: s.get("phase") == "Paused", 30)
            assert paused.pods_by_version == {V1: 4}
    final = fleet.wait_available(V1, 4)
    assert final.pods_by_version == {V1: 4}


@pytest.mark.parametrize("command", doc_commands())
def test_doc_commands_name_the_example_deployment(command: str) -> None:
    assert DOC_NAME.search(command) or "/metrics" in command, command
