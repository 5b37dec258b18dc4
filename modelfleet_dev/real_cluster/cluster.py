"""Start and stop a real control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok with fake Nodes, and the runtime responder in the pod network.

Why this exists: everything the operator does was shown on kubesim; this is the same operator,
kubectl and Helm against the real apiserver (RBAC, admission, APF, CEL, server-side apply, the
controller manager's garbage collector, a scheduler) with pods played by kwok. Clients on the
host reach it only through the kubeconfig it writes. Start-up order follows the dependencies
(etcd, apiserver, then its clients); teardown is the reverse and runs on every exit path, so a
failed test or Ctrl-C leaves no process, namespace, veth or route behind.

A component that dies while starting, or never gets healthy, stops the start with one
``ComponentError`` naming it and its log file, after everything already started was stopped.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import enum
import math
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypedDict

import httpx
import yaml

from modelfleet_dev.real_cluster.build import (
    CLUSTER_DIR,
    KUBERNETES_VERSION,
    Component,
    binary_path,
    missing_binaries,
)
from modelfleet_dev.real_cluster.netns import (
    HOST_LINK_IP,
    POD_LINK_IP,
    PodNetwork,
)
from modelfleet_dev.real_cluster.pki import ClientCert, Pki, make_pki

__all__ = [
    "ClusterError",
    "ClusterOptions",
    "ComponentError",
    "KubeconfigAuth",
    "Process",
    "RealCluster",
    "client_tls",
    "running_real_cluster",
]

STAGES_FILE: Final = CLUSTER_DIR / "kwok" / "stages.yaml"
KWOK_CONFIG_FILE: Final = CLUSTER_DIR / "kwok" / "kwok.yaml"
SERVICE_CIDR: Final = "10.96.0.0/16"
#: The annotation kwok selects its Nodes by (kwok's own convention).
KWOK_NODE_ANNOTATION: Final = "kwok.x-k8s.io/node"
#: Pods a kwok Node takes (cluster/kwok/stages.yaml's capacity): fewer than the 254 addresses
#: of its /24, as a kubelet's max-pods is (past them its pods would share addresses).
PODS_PER_NODE: Final = 250
MAX_NODES: Final = 253  # 10.244.1.0/24 .. 10.244.253.0/24
_PR_SET_PDEATHSIG: Final = 1


class Role(enum.StrEnum):
    """A process the harness runs (logs/<value>.log)."""

    ETCD = "etcd"
    KUBE_APISERVER = "kube-apiserver"
    KUBE_CONTROLLER_MANAGER = "kube-controller-manager"
    KUBE_SCHEDULER = "kube-scheduler"
    KWOK = "kwok"
    RESPONDER = "responder"


class KubeconfigAuth(enum.StrEnum):
    """How the user-facing kubeconfig authenticates (both files are always written)."""

    #: Client certificate (admin in system:masters), as kubeadm/kind write it.
    CERT = "cert"
    #: A bearer token (the apiserver's --token-auth-file), for clients that cannot present a
    #: certificate. Same user and groups as the certificate.
    TOKEN = "token"


class ClusterError(RuntimeError):
    """The cluster could not start (not built, not root, a conflicting pod network...)."""


class ComponentError(ClusterError):
    """One component failed to start; names it and its log file."""

    def __init__(self, role: Role, log_path: Path, what: str) -> None:
        tail = ""
        with contextlib.suppress(OSError):
            lines = log_path.read_text(errors="replace").strip().splitlines()
            tail = "\n".join(f"    {line}" for line in lines[-8:])
        super().__init__(
            f"{role.value} {what}; log: {log_path}" + (f"\n  last lines:\n{tail}" if tail else "")
        )
        self.role = role
        self.log_path = log_path


def nodes_for(pods: int, *, at_least: int = 2) -> int:
    """kwok Nodes enough for `pods` at once (a roll-out's terminating pods included)."""
    return max(at_least, math.ceil(pods / PODS_PER_NODE))


def _say(line: str) -> None:
    """Progress on stdout, flushed: a supervisor reading a pipe sees each step when it happens."""
    print(line, flush=True)


@dataclass
class ClusterOptions:
    """What to start. Ports default to free ones; set one to force it (tests of a busy port)."""

    nodes: int = 2
    work_dir: Path | None = None
    apiserver_port: int | None = None
    etcd_port: int | None = None
    start_timeout: float = 120.0
    #: kube-controller-manager's client limits; its defaults (20/30) make large fleets crawl
    #: behind the operator, which is itself a real-cluster finding, so they stay overridable.
    kcm_qps: int = 20
    kcm_burst: int = 30
    #: kube-scheduler's client limits; None keeps its defaults (50/100). A benchmark comparing
    #: controllers at a client rate raises them so binding is not what it measures.
    scheduler_qps: int | None = None
    scheduler_burst: int | None = None
    #: Seconds the responder waits before a bound Pending pod starts (the kubelet's start): a
    #: container's start-up time, the same for every pod whoever created it. 0: at once.
    pod_start_delay_s: float = 0.0
    keep_work_dir: bool = False
    #: kube-apiserver's /debug/pprof (for a benchmark's CPU profile); off, as on most clusters.
    apiserver_profiling: bool = False
    #: How long a start waits for another real cluster on this machine to stop (one at a time).
    wait_for_machine_seconds: float = 1800.0
    auth: KubeconfigAuth = KubeconfigAuth.CERT
    progress: Callable[[str], None] = _say


class ApiserverEndpoints(TypedDict):
    server: str
    ca: str
    cert: str
    key: str


def client_tls(ca: Path | str, cert: Path | str, key: Path | str) -> ssl.SSLContext:
    """TLS for a client of the apiserver: trust our CA, present a client certificate.

    (httpx 0.28 ignores ``cert=`` next to a ``verify=`` path; the apiserver then sees
    system:anonymous. A context carries both.)
    """
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    return context


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client_limits(qps: int | None, burst: int | None) -> list[str]:
    """--kube-api-qps/--kube-api-burst for the ones set (a component's defaults otherwise)."""
    flags = [] if qps is None else [f"--kube-api-qps={qps}"]
    return flags + ([] if burst is None else [f"--kube-api-burst={burst}"])


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills it if the harness dies (even SIGKILL)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Process:
    role: Role
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        log.write((" ".join(self.argv) + "\n").encode())
        log.flush()
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the harness, which stops them in order
                preexec_fn=_die_with_parent,
                env=env,
            )
        except OSError as exc:
            raise ComponentError(self.role, self.log_path, f"could not be started: {exc}") from None
        finally:
            log.close()

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise ComponentError(
                self.role, self.log_path, f"exited at start with code {self.popen.returncode}"
            )

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace``; then the whole session, for any child."""
        popen = self.popen
        if popen is None:
            return
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    popen.kill()
                popen.wait(grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)


def _kubeconfig(
    server: str,
    ca: Path,
    client: ClientCert,
    user: str,
    *,
    embed: bool,
    token: str | None = None,
) -> dict[str, Any]:
    def data(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    cluster: dict[str, Any] = {"server": server}
    auth: dict[str, Any]
    if embed:
        cluster["certificate-authority-data"] = data(ca)
        auth = {
            "client-certificate-data": data(client.cert),
            "client-key-data": data(client.key),
        }
    else:
        cluster["certificate-authority"] = str(ca)
        auth = {"client-certificate": str(client.cert), "client-key": str(client.key)}
    if token is not None:
        auth = {"token": token}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "modelfleet-real", "cluster": cluster}],
        "users": [{"name": user, "user": auth}],
        "contexts": [
            {
                "name": "modelfleet-real",
                "context": {"cluster": "modelfleet-real", "user": user, "namespace": "default"},
            }
        ],
        "current-context": "modelfleet-real",
    }


def _write_yaml(path: Path, obj: Any) -> Path:
    path.write_text(yaml.safe_dump(obj, sort_keys=False))
    path.chmod(0o600)
    return path


@dataclass
class RealCluster:
    """A started cluster: its kubeconfig, kubectl, and the processes to stop."""

    options: ClusterOptions
    work_dir: Path
    network: PodNetwork
    processes: list[Process] = field(default_factory=list)
    pki: Pki | None = None
    apiserver_port: int = 0
    kubeconfig: Path = Path()
    admin_token: str = ""
    etcd_url: str = ""
    component_kubeconfigs: dict[Role, Path] = field(default_factory=dict)
    startup_seconds: float = 0.0
    _owns_work_dir: bool = False

    @property
    def logs(self) -> Path:
        return self.work_dir / "logs"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubectl_path(self) -> Path:
        return binary_path(Component.KUBECTL)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        """Run the built kubectl (same version as the server) against this cluster."""
        result = subprocess.run(
            [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            input=input,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def api(self) -> httpx.Client:
        """An admin client for the apiserver (the harness's own calls: nodes, health)."""
        assert self.pki is not None
        return httpx.Client(
            base_url=self.server,
            verify=client_tls(self.pki.ca_cert, self.pki.admin.cert, self.pki.admin.key),
            timeout=10.0,
        )

    # -- start ------------------------------------------------------------------------------------

    def _spawn(self, role: Role, argv: list[str], env: dict[str, str] | None = None) -> Process:
        process = Process(role, argv, self.logs / f"{role.value}.log")
        self.processes.append(process)
        process.start(env)
        return process

    def _await(self, process: Process, what: str, ready: Callable[[], bool]) -> None:
        """Poll ``ready`` until the deadline, failing at once if any started process died."""
        deadline = time.monotonic() + self.options.start_timeout
        delay = 0.05
        while True:
            for p in self.processes:
                p.check_alive()
            with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise ComponentError(
                    process.role,
                    process.log_path,
                    f"was not {what} within {self.options.start_timeout:.0f} s",
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def start(self) -> None:
        started = time.monotonic()
        say = self.options.progress
        missing = missing_binaries()
        if missing:
            raise ClusterError(
                "not built: "
                + ", ".join(c.value for c in missing)
                + f" (run `{sys.executable} -m modelfleet_dev.real_cluster build`)"
            )
        if os.geteuid() != 0:
            raise ClusterError("the real cluster needs root (network namespace, veth, route)")
        self.logs.mkdir(parents=True, exist_ok=True)
        pki = make_pki(self.work_dir / "pki", [HOST_LINK_IP])
        self.pki = pki
        say(f"[cluster] pod network: netns {self.network.netns}, 10.244.0.0/16")
        self.network.create(self.options.wait_for_machine_seconds, say)
        self._start_etcd()
        self._start_apiserver()
        self._write_kubeconfigs()
        self._start_controllers()
        self._create_nodes()
        self._start_kwok()
        self._start_responder()
        self._await_default_service_account()
        self.startup_seconds = time.monotonic() - started
        say(
            f"[cluster] {KUBERNETES_VERSION} up in {self.startup_seconds:.1f} s: {self.server}, "
            f"{self.options.nodes} kwok nodes; kubeconfig {self.kubeconfig}; logs {self.logs}"
        )

    def _start_etcd(self) -> None:
        client = self.options.etcd_port or _free_port()
        peer = _free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        self.options.progress(f"[cluster] etcd on {self.etcd_url}")
        etcd = self._spawn(
            Role.ETCD,
            [
                str(binary_path(Component.ETCD)),
                "--name=node0",
                f"--data-dir={self.work_dir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=node0=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",  # a throwaway cluster: durability is not the point
                "--auto-compaction-retention=1",
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            answer = httpx.get(f"{self.etcd_url}/health", timeout=2).json()
            return bool(answer.get("health") == "true")

        self._await(etcd, "healthy", healthy)

    def _start_apiserver(self) -> None:
        assert self.pki is not None
        pki = self.pki
        self.apiserver_port = self.options.apiserver_port or _free_port()
        self.admin_token = secrets.token_hex(16)
        tokens = self.work_dir / "pki" / "tokens.csv"
        tokens.write_text(f'{self.admin_token},kubernetes-admin,admin-token,"system:masters"\n')
        tokens.chmod(0o600)
        self.options.progress(f"[cluster] kube-apiserver on {self.server}")
        apiserver = self._spawn(
            Role.KUBE_APISERVER,
            [
                str(binary_path(Component.KUBE_APISERVER)),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                # No default route here, so it cannot pick one; the host end of the pod
                # network's veth is ours and stable (the kubernetes Service's endpoint).
                f"--advertise-address={HOST_LINK_IP}",
                f"--tls-cert-file={pki.serving.cert}",
                f"--tls-private-key-file={pki.serving.key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--token-auth-file={tokens}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # As a real cluster: RBAC (and Node) authorization, the default admission chain
                # plus NodeRestriction, API Priority and Fairness on.
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--enable-priority-and-fairness=true",
                "--allow-privileged=true",
                f"--kubelet-client-certificate={pki.admin.cert}",
                f"--kubelet-client-key={pki.admin.key}",
                f"--profiling={str(self.options.apiserver_profiling).lower()}",
                "--v=1",
            ],
        )

        def ready() -> bool:
            with self.api() as api:
                return api.get("/readyz").status_code == 200

        self._await(apiserver, "ready (/readyz)", ready)

    def _write_kubeconfigs(self) -> None:
        assert self.pki is not None
        pki = self.pki
        kdir = self.work_dir / "kubeconfig"
        kdir.mkdir(exist_ok=True)
        self.component_kubeconfigs = {
            Role.KUBE_CONTROLLER_MANAGER: _write_yaml(
                kdir / "controller-manager.yaml",
                _kubeconfig(
                    self.server,
                    pki.ca_cert,
                    pki.controller_manager,
                    "system:kube-controller-manager",
                    embed=False,
                ),
            ),
            Role.KUBE_SCHEDULER: _write_yaml(
                kdir / "scheduler.yaml",
                _kubeconfig(
                    self.server, pki.ca_cert, pki.scheduler, "system:kube-scheduler", embed=False
                ),
            ),
            Role.KWOK: _write_yaml(
                kdir / "kwok.yaml",
                _kubeconfig(self.server, pki.ca_cert, pki.admin, "kubernetes-admin", embed=False),
            ),
        }
        # The user-facing ones embed their certificates: they can be copied anywhere.
        cert_config = _write_yaml(
            kdir / "admin.yaml",
            _kubeconfig(self.server, pki.ca_cert, pki.admin, "kubernetes-admin", embed=True),
        )
        token_config = _write_yaml(
            kdir / "admin-token.yaml",
            _kubeconfig(
                self.server,
                pki.ca_cert,
                pki.admin,
                "kubernetes-admin",
                embed=True,
                token=self.admin_token,
            ),
        )
        self.kubeconfig = token_config if self.options.auth is KubeconfigAuth.TOKEN else cert_config

    def _start_controllers(self) -> None:
        assert self.pki is not None
        pki = self.pki
        kcm_port, sched_port = _free_port(), _free_port()
        kcm_conf = str(self.component_kubeconfigs[Role.KUBE_CONTROLLER_MANAGER])
        sched_conf = str(self.component_kubeconfigs[Role.KUBE_SCHEDULER])
        self.options.progress("[cluster] kube-controller-manager and kube-scheduler")
        kcm = self._spawn(
            Role.KUBE_CONTROLLER_MANAGER,
            [
                str(binary_path(Component.KUBE_CONTROLLER_MANAGER)),
                f"--kubeconfig={kcm_conf}",
                f"--authentication-kubeconfig={kcm_conf}",
                f"--authorization-kubeconfig={kcm_conf}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                # Serving cert from our CA (SAN 127.0.0.1), so /healthz is checked with TLS.
                f"--tls-cert-file={pki.serving.cert}",
                f"--tls-private-key-file={pki.serving.key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                # Each controller under its own service account, as kubeadm runs it: RBAC
                # decides for the garbage collector as it would in production.
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allocate-node-cidrs=false",  # the harness gives each Node its podCIDR
                "--leader-elect=false",
                f"--kube-api-qps={self.options.kcm_qps}",
                f"--kube-api-burst={self.options.kcm_burst}",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
                "--v=1",
            ],
        )
        scheduler = self._spawn(
            Role.KUBE_SCHEDULER,
            [
                str(binary_path(Component.KUBE_SCHEDULER)),
                f"--kubeconfig={sched_conf}",
                f"--authentication-kubeconfig={sched_conf}",
                f"--authorization-kubeconfig={sched_conf}",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                f"--tls-cert-file={pki.serving.cert}",
                f"--tls-private-key-file={pki.serving.key}",
                "--leader-elect=false",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
                "--v=1",
                *_client_limits(self.options.scheduler_qps, self.options.scheduler_burst),
            ],
        )
        trust = ssl.create_default_context(cafile=str(pki.ca_cert))
        for process, port in ((kcm, kcm_port), (scheduler, sched_port)):

            def healthy(port: int = port) -> bool:
                url = f"https://127.0.0.1:{port}/healthz"
                return httpx.get(url, verify=trust, timeout=2).text == "ok"

            self._await(process, "healthy (/healthz)", healthy)

    def node_names(self) -> list[str]:
        return [f"kwok-node-{i}" for i in range(self.options.nodes)]

    def _create_nodes(self) -> None:
        """kwok plays Nodes but never creates them: each gets a /24 of the pod network."""
        if not 1 <= self.options.nodes <= MAX_NODES:
            raise ClusterError(
                f"nodes: {self.options.nodes} kwok Nodes asked, 1 to {MAX_NODES} fit the pod "
                "network (a /24 each)"
            )
        with self.api() as api:
            for i, name in enumerate(self.node_names()):
                cidr = f"10.244.{i + 1}.0/24"  # 10.244.0.0/24 holds the namespace's own address
                node = {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                        },
                    },
                    "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
                }
                resp = api.post("/api/v1/nodes", json=node)
                if resp.status_code not in (201, 409):
                    raise ClusterError(f"creating node {name}: HTTP {resp.status_code} {resp.text}")

    def _start_kwok(self) -> None:
        assert self.pki is not None
        port = _free_port()
        self.options.progress(f"[cluster] kwok for {self.options.nodes} nodes")
        kwok = self._spawn(
            Role.KWOK,
            [
                str(binary_path(Component.KWOK)),
                f"--kubeconfig={self.component_kubeconfigs[Role.KWOK]}",
                f"--config={KWOK_CONFIG_FILE}",
                f"--config={STAGES_FILE}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                f"--node-ip={POD_LINK_IP}",
                f"--node-port={port}",
                f"--server-address=127.0.0.1:{port}",
                f"--tls-cert-file={self.pki.serving.cert}",
                f"--tls-private-key-file={self.pki.serving.key}",
                "--node-lease-duration-seconds=40",
            ],
        )
        names = set(self.node_names())

        def nodes_ready() -> bool:
            with self.api() as api:
                items = api.get("/api/v1/nodes").json()["items"]
            ready = {
                n["metadata"]["name"]
                for n in items
                if any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (n.get("status") or {}).get("conditions") or []
                )
            }
            return names <= ready

        self._await(kwok, "managing Ready nodes", nodes_ready)

    def _start_responder(self) -> None:
        assert self.pki is not None
        ready_file = self.work_dir / "responder.ready"
        argv = [
            sys.executable,
            "-m",
            "modelfleet_dev.real_cluster.responder",
            f"--netns={self.network.netns}",
            f"--server={self.server}",
            f"--ca={self.pki.ca_cert}",
            f"--cert={self.pki.admin.cert}",
            f"--key={self.pki.admin.key}",
            f"--ready-file={ready_file}",
            f"--pods-dir={self.work_dir / 'pods'}",
            # Inside the namespace, 127.0.0.1:<apiserver port> is the apiserver (its serving
            # certificate names 127.0.0.1), for processes there that need it.
            f"--forward-port={self.apiserver_port}",
            # The responder starts the bound pods of kwok's Nodes (no kwok pod-start Stage).
            f"--pod-start-delay={self.options.pod_start_delay_s}",
        ]
        self.options.progress(
            f"[cluster] runtime responder in {self.network.netns} (pod IPs, host-process pods)"
        )
        responder = self._spawn(Role.RESPONDER, argv)
        self._await(responder, "watching pods", ready_file.exists)

    def _await_default_service_account(self) -> None:
        """Pods are refused until the namespace's ``default`` ServiceAccount exists."""
        kcm = next(p for p in self.processes if p.role is Role.KUBE_CONTROLLER_MANAGER)

        def exists() -> bool:
            with self.api() as api:
                path = "/api/v1/namespaces/default/serviceaccounts/default"
                return api.get(path).status_code == 200

        self._await(kcm, "creating the default ServiceAccount", exists)

    # -- stop -------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Reverse order; always removes the pod network; keeps logs only when asked."""
        self.options.progress(f"[cluster] stopping {len(self.processes)} processes")
        for process in reversed(self.processes):
            process.stop()
        self.network.destroy()
        if self._owns_work_dir and not self.options.keep_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]


@contextlib.contextmanager
def running_real_cluster(options: ClusterOptions | None = None) -> Iterator[RealCluster]:
    """A started cluster, stopped on every exit (exception, Ctrl-C, SIGTERM turned into one).

    On a failed start the work dir (with the logs the error names) is kept.
    """
    opts = options or ClusterOptions()
    owns = opts.work_dir is None
    work = opts.work_dir or Path(tempfile.mkdtemp(prefix="modelfleet-real-cluster-"))
    cluster = RealCluster(opts, work, PodNetwork.for_this_process(), _owns_work_dir=owns)
    try:
        cluster.start()
    except BaseException:
        cluster.options.keep_work_dir = True
        cluster.stop()
        raise
    try:
        yield cluster
    finally:
        cluster.stop()
