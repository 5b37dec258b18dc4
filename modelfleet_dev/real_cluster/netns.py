"""The pod network: a network namespace where every 10.244.0.0/16 address is local.

Why this exists: kube-apiserver refuses ``pods/proxy`` to loopback pod IPs (and Endpoints reject
them), so simulated pods need routable, non-loopback IPs that still never leave the machine.
The harness makes a namespace of its own, puts 10.244.0.1/16 on its ``lo`` (which makes the
whole /16 local there: any pod IP can be bound, by the responder or by a pod's own process), and routes 10.244.0.0/16 from the host into it through a veth pair. Nothing is
ever sent to an address outside that namespace and the veth pair.

Names carry the owning process id (``mf-<pid>``), so a harness that was SIGKILLed leaves
resources that the next start (or ``cleanup``) recognises as stale and removes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import fcntl
import ipaddress
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "HOST_LINK_IP",
    "NETNS_DIR",
    "POD_CIDR",
    "POD_LINK_IP",
    "NetnsBinder",
    "NetworkError",
    "PodNetwork",
    "cleanup_stale",
    "listen_in_netns",
    "owned_resources",
]

POD_CIDR: Final = "10.244.0.0/16"
#: The namespace's own address on lo; pods never get it (node podCIDRs start at 10.244.1.0/24).
POD_GATEWAY: Final = "10.244.0.1"
#: The veth link between the host and the namespace (a /30 of its own, outside the pod range).
HOST_LINK_IP: Final = "10.243.255.1"
POD_LINK_IP: Final = "10.243.255.2"
_LINK_PREFIX: Final = 30
_NAME_RE: Final = re.compile(r"^mf-(\d+)$")
NETNS_DIR: Final = Path("/var/run/netns")
_CLONE_NEWNET: Final = 0x40000000
#: One real cluster per network namespace (the pod network's route is fixed): its owner holds a
#: flock on LOCK_DIR/modelfleet-real-cluster.<netns inode>.lock for the cluster's life; the
#: kernel drops it when the owner exits, SIGKILL included. A harness in a private network
#: namespace of its own (bench/operator_scale_real.py) has its own lock and route.
LOCK_DIR: Final = Path("/var/run")
_LOCK_POLL_SECONDS: Final = 0.5


class NetworkError(RuntimeError):
    """The pod network could not be made (not root, no `ip`, a conflicting route...)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise NetworkError("the pod network needs iproute2's `ip` command") from None
    if check and result.returncode != 0:
        raise NetworkError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owned_resources() -> tuple[list[str], list[str], list[str]]:
    """(netns names, host veth names, routes) that look like the harness's, of any owner."""
    netns = [
        line.split()[0]
        for line in _ip("netns", "list", check=False).stdout.splitlines()
        if line.strip() and _NAME_RE.match(line.split()[0])
    ]
    links = re.findall(r"^\d+: (mf\d+h)[@:]", _ip("-o", "link", "show").stdout, re.M)
    routes = [
        line.strip() for line in _ip("route", "show", POD_CIDR).stdout.splitlines() if line.strip()
    ]
    return netns, links, routes


def cleanup_stale(*, include_live: bool = False) -> list[str]:
    """Remove pod networks whose owning process is gone (all of them with include_live)."""
    removed: list[str] = []
    netns, links, _ = owned_resources()
    for name in netns:
        match = _NAME_RE.match(name)
        assert match is not None
        if include_live or not _pid_alive(int(match.group(1))):
            _ip("netns", "delete", name, check=False)
            removed.append(f"netns {name}")
    for link in links:
        pid = int(link[2:-1])
        if include_live or not _pid_alive(pid):
            _ip("link", "delete", link, check=False)
            removed.append(f"link {link}")
    return removed


