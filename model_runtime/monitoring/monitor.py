"""One serving bundle's monitor: where each model's rows and predictions are counted.

The request path only hands arrays over (`observe_model`, `observe_well`, `observe_refused`):
they are queued (per model for `/infer`, their bytes appended to one buffer per model; once for
the whole-well endpoint, whose rows every model shares) and folded into the windows in
vectorised batches when a queue reaches FOLD_ROWS rows (WELL_FOLD_ROWS for the well's) or
someone reads (a report, a scrape). So a single-row request costs an identity test of its
dtypes, a comparison of its shapes and two appends (no PSI, no bucket, no object kept: those
are a fold's and a reader's; anything else is checked in full on a slower path), the queues
are bounded (past MAX_PENDING_ROWS a request folds its model's queue itself, so
memory per model stays constant whatever the traffic, and no row is dropped uncounted), and a
whole-well batch is bucketed once per distinct feature list, not once per model. A model owns two
windows: its features (one column each) and its prediction (the positive-class probability,
or a regressor's value), binned on the bundle's reference, never on live data. Rows within one
folded batch keep their order; batches from the two queues are folded in turn, so the window
of a model called both ways holds its last rows up to the order inside one batch. A bundle
without reference statistics, or a model whose input the reference does not describe, serves
unmonitored and says why.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from model_runtime.manifest import BundleManifest, HistogramStatistics, ModelEntry
from model_runtime.monitoring.bins import ReferenceBins
from model_runtime.monitoring.config import MonitoringConfig
from model_runtime.monitoring.sampling import RowBudget
from model_runtime.monitoring.thresholds import CONVENTION, PsiThresholds, calibrate
from model_runtime.monitoring.window import RowWindow, WindowBank
from runtime_contract.monitoring import ThresholdSource

IntArray = npt.NDArray[np.intp]
_monotonic = time.monotonic
POSITIVE_CLASS = 1
# Queued rows per model that make a fold due: a model's queue is its rows' bytes (28 bytes a
# row of 7 float32 features, 8 for two probabilities), so 1024 of them are 37 KB, and a fold's
# fixed cost (a few dozen numpy calls) is shared by 1024 requests.
FOLD_ROWS = 1024
MAX_PENDING_ROWS = 4 * FOLD_ROWS  # folded on the request path past this: memory stays bounded
# The whole-well queue holds each request's rows and prediction table (arrays, ~0.6 KB for one
# row of 100 models): fewer of them.
WELL_FOLD_ROWS = 256
WELL_MAX_PENDING_ROWS = 4 * WELL_FOLD_ROWS
MAX_CACHED_MODEL_LISTS = 16  # distinct `models` lists of well requests whose bins are kept


def prediction_output(entry: ModelEntry) -> str | None:
    """The reference key of the prediction a model is monitored on, if it has one."""
    if entry.task == "regression":
        return "value"
    return f"probabilities[{POSITIVE_CLASS}]" if POSITIVE_CLASS in entry.classes else None


@dataclass
class ModelTraffic:
    """What arrived for one model: rows rejected, rows seen, when the last row came."""

    rows_rejected: int = 0
    rows_seen: int = 0
    last_row_at: float | None = None


@dataclass
class ModelWindows:
    """One monitored model: its features' and prediction's bins, windows and thresholds."""

    name: str
    features: tuple[str, ...]
    feature_bins: ReferenceBins
    feature_window: RowWindow
    prediction: str | None  # the reference output key, e.g. "probabilities[1]"
    prediction_bins: ReferenceBins | None
    prediction_window: RowWindow | None
    prediction_index: int  # the positive class's column in `probabilities`
    thresholds: PsiThresholds
    output: str  # the output tensor the prediction is read from: "probabilities" or "value"
    feature_slot: int  # the feature window's place in the monitor's feature bank
    prediction_slot: int  # the prediction window's in the prediction bank (-1: none)
    traffic: ModelTraffic = field(default_factory=ModelTraffic)
    # The request path's queue, in arrival order: each request's rows appended as bytes (`lane.rows`
    # dtype, `width` values a row) to one buffer, and for the scored ones its output (`lane.outputs`
    # dtype, `lane.output_values` a row) to another. Bytes, not the arrays: a request's arrays are
    # freed with it, a buffer holds exactly its rows' values (no object per request), and a fold
    # takes the first n bytes and deletes them (each one step under the GIL), so bytes appended
    # meanwhile stay queued.
    row_bytes: bytearray = field(default_factory=bytearray)
    output_bytes: bytearray = field(default_factory=bytearray)
    lane: QueueLane | None = None  # the dtypes and sizes of the queue, from its first entry
    budget: RowBudget | None = None  # None: every /infer row is binned
    width: int = field(init=False)  # columns of a row: len(features)
    # The request path's cache: the last `output_names` seen (by identity: the data plane hands
    # the session's own tuple) and the monitored output's index in it (-1: not asked for, or no
    # prediction window).
    seen_outputs: tuple[Sequence[str] | None, int] = (None, -1)

    def __post_init__(self) -> None:
        self.width = len(self.features)

    @property
    def pending_rows(self) -> int:
        return len(self.row_bytes) // self.lane.row_size if self.lane is not None else 0

    def output_at(self, output_names: Sequence[str]) -> int:
        """The monitored output's index in `output_names` (-1: absent or not monitored),
        cached for the next request that hands the same sequence."""
        seen = self.seen_outputs
        if seen[0] is output_names:
            return seen[1]
        at = -1
        if self.prediction_window is not None and self.output in output_names:
            at = list(output_names).index(self.output)
        self.seen_outputs = (output_names, at)
        return at

    def queue(self, rows: npt.NDArray[Any], output: npt.NDArray[Any] | None) -> bool:
        """Queue `rows` and their output if they have the queue's dtypes and sizes (rows of
        the lane's dtype, which was readable, and of `width` columns are readable too)."""
        lane = self.lane
        dtype = rows.dtype  # `is`: the usual case and the cheap test; `==`: an equal copy
        if lane is None or rows.ndim != 2 or (dtype is not lane.rows and dtype != lane.rows):
            return False
        count = rows.shape[0]
        if rows.shape[1] != self.width:
            return False
        if output is not None and self.prediction_window is not None and count:
            if lane.outputs is None:  # the first scored rows: their output sets the lane's
                if output.size % count:
                    return False
                one = (1, *output.shape[1:]) if output.ndim and output.shape[0] == count else None
                lane = self.lane = QueueLane(
                    lane.rows, output.dtype, output.size // count, self.width, one
                )
            kind = output.dtype
            if output.size != count * lane.output_values or (
                kind is not lane.outputs and kind != lane.outputs
            ):
                return False
            _append(self.output_bytes, output)
        _append(self.row_bytes, rows)
        return True

    def fold(self) -> None:
        """Move the queued rows into the windows (caller holds the lock)."""
        lane = self.lane
        if lane is None:
            return
        rows = _dequeued(self.row_bytes, lane.rows).reshape(-1, self.width)
        predictions = None
        if lane.outputs is not None:  # (else none is queued yet)
            outputs = _dequeued(self.output_bytes, lane.outputs)
            if outputs.size and lane.output_values:
                predictions = _prediction_column(self, outputs.reshape(-1, lane.output_values))
        self._add(rows, predictions)

    def add_now(self, rows: npt.NDArray[Any], output: npt.NDArray[Any] | None) -> None:
        """Fold what is queued, then readable `rows` and their output of any dtype or shape
        (caller holds the lock): the windows keep the order the rows came in. Only for what
        the queue cannot hold: the data plane's rows and outputs always fit it."""
        self.fold()
        count = rows.shape[0]
        self._add(rows, None if output is None else _prediction_values(self, output, count))

    def _add(self, rows: npt.NDArray[Any], predictions: npt.NDArray[Any] | None) -> None:
        capacity = self.feature_window.capacity
        if rows.shape[0]:
            self.traffic.rows_seen += rows.shape[0]
            self.feature_window.add(self.feature_bins.bucket(rows[-capacity:]))
        if predictions is None or not predictions.shape[0]:
            return
        if self.prediction_bins is not None and self.prediction_window is not None:
            column = predictions[-capacity:].reshape(-1, 1)
            self.prediction_window.add(self.prediction_bins.bucket(column))


