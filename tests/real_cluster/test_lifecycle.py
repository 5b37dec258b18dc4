"""The harness starts a cluster and tears everything down on every exit path.

Each test starts its own cluster (not the module fixture), so each checks its own teardown:
no component process, network namespace, veth or route may be left.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from modelfleet_dev.real_cluster import ClusterOptions, ComponentError, netns, running_real_cluster
from modelfleet_dev.real_cluster.cluster import Role
from tests.real_cluster.helpers import (
    assert_clean,
    children_of,
    component_processes,
    leftovers,
    wait_for,
)

pytestmark = pytest.mark.real_cluster


def test_start_and_clean_teardown(tmp_path: Path) -> None:
    assert_clean()
    with running_real_cluster(ClusterOptions(nodes=1, work_dir=tmp_path)) as cluster:
        pids = cluster.pids()
        assert len(pids) == 6  # etcd, apiserver, kcm, scheduler, kwok, responder
        left = leftovers()
        assert cluster.network.netns in left["netns"]
        assert cluster.startup_seconds < 120
        nodes = cluster.kubectl("get", "nodes", "-o", "name").split()
        assert nodes == ["node/kwok-node-0"]
    assert_clean()


def test_teardown_on_exception(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="a failing test"),
        running_real_cluster(ClusterOptions(nodes=1, work_dir=tmp_path)),
    ):
        raise RuntimeError("a failing test")
    assert_clean()


@pytest.mark.parametrize("role", [Role.ETCD, Role.KUBE_APISERVER])
def test_port_in_use_names_component_and_log(tmp_path: Path, role: Role) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        options = ClusterOptions(nodes=1, work_dir=tmp_path, start_timeout=60)
        if role is Role.ETCD:
            options.etcd_port = port
        else:
            options.apiserver_port = port
        with pytest.raises(ComponentError) as caught, running_real_cluster(options):
            pytest.fail("the cluster started on a busy port")
    error = caught.value
    assert error.role is role
    assert error.log_path == tmp_path / "logs" / f"{role.value}.log"
    message = str(error)
    assert role.value in message and str(error.log_path) in message
    assert "address already in use" in error.log_path.read_text()
    assert_clean()


@pytest.mark.parametrize(
    "signals",
    [(signal.SIGTERM,), (signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGTERM)],
    ids=["sigterm", "double-sigterm", "sigint-then-sigterm"],
)
def test_signals_stop_the_foreground_cluster(
    tmp_path: Path, signals: tuple[signal.Signals, ...]
) -> None:
    """The first signal tears down; a second one sent during that teardown does not abort it."""
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelfleet_dev.real_cluster",
            "up",
            "--nodes",
            "1",
            "--kubeconfig-out",
            str(kubeconfig),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: kubeconfig.exists() or proc.poll() is not None, 180, "the kubeconfig")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert len(children_of(proc.pid, component_processes())) == 6
        first, *later = signals
        proc.send_signal(first)
        seen = []
        if later:
            assert proc.stdout is not None
            for line in proc.stdout:  # the second signal lands inside the teardown
                seen.append(line)
                if line.startswith("[cluster] stopping"):
                    break
            for sig in later:
                proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=60)
        out = "".join(seen) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "stopped" in out
    assert out.count("already stopping") == len(signals) - 1, out
    assert_clean()


def test_a_second_cluster_waits_for_the_machine_lock_and_names_its_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One real cluster per network namespace: a second start waits for the first (then says
    whose)."""
    monkeypatch.setattr(netns, "LOCK_DIR", tmp_path)
    first = netns.PodNetwork(os.getpid())
    first._lock_machine(0, print)
    said: list[str] = []
    with pytest.raises(netns.NetworkError, match=f"another real cluster \\(pid {os.getpid()}\\)"):
        netns.PodNetwork(1)._lock_machine(1.0, said.append)
    assert said == [f"[cluster] waiting for the real cluster of pid {os.getpid()} to stop"]
    assert first.lock_fd is not None
    os.close(first.lock_fd)  # the first cluster stops (or dies: the kernel drops the lock)
    second = netns.PodNetwork(1)
    second._lock_machine(0, said.append)
    assert second.lock_fd is not None
    os.close(second.lock_fd)
