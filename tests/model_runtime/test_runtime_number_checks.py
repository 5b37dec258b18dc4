"""The shortcut for ordinary float tensors never changes an answer.

`_well_inside_float32` lets a request skip the overflow guard and the finiteness check; it may
say "unsure" too often, never "safe" for data that would overflow the cast or hold NaN/inf.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from model_runtime.dataplane import _well_inside_float32

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-3.5e38, max_value=3.5e38),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.integers(min_value=-1000, max_value=1000),
)


@given(st.lists(values, max_size=30))
def test_safe_data_casts_to_finite_values_without_overflow(flat: list[Any]) -> None:
    if not _well_inside_float32(flat):
        return
    for dtype in (np.float32, np.float64):
        with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise"):
            warnings.simplefilter("error")
            array = np.array(flat, dtype=dtype)
        assert np.isfinite(array).all()


@given(st.lists(st.floats(min_value=-1e30, max_value=1e30), min_size=1, max_size=30))
def test_ordinary_sensor_values_take_the_shortcut(flat: list[float]) -> None:
    assert _well_inside_float32(flat)


def test_nan_or_infinity_anywhere_is_never_safe() -> None:
    for bad in (float("nan"), float("inf"), -float("inf"), 3.5e38, 10**400):
        for position in range(3):
            flat: list[Any] = [1.0, 2.0]
            flat.insert(position, bad)
            assert not _well_inside_float32(flat)
    assert not _well_inside_float32([])
