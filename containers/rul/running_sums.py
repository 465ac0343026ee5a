"""Running sums restarted at each unit, and the trailing-window statistics taken from them.

A unit's features must be a function of its own rows only, bit for bit: a served unit must get the same
prediction alone as with any other units in its request or micro-batch. Running sums over a whole frame,
differenced at a unit's start, do not give that: the difference of two large cumulative values carries
the rounding of every unit before it. So every running sum here starts from zero at each unit's first
row and adds that unit's rows in order (`unit_cumsum`). `window_statistics_at` is the one place the
trailing mean, standard deviation and slope are computed, for `rul.features.FeatureTransformer.tabular`
(every row) and the serving fast path (`rul.fast_path`, each unit's last row): the same floats both ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_EPS = float(np.finfo(np.float64).eps)


def unit_starts(units: np.ndarray) -> np.ndarray:
    """For rows sorted by unit: the index of each unit's first row (row 0 for no rows)."""
    return np.flatnonzero(np.r_[True, units[1:] != units[:-1]])


def unit_positions(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by unit: the row index where each row's unit starts, and the position within it."""
    starts = np.r_[True, units[1:] != units[:-1]]
    start_rows = np.maximum.accumulate(np.where(starts, np.arange(len(units)), 0))
    return start_rows, np.arange(len(units)) - start_rows


def unit_cumsum(values: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Running sums of the columns of `values` (rows sorted by unit) restarted at each unit: a row holds
    the sum of its unit's rows up to it, added in order from zero (float64)."""
    result = np.empty(values.shape, dtype=np.float64)
    starts = unit_starts(units)
    for start, end in zip(starts, np.r_[starts[1:], len(units)], strict=True):
        np.cumsum(values[start:end], axis=0, out=result[start:end])
    return result


@dataclass(frozen=True)
class RunningSums:
    """Per-unit running sums of x, x², t·x, t and t² for values x sorted by unit (t: a row's position in
    its unit), and each row's unit start row."""

    start_rows: np.ndarray
    positions: np.ndarray
    sums: dict[str, np.ndarray]

    @classmethod
    def of(cls, values: np.ndarray, units: np.ndarray) -> RunningSums:
        """The running sums of `values` (rows x columns, sorted by unit), all taken in one pass."""
        start_rows, positions = unit_positions(units)
        t = positions[:, None].astype(np.float64)
        width = values.shape[1]
        stacked = unit_cumsum(np.hstack([values, values**2, values * t, t, t**2]), units)
        sums = {
            "x": stacked[:, :width],
            "xx": stacked[:, width : 2 * width],
            "tx": stacked[:, 2 * width : 3 * width],
            "t": stacked[:, -2:-1],
            "tt": stacked[:, -1:],
        }
        return cls(start_rows, positions, sums)

    def window(self, key: str, at: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sum of `key` over each unit's rows `first` to `at` (`first`: widths x rows), and the running
        sum before `first` that was subtracted (0, subtracting nothing, when `first` starts the unit)."""
        cumulative = self.sums[key]
        before = np.where((first > self.start_rows[at])[..., None], cumulative[first - 1], 0.0)
        return cumulative[at][None] - before, before


def window_statistics_at(
    running: RunningSums, at: np.ndarray, widths: Sequence[int]
) -> dict[str, np.ndarray]:
    """Trailing mean, standard deviation and least-squares slope (per cycle) over the last `widths` cycles
    of the unit (fewer at its start), at rows `at`: arrays of shape (widths, rows, columns).

    A window's variance (mean of squares less squared mean) is 0 when it is within the rounding error of
    the running sums of squares it is taken from: each of a running sum's `terms` additions rounds by at
    most eps/2 of the sum (Higham, Accuracy and Stability of Numerical Algorithms, section 4.2), so
    a smaller variance cannot be told from 0, and a constant window gets a standard deviation of exactly 0.
    Such a window's slope is 0 too (a covariance is at most the product of the standard deviations).
    """
    first = np.maximum(at[None, :] - np.asarray(widths)[:, None] + 1, running.start_rows[at][None, :])
    n = (at[None, :] - first + 1)[..., None].astype(np.float64)
    sum_x, _ = running.window("x", at, first)
    sum_xx, before_xx = running.window("xx", at, first)
    sum_tx, _ = running.window("tx", at, first)
    sum_t, _ = running.window("t", at, first)
    sum_tt, _ = running.window("tt", at, first)
    mean = sum_x / n
    variance = sum_xx / n - mean**2
    terms = (running.positions[at] + 1)[None, :, None]
    rounding = terms * _EPS * (running.sums["xx"][at][None] + before_xx) / n
    varies = variance > rounding
    std = np.sqrt(np.where(varies, variance, 0.0))
    denominator = n * sum_tt - sum_t**2
    slope = np.divide(
        n * sum_tx - sum_t * sum_x, denominator, out=np.zeros_like(sum_x), where=varies & (denominator > 0)
    )
    return {"mean": mean, "std": std, "slope": slope}