@dataclass(frozen=True)
class QueueLane:
    """What a model's queue holds: rows of one dtype, outputs of one dtype and size a row
    (set by the first rows, and the first output, the model is handed; the data plane's are
    always the model's input and output tensors)."""

    rows: np.dtype[Any]
    outputs: np.dtype[Any] | None  # None: outputs are not queued (no prediction window)
    output_values: int  # values a row in an output; 0 when not known yet
    width: int  # values a row
    # The shapes of one request's row and of its output: the request path's test.
    one_output: tuple[int, ...] | None = None  # None: not known yet
    one_row: tuple[int, int] = field(init=False)
    row_size: int = field(init=False)  # bytes a queued row
    fold_bytes: int = field(init=False)  # queued row bytes that make a fold due
    max_bytes: int = field(init=False)  # queued row bytes folded on the request path

    def __post_init__(self) -> None:
        row_size = max(self.rows.itemsize * self.width, 1)
        object.__setattr__(self, "one_row", (1, self.width))
        object.__setattr__(self, "row_size", row_size)
        object.__setattr__(self, "fold_bytes", FOLD_ROWS * row_size)
        object.__setattr__(self, "max_bytes", MAX_PENDING_ROWS * row_size)


def _append(buffer: bytearray, array: npt.NDArray[Any]) -> None:
    """`array`'s values in C order, appended (one copy; a copy more if it is not contiguous)."""
    try:
        buffer.extend(array)  # ndarrays are buffers
    except (BufferError, TypeError, ValueError):  # not C-contiguous (TypeError in 3.11)
        buffer.extend(array.tobytes())


