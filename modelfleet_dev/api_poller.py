"""Waiting, with a deadline, until a condition holds on state that another thread or process
changes: a resource's status on the API, a server's health, a file appearing.

Why this exists: tests, the demo and the benchmarks all wait for the cluster to reach a state;
one poller gives them the same deadline semantics (the condition is checked at least once, and
once more after the deadline is reached, so a slow machine fails only when the state really
was not reached) and the same failure message, which names what was awaited and the last
sample seen. Prefer awaiting an event where one exists; poll where the state lives elsewhere.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

Sample = TypeVar("Sample")
Found = TypeVar("Found")


class DeadlineExceeded(TimeoutError):
    """The awaited condition did not hold before the deadline; the message has the last sample."""


def poll(
    what: str,
    sample: Callable[[], Sample],
    holds: Callable[[Sample], bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    on_sample: Callable[[Sample], None] | None = None,
    describe: Callable[[Sample], str] = repr,
) -> Sample:
    """Take `sample()` every `interval` seconds until `holds(sample)`; return that sample.

    Every sample goes to `on_sample` first (a progress display). Raises DeadlineExceeded,
    naming `what` and `describe(last sample)`, once `timeout` seconds pass without a match.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = sample()
        if on_sample is not None:
            on_sample(last)
        if holds(last):
            return last
        if time.monotonic() >= deadline:
            raise DeadlineExceeded(
                f"timed out after {timeout:g}s waiting for {what}; last: {describe(last)}"
            )
        time.sleep(interval)


def wait_until(
    what: str,
    check: Callable[[], Found | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
) -> Found:
    """Until `check()` returns something truthy; returns it (so a check can find and return)."""
    found = poll(what, check, bool, timeout=timeout, interval=interval)
    assert found is not None  # bool(found) held
    return found


def resource_status(http: httpx.Client, path: str) -> dict[str, Any]:
    """The `status` of the resource at `path` ({} before the controller wrote one)."""
    answer = http.get(path)
    answer.raise_for_status()
    status: dict[str, Any] = answer.json().get("status") or {}
    return status


def wait_for_status(
    http: httpx.Client,
    path: str,
    what: str,
    check: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 60.0,
    interval: float = 0.05,
) -> dict[str, Any]:
    """Until the status of the resource at `path` satisfies `check`; returns that status."""
    return poll(
        what,
        lambda: resource_status(http, path),
        check,
        timeout=timeout,
        interval=interval,
        describe=lambda status: json.dumps(status, indent=1),
    )
