"""Functional monitoring's contract: the runtime's drift metrics, its JSON report, the verdicts.

The runtime computes these (model_runtime.monitoring), the chart's PodMonitor, alert rules and
dashboard name them, and the operator queries them through Prometheus: each name is defined
once, here. Every pod-level series below exists once per pod (the `model` / `feature` labels of
a worst-of series name its current argmax, so a pod never holds two of them), which keeps a
10,000-well fleet near 100,000 series; per-model and per-feature series are opt-in.

Scraped series gain the pod's `namespace`, `pod`, `well` and `fleet` labels from the PodMonitor's
relabelling (the pod labels `modelfleet.dev/well` and `modelfleet.dev/deployment`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, TypedDict

MONITORING_PATH: Final = "/v2/monitoring"
"""`GET`: the full per-model, per-feature report of one well (`MonitoringReport`)."""

METRIC_PREFIX: Final = "modelfleet_runtime_"

# Pod-level gauges (always exported while monitoring is on).
FEATURE_PSI_WORST: Final = "modelfleet_runtime_feature_psi_worst"
"""Largest feature PSI over the well's models with a verdict; labels `model`, `feature`."""
PREDICTION_PSI_WORST: Final = "modelfleet_runtime_prediction_psi_worst"
"""Largest prediction PSI over the well's models with a verdict; label `model`."""
MISSING_RATE_WORST: Final = "modelfleet_runtime_missing_rate_worst"
"""Largest per-feature missing rate in the window; labels `model`, `feature`."""
OUT_OF_RANGE_RATE_WORST: Final = "modelfleet_runtime_out_of_range_rate_worst"
"""Largest per-feature rate of values outside the reference range; labels `model`, `feature`."""
WINDOW_ROWS_MIN: Final = "modelfleet_runtime_window_rows_min"
"""Rows in the window of the monitored model that has fewest."""
LAST_ROW_AGE_SECONDS: Final = "modelfleet_runtime_last_row_age_seconds"
"""Seconds since the stalest monitored model last saw a row (+Inf before its first row)."""
MODELS: Final = "modelfleet_runtime_models"
"""Models by verdict; label `verdict` (a `DriftVerdict`), one series per verdict."""

BUNDLE_INFO: Final = "modelfleet_runtime_bundle_info"
"""The serving bundle (value 1); labels `digest`, `uri`, `version` (and the runtime's own `well`,
`exported_well` after relabelling). A bundle swap starts fresh windows, so a window series
scraped together with the new digest counts only the new bundle's rows."""

# Opt-in detail (small fleets): one series per model, or per model and feature.
MODEL_PREDICTION_PSI: Final = "modelfleet_runtime_model_prediction_psi"
FEATURE_PSI: Final = "modelfleet_runtime_feature_psi"
FEATURE_MISSING_RATE: Final = "modelfleet_runtime_feature_missing_rate"
FEATURE_OUT_OF_RANGE_RATE: Final = "modelfleet_runtime_feature_out_of_range_rate"
ROWS_REJECTED_TOTAL: Final = "modelfleet_runtime_monitoring_rows_rejected_total"
"""Rows the window could not count (wrong type, wrong width); label `model` only if opt-in."""


class DriftVerdict(StrEnum):
    """What a model's (or a feature's) window says about the data it sees."""

    HEALTHY = "healthy"
    DRIFTING = "drifting"
    INSUFFICIENT_DATA = "insufficient_data"
    """Fewer rows in the window than the minimum: never reported as drift or as healthy."""
    UNMONITORED = "unmonitored"
    """The bundle carries no reference statistics for this model: it serves, unmonitored."""


class ThresholdSource(StrEnum):
    CONVENTION = "convention"
    """The PSI convention: 0.1 (watch) and 0.25 (drift)."""
    CALIBRATED = "calibrated"
    """From the statistic's spread over reference-sized chunks of the reference itself."""
    BUNDLE = "bundle"
    """Set in the bundle's manifest."""


class Thresholds(TypedDict):
    warn: float
    drift: float
    source: str  # a ThresholdSource


class FeatureMonitoring(TypedDict):
    verdict: str  # a DriftVerdict
    psi: float | None
    missing_rate: float
    out_of_range_rate: float


class ModelMonitoring(TypedDict):
    verdict: str  # a DriftVerdict
    rows: int
    rows_rejected: int
    last_row_age_s: float | None
    prediction_psi: float | None
    thresholds: Thresholds
    features: dict[str, FeatureMonitoring]


class MonitoringReport(TypedDict):
    """`GET /v2/monitoring`."""

    enabled: bool
    window_rows: int
    min_rows: int
    models: dict[str, ModelMonitoring]


class MonitoringSummary(TypedDict):
    """The one-line summary in `GET /v2` server metadata (key `monitoring`)."""

    summary: str
    models_drifting: int
    models_insufficient_data: int
    models_unmonitored: int
