"""One serving bundle's monitor: where each model's rows and predictions are counted.

The request path only hands arrays over (`observe_model`, `observe_well`, `observe_refused`):
they are queued per model, and folded into the windows in batches, vectorised, when a model's
queue reaches FOLD_ROWS rows or someone reads (a report, a scrape). So a single-row request
costs a list append, and the queue is bounded: memory per model stays constant whatever the
traffic. Columns: each monitored model owns one window column per input feature and one for
its prediction (the positive-class probability, or a regressor's value), binned on the
bundle's reference (never on live data). A bundle without reference statistics, or a model
whose inputs the reference does not describe, serves unmonitored and says why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from model_runtime.manifest import BundleManifest, HistogramStatistics, ModelEntry
from model_runtime.monitoring.bins import ReferenceBins
from model_runtime.monitoring.config import MonitoringConfig
from model_runtime.monitoring.thresholds import CONVENTION, PsiThresholds, calibrate
from model_runtime.monitoring.window import ColumnWindows
from runtime_contract.monitoring import ThresholdSource

IntArray = npt.NDArray[np.intp]
POSITIVE_CLASS = 1
FOLD_ROWS = 256


def prediction_output(entry: ModelEntry) -> str | None:
    """The reference key of the prediction a model is monitored on, if it has one."""
    if entry.task == "regression":
        return "value"
    return f"probabilities[{POSITIVE_CLASS}]" if POSITIVE_CLASS in entry.classes else None


@dataclass(frozen=True)
class ModelColumns:
    """Where one monitored model lives in the bundle's windows."""

    name: str
    features: tuple[str, ...]
    feature_columns: IntArray
    feature_bins: ReferenceBins
    prediction: str | None  # the reference output key, e.g. "probabilities[1]"
    prediction_column: int | None
    prediction_bins: ReferenceBins | None
    prediction_index: int  # the positive class's column in `probabilities`
    thresholds: PsiThresholds


@dataclass
class ModelTraffic:
    """What arrived for one model: queued arrays, rows rejected, when the last row came."""

    queued_features: list[npt.NDArray[Any]] = field(default_factory=list)
    queued_predictions: list[npt.NDArray[Any]] = field(default_factory=list)
    queued_rows: int = 0
    rows_rejected: int = 0
    rows_seen: int = 0
    last_row_at: float | None = None


def _feature_names(manifest: BundleManifest, entry: ModelEntry) -> tuple[str, ...]:
    return tuple(entry.features or manifest.provenance.features)


def _unmonitored_reason(manifest: BundleManifest, entry: ModelEntry) -> str | None:
    reference = manifest.reference
    if reference is None:
        return "the bundle carries no reference statistics"
    spec = entry.inputs[0]
    names = _feature_names(manifest, entry)
    if len(entry.inputs) != 1 or len(spec.shape) != 2 or spec.shape[1] != len(names):
        return f"input {spec.name!r} {spec.shape} is not one row of its {len(names)} features"
    unknown = [n for n in names if n not in reference.features]
    if unknown:
        return f"the reference statistics do not describe feature {unknown[0]!r}"
    return None


