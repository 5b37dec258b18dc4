"""The request counts exported at scrape time say what prometheus_client's own Counter and
Histogram would say for the same requests: same names, labels, buckets, counts and sums."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from model_runtime.metrics import LATENCY_BUCKETS, RuntimeMetrics

# Latencies on, just around and far from every bucket bound, and the codes a server answers.
_latency = st.one_of(
    st.sampled_from(LATENCY_BUCKETS),
    st.floats(min_value=0.0, max_value=10.0, allow_nan=False),
)
_request = st.tuples(
    st.sampled_from(["_models", "_well", "_unknown"]), st.sampled_from([200, 400, 503]), _latency
)


_FAMILIES = ("modelfleet_runtime_requests", "modelfleet_runtime_request_duration_seconds")


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if family.name in _FAMILIES and not sample.name.endswith("_created")
    }


def _reference(requests: list[tuple[str, int, float]]) -> bytes:
    registry = CollectorRegistry()
    counter = Counter(
        "modelfleet_runtime_requests_total", "x", ["model", "code"], registry=registry
    )
    histogram = Histogram(
        "modelfleet_runtime_request_duration_seconds",
        "x",
        ["model", "code"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    for model, code, seconds in requests:
        counter.labels(model, str(code)).inc()
        histogram.labels(model, str(code)).observe(seconds)
    return generate_latest(registry)


@given(st.lists(_request, max_size=40))
def test_request_series_equal_prometheus_clients_counter_and_histogram(
    requests: list[tuple[str, int, float]],
) -> None:
    metrics = RuntimeMetrics()
    for model, code, seconds in requests:
        metrics.observe_request(model, code, seconds)
    ours, reference = _samples(metrics.render()), _samples(_reference(requests))
    assert ours.keys() == reference.keys()
    for key, value in reference.items():
        assert abs(ours[key] - value) <= 1e-9 * max(1.0, abs(value)), key


def test_a_latency_on_a_bound_is_counted_in_that_bound_s_bucket() -> None:
    metrics = RuntimeMetrics()
    metrics.observe_request("_well", 200, 0.001)
    text = metrics.render().decode()
    bucket = 'modelfleet_runtime_request_duration_seconds_bucket{code="200",le="%s",model="_well"}'
    assert f"{bucket % '0.0005'} 0.0" in text
    assert f"{bucket % '0.001'} 1.0" in text
    assert f"{bucket % '+Inf'} 1.0" in text
