"""The population stability index of live bucket counts against reference frequencies.

PSI = sum over buckets of (p - r) * ln(p / r), p the live and r the reference fraction. Every
term is >= 0 (p - r and ln(p / r) share their sign), so PSI >= 0, and 0 exactly when p = r.
Both distributions are smoothed by EPSILON per bucket before the logarithm: the reference's
overflow buckets are empty by construction, and live mass there (a sensor beyond anything seen
in training) must give a large, finite PSI rather than infinity. Missing values are not in the
PSI (they are reported as the missing rate): p is over a column's present values only.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

EPSILON = 1e-4

FloatArray = npt.NDArray[np.float64]


def psi(
    counts: npt.NDArray[np.intp], reference: FloatArray, buckets: npt.NDArray[np.intp]
) -> FloatArray:
    """PSI per row of `counts` (k, B) against `reference` (k, B); a row uses its first
    `buckets[row]` buckets. NaN for a row without any count (no value to compare)."""
    in_column = np.arange(counts.shape[1])[None, :] < buckets[:, None]
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        live = np.where(in_column, counts / total, 0.0)
    smoothing = 1.0 + EPSILON * buckets[:, None]
    p = np.where(in_column, (live + EPSILON) / smoothing, 1.0)
    r = np.where(in_column, (reference + EPSILON) / smoothing, 1.0)
    result: FloatArray = ((p - r) * np.log(p / r)).sum(axis=1)
    result[total[:, 0] == 0] = np.nan
    return result
