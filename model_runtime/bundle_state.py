"""Which bundle serves right now, and how a new one replaces it without a gap or a wrong answer.

A new bundle is fetched, verified and loaded beside the serving one (in a worker thread, so
requests keep flowing), then swapped in with a single reference assignment: a request holds
the bundle it started with until it ends, so no request ever mixes models of two bundles. A
failed load leaves the serving bundle in place and is recorded for `/v2`, health and metrics.
A bundle is named by its digest: asked for the digest that serves from another URI, the
runtime verifies that URI holds it and then serves it under that URI, without loading it again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass

from model_runtime.errors import BundleError, BundleUnreachableError, LoadFailureReason
from model_runtime.manifest import BundleManifest, TensorSpec
from model_runtime.memory import release_freed_heap
from model_runtime.metrics import RuntimeMetrics
from model_runtime.monitoring.config import MonitoringConfig
from model_runtime.monitoring.monitor import BundleMonitor
from model_runtime.sessions import ModelSession, load_sessions
from model_runtime.sources import SourceLimits, read_bundle
from model_runtime.verification import VerifiedBundle, verify_bundle
from runtime_contract import BundleInfo, LoadAttempt, normalize_digest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingBundle:
    uri: str
    digest: str
    manifest: BundleManifest
    sessions: dict[str, ModelSession]
    load_seconds: float
    # The input every model shares, which the well-level endpoint needs; None if they differ.
    shared_input: TensorSpec | None
    # Drift windows of this bundle's models (built with it, so a swap starts them afresh).
    monitor: BundleMonitor | None = None

    def info(self) -> BundleInfo:
        return {
            "digest": self.digest,
            "uri": self.uri,
            "well": self.manifest.well,
            "version": self.manifest.version,
            "models": len(self.sessions),
        }


def fetch_verified(
    uri: str, expected_digest: str | None = None, limits: SourceLimits | None = None
) -> VerifiedBundle:
    """Fetch and verify every digest (blocking). Raises BundleError with a precise message."""
    try:
        raw = read_bundle(uri, limits)
    except OSError as exc:  # the expected ones (missing, unreadable) are mapped in sources.py
        raise BundleUnreachableError(f"cannot read bundle {uri!r}: {exc}") from exc
    return verify_bundle(raw, expected_digest)


def load_bundle(
    uri: str,
    expected_digest: str | None = None,
    limits: SourceLimits | None = None,
    monitoring: MonitoringConfig | None = None,
) -> ServingBundle:
    """Fetch, verify and create sessions (blocking). Raises BundleError with a precise message.

    With `monitoring`, the bundle's monitor is built here too (thresholds calibrated off the
    request path)."""
    started = time.perf_counter()
    verified = fetch_verified(uri, expected_digest, limits)
    sessions = load_sessions(verified)
    first = verified.manifest.models[0].inputs
    same = len(first) == 1 and all(s.entry.inputs == first for s in sessions.values())
    shared = first[0] if same else None
    return ServingBundle(
        uri=uri,
        digest=verified.digest,
        manifest=verified.manifest,
        sessions=sessions,
        load_seconds=time.perf_counter() - started,
        shared_input=shared,
        monitor=(
            BundleMonitor(verified.manifest, monitoring)
            if monitoring is not None and monitoring.enabled
            else None  # monitoring off: not a single call on the request path
        ),
    )


class BundleState:
    """The serving bundle of this process and the outcome of the last load attempt."""

    def __init__(
        self,
        metrics: RuntimeMetrics,
        limits: SourceLimits | None = None,
        monitoring: MonitoringConfig | None = None,
        *,
        ready_requires_wanted: bool = False,
    ) -> None:
        self.metrics = metrics
        self.limits = limits or SourceLimits()
        self.monitoring = monitoring or MonitoringConfig()
        self.current: ServingBundle | None = None
        self.last_load: LoadAttempt | None = None
        self.last_attempt_at: float = 0.0
        self.draining = False
        # With ready_requires_wanted, ready means "serves the bundle the pod's annotations
        # name": the kubelet's probe is then the confirmation (bundleConfirmation
        # ReadinessProbe), so a bundle loaded any other way must not pass it.
        self.ready_requires_wanted = ready_requires_wanted
        self.wanted: tuple[str, str | None] | None = None
        self._lock = asyncio.Lock()
        self.metrics.ready = False

    @property
    def ready(self) -> bool:
        current = self.current
        if current is None or self.draining:
            return False
        return not self.ready_requires_wanted or self.serves_wanted(current)

    def serves_wanted(self, bundle: ServingBundle) -> bool:
        """`bundle` is the one last asked for by URI, and by digest when one was named."""
        if self.wanted is None:
            return False
        uri, digest = self.wanted
        return bundle.uri == uri and (digest is None or bundle.digest == digest)

    def want(self, uri: str, digest: str | None) -> None:
        """The bundle the pod's source of truth (annotations file or --bundle) names now."""
        self.wanted = (uri, normalize_digest(digest) if digest else None)
        self.metrics.ready = self.ready

    async def load(self, uri: str, expected_digest: str | None = None) -> ServingBundle:
        """Load `uri` beside the serving bundle and switch to it; raise BundleError on failure.

        Idempotent: asking for the digest and URI that serve returns at once; the digest that
        serves from another URI is verified there and then served under it, not loaded again.
        """
        async with self._lock:
            expected = normalize_digest(expected_digest) if expected_digest else None
            current = self.current
            same_content = current is not None and expected == current.digest
            if current is not None and same_content and current.uri == uri:
                self._record(LoadAttempt.succeeded(uri, current.digest))
                return current
            self.last_attempt_at = time.monotonic()
            try:
                if current is not None and same_content:
                    await asyncio.to_thread(fetch_verified, uri, expected, self.limits)
                    bundle = dataclasses.replace(current, uri=uri)
                else:
                    bundle = await asyncio.to_thread(
                        load_bundle, uri, expected, self.limits, self.monitoring
                    )
                    self.metrics.load_duration.observe(bundle.load_seconds)
            except BundleError as exc:
                log.warning("bundle load failed (%s): %s", exc.reason.value, exc.message)
                self.metrics.count_load("failure", exc.reason.value)
                self._record(LoadAttempt.failed(uri, exc.reason, exc.message, expected))
                raise
            self._switch(bundle)
            current = None  # the replaced bundle lives on only in requests that still hold it
            release_freed_heap()
            self.metrics.count_load("success", "")
            self._record(LoadAttempt.succeeded(uri, bundle.digest))
            log.info(
                "serving bundle %s (%s, %d models, loaded in %.3fs)",
                bundle.digest,
                uri,
                len(bundle.sessions),
                bundle.load_seconds,
            )
            return bundle

    def record_failure(self, uri: str, reason: LoadFailureReason, message: str) -> None:
        """A load that could not even start (e.g. no URI in the annotations file)."""
        self.metrics.count_load("failure", reason.value)
        self._record(LoadAttempt.failed(uri, reason, message, None))

    def _switch(self, bundle: ServingBundle) -> None:
        self.current = bundle  # the atomic switch: one reference assignment
        manifest = bundle.manifest
        self.metrics.serving(
            bundle.digest, bundle.uri, manifest.well, manifest.version, len(bundle.sessions)
        )
        self.metrics.ready = self.ready

    def _record(self, attempt: LoadAttempt) -> None:
        self.last_load = attempt
        self.metrics.last_load_ok = attempt.ok
