"""Prometheus metrics of one runtime process, in a registry of its own.

A registry per server (not the global default) lets tests run several servers in one process
and keeps the exposition to what this runtime means. Request labels use the model name only
when the model exists, so a client probing random names cannot blow up label cardinality, and
only when asked (`per_model_labels`): a request's counter and latency histogram are 19 series
per label set, so a 100-model well labelled by model exports about 1,900 series, and a
10,000-well fleet 19 million. By default every model's `/infer` shares the label `_models`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

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
UNKNOWN_MODEL_LABEL = "_unknown"
WELL_ENDPOINT_LABEL = "_well"
ALL_MODELS_LABEL = "_models"  # any model's /infer, without per-model labels


class _LabelSetCounts:
    """One (model label, code) pair's request count, latency buckets and latency sum."""

    __slots__ = ("buckets", "total_seconds")

    def __init__(self) -> None:
        # buckets[i]: observations <= LATENCY_BUCKETS[i] and above the bound before it; the
        # last one holds those above every bound (+Inf).
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total_seconds = 0.0


class RequestCounts(Collector):
    """Every scored request's count and latency, as plain numbers read at scrape time.

    prometheus_client's Counter and Histogram take a lock per value (three per request) and
    find the bucket in Python: ~1.6 us of a ~40 us single-row request. Requests are observed
    and scraped on the event loop's thread only (a worker thread's request is observed after
    its await), so no lock is needed; the exposition stays prometheus_client's.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], _LabelSetCounts] = {}

    def observe(self, label: str, code: str, seconds: float) -> None:
        counts = self.counts.get((label, code))
        if counts is None:
            counts = self.counts[(label, code)] = _LabelSetCounts()
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le is <=).
        counts.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        counts.total_seconds += seconds

    def describe(self) -> Iterator[Metric]:
        return iter(())  # computed at scrape time only

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "modelfleet_runtime_requests",
            "Inference requests by model and HTTP status code.",
            labels=["model", "code"],
        )
        latency = HistogramMetricFamily(
            "modelfleet_runtime_request_duration_seconds",
            "Inference request latency inside the server, by model and HTTP status code.",
            labels=["model", "code"],
        )
        bounds = [*(str(float(b)) for b in LATENCY_BUCKETS), "+Inf"]
        for (label, code), counts in sorted(self.counts.items()):
            cumulative, running = [], 0
            for bound, count in zip(bounds, counts.buckets, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            requests.add_metric([label, code], float(running))
            latency.add_metric([label, code], cumulative, counts.total_seconds)
        yield requests
        yield latency


class RuntimeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, per_model_labels: bool = False) -> None:
        self.per_model_labels = per_model_labels
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = RequestCounts()
        self.registry.register(self.requests)
        self.load_duration = Histogram(
            "modelfleet_runtime_bundle_load_duration_seconds",
            "Time to fetch, verify and load a bundle (successful loads).",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
            registry=self.registry,
        )
        self.loads = Counter(
            "modelfleet_runtime_bundle_loads_total",
            "Bundle load attempts by result (success, failure) and failure reason.",
            ["result", "reason"],
            registry=self.registry,
        )
        self.bundle_info = Gauge(
            monitoring.BUNDLE_INFO,
            "The serving bundle (value 1): digest, uri, well, version.",
            ["digest", "uri", "well", "version"],
            registry=self.registry,
        )
        self.bundle_models = Gauge(
            "modelfleet_runtime_bundle_models",
            "Models in the serving bundle.",
            registry=self.registry,
        )
        self.ready = Gauge(
            "modelfleet_runtime_ready", "1 while a verified bundle serves.", registry=self.registry
        )
        self.last_load_ok = Gauge(
            "modelfleet_runtime_last_load_success",
            "1 if the most recent bundle load succeeded, 0 if it failed (the old bundle keeps serving).",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "modelfleet_runtime_requests_in_flight",
            "HTTP requests being handled.",
            registry=self.registry,
        )
        # (model, code) -> its series' labels: pairs are bounded, models being known names.
        self._label_sets: dict[tuple[str, int], tuple[str, str]] = {}

    def observe_request(self, model: str, code: int, seconds: float) -> None:
        labels = self._label_sets.get((model, code))
        if labels is None:
            # Model names never start with "_" (MODEL_NAME_PATTERN): the endpoint labels do.
            label = model if self.per_model_labels or model.startswith("_") else ALL_MODELS_LABEL
            labels = self._label_sets[(model, code)] = (label, str(code))
        self.requests.observe(labels[0], labels[1], seconds)

    def serving(self, digest: str, uri: str, well: str, version: str, models: int) -> None:
        self.bundle_info.clear()
        self.bundle_info.labels(digest, uri, well, version).set(1)
        self.bundle_models.set(models)
        self.ready.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
