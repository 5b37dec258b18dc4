"""The monitoring's Prometheus series, computed at scrape time from the windows' counts.

A custom collector (no gauge is set on the request path): a scrape folds the queues, builds
the same per-model values as `/v2/monitoring`, and reduces them to a bounded set per pod,
whatever the model count: the worst feature PSI, prediction PSI, missing and out-of-range
rates (each one series, labelled with its argmax), the fewest rows in a window, the stalest
model's last-row age, models per verdict (4 series) and rows rejected: 11 series. A worst-of
series is absent while no model has a value for it (an empty answer, never a made-up 0).
Per-model and per-feature series are opt-in (`detail`): 1 + 3 x features series per model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

from model_runtime.exposition import MetricFamily, MetricType
from model_runtime.monitoring.monitor import BundleMonitor
from model_runtime.monitoring.report import monitoring_report
from runtime_contract import monitoring as names
from runtime_contract.monitoring import DriftVerdict, ModelMonitoring

_WITH_VERDICT = (DriftVerdict.HEALTHY.value, DriftVerdict.DRIFTING.value)


def _gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> MetricFamily:
    return MetricFamily(name, MetricType.GAUGE, documentation, labels)


def _worst(family: MetricFamily, candidates: Sequence[tuple[float, Sequence[str]]]) -> MetricFamily:
    if candidates:
        value, labels = max(candidates, key=lambda c: c[0])
        family.add_metric(labels, value)
    return family


class MonitoringCollector:
    def __init__(self, monitor: Callable[[], BundleMonitor | None], *, detail: bool) -> None:
        self._monitor = monitor
        self.detail = detail

    def collect(self) -> Iterator[MetricFamily]:
        monitor = self._monitor()
        if monitor is None or not monitor.config.enabled:
            return
        report = monitoring_report(monitor)
        models = report["models"]
        monitored = {n: m for n, m in models.items() if m["verdict"] != DriftVerdict.UNMONITORED}
        yield from self._pod_level(models, monitored)
        if self.detail:
            yield from self._detail(monitored)

    def _pod_level(
        self, models: dict[str, ModelMonitoring], monitored: dict[str, ModelMonitoring]
    ) -> Iterator[MetricFamily]:
        judged = {n: m for n, m in monitored.items() if m["verdict"] in _WITH_VERDICT}
        feature_psi = [
            (f["psi"], (model, feature))
            for model, m in judged.items()
            for feature, f in m["features"].items()
            if f["psi"] is not None
        ]
        yield _worst(
            _gauge(
                names.FEATURE_PSI_WORST,
                "Largest feature PSI over the models with a verdict.",
                labels=["model", "feature"],
            ),
            feature_psi,
        )
        yield _worst(
            _gauge(
                names.PREDICTION_PSI_WORST,
                "Largest prediction PSI over the models with a verdict.",
                labels=["model"],
            ),
            [
                (m["prediction_psi"], (n,))
                for n, m in judged.items()
                if m["prediction_psi"] is not None
            ],
        )
        seen = {n: m for n, m in monitored.items() if m["rows"] > 0}
        for metric, key, text in (
            (
                names.MISSING_RATE_WORST,
                "missing_rate",
                "Largest per-feature missing rate in the window.",
            ),
            (
                names.OUT_OF_RANGE_RATE_WORST,
                "out_of_range_rate",
                "Largest per-feature rate of values outside the reference range in the window.",
            ),
        ):
            yield _worst(
                _gauge(metric, text, labels=["model", "feature"]),
                [
                    (float(f[key]), (model, feature))  # type: ignore[literal-required]
                    for model, m in seen.items()
                    for feature, f in m["features"].items()
                ],
            )
        if monitored:
            rows = _gauge(
                names.WINDOW_ROWS_MIN, "Rows in the window of the monitored model that has fewest."
            )
            rows.add_metric([], min(m["rows"] for m in monitored.values()))
            yield rows
            ages = [m["last_row_age_s"] for m in monitored.values()]
            age = _gauge(
                names.LAST_ROW_AGE_SECONDS,
                "Seconds since the stalest monitored model last saw a row (+Inf before its first).",
            )
            age.add_metric([], math.inf if None in ages else max(a for a in ages if a is not None))
            yield age
        by_verdict = _gauge(names.MODELS, "Models by verdict.", labels=["verdict"])
        for verdict in DriftVerdict:
            by_verdict.add_metric(
                [verdict.value], sum(1 for m in models.values() if m["verdict"] == verdict.value)
            )
        yield by_verdict
        rejected = MetricFamily(
            names.ROWS_REJECTED_TOTAL.removesuffix("_total"),
            MetricType.COUNTER,
            "Rows the monitoring window could not count (wrong type, wrong width).",
            ["model"] if self.detail else [],
        )
        if self.detail:
            for name, m in monitored.items():
                rejected.add_metric([name], m["rows_rejected"])
        else:
            rejected.add_metric([], sum(m["rows_rejected"] for m in monitored.values()))
        yield rejected

    def _detail(self, monitored: dict[str, ModelMonitoring]) -> Iterator[MetricFamily]:
        prediction = _gauge(
            names.MODEL_PREDICTION_PSI, "Prediction PSI per model (opt-in).", labels=["model"]
        )
        feature_psi = _gauge(
            names.FEATURE_PSI, "Feature PSI per model (opt-in).", labels=["model", "feature"]
        )
        missing = _gauge(
            names.FEATURE_MISSING_RATE,
            "Missing rate per feature (opt-in).",
            labels=["model", "feature"],
        )
        out_of_range = _gauge(
            names.FEATURE_OUT_OF_RANGE_RATE,
            "Out-of-reference-range rate per feature (opt-in).",
            labels=["model", "feature"],
        )
        for model, m in monitored.items():
            if m["prediction_psi"] is not None:
                prediction.add_metric([model], m["prediction_psi"])
            for feature, f in m["features"].items():
                if f["psi"] is not None:
                    feature_psi.add_metric([model, feature], f["psi"])
                missing.add_metric([model, feature], f["missing_rate"])
                out_of_range.add_metric([model, feature], f["out_of_range_rate"])
        yield from (prediction, feature_psi, missing, out_of_range)
