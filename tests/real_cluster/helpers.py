"""Small helpers for the real-cluster tests: deadline polling and leftover checks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from modelfleet_dev.real_cluster.build import cache_dir
from modelfleet_dev.real_cluster.netns import owned_resources

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def _in_our_network(pid: int) -> bool:
    """Whether ``pid`` shares this process's network namespace (another harness may run in a
    private one beside us: bench/operator_scale_real.py; its cluster is not ours to count)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    except OSError:
        return False


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def children_of(pid: int, processes: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The processes among ``processes`` that descend from ``pid`` (another cluster's are not)."""
    return [(p, argv) for p, argv in processes if pid in _ancestors(p)]


def _ancestors(pid: int) -> set[int]:
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        pid = _parent(pid)
    return seen


def component_processes() -> list[tuple[int, str]]:
    """Live processes running a binary from the build cache, or the responder (in our network
    namespace)."""
    bin_dir = str(cache_dir() / "bin")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in cmdline if a]
        if not argv:
            continue
        ours = argv[0].startswith(bin_dir) or "modelfleet_dev.real_cluster.responder" in argv
        if ours and _in_our_network(int(entry.name)):
            found.append((int(entry.name), " ".join(argv)[:120]))
    return found


def _owner_elsewhere(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and not _in_our_network(pid)


def leftovers() -> dict[str, list[Any]]:
    """Everything a cluster could leave behind; empty values mean clean."""
    netns, links, routes = owned_resources()
    # A namespace of a live owner in another network namespace belongs to that harness.
    netns = [n for n in netns if not _owner_elsewhere(int(n.removeprefix("mf-")))]
    return {
        "processes": component_processes(),
        "netns": netns,
        "links": links,
        "routes": routes,
    }


def assert_clean() -> None:
    left = leftovers()
    assert not any(left.values()), f"left behind: {left}"
