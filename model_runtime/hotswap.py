"""Notice that the pod should serve another bundle, and ask BundleState to switch.

Triggers: the downward-API annotations file changing (polled: inotify does not see the kubelet's
`..data` symlink swap reliably across volume types), SIGHUP for a plain process, and a timed retry
of a desired bundle whose source was Unreachable (the bundle server may start after us).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from model_runtime.annotations import (
    BUNDLE_URI_ANNOTATION,
    AnnotationsFormatError,
    read_desired_bundle,
)
from model_runtime.bundle_state import BundleState
from model_runtime.errors import BundleError, LoadFailureReason

log = logging.getLogger(__name__)


class BundleWatcher:
    """Keeps a BundleState on the bundle named by `--bundle` or by the annotations file."""

    def __init__(
        self,
        state: BundleState,
        *,
        bundle_uri: str | None,
        annotations_file: Path | None,
        poll_interval: float = 2.0,
        retry_interval: float = 5.0,
    ) -> None:
        self.state = state
        self.bundle_uri = bundle_uri
        self.annotations_file = annotations_file
        self.poll_interval = poll_interval
        self.retry_interval = retry_interval
        self._seen: bytes | None = None
        self._wakeup = asyncio.Event()

    def request_reload(self) -> None:
        """SIGHUP: re-read the source of truth now and load it even if the file did not change."""
        self._seen = None
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:  # a bug here must not silently end hot swapping for the pod's life
                log.exception("bundle watcher check failed; will try again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.poll_interval)
            self._wakeup.clear()

    async def check_once(self) -> None:
        """One poll: load if the desired bundle changed, or retry a failed first load."""
        uri, digest, changed = self._desired()
        if uri is None:
            return
        if changed:
            self.state.want(uri, digest)
        last = self.state.last_load
        # Only an Unreachable source is worth retrying on a timer (a bundle server that starts
        # after us, a network blip); an invalid bundle stays invalid until the source changes.
        retry_due = (
            last is not None
            and not last.ok
            and last.reason is LoadFailureReason.UNREACHABLE
            and last.uri == uri
            and time.monotonic() - self.state.last_attempt_at >= self.retry_interval
        )
        if changed or retry_due:
            # A failure is recorded in state.last_load and metrics; the old bundle keeps serving.
            with contextlib.suppress(BundleError):
                await self.state.load(uri, digest)

    def _desired(self) -> tuple[str | None, str | None, bool]:
        if self.annotations_file is None:
            changed = self._seen is None
            self._seen = b"loaded"
            return self.bundle_uri, None, changed
        try:
            raw, desired = read_desired_bundle(self.annotations_file)
        except FileNotFoundError:
            if self._seen != b"":
                self._seen = b""
                if self.bundle_uri is None:
                    self.state.record_failure(
                        str(self.annotations_file),
                        LoadFailureReason.NO_BUNDLE_URI,
                        f"annotations file {self.annotations_file} does not exist",
                    )
                    return None, None, False
                return self.bundle_uri, None, True
            return self.bundle_uri, None, False
        except (AnnotationsFormatError, OSError) as exc:
            log.warning("cannot read annotations file %s: %s", self.annotations_file, exc)
            return None, None, False
        changed = raw != self._seen
        self._seen = raw
        uri = desired.uri or self.bundle_uri
        if uri is None:
            if changed:
                self.state.record_failure(
                    str(self.annotations_file),
                    LoadFailureReason.NO_BUNDLE_URI,
                    f"annotations file {self.annotations_file} has no {BUNDLE_URI_ANNOTATION} and no --bundle was given",
                )
            return None, None, False
        return uri, desired.digest, changed