@dataclass
class PodNetwork:
    """One namespace + veth pair + host route; create() then destroy() (idempotent)."""

    owner_pid: int
    lock_fd: int | None = None

    @property
    def netns(self) -> str:
        return f"mf-{self.owner_pid}"

    @property
    def host_veth(self) -> str:
        return f"mf{self.owner_pid}h"

    @property
    def pod_veth(self) -> str:
        return f"mf{self.owner_pid}p"

    @classmethod
    def for_this_process(cls) -> PodNetwork:
        return cls(os.getpid())

    def _lock_machine(self, wait_seconds: float, say: Callable[[str], None]) -> None:
        """Take the machine's one-cluster lock, waiting up to ``wait_seconds`` for its holder."""
        lock = LOCK_DIR / f"modelfleet-real-cluster.{os.stat('/proc/self/ns/net').st_ino}.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_seconds
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise NetworkError(
                        f"another real cluster (pid {holder}) has held {lock} for "
                        f"{wait_seconds:.0f} s: one per network namespace (the pod route is fixed)"
                    ) from None
                if not announced:
                    say(f"[cluster] waiting for the real cluster of pid {holder} to stop")
                    announced = True
                time.sleep(_LOCK_POLL_SECONDS)  # flock has no timeout; the holder may be busy
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self.owner_pid}\n".encode(), 0)
        self.lock_fd = fd

    def create(self, wait_seconds: float = 0.0, say: Callable[[str], None] = print) -> None:
        if os.geteuid() != 0:
            raise NetworkError("the pod network (ip netns add) needs root")
        self._lock_machine(wait_seconds, say)
        cleanup_stale()
        _, _, routes = owned_resources()
        if routes:
            raise NetworkError(
                f"a route to {POD_CIDR} already exists ({routes[0]}): another real cluster is "
                "running on this machine (stop it, or `python -m modelfleet_dev.real_cluster "
                "cleanup`)"
            )
        try:
            ns = ["ip", "netns", "exec", self.netns]
            _ip("netns", "add", self.netns)
            self._run(*ns, "ip", "link", "set", "lo", "up")
            self._run(*ns, "ip", "addr", "add", f"{POD_GATEWAY}/16", "dev", "lo")
            _ip("link", "add", self.host_veth, "type", "veth", "peer", "name", self.pod_veth)
            _ip("link", "set", self.pod_veth, "netns", self.netns)
            _ip("addr", "add", f"{HOST_LINK_IP}/{_LINK_PREFIX}", "dev", self.host_veth)
            _ip("link", "set", self.host_veth, "up")
            self._run(
                *ns, "ip", "addr", "add", f"{POD_LINK_IP}/{_LINK_PREFIX}", "dev", self.pod_veth
            )
            self._run(*ns, "ip", "link", "set", self.pod_veth, "up")
            _ip("route", "add", POD_CIDR, "via", POD_LINK_IP, "dev", self.host_veth)
        except BaseException:
            self.destroy()
            raise

    @staticmethod
    def _run(*argv: str) -> None:
        result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise NetworkError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")

    def destroy(self) -> None:
        """Deleting the host end removes its peer and the route; then the namespace goes."""
        _ip("route", "delete", POD_CIDR, "dev", self.host_veth, check=False)
        _ip("link", "delete", self.host_veth, check=False)
        _ip("netns", "delete", self.netns, check=False)
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # releases the machine lock
            self.lock_fd = None

    def exists(self) -> bool:
        netns, links, routes = owned_resources()
        return self.netns in netns or self.host_veth in links or bool(routes)


def _setns(path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetworkError(f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _bind_listening(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def listen_in_netns(netns: str, port: int, host: str = "0.0.0.0") -> socket.socket:
    """A listening TCP socket inside ``netns``, for a process that stays in the host's.

    setns() moves only the calling thread, so a short-lived thread enters the namespace, binds,
    and exits; the socket keeps its namespace. The caller's outbound traffic (the model store on
    the host's loopback, the apiserver) stays on the host.
    """
    result: list[socket.socket] = []
    errors: list[BaseException] = []

    def enter_and_bind() -> None:
        try:
            _setns(NETNS_DIR / netns)
            result.append(_bind_listening(host, port))
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=enter_and_bind, name=f"netns-bind-{port}")
    thread.start()
    thread.join()
    if errors:
        raise NetworkError(f"cannot listen on {host}:{port} in netns {netns}: {errors[0]}")
    return result[0]


class NetnsBinder:
    """Listening sockets inside ``netns`` for a process that stays in the host's, made by one
    thread that enters the namespace once (``listen_in_netns`` starts a thread per socket and
    its caller waits for it: ~0.6 ms each; a responder binds one per pod)."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        # One worker: only it calls _bind, so `_entered` needs no lock.
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"netns-bind-{netns}"
        )
        self._entered = False

    def _bind(self, host: str, port: int) -> socket.socket:
        if not self._entered:
            try:
                _setns(NETNS_DIR / self.netns)  # this thread only, for good
            except OSError as exc:
                raise NetworkError(f"cannot enter netns {self.netns}: {exc}") from None
            self._entered = True
        try:
            return _bind_listening(host, port)
        except OSError as exc:
            raise NetworkError(
                f"cannot listen on {host}:{port} in netns {self.netns}: {exc}"
            ) from None

    async def listen(self, host: str, port: int) -> socket.socket:
        """A non-blocking listening socket on host:port in the namespace; NetworkError if the
        namespace cannot be entered or the address bound."""
        try:
            made = self._thread.submit(self._bind, host, port)
        except RuntimeError as exc:  # closed
            raise NetworkError(f"cannot listen in netns {self.netns}: {exc}") from None
        return await asyncio.wrap_future(made)

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)


def is_pod_ip(address: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(POD_CIDR)
