"""Prometheus's text exposition format (0.0.4), written for the runtime's few families.

Not prometheus_client: importing it costs a well pod 3.0 MiB of RSS (it imports http.server,
wsgiref, urllib.request and email for its own HTTP servers and push-gateway client, none of
which a pod runs), 29 GiB at 10,000 wells (docs/benchmarks.md, Memory per well pod). What the
runtime needs of it is this format: families of plain numbers written at scrape time, each
`# HELP`, `# TYPE`, then `name{label="value"} number` lines. The tests read what this writes
with prometheus_client's parser and `promtool check metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricType(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass
class MetricFamily:
    """One metric's series. A counter's `name` has no `_total`: its samples are written with it."""

    name: str
    type: MetricType
    documentation: str
    labels: Sequence[str] = ()
    # (name suffix, label values in the order of `labels`, then `le` for a bucket; value)
    samples: list[tuple[str, tuple[str, ...], float]] = field(default_factory=list)

    @property
    def value_suffix(self) -> str:
        """What a counter's or a gauge's samples add to `name`."""
        return "_total" if self.type is MetricType.COUNTER else ""

    @property
    def exposed_name(self) -> str:
        """The name in `# HELP` and `# TYPE`."""
        return self.name + self.value_suffix

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        """A counter's or a gauge's value for one set of label values."""
        self._check(labels)
        self.samples.append((self.value_suffix, tuple(labels), value))

    def add_histogram(
        self, labels: Sequence[str], buckets: Sequence[tuple[str, float]], total: float
    ) -> None:
        """`buckets`: (upper bound as written, cumulative count), ending with "+Inf"."""
        self._check(labels)
        if self.type is not MetricType.HISTOGRAM or not buckets or buckets[-1][0] != "+Inf":
            raise ValueError(f"{self.name}: a histogram's buckets end with +Inf")
        values = tuple(labels)
        for bound, count in buckets:
            self.samples.append(("_bucket", (*values, bound), count))
        self.samples.append(("_count", values, buckets[-1][1]))
        self.samples.append(("_sum", values, total))

    def series_names(self) -> set[str]:
        """The names its samples are written under."""
        if self.type is MetricType.HISTOGRAM:
            return {self.name + suffix for suffix in ("_bucket", "_count", "_sum")}
        return {self.exposed_name}

    def _check(self, labels: Sequence[str]) -> None:
        if len(labels) != len(self.labels):
            raise ValueError(f"{self.name} has labels {list(self.labels)}, got values {labels}")


class Collector(Protocol):
    def collect(self) -> Iterable[MetricFamily]: ...


def render(collectors: Iterable[Collector]) -> bytes:
    return "".join(_lines(collectors)).encode()


def _lines(collectors: Iterable[Collector]) -> Iterator[str]:
    for collector in collectors:
        for family in collector.collect():
            name = family.exposed_name
            yield f"# HELP {name} {_escape_help(family.documentation)}\n"
            yield f"# TYPE {name} {family.type.value}\n"
            names = (*family.labels, "le")
            for suffix, values, value in family.samples:
                series = family.name + suffix
                if values:  # a bucket's values end with its `le`; zip stops at the values
                    # Sorted by label name, as prometheus_client writes them.
                    pairs = ",".join(
                        f'{label}="{_escape_label(v)}"'
                        for label, v in sorted(zip(names, values, strict=False))
                    )
                    series = f"{series}{{{pairs}}}"
                yield f"{series} {format_value(value)}\n"


def format_value(value: float) -> str:
    """Go's float syntax, as Prometheus reads it: +Inf, -Inf, NaN, else Python's shortest repr."""
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return repr(number)


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")