def _dequeued(buffer: bytearray, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """The first len(buffer) bytes of `buffer`, removed from it, as one flat array."""
    taken = len(buffer)
    joined = buffer[:taken]  # a copy, which the array owns
    del buffer[:taken]
    return np.frombuffer(joined, dtype)


class WellSegment:
    """The queued whole-well requests that named one model list (None: rows refused before
    scoring), rows of one dtype, in arrival order: their rows' bytes, and the predictions of
    those scored one value a model a row as float64 (rows, models) in one `array`. No object
    per request; a fold takes what is there and deletes it (each one step under the GIL), so
    what is appended meanwhile stays queued."""

    __slots__ = (
        "budget",
        "dtype",
        "last_row_at",
        "names",
        "predictions",
        "rows",
        "skipped",
        "width",
    )

    def __init__(
        self,
        names: tuple[str, ...] | None,
        dtype: np.dtype[Any],
        width: int,
        budget: RowBudget | None = None,
    ) -> None:
        self.names = names
        self.dtype = dtype
        self.width = width
        self.rows = bytearray()
        self.predictions = array("d")
        self.last_row_at = 0.0
        self.budget = budget  # None: every row is binned
        self.skipped = False  # rows arrived and were not queued since the last fold

    def queue(
        self, rows: npt.NDArray[Any], predictions: Mapping[str, npt.NDArray[Any]] | None
    ) -> None:
        """Rows of `dtype` and `width` columns, and their predictions."""
        if predictions is not None:
            _append_predictions(self.predictions, predictions, rows.shape[0])
        _append(self.rows, rows)
        self.last_row_at = _monotonic()

    def dequeue(self) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64] | None]:
        """The queued rows (n, width), and predictions (m, models) if any are named."""
        rows = _dequeued(self.rows, self.dtype).reshape(-1, self.width)
        if self.names is None:
            return rows, None
        models = len(self.names)
        taken = len(self.predictions)
        taken -= taken % models if models else taken  # whole rows only
        values = np.frombuffer(self.predictions[:taken], dtype=np.float64)  # a copy: its own
        del self.predictions[:taken]
        return rows, values.reshape(-1, models) if models else None


def _append_predictions(
    buffer: array[float], predictions: Mapping[str, npt.NDArray[Any]], rows: int
) -> None:
    """Each model's prediction of each row, row by row, as float64; nothing when they are not
    one value a model a row (or not numbers)."""
    start = len(buffer)
    if rows == 1:
        try:  # the usual request: one value each, read with item() (exact to float64)
            buffer.extend(map(_ITEM, predictions.values()))
            return
        except (TypeError, ValueError, OverflowError):
            del buffer[start:]
    table = _prediction_table(list(predictions.values()), rows)
    if table is None:
        return
    try:
        buffer.frombytes(np.ascontiguousarray(table.T, dtype=np.float64).tobytes())
    except (TypeError, ValueError, OverflowError):
        del buffer[start:]


_ITEM = np.ndarray.item