class BundleMonitor:
    """Windows, thresholds and traffic of every model of one bundle."""

    def __init__(self, manifest: BundleManifest, config: MonitoringConfig) -> None:
        self.config = config
        self.unmonitored: dict[str, str] = {}
        self.models: dict[str, ModelColumns] = {}
        histograms: list[HistogramStatistics] = []
        layouts: list[
            tuple[ModelEntry, tuple[str, ...], list[HistogramStatistics], str | None]
        ] = []
        predicted: dict[str, HistogramStatistics] = {}
        for entry in manifest.models:
            reason = _unmonitored_reason(manifest, entry)
            if reason is not None or not config.enabled or manifest.reference is None:
                self.unmonitored[entry.name] = reason or "monitoring is off"
                continue
            names = _feature_names(manifest, entry)
            feature_histograms = [manifest.reference.features[n] for n in names]
            prediction = prediction_output(entry)
            outputs = entry.prediction_reference.outputs if entry.prediction_reference else {}
            histograms.extend(feature_histograms)
            if prediction is not None and prediction in outputs:
                predicted[entry.name] = outputs[prediction]
                histograms.append(outputs[prediction])
            else:
                prediction = None
            layouts.append((entry, names, feature_histograms, prediction))
        bins = ReferenceBins.of(histograms)
        self.slots = bins.slots
        self.windows = ColumnWindows(len(histograms), max(config.window_rows, 1), bins.slots)
        bundle_thresholds = manifest.reference.drift_thresholds if manifest.reference else None
        column = 0
        for entry, names, feature_histograms, prediction in layouts:
            features = np.arange(column, column + len(names), dtype=np.intp)
            column += len(names)
            feature_bins = ReferenceBins.of(feature_histograms, slots=bins.slots)
            prediction_bins = None
            prediction_column = None
            own = list(feature_histograms)
            if prediction is not None:
                own.append(predicted[entry.name])
                prediction_bins = ReferenceBins.of([predicted[entry.name]], slots=bins.slots)
                prediction_column = column
                column += 1
            if bundle_thresholds is not None:
                thresholds = PsiThresholds(
                    bundle_thresholds.warn, bundle_thresholds.drift, ThresholdSource.BUNDLE
                )
            elif config.thresholds is ThresholdSource.CALIBRATED:
                thresholds = calibrate(ReferenceBins.of(own), config.window_rows)
            else:
                thresholds = CONVENTION
            self.models[entry.name] = ModelColumns(
                name=entry.name,
                features=names,
                feature_columns=features,
                feature_bins=feature_bins,
                prediction=prediction,
                prediction_column=prediction_column,
                prediction_bins=prediction_bins,
                prediction_index=(
                    entry.classes.index(POSITIVE_CLASS) if POSITIVE_CLASS in entry.classes else 0
                ),
                thresholds=thresholds,
            )
        self.traffic: dict[str, ModelTraffic] = {name: ModelTraffic() for name in self.models}
        self._lock = threading.Lock()

    # -- the request path: queue, fold when a queue is full -----------------------------------

    def observe_model(
        self, name: str, rows: npt.NDArray[Any], outputs: Mapping[str, npt.NDArray[Any]]
    ) -> None:
        """Rows a model scored and what it answered (its output tensors by name)."""
        columns = self.models.get(name)
        if columns is None:
            return
        self._queue(columns, rows, _prediction_values(columns, outputs, rows.shape[0]))

    def observe_well(
        self, rows: npt.NDArray[Any], predictions: Mapping[str, npt.NDArray[Any]]
    ) -> None:
        """Rows the well endpoint scored, and each model's prediction (one value per row)."""
        for name, values in predictions.items():
            columns = self.models.get(name)
            if columns is not None:
                self._queue(columns, rows, values if columns.prediction is not None else None)

    def observe_refused(self, name: str | None, rows: npt.NDArray[Any] | None, count: int) -> None:
        """A request refused for its values: rows holding NaN or Infinity still say what the
        well sends (missing, out of range) and are counted; unreadable ones are rejected."""
        targets = list(self.models.values()) if name is None else [self.models.get(name)]
        for columns in targets:
            if columns is None:
                continue
            if rows is not None:
                self._queue(columns, rows, None)
            else:
                self.traffic[columns.name].rows_rejected += count

    def _queue(
        self,
        columns: ModelColumns,
        rows: npt.NDArray[Any],
        predictions: npt.NDArray[Any] | None,
    ) -> None:
        traffic = self.traffic[columns.name]
        if (
            rows.ndim != 2
            or rows.shape[1] != len(columns.features)
            or rows.dtype.kind not in "biuf"
        ):
            traffic.rows_rejected += rows.shape[0] if rows.ndim else 1
            return
        with self._lock:
            traffic.queued_features.append(rows)
            if predictions is not None and predictions.shape[0] == rows.shape[0]:
                traffic.queued_predictions.append(predictions)
            traffic.queued_rows += rows.shape[0]
            traffic.rows_seen += rows.shape[0]
            traffic.last_row_at = time.monotonic()
            if traffic.queued_rows >= FOLD_ROWS:
                self._fold(columns, traffic)

    def _fold(self, columns: ModelColumns, traffic: ModelTraffic) -> None:
        """Move a model's queue into its windows (caller holds the lock)."""
        features, traffic.queued_features = traffic.queued_features, []
        predictions, traffic.queued_predictions = traffic.queued_predictions, []
        traffic.queued_rows = 0
        if features:
            values = features[0] if len(features) == 1 else np.concatenate(features)
            buckets = columns.feature_bins.bucket(values[-self.windows.capacity :])
            self.windows.add(columns.feature_columns, buckets)
        if predictions and columns.prediction_bins is not None:
            values = np.concatenate(predictions)[-self.windows.capacity :].reshape(-1, 1)
            column = np.array([columns.prediction_column], dtype=np.intp)
            self.windows.add(column, columns.prediction_bins.bucket(values))

    def fold_all(self) -> None:
        with self._lock:
            for name, columns in self.models.items():
                self._fold(columns, self.traffic[name])

    # -- reading ------------------------------------------------------------------------------

    def counts(self, columns: IntArray) -> IntArray:
        """Bucket counts of `columns` (fold first: `fold_all`)."""
        return self.windows.column_counts(columns)

    def rows_in_window(self, column: int) -> int:
        return int(self.windows.filled[column])


def _prediction_values(
    columns: ModelColumns, outputs: Mapping[str, npt.NDArray[Any]], rows: int
) -> npt.NDArray[Any] | None:
    """The monitored prediction, one value per row; None when the outputs do not hold it (a
    client asked for labels only) or do not have one value per row."""
    name = "value" if columns.prediction == "value" else "probabilities"
    output = outputs.get(name)
    if columns.prediction is None or output is None or rows == 0:
        return None
    array = np.asarray(output)
    if array.size % rows:
        return None
    index = 0 if name == "value" else columns.prediction_index
    table = array.reshape(rows, -1)
    return table[:, index] if index < table.shape[1] else None
