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

import numpy as np

from model_runtime.monitoring.monitor import BundleMonitor, ModelColumns
from model_runtime.monitoring.psi import psi
from model_runtime.monitoring.thresholds import CONVENTION
from runtime_contract.monitoring import (
    DriftVerdict,
    FeatureMonitoring,
    ModelMonitoring,
    MonitoringReport,
    MonitoringSummary,
)


def _model(monitor: BundleMonitor, columns: ModelColumns, now: float) -> ModelMonitoring:
    traffic = monitor.traffic[columns.name]
    rows = monitor.rows_in_window(int(columns.feature_columns[0]))
    enough = rows >= monitor.config.verdict_rows
    thresholds = columns.thresholds.at(rows)
    counts = monitor.counts(columns.feature_columns)
    bins = columns.feature_bins
    present = counts[:, : bins.missing_bucket]
    psis = psi(present, bins.reference, bins.edge_counts + 1)
    # No edges: every present value is out of range, and it is all in bucket 0.
    overflow = np.where(bins.edge_counts > 0, present[np.arange(len(present)), bins.edge_counts], 0)
    out_of_range = present[:, 0] + overflow
    features: dict[str, FeatureMonitoring] = {}
    drifting = False
    for index, feature in enumerate(columns.features):
        value = float(psis[index])
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
            "missing_rate": float(counts[index, bins.missing_bucket]) / rows if rows else 0.0,
            "out_of_range_rate": float(out_of_range[index]) / rows if rows else 0.0,
        }
    prediction_psi = None
    if columns.prediction_column is not None and columns.prediction_bins is not None:
        predicted = monitor.rows_in_window(columns.prediction_column)
        if predicted >= monitor.config.verdict_rows:
            p_bins = columns.prediction_bins
            p_counts = monitor.counts(np.array([columns.prediction_column], dtype=np.intp))
            value = float(
                psi(p_counts[:, : p_bins.missing_bucket], p_bins.reference, p_bins.edge_counts + 1)[
                    0
                ]
            )
            prediction_psi = None if math.isnan(value) else value
            drifting = drifting or (
                prediction_psi is not None
                and prediction_psi > columns.thresholds.at(predicted).drift
            )
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
    models = {name: _model(monitor, columns, at) for name, columns in monitor.models.items()}
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
