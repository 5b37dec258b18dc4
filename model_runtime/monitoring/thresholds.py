"""When a PSI means drift: the convention, a calibration on the reference, or the bundle's word.

The convention (credit scoring) is 0.1 to watch and 0.25 for a shift. But PSI on a finite
window is never 0 even when nothing changed: its null value grows with the bucket count and
shrinks with the rows (about (buckets - 1) / rows, the chi-square approximation). Calibration
measures that spread on the reference itself, as NannyML does over reference chunks: with only
the histogram at hand, it draws window-sized multinomial samples from the reference
frequencies (seeded, at load time), takes the PSI of each, and sets warn at mean + 2 sd and
drift at mean + 3 sd. While a window fills, a calibrated threshold scales by window / rows
(the null PSI's 1 / rows law), so a half-full window is not held to a full window's bar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_runtime.monitoring.bins import ReferenceBins
from model_runtime.monitoring.psi import psi
from runtime_contract.monitoring import Thresholds, ThresholdSource

CONVENTION_WARN = 0.1
CONVENTION_DRIFT = 0.25
CALIBRATION_DRAWS = 200
CALIBRATION_SEED = 15


@dataclass(frozen=True)
class PsiThresholds:
    warn: float
    drift: float
    source: ThresholdSource
    calibrated_rows: int | None = None  # the window size a calibrated threshold holds for

    def at(self, rows: int) -> PsiThresholds:
        """The thresholds for a window of `rows` rows."""
        if self.calibrated_rows is None or rows <= 0 or rows >= self.calibrated_rows:
            return self
        scale = self.calibrated_rows / rows
        return PsiThresholds(self.warn * scale, self.drift * scale, self.source)

    def to_json(self) -> Thresholds:
        return {"warn": self.warn, "drift": self.drift, "source": self.source.value}


CONVENTION = PsiThresholds(CONVENTION_WARN, CONVENTION_DRIFT, ThresholdSource.CONVENTION)


def calibrate(bins: ReferenceBins, window_rows: int, seed: int = CALIBRATION_SEED) -> PsiThresholds:
    """Thresholds from the null spread of PSI over `window_rows`-row draws of every column of
    `bins` (the largest over the columns, so no column alarms on sampling noise alone)."""
    rng = np.random.default_rng(seed)
    buckets = bins.edge_counts + 1
    warn = drift = 0.0
    for column in range(bins.reference.shape[0]):
        frequencies = bins.reference[column, : buckets[column]]
        if frequencies.sum() <= 0:
            continue  # no reference values: this column has no PSI to calibrate
        draws = rng.multinomial(window_rows, frequencies / frequencies.sum(), CALIBRATION_DRAWS)
        reference = np.broadcast_to(bins.reference[column, : buckets[column]], draws.shape)
        values = psi(draws, reference, np.full(CALIBRATION_DRAWS, buckets[column]))
        mean, spread = float(values.mean()), float(values.std())
        warn = max(warn, mean + 2 * spread)
        drift = max(drift, mean + 3 * spread)
    return PsiThresholds(warn, drift, ThresholdSource.CALIBRATED, calibrated_rows=window_rows)
