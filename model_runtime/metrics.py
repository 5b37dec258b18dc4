"""Prometheus metrics of one runtime process: plain numbers, written at scrape time.

Each server has its own (not a process-wide registry), so tests run several servers in one
process and the exposition is what this runtime means. Request labels use the model name only
when the model exists, so a client probing random names cannot blow up label cardinality, and
only when asked (`per_model_labels`): a request's counter and latency histogram are 17 series
per label set, so a 100-model well labelled by model exports about 1,700 series, and a
10,000-well fleet 17 million. By default every model's `/infer` shares the label `_models`.

No locks: requests are observed and the scrape is written on the event loop's thread only (a
request scored in a worker thread is observed after its await, loads after theirs). The
format is model_runtime/exposition.py's (not prometheus_client's: its import costs a pod 3 MiB).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

from model_runtime.exposition import (
    CONTENT_TYPE,
    Collector,
    MetricFamily,
    MetricType,
    format_value,
    render,
)
from runtime_contract import monitoring

# Single-row scoring of a tiny model takes tens of microseconds; whole-well calls a few ms.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
    5.0,
)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
UNKNOWN_MODEL_LABEL = "_unknown"
WELL_ENDPOINT_LABEL = "_well"
ALL_MODELS_LABEL = "_models"  # any model's /infer, without per-model labels


class Histogram:
    """Observations counted per bucket, and their sum."""

    __slots__ = ("bound_labels", "bounds", "buckets", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.bound_labels = (*map(format_value, self.bounds), "+Inf")  # each bucket's `le`
        # buckets[i]: observations <= bounds[i] and above the bound before it; the last one
        # holds those above every bound (+Inf).
        self.buckets = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound is in that bound's bucket (`le` is <=).
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        found, running = [], 0
        for bound, count in zip(self.bound_labels, self.buckets, strict=True):
            running += count
            found.append((bound, float(running)))
        return found


class RuntimeMetrics:
    content_type = CONTENT_TYPE

    def __init__(self, per_model_labels: bool = False) -> None:
        self.per_model_labels = per_model_labels
        # (model label, code) -> latency; its count is the request counter.
        self.requests: dict[tuple[str, str], Histogram] = {}
        # (model, code) -> its label set's latency, one lookup a request: pairs are bounded,
        # models being known names; without per-model labels, models share one histogram.
        self._by_request: dict[tuple[str, int], Histogram] = {}
        self.load_duration = Histogram(LOAD_BUCKETS)
        self.loads: dict[tuple[str, str], int] = {}  # (result, reason) -> attempts
        self.bundle: tuple[str, str, str, str] | None = None  # digest, uri, well, version
        self.bundle_models = 0
        self.ready = False
        self.last_load_ok = False
        self.in_flight: Callable[[], int] = lambda: 0  # set by the server: its transport's count
        self.collectors: list[Collector] = [self]

    def register(self, collector: Collector) -> None:
        self.collectors.append(collector)

    def observe_request(self, model: str, code: int, seconds: float) -> None:
        latency = self._by_request.get((model, code))
        if latency is None:
            # Model names never start with "_" (MODEL_NAME_PATTERN): the endpoint labels do.
            label = model if self.per_model_labels or model.startswith("_") else ALL_MODELS_LABEL
            labels = (label, str(code))
            latency = self.requests.get(labels)
            if latency is None:
                latency = self.requests[labels] = Histogram(LATENCY_BUCKETS)
            self._by_request[(model, code)] = latency
        latency.observe(seconds)

    def count_load(self, result: str, reason: str) -> None:
        self.loads[(result, reason)] = self.loads.get((result, reason), 0) + 1

    def serving(self, digest: str, uri: str, well: str, version: str, models: int) -> None:
        self.bundle = (digest, uri, well, version)
        self.bundle_models = models
        self.ready = True

    def render(self) -> bytes:
        return render(self.collectors)

    def collect(self) -> Iterator[MetricFamily]:
        requests = MetricFamily(
            "modelfleet_runtime_requests",
            MetricType.COUNTER,
            "Inference requests by model and HTTP status code.",
            ("model", "code"),
        )
        latency = MetricFamily(
            "modelfleet_runtime_request_duration_seconds",
            MetricType.HISTOGRAM,
            "Inference request latency inside the server, by model and HTTP status code.",
            ("model", "code"),
        )
        for labels, histogram in sorted(self.requests.items()):
            buckets = histogram.cumulative()
            requests.add_metric(labels, buckets[-1][1])
            latency.add_histogram(labels, buckets, histogram.total)
        yield requests
        yield latency
        load = MetricFamily(
            "modelfleet_runtime_bundle_load_duration_seconds",
            MetricType.HISTOGRAM,
            "Time to fetch, verify and load a bundle (successful loads).",
        )
        load.add_histogram((), self.load_duration.cumulative(), self.load_duration.total)
        yield load
        loads = MetricFamily(
            "modelfleet_runtime_bundle_loads",
            MetricType.COUNTER,
            "Bundle load attempts by result (success, failure) and failure reason.",
            ("result", "reason"),
        )
        for labels, count in sorted(self.loads.items()):
            loads.add_metric(labels, count)
        yield loads
        info = MetricFamily(
            monitoring.BUNDLE_INFO,
            MetricType.GAUGE,
            "The serving bundle (value 1): digest, uri, well, version.",
            ("digest", "uri", "well", "version"),
        )
        if self.bundle is not None:
            info.add_metric(self.bundle, 1)
        yield info
        for name, documentation, value in (
            (
                "modelfleet_runtime_bundle_models",
                "Models in the serving bundle.",
                self.bundle_models,
            ),
            ("modelfleet_runtime_ready", "1 while a verified bundle serves.", self.ready),
            (
                "modelfleet_runtime_last_load_success",
                "1 if the most recent bundle load succeeded, 0 if it failed (the old bundle keeps serving).",
                self.last_load_ok,
            ),
            (
                "modelfleet_runtime_requests_in_flight",
                "HTTP requests being handled.",
                self.in_flight(),
            ),
        ):
            gauge = MetricFamily(name, MetricType.GAUGE, documentation)
            gauge.add_metric((), float(value))
            yield gauge
