"""What the windows say, per model and feature: the `/v2/monitoring` report and its summary.

A verdict needs `min_rows` rows in the window (fewer: INSUFFICIENT_DATA, and no PSI is given,
so nobody reads noise as drift or as health). A model drifts when one of its features' PSI, or
its prediction PSI, exceeds its drift threshold. Missing and out-of-range rates are reported
beside the PSI and never decide the verdict: a stale feed and a shifted sensor are different
news. The Prometheus collector reads the same `ModelMonitoring` values, so the three views of
a well (gauges, JSON, metadata line) cannot disagree.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from model_runtime.monitoring.monitor import BundleMonitor, ModelWindows
from model_runtime.monitoring.psi import psi
from model_runtime.monitoring.thresholds import CONVENTION
from runtime_contract.monitoring import (
    DriftVerdict,
    FeatureMonitoring,
    ModelMonitoring,
    MonitoringReport,
    MonitoringSummary,
)


@dataclass(frozen=True)
class _Columns:
    """Every window column's statistics, computed for all columns at once (lists, for speed)."""

    psi: list[float]
    missing: list[int]
    out_of_range: list[int]

    @classmethod
    def of(cls, monitor: BundleMonitor) -> _Columns:
        bins = monitor.bins
        counts = monitor.column_counts()
        present = counts[:, : bins.missing_bucket]
        # No edges: every present value is out of range, and it is all in bucket 0.
        overflow = np.where(
            bins.edge_counts > 0, present[np.arange(len(present)), bins.edge_counts], 0
        )
        return cls(
            psi=psi(present, bins.reference, bins.edge_counts + 1).tolist(),
            missing=counts[:, bins.missing_bucket].tolist(),
            out_of_range=(present[:, 0] + overflow).tolist(),
        )


def _model(
    monitor: BundleMonitor, model: ModelWindows, stats: _Columns, first: int, now: float
) -> ModelMonitoring:
    """`first`: the model's first column in `stats` (its features, then its prediction)."""
    traffic = model.traffic
    rows = model.feature_window.filled
    enough = rows >= monitor.config.verdict_rows
    thresholds = model.thresholds.at(rows)
    features: dict[str, FeatureMonitoring] = {}
    drifting = False
    for column, feature in enumerate(model.features, start=first):
        value = stats.psi[column]
        feature_psi = value if enough and not math.isnan(value) else None
        if not enough:
            verdict = DriftVerdict.INSUFFICIENT_DATA
        elif feature_psi is not None and feature_psi > thresholds.drift:
            verdict = DriftVerdict.DRIFTING
            drifting = True
        else:
            verdict = DriftVerdict.HEALTHY
        features[feature] = {
            "verdict": verdict.value,
            "psi": feature_psi,
            "missing_rate": stats.missing[column] / rows if rows else 0.0,
            "out_of_range_rate": stats.out_of_range[column] / rows if rows else 0.0,
        }
    prediction_psi = None
    if model.prediction_window is not None:
        predicted = model.prediction_window.filled
        value = stats.psi[first + len(model.features)]
        if predicted >= monitor.config.verdict_rows and not math.isnan(value):
            prediction_psi = value
            drifting = drifting or value > model.thresholds.at(predicted).drift
    if not enough:
        model_verdict = DriftVerdict.INSUFFICIENT_DATA
    else:
        model_verdict = DriftVerdict.DRIFTING if drifting else DriftVerdict.HEALTHY
    return {
        "verdict": model_verdict.value,
        "rows": rows,
        "rows_rejected": traffic.rows_rejected,
        "last_row_age_s": None if traffic.last_row_at is None else now - traffic.last_row_at,
        "prediction_psi": prediction_psi,
        "thresholds": thresholds.to_json(),
        "features": features,
    }


def _unmonitored() -> ModelMonitoring:
    return {
        "verdict": DriftVerdict.UNMONITORED.value,
        "rows": 0,
        "rows_rejected": 0,
        "last_row_age_s": None,
        "prediction_psi": None,
        "thresholds": CONVENTION.to_json(),
        "features": {},
    }


def monitoring_report(monitor: BundleMonitor, now: float | None = None) -> MonitoringReport:
    """The full report of one bundle's models (folds the queues first)."""
    monitor.fold_all()
    at = time.monotonic() if now is None else now
    stats = _Columns.of(monitor)
    models: dict[str, ModelMonitoring] = {}
    first = 0
    for name, model in monitor.models.items():
        models[name] = _model(monitor, model, stats, first, at)
        first += len(model.features) + (model.prediction_window is not None)
    models.update({name: _unmonitored() for name in monitor.unmonitored})
    return {
        "enabled": monitor.config.enabled,
        "window_rows": monitor.config.window_rows,
        "min_rows": monitor.config.min_rows,
        "models": dict(sorted(models.items())),
    }


def _count(models: Iterable[ModelMonitoring], verdict: DriftVerdict) -> int:
    return sum(1 for m in models if m["verdict"] == verdict.value)


def monitoring_summary(report: MonitoringReport, reasons: Iterable[str] = ()) -> MonitoringSummary:
    """One line for `/v2` metadata, e.g. "8 models: 1 drifting (pump-wear-01d), 7 healthy"."""
    models = report["models"]
    drifting = sorted(n for n, m in models.items() if m["verdict"] == DriftVerdict.DRIFTING.value)
    counts = {v: _count(models.values(), v) for v in DriftVerdict}
    if not report["enabled"]:
        line = "monitoring off"
    elif counts[DriftVerdict.UNMONITORED] == len(models):
        why = sorted(set(reasons))
        line = f"{len(models)} models unmonitored" + (f": {why[0]}" if why else "")
    else:
        parts = []
        if drifting:
            named = ", ".join(drifting[:3]) + (", ..." if len(drifting) > 3 else "")
            parts.append(f"{len(drifting)} drifting ({named})")
        for verdict, words in (
            (DriftVerdict.HEALTHY, "healthy"),
            (DriftVerdict.INSUFFICIENT_DATA, f"insufficient data (< {report['min_rows']} rows)"),
            (DriftVerdict.UNMONITORED, "unmonitored"),
        ):
            if counts[verdict]:
                parts.append(f"{counts[verdict]} {words}")
        line = f"{len(models)} models: " + ", ".join(parts)
    return {
        "summary": line,
        "models_drifting": counts[DriftVerdict.DRIFTING],
        "models_insufficient_data": counts[DriftVerdict.INSUFFICIENT_DATA],
        "models_unmonitored": counts[DriftVerdict.UNMONITORED],
    }
