"""The real operator (kopf and the reconciler, `run_operator`) on its own event loop, in a thread.

Why this exists: tests that need the operator's in-process state (its metrics registry, its
exceptions) or many short operator lifetimes run it in a thread rather than as the
`modelfleet operator` process `local_cluster` starts. Entering waits for kopf's ready flag;
leaving sets its stop flag and waits for the loop to end, so nothing of the operator outlives
the block. An exception the operator raised is re-raised on leaving (or on entering, when it
never became ready).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import TracebackType

from modelfleet.app.operator_main import run_operator
from modelfleet.app.settings import OperatorSettings

READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0


class OperatorThreadError(RuntimeError):
    """The operator thread did not start, did not stop, or its operator raised."""


def standalone_settings(kubeconfig: Path, namespace: str = "default") -> OperatorSettings:
    """One namespace, no peering, no HTTP endpoints: the operator as most tests want it."""
    return OperatorSettings(
        kubeconfig=str(kubeconfig),
        namespaces=[namespace],
        liveness=None,
        metrics_port=None,
        standalone=True,
    )


class OperatorThread:
    """`run_operator(settings)` in a daemon thread, for the duration of a `with` block."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def standalone(cls, kubeconfig: Path, namespace: str = "default") -> OperatorThread:
        return cls(standalone_settings(kubeconfig, namespace))

    def _run(self) -> None:
        try:
            asyncio.run(run_operator(self.settings, stop_flag=self._stop, ready_flag=self._ready))
        except BaseException as exc:  # re-raised in the thread that owns this object
            self.errors.append(exc)
            self._ready.set()

    def start(self) -> None:
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="operator", daemon=True)
        self._thread.start()
        if not self._ready.wait(READY_TIMEOUT_SECONDS):
            raise OperatorThreadError(f"operator not ready after {READY_TIMEOUT_SECONDS:g}s")
        self._raise_errors("the operator failed to start")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)
            if self._thread.is_alive():
                raise OperatorThreadError(
                    f"operator still running {STOP_TIMEOUT_SECONDS:g}s after stop"
                )

    def _raise_errors(self, what: str) -> None:
        if self.errors:
            raise OperatorThreadError(f"{what}: {self.errors!r}") from self.errors[0]

    def __enter__(self) -> OperatorThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        if exc is None:
            self._raise_errors("the operator raised")
