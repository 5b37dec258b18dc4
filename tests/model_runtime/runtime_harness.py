"""Test harness: a real runtime server on a loopback port, run in a thread of its own.

Sync clients (httpx, tritonclient, hypothesis) need a server whose event loop is not theirs;
a thread with its own loop gives a real socket without a subprocess, and exposes the state so
tests can await conditions instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from model_runtime.bundle_state import BundleState
from model_runtime.dataplane import RequestLimits
from model_runtime.hotswap import BundleWatcher
from model_runtime.metrics import RuntimeMetrics
from model_runtime.server import RuntimeServer
from modelfleet_dev.api_poller import wait_until


class RunningServer:
    def __init__(
        self,
        bundle_uri: str | None,
        *,
        annotations_file: Path | None = None,
        poll_interval: float = 0.05,
        limits: RequestLimits | None = None,
        ready_requires_annotated_bundle: bool = False,
    ) -> None:
        self.bundle_uri = bundle_uri
        self.ready_requires_annotated_bundle = ready_requires_annotated_bundle
        self.annotations_file = annotations_file
        self.poll_interval = poll_interval
        self.limits = limits or RequestLimits()
        self.loop = asyncio.new_event_loop()
        self.metrics = RuntimeMetrics()
        self.state: BundleState
        self.server: RuntimeServer
        self.watcher: BundleWatcher
        self.url = ""
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._started.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.state = BundleState(
            self.metrics, ready_requires_wanted=self.ready_requires_annotated_bundle
        )
        self.server = RuntimeServer(self.state, self.metrics, self.limits)
        host, port = (await self.server.start("127.0.0.1", 0))[0]
        self.url = f"http://{host}:{port}"
        self.watcher = BundleWatcher(
            self.state,
            bundle_uri=self.bundle_uri,
            annotations_file=self.annotations_file,
            poll_interval=self.poll_interval,
            retry_interval=0.2,
        )
        self._watch_task = asyncio.create_task(self.watcher.run())

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def start(self) -> RunningServer:
        self._thread.start()
        self._started.wait(timeout=10)
        return self

    def wait_serving(self, digest: str | None = None, timeout: float = 10.0) -> None:
        def serving() -> bool:
            current = self.state.current
            return current is not None and (digest is None or current.digest == digest)

        wait_until(f"bundle {digest or '(any)'} to serve", serving, timeout=timeout)

    def stop(self) -> None:
        async def shutdown() -> None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            await self.server.http.close()

        self.call(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def copy_bundle(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def write_annotations(directory: Path, annotations: dict[str, str]) -> Path:
    """Write like the kubelet: a timestamped dir, a `..data` symlink swapped atomically, and
    the visible file as a symlink through `..data`."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    stamp = f"..{time.monotonic_ns()}"
    (directory / stamp).mkdir()
    # json.dumps quotes like Go's strconv.Quote for the ASCII values used in tests.
    text = "\n".join(f"{key}={json.dumps(value)}" for key, value in sorted(annotations.items()))
    (directory / stamp / "annotations").write_text(text)
    tmp_link = directory / "..data_tmp"
    if tmp_link.is_symlink():
        tmp_link.unlink()
    os.symlink(stamp, tmp_link)
    os.replace(tmp_link, directory / "..data")
    visible = directory / "annotations"
    if not visible.is_symlink():
        os.symlink("..data/annotations", visible)
    return visible
