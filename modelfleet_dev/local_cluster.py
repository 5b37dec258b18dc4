"""A whole local cluster as processes: kubesim (with its kubelet), the operator, and kubectl.

Why this exists: the demo and the e2e suite run the system the way a user would: kubesim is a
separate `python -m kubesim serve` process (its own core for the apiserver and the kubelet's
process pods, and a crash there cannot take the demo's screen with it), the operator is the
real `modelfleet operator` command against the kubeconfig, and everything the story shows is
read back with kubectl. Each process gets its own session, so a terminal Ctrl-C reaches only
the demo, which then stops them in order (operator, then kubesim, whose kubelet stops its
process pods); any descendant still alive after that is killed by pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import yaml

from modelfleet_dev.api_poller import DeadlineExceeded, poll
from modelfleet_dev.kubectl import Kubectl
from modelfleet_dev.kubesim_runtime import PLUGIN
from modelfleet_dev.ports import free_loopback_port

ROOT = Path(__file__).resolve().parents[1]
CRD_PATH = ROOT / "crds" / "modeldeployment.yaml"


class ClusterStartError(RuntimeError):
    """A process of the local cluster did not come up; the message points at its log."""


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) follows the command name, which is parenthesised and may hold spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """Pids of every process below `pid` (Linux /proc), children first."""
    tree = _children_by_parent()
    found: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(tree.get(child, []))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


@dataclass
class ManagedProcess:
    """A child process in its own session, with its output in a log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            list(self.argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL; then kill leftover descendants."""
        if self.popen is None:
            return
        below = descendants(self.popen.pid)
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        for pid in below:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None


def _wait_until(
    what: str, check: Callable[[], bool], timeout: float, process: ManagedProcess
) -> None:
    """Poll `check` (api_poller) while `process` runs; a process that exits, or a deadline
    passed, is a ClusterStartError naming the process's log."""

    def sample() -> bool:
        if not process.running():
            raise ClusterStartError(
                f"{process.name} exited while waiting for {what}; log {process.log_path}:\n"
                + process.log_tail()
            )
        return check()

    try:
        poll(what, sample, bool, timeout=timeout, interval=0.1)
    except DeadlineExceeded:
        raise ClusterStartError(
            f"{what} not reached after {timeout:.0f}s; log {process.log_path}:\n"
            + process.log_tail()
        ) from None


def kubeconfig_server(kubeconfig: Path) -> str:
    config = yaml.safe_load(kubeconfig.read_text())
    current = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    cluster_name = contexts.get(current, {}).get("cluster") if current else None
    for cluster in config.get("clusters") or []:
        if cluster_name is None or cluster["name"] == cluster_name:
            return str(cluster["cluster"]["server"])
    raise ClusterStartError(f"kubeconfig {kubeconfig} names no cluster server")


def kubelet_scratch_dir(work_dir: Path) -> Path:
    """Where kubesim's kubelet puts its process pods' host directories (through TMPDIR).

    Workaround for a kubesim bug: the kubelet maps container mount paths to host paths by
    substring replacement, one mount after another, so when the host directory contains a
    mounted path (the pod mounts /tmp and the default scratch dir is /tmp/kubesim-kubelet-*),
    the already-mapped annotations path is mapped a second time and the runtime is pointed
    at a file that does not exist. A scratch dir whose path contains no "/tmp" avoids it.
    """
    candidates = [work_dir / "kubelet", Path.home() / ".cache" / "modelfleet" / "kubelet"]
    for candidate in candidates:
        if "/tmp" not in str(candidate.resolve()):
            candidate.mkdir(parents=True, exist_ok=True)
            return candidate
    raise ClusterStartError(
        f"no kubelet scratch dir without '/tmp' in its path (tried {candidates}); "
        "pass a --work-dir outside /tmp"
    )


def _kubelet_env(work_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TMPDIR"] = str(kubelet_scratch_dir(work_dir))
    return env


def start_kubesim(
    work_dir: Path,
    *,
    run_selector: str = "",
    kubelet: str = "probe_time_scale=1",
    annotation_refresh_delay: float | None = None,
) -> ManagedProcess:
    """`python -m kubesim serve` with its kubelet running well pods on the simulated model
    runtime (the rest on real processes, `run_selector`); returns once the API answers /readyz.

    Probes run at their real periods (probe_time_scale=1): kubesim's default scale of 0.1
    turns the runtime's liveness budget (3 failures x 10 s) into 3 s, and a model-runtime
    still importing onnxruntime on a busy machine is killed before it ever listens."""
    kubeconfig = work_dir / "kubeconfig"
    kubeconfig.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "kubesim",
        "serve",
        "--kubeconfig",
        str(kubeconfig),
        "--kubelet",
        kubelet,
        "--container-runtime",
        PLUGIN,
        "--log-level",
        "WARNING",
    ]
    if run_selector:
        argv += ["--run-selector", run_selector]
    if annotation_refresh_delay is not None:
        argv += ["--annotation-refresh-delay", str(annotation_refresh_delay)]
    process = ManagedProcess("kubesim", argv, work_dir / "kubesim.log", env=_kubelet_env(work_dir))
    process.start()

    def ready() -> bool:
        if not kubeconfig.exists():
            return False
        try:
            return (
                httpx.get(kubeconfig_server(kubeconfig) + "/readyz", timeout=2).status_code == 200
            )
        except (httpx.HTTPError, ClusterStartError, yaml.YAMLError, KeyError):
            return False

    try:
        _wait_until("kubesim /readyz", ready, 30, process)
    except BaseException:
        process.stop()
        raise
    return process


def start_operator(
    kubeconfig: Path,
    work_dir: Path,
    *,
    namespace: str = "default",
    extra_args: Sequence[str] = (),
) -> tuple[ManagedProcess, int]:
    """`modelfleet operator` against `kubeconfig`; returns it and its metrics port once live.

    `extra_args` go to the command line as they are, e.g. ("--qps", "200")."""
    metrics_port = free_loopback_port()
    liveness_port = free_loopback_port()
    argv = [
        sys.executable,
        "-m",
        "modelfleet.app.cli",
        "operator",
        "--kubeconfig",
        str(kubeconfig),
        "--namespace",
        namespace,
        "--standalone",
        "--metrics-port",
        str(metrics_port),
        "--liveness",
        f"http://127.0.0.1:{liveness_port}/healthz",
        *extra_args,
    ]
    process = ManagedProcess("operator", argv, work_dir / "operator.log")
    process.start()

    def live() -> bool:
        try:
            url = f"http://127.0.0.1:{liveness_port}/healthz"
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        _wait_until("operator liveness", live, 60, process)
    except BaseException:
        process.stop()
        raise
    return process, metrics_port


@dataclass
class LocalCluster:
    """kubesim + the operator, started together; `stop` leaves nothing running."""

    kubeconfig: Path
    kubesim: ManagedProcess
    operator: ManagedProcess | None
    metrics_port: int | None
    kubectl: Kubectl
    crd_applied: str = ""

    @property
    def url(self) -> str:
        return kubeconfig_server(self.kubeconfig)

    def processes(self) -> list[ManagedProcess]:
        return [p for p in (self.operator, self.kubesim) if p is not None]

    def stop(self) -> None:
        for process in self.processes():
            process.stop()


@contextmanager
def running_local_cluster(
    work_dir: Path,
    *,
    run_selector: str = "",
    namespace: str = "default",
    with_operator: bool = True,
    operator_args: Sequence[str] = (),
) -> Iterator[LocalCluster]:
    """kubesim, the CRD applied with kubectl, and the operator; all stopped on exit."""
    work_dir.mkdir(parents=True, exist_ok=True)
    kubesim = start_kubesim(work_dir, run_selector=run_selector)
    cluster = LocalCluster(
        kubeconfig=work_dir / "kubeconfig",
        kubesim=kubesim,
        operator=None,
        metrics_port=None,
        kubectl=Kubectl(work_dir / "kubeconfig", work_dir / "kubectl-cache", namespace),
    )
    try:
        cluster.crd_applied = cluster.kubectl.apply(CRD_PATH)
        cluster.kubectl.run(
            "wait", "--for=condition=Established", "crd/modeldeployments.modelfleet.dev"
        )
        if with_operator:
            cluster.operator, cluster.metrics_port = start_operator(
                cluster.kubeconfig, work_dir, namespace=namespace, extra_args=operator_args
            )
        yield cluster
    finally:
        cluster.stop()
