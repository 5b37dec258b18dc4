"""Prometheus metrics of one runtime process, in a registry of its own.

A registry per server (not the global default) lets tests run several servers in one process
and keeps the exposition to what this runtime means. Request labels use the model name only
when the model exists, so a client probing random names cannot blow up label cardinality, and
only when asked (`per_model_labels`): a request's counter and latency histogram are 19 series
per label set, so a 100-model well labelled by model exports about 1,900 series, and a
10,000-well fleet 19 million. By default every model's `/infer` shares the label `_models`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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


class RuntimeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, per_model_labels: bool = False) -> None:
        self.per_model_labels = per_model_labels
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "modelfleet_runtime_requests_total",
            "Inference requests by model and HTTP status code.",
            ["model", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelfleet_runtime_request_duration_seconds",
            "Inference request latency inside the server, by model and HTTP status code.",
            ["model", "code"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
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
        self._request_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, model: str, code: int, seconds: float) -> None:
        # labels() validates and locks on every call; a (model, code) pair's children never
        # change, so each pair looks them up once (pairs are bounded: models are known names).
        children = self._request_children.get((model, code))
        if children is None:
            status = str(code)
            # Model names never start with "_" (MODEL_NAME_PATTERN): the endpoint labels do.
            label = model if self.per_model_labels or model.startswith("_") else ALL_MODELS_LABEL
            children = (self.requests.labels(label, status), self.latency.labels(label, status))
            self._request_children[(model, code)] = children
        children[0].inc()
        children[1].observe(seconds)

    def serving(self, digest: str, uri: str, well: str, version: str, models: int) -> None:
        self.bundle_info.clear()
        self.bundle_info.labels(digest, uri, well, version).set(1)
        self.bundle_models.set(models)
        self.ready.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