@dataclass(frozen=True)
class WellPlan:
    """The models of one model list and their place in the banks: what a fold touches."""

    models: tuple[ModelWindows, ...]  # monitored ones, in the list's order
    # Per distinct feature list: its bins, and the feature windows (in the feature bank) of
    # the models that read it, which take the same rows.
    feature_lists: tuple[tuple[ReferenceBins, tuple[int, ...]], ...]
    prediction_bins: ReferenceBins | None  # the bins of the models with a prediction window
    prediction_columns: IntArray  # their columns in a segment's predictions
    prediction_members: tuple[int, ...]  # their prediction windows in the prediction bank


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
        self.capacity = max(config.window_rows, 1)
        self.unmonitored: dict[str, str] = {}
        self.models: dict[str, ModelWindows] = {}
        reference = manifest.reference
        # One slot count for every column of the bundle, so counts stack into one matrix.
        self.slots = max(len(h.edges) for h in _all_histograms(manifest)) + 2
        monitored: list[tuple[ModelEntry, tuple[str, ...], list[HistogramStatistics]]] = []
        predicted_by_model: dict[str, HistogramStatistics] = {}
        for entry in manifest.models:
            reason = _unmonitored_reason(manifest, entry)
            if reason is not None or not config.enabled or reference is None:
                self.unmonitored[entry.name] = reason or "monitoring is off"
                continue
            names = _feature_names(manifest, entry)
            monitored.append((entry, names, [reference.features[n] for n in names]))
            prediction = prediction_output(entry)
            outputs = entry.prediction_reference.outputs if entry.prediction_reference else {}
            predicted = outputs.get(prediction) if prediction is not None else None
            if predicted is not None:
                predicted_by_model[entry.name] = predicted
        # Every model's feature window is a block of one bank, every prediction window one
        # column of another: a whole-well batch is added to all of them in one pass each.
        self.feature_bank = WindowBank(
            [len(names) for _, names, _ in monitored], self.capacity, self.slots
        )
        self.prediction_bank = WindowBank([1] * len(predicted_by_model), self.capacity, self.slots)
        columns: list[HistogramStatistics] = []  # every window column, model by model
        order: list[int] = []  # where each of them is in the banks' counts, stacked
        features_total = sum(self.feature_bank.widths)
        predicting: list[ModelWindows] = []
        for slot, (entry, names, feature_histograms) in enumerate(monitored):
            predicted = predicted_by_model.get(entry.name)
            own = feature_histograms + ([predicted] if predicted is not None else [])
            columns.extend(own)
            start = self.feature_bank.starts[slot]
            order.extend(range(start, start + len(names)))
            prediction_slot = len(predicting) if predicted is not None else -1
            if predicted is not None:
                order.append(features_total + prediction_slot)
            model = self._model_windows(
                entry, names, feature_histograms, predicted, own, manifest, slot, prediction_slot
            )
            model.budget = self._row_budget()
            self.models[entry.name] = model
            if predicted is not None:
                predicting.append(model)
        self._column_order = np.array(order, dtype=np.intp)
        # Every column's bins, in the order of `column_counts`: the report's PSI in one call.
        self.bins = ReferenceBins.of(columns, self.slots)
        # The whole-well queue: one segment per model list (and row dtype) of the requests.
        self.well_segments: dict[tuple[tuple[str, ...] | None, np.dtype[Any]], WellSegment] = {}
        self._segment: WellSegment | None = None  # the last request's
        self.well_queued_rows = 0
        self.well_width = max((len(m.features) for m in self.models.values()), default=0)
        self.prediction_rows = {m.name: row for row, m in enumerate(predicting)}
        self.prediction_bins = ReferenceBins.of(
            [predicted_by_model[m.name] for m in predicting], self.slots
        )
        self._plans: dict[tuple[str, ...] | None, WellPlan] = {}
        self._lock = threading.Lock()
        self._fold_requested = False

    def _model_windows(
        self,
        entry: ModelEntry,
        names: tuple[str, ...],
        feature_histograms: list[HistogramStatistics],
        predicted: HistogramStatistics | None,
        own: list[HistogramStatistics],
        manifest: BundleManifest,
        feature_slot: int,
        prediction_slot: int,
    ) -> ModelWindows:
        config = self.config
        bundle = manifest.reference.drift_thresholds if manifest.reference else None
        if bundle is not None:
            thresholds = PsiThresholds(bundle.warn, bundle.drift, ThresholdSource.BUNDLE)
        elif config.thresholds is ThresholdSource.CALIBRATED:
            thresholds = calibrate(ReferenceBins.of(own), config.window_rows)
        else:
            thresholds = CONVENTION
        slots = self.slots
        feature_bins = ReferenceBins.of(feature_histograms, slots)
        prediction_bins = None if predicted is None else ReferenceBins.of([predicted], slots)
        return ModelWindows(
            name=entry.name,
            features=names,
            feature_bins=feature_bins,
            feature_window=self.feature_bank.windows[feature_slot],
            prediction=None if predicted is None else prediction_output(entry),
            prediction_bins=prediction_bins,
            prediction_window=(
                None if predicted is None else self.prediction_bank.windows[prediction_slot]
            ),
            prediction_index=(
                entry.classes.index(POSITIVE_CLASS) if POSITIVE_CLASS in entry.classes else 0
            ),
            thresholds=thresholds,
            output="value" if prediction_output(entry) == "value" else "probabilities",
            feature_slot=feature_slot,
            prediction_slot=prediction_slot,
        )

    # -- the request path: queue, fold when a queue is full -----------------------------------

    def observe_model(
        self,
        name: str,
        rows: npt.NDArray[Any],
        output_names: Sequence[str],
        outputs: Sequence[npt.NDArray[Any]],
    ) -> bool:
        """Rows a model scored and what it answered (`outputs[i]` is output `output_names[i]`):
        queued, a handful of operations. True when a fold is due (`fold_all`, off the request's
        latency); past MAX_PENDING_ROWS the queue is folded here, so it stays bounded."""
        model = self.models.get(name)
        if model is None:
            return False
        seen = model.seen_outputs
        at = seen[1] if seen[0] is output_names else model.output_at(output_names)
        now = model.traffic.last_row_at = _monotonic()
        budget = model.budget
        if budget is not None and not budget.take(rows.shape[0] if rows.ndim else 1, now):
            return False
        lane = model.lane
        # The usual request, a handful of operations: one row, and its output, of the lane's
        # own dtypes (`is`) and shapes, appended. Anything else (several rows, the first ones,
        # another dtype) takes `_observe_slowly`, which checks it all.
        if lane is None or rows.dtype is not lane.rows or rows.shape != lane.one_row:
            return self._observe_slowly(model, rows, outputs[at] if at >= 0 else None)
        if at >= 0:
            output = outputs[at]
            if output.dtype is not lane.outputs or output.shape != lane.one_output:
                return self._observe_slowly(model, rows, output)
            _append(model.output_bytes, output)
        _append(model.row_bytes, rows)
        if len(model.row_bytes) < lane.fold_bytes:
            return False
        return self._fold_due(model)

    def _observe_slowly(
        self, model: ModelWindows, rows: npt.NDArray[Any], output: npt.NDArray[Any] | None
    ) -> bool:
        if not self._queue_or_add(model, rows, output):
            return False
        lane = model.lane
        if lane is None or len(model.row_bytes) < lane.fold_bytes:
            return False
        return self._fold_due(model)

    def _fold_due(self, model: ModelWindows) -> bool:
        """A model's queue reached FOLD_ROWS: True once (the caller schedules `fold_all`);
        past MAX_PENDING_ROWS it is folded here, so it stays bounded."""
        lane = model.lane
        if lane is not None and len(model.row_bytes) >= lane.max_bytes:
            with self._lock:
                model.fold()
            return False
        return self._fold_wanted()

    def _queue_or_add(
        self, model: ModelWindows, rows: npt.NDArray[Any], output: npt.NDArray[Any] | None
    ) -> bool:
        """Rows the request path's test did not take: queued if they fit the queue (the first
        rows set its dtype), folded in now behind the queue if readable, else rejected. True
        when queued."""
        if model.queue(rows, output):
            return True
        with self._lock:
            if not _readable(rows, model.width):
                model.traffic.rows_rejected += rows.shape[0] if rows.ndim else 1
                return False
            if model.lane is None:  # the first rows: they set the queue's dtype
                model.lane = QueueLane(rows.dtype, None, 0, model.width)
            if model.queue(rows, output):
                return True
            model.add_now(rows, output)  # behind what is queued: the order holds
            return False

    def observe_well(
        self, rows: npt.NDArray[Any], predictions: Mapping[str, npt.NDArray[Any]] | None
    ) -> bool:
        """Rows the well endpoint scored and each model's prediction (one value per row), or
        None: rows refused before scoring, counted in every model's features only. True when
        a fold is due, as for `observe_model`. Queued as bytes: the rows in their segment's
        buffer, the predictions as float64 values (for one row, one `item()` a model)."""
        if not self.models:
            return False
        if not _readable(rows, self.well_width):
            for name in self.models if predictions is None else predictions:
                if name in self.models:
                    self.models[name].traffic.rows_rejected += rows.shape[0] if rows.ndim else 1
            return False
        names = None if predictions is None else tuple(predictions)
        segment = self._segment
        dtype = rows.dtype
        # The usual request names the models the last one named (`==` on tuples of the same
        # strings is an identity test each), in the last one's dtype.
        if (
            segment is None
            or names != segment.names
            or (dtype is not segment.dtype and dtype != segment.dtype)
        ):
            segment = self._segment_for(names, dtype)
            if segment is None:  # one model list too many: counted now, not queued
                with self._lock:
                    self._fold_well()
                    once = WellSegment(names, dtype, rows.shape[1])
                    once.queue(rows, predictions)
                    self._fold_segment(once)
                return False
        budget = segment.budget
        if budget is not None:
            now = _monotonic()
            if not budget.take(rows.shape[0], now):
                segment.last_row_at, segment.skipped = now, True
                return False
        segment.queue(rows, predictions)
        self.well_queued_rows += rows.shape[0]
        if self.well_queued_rows >= WELL_MAX_PENDING_ROWS:
            with self._lock:
                self._fold_well()
        return self.well_queued_rows >= WELL_FOLD_ROWS and self._fold_wanted()

    def _row_budget(self) -> RowBudget | None:
        rate = self.config.max_rows_per_second
        return RowBudget(rate, _monotonic()) if rate > 0 else None

    def _segment_for(
        self, names: tuple[str, ...] | None, dtype: np.dtype[Any]
    ) -> WellSegment | None:
        """The queue segment of `names` and `dtype`, made on first use (None past
        MAX_CACHED_MODEL_LISTS of them). Segments are never dropped, so a request on another
        thread that holds one never appends where no fold looks."""
        key = (names, dtype)
        found = self.well_segments.get(key)
        if found is None:
            with self._lock:
                found = self.well_segments.get(key)
                if found is None:
                    if len(self.well_segments) >= MAX_CACHED_MODEL_LISTS:
                        return None
                    found = self.well_segments[key] = WellSegment(
                        names, dtype, self.well_width, self._row_budget()
                    )
        self._segment = found
        return found

    def _fold_wanted(self) -> bool:
        """True once per due fold: the caller schedules one `fold_all`, not one per request."""
        if self._fold_requested:
            return False
        self._fold_requested = True
        return True

    def observe_refused(self, name: str | None, rows: npt.NDArray[Any] | None, count: int) -> None:
        """A request refused for its values: rows holding NaN or Infinity still say what the
        well sends (missing, out of range) and are counted; unreadable ones are rejected."""
        if name is None and rows is not None:
            self.observe_well(rows, None)
        elif name is None:
            for model in self.models.values():
                model.traffic.rows_rejected += count
        elif name in self.models:
            if rows is not None:
                self.observe_model(name, rows, (), ())
            else:
                self.models[name].traffic.rows_rejected += count

    def _fold_well(self) -> None:
        """Move the whole-well queue into the windows (caller holds the lock), segment by
        segment (requests of one model list, in arrival order)."""
        self.well_queued_rows = 0
        for segment in list(self.well_segments.values()):
            if segment.rows or segment.predictions or segment.skipped:
                self._fold_segment(segment)

    def _fold_segment(self, segment: WellSegment) -> None:
        """One segment's rows into its models' windows: the features bucketed once per
        distinct feature list and added to the feature windows of its models as the same rows
        (counted once per group of identical windows), every model's predictions bucketed as
        one matrix and added in one pass (the prediction bank's)."""
        plan = self._plan(segment.names)
        rows, values = segment.dequeue()
        skipped, segment.skipped = segment.skipped, False
        if not plan.models:
            return
        seen = rows.shape[0]
        if seen or skipped:  # rows arrived: the models' last row is at least this recent
            at = segment.last_row_at
            for model in plan.models:
                traffic = model.traffic
                traffic.rows_seen += seen
                if traffic.last_row_at is None or traffic.last_row_at < at:
                    traffic.last_row_at = at
        if seen:
            rows = rows[-self.capacity :]
            ring = self.feature_bank.ring.dtype
            for bins, members in plan.feature_lists:
                self.feature_bank.add_same(members, bins.bucket(rows).astype(ring))
        if values is None or not values.shape[0] or plan.prediction_bins is None:
            return
        predicted = values[-self.capacity :, plan.prediction_columns]
        self.prediction_bank.add(plan.prediction_members, plan.prediction_bins.bucket(predicted))

    def _plan(self, names: tuple[str, ...] | None) -> WellPlan:
        """What folding a segment of `names` touches, kept per model list: a well's requests
        name the same models again and again."""
        found = self._plans.get(names)
        if found is None:
            found = self._make_plan(names)
            if len(self._plans) < MAX_CACHED_MODEL_LISTS:
                self._plans[names] = found
        return found

    def _make_plan(self, names: tuple[str, ...] | None) -> WellPlan:
        models = [
            self.models[n] for n in (self.models if names is None else names) if n in self.models
        ]
        feature_lists: dict[tuple[str, ...], tuple[ReferenceBins, list[int]]] = {}
        for model in models:
            feature_lists.setdefault(model.features, (model.feature_bins, []))[1].append(
                model.feature_slot
            )
        predicting = [m for m in models if m.prediction_window is not None]
        prediction_bins, columns = None, np.zeros(0, dtype=np.intp)
        if names is not None and predicting:
            which = np.array([self.prediction_rows[m.name] for m in predicting], dtype=np.intp)
            columns = np.array([names.index(m.name) for m in predicting], dtype=np.intp)
            prediction_bins = self.prediction_bins.take(which)
        return WellPlan(
            models=tuple(models),
            feature_lists=tuple((bins, tuple(members)) for bins, members in feature_lists.values()),
            prediction_bins=prediction_bins,
            prediction_columns=columns,
            prediction_members=tuple(m.prediction_slot for m in predicting),
        )

    def fold_all(self) -> None:
        with self._lock:
            self._fold_requested = False
            self._fold_well()
            for model in self.models.values():
                if model.row_bytes or model.output_bytes:
                    model.fold()

    # -- reading (after fold_all) ---------------------------------------------------------------

    def column_counts(self) -> IntArray:
        """Every column's bucket counts (columns, slots), in the order of `bins`."""
        stacked = np.concatenate([self.feature_bank.counts, self.prediction_bank.counts])
        found: IntArray = stacked[self._column_order]
        return found


