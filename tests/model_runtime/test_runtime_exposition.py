"""What the runtime writes at /metrics is Prometheus's text format: prometheus_client's parser
reads back every family, label and value written, and promtool accepts a serving runtime's."""

from __future__ import annotations

import math
import subprocess

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from runtime_harness import RunningServer

from bundle_builder.building import BuiltBundle
from model_runtime.exposition import MetricFamily, MetricType, render
from modelfleet_dev.prometheus_server import PrometheusInstall

_names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: not n.endswith(("_total", "_bucket", "_count", "_sum", "_created"))
)
_label_values = st.text(max_size=12)  # quotes, backslashes, newlines, any unicode
_values = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**40), 2**40)


@st.composite
def _families(draw: st.DrawFn) -> list[MetricFamily]:
    names = draw(st.lists(_names, min_size=1, max_size=4, unique=True))
    families = []
    for name in names:
        labels = draw(st.lists(st.sampled_from(["model", "code", "feature"]), unique=True))
        kind = draw(st.sampled_from([MetricType.COUNTER, MetricType.GAUGE]))
        # Help is one line of prose: newlines and backslashes are escaped, other control
        # characters are not in ours (the parser strips a trailing \r as whitespace).
        prose = st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from("\n\\")
        help_text = "Help " + draw(st.text(prose, max_size=20)) + "."
        family = MetricFamily(name, kind, help_text, labels)
        for values in draw(
            st.lists(st.tuples(*[_label_values] * len(labels)), max_size=3, unique=True)
        ):
            family.add_metric(values, draw(_values))
        families.append(family)
    return families


class _Families:
    def __init__(self, families: list[MetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[MetricFamily]:
        return self.families


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@given(_families())
def test_prometheus_clients_parser_reads_back_every_series_written(
    families: list[MetricFamily],
) -> None:
    parsed = {
        f.name: f for f in text_string_to_metric_families(render([_Families(families)]).decode())
    }
    for family in families:
        read = parsed[family.name]
        assert read.type == family.type.value
        assert read.documentation == family.documentation
        assert len(read.samples) == len(family.samples)
        for (suffix, values, value), sample in zip(family.samples, read.samples, strict=True):
            assert sample.name == family.name + suffix
            assert sample.labels == dict(zip(family.labels, values, strict=True))
            assert _same(sample.value, float(value))


def test_a_histogram_is_written_with_its_buckets_count_and_sum() -> None:
    family = MetricFamily("latency_seconds", MetricType.HISTOGRAM, "x", ("model",))
    family.add_histogram(("a",), [("0.1", 2.0), ("+Inf", 3.0)], 0.75)
    [read] = text_string_to_metric_families(render([_Families([family])]).decode())
    assert [(s.name, s.labels, s.value) for s in read.samples] == [
        ("latency_seconds_bucket", {"model": "a", "le": "0.1"}, 2.0),
        ("latency_seconds_bucket", {"model": "a", "le": "+Inf"}, 3.0),
        ("latency_seconds_count", {"model": "a"}, 3.0),
        ("latency_seconds_sum", {"model": "a"}, 0.75),
    ]
    with pytest.raises(ValueError, match="end with \\+Inf"):
        family.add_histogram(("b",), [("0.1", 1.0)], 0.1)
    with pytest.raises(ValueError, match="has labels"):
        family.add_metric((), 1.0)


def test_promtool_accepts_a_serving_runtimes_metrics(
    small_bundle: BuiltBundle, prometheus_install: PrometheusInstall
) -> None:
    with RunningServer(str(small_bundle.path)) as running:
        running.wait_serving()
        with httpx.Client(base_url=running.url) as http:
            http.post("/v2/models/nope/infer", json={})
            text = http.get("/metrics").text
    assert "modelfleet_runtime_requests_total" in text and "modelfleet_runtime_ready 1.0" in text
    checked = subprocess.run(
        [str(prometheus_install.promtool), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    # Lint findings (help text style, units) are printed too; only an unparsable line fails.
    assert checked.returncode in (0, 3), checked.stderr + checked.stdout
    assert "error while linting" not in checked.stderr + checked.stdout
