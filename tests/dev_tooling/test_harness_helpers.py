"""The dev harnesses' small pieces: which kubectl runs, and polling with a deadline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelfleet_dev import kubectl
from modelfleet_dev.api_poller import DeadlineExceeded, poll, wait_until
from modelfleet_dev.ports import free_loopback_port


def fake_kubectl(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    binary = directory / "kubectl"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    return binary


def test_kubectl_comes_from_the_environment_then_the_pinned_build_never_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = fake_kubectl(tmp_path / "path")
    pinned = fake_kubectl(tmp_path / "pinned")
    chosen = fake_kubectl(tmp_path / "chosen")
    monkeypatch.setattr(kubectl, "PINNED_KUBECTL", tmp_path / "absent" / "kubectl")
    environ = {"PATH": str(on_path.parent)}
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert kubectl.kubectl_binary(environ) is None  # the machine's own kubectl is not used
    monkeypatch.setattr(kubectl, "PINNED_KUBECTL", pinned)
    assert kubectl.kubectl_binary(environ) == str(pinned)
    assert kubectl.kubectl_binary({**environ, kubectl.KUBECTL_ENV: str(chosen)}) == str(chosen)


def test_shell_commands_find_the_chosen_kubectl_first_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = fake_kubectl(tmp_path / "pinned")
    monkeypatch.setattr(kubectl, "PINNED_KUBECTL", pinned)
    env = kubectl.environ_with_kubectl({"PATH": "/usr/bin"})
    assert env["PATH"].split(os.pathsep) == [str(pinned.parent), "/usr/bin"]


def test_poll_returns_the_first_sample_that_holds() -> None:
    samples = iter(range(10))
    assert poll("three", lambda: next(samples), lambda n: n == 3, interval=0) == 3
    assert wait_until("a truthy value", lambda: "found", timeout=1) == "found"


def test_poll_names_what_it_waited_for_and_the_last_sample_at_the_deadline() -> None:
    with pytest.raises(DeadlineExceeded, match=r"waiting for the answer; last: 41"):
        poll("the answer", lambda: 41, lambda n: n == 42, timeout=0, interval=0)


def test_a_free_loopback_port_can_be_bound() -> None:
    import socket

    port = free_loopback_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_two_processes_building_the_same_bundle_both_get_the_one_that_won(
    tmp_path: Path,
) -> None:
    from concurrent.futures import ProcessPoolExecutor

    from modelfleet_dev.bundle_cache import BundleKey, ensure_bundles

    key = BundleKey("race-0001", "1.0.0", 1, 7)
    with ProcessPoolExecutor(max_workers=2) as pool:
        # Each call sees an empty cache and builds; the second rename finds the first's bundle.
        first, second = pool.map(_ensure_one, [(key, tmp_path)] * 2)
    assert first == second
    assert ensure_bundles([key], tmp_path, processes=1)[key].digest == first


def _ensure_one(args: tuple[object, Path]) -> str:
    from modelfleet_dev.bundle_cache import BundleKey, ensure_bundles

    key, root = args
    assert isinstance(key, BundleKey)
    return ensure_bundles([key], root, processes=1)[key].digest