def _all_histograms(manifest: BundleManifest) -> list[HistogramStatistics]:
    found = list(manifest.reference.features.values()) if manifest.reference else []
    for entry in manifest.models:
        if entry.prediction_reference is not None:
            found.extend(entry.prediction_reference.outputs.values())
    return found or [HistogramStatistics(count=0, missing_rate=0.0, edges=[], frequencies=[0.0])]


def _prediction_table(values: list[npt.NDArray[Any]], rows: int) -> npt.NDArray[Any] | None:
    """The models' predictions as one (models, rows) array, or None when one of them is not
    one value a row. One `concatenate` for them all (the data plane's are columns of each
    model's probabilities, strided views: joining their bytes would fail and copying each
    one apart costs 1.5 us a model)."""
    if set(map(_SIZE, values)) != {rows}:
        return None
    try:
        return np.concatenate(values).reshape(len(values), rows)
    except ValueError:  # not all of one shape, e.g. (rows,) and (rows, 1)
        return np.array([np.asarray(v, dtype=np.float64).reshape(-1) for v in values])


_SIZE = attrgetter("size")


def _readable(rows: npt.NDArray[Any], width: int) -> bool:
    return rows.ndim == 2 and rows.shape[1] == width and rows.dtype.kind in "biuf"


def _prediction_column(model: ModelWindows, table: npt.NDArray[Any]) -> npt.NDArray[Any] | None:
    index = 0 if model.prediction == "value" else model.prediction_index
    return table[:, index] if index < table.shape[1] else None


def _prediction_values(
    model: ModelWindows, output: npt.NDArray[Any], rows: int
) -> npt.NDArray[Any] | None:
    """The monitored prediction, one value per row, from the model's `value` or
    `probabilities` output; None when it does not have one value (or class) per row."""
    array = np.asarray(output)
    if rows == 0 or array.size % rows:
        return None
    return _prediction_column(model, array.reshape(rows, -1))
