"""Two-sample tests and indices of the drift monitor (pure functions of numpy arrays).

- Two-sample Kolmogorov–Smirnov test (`scipy.stats.ks_2samp`, two-sided). Captured rows are not
  independent: a request carries 30 consecutive cycles of one unit, which share the unit's wear and
  offsets. Counting them as independent makes KS find "significant" differences in every clean batch (on
  synthetic data, 50 units x 30 cycles: most clean batches), so when the rows carry a unit column the
  p-value uses Kish's effective sample size n / (1 + (m - 1) ICC), m the mean rows per unit and ICC the
  feature's one-way ANOVA intraclass correlation within units, in the asymptotic distribution scipy uses
  (`kstwo`). The p-values of one batch's features are then adjusted for multiple testing, by default with
  Benjamini–Hochberg (Holm on request): when no feature drifted, BH's false discovery rate equals the
  family-wise error rate, so a clean batch raises a false alarm with probability at most `alpha`, while
  with real drift, which usually moves many sensors together, BH keeps more power than Holm.
- Population Stability Index sum((a - e) * ln(a / e)) over bins of the reference: its deciles (repeated
  quantiles merged) as right-closed edges, so equal values share a bin, plus a bin below the baseline
  minimum and one above the maximum, so out-of-range values always count. A bin empty on one side gets
  the share `PSI_EPSILON` = 1e-4 instead of 0 (the log would be infinite; one value in 1500 outside the
  baseline then adds about 0.004); bins empty on both sides add nothing. Severity: low < 0.1 <= medium <
  0.2 <= high.
- Near-constant features (the reference's most common value holds >= 95% of it, e.g. sensors 1, 5, 6,
  10, 16, 18, 19 within one operating condition) would get all deciles on that value, so PSI uses the bins
  below / at / above the mode instead (a change in the share of sensor 6's dips shows up). KS stays: with
  ties its p-value is conservative (it rejects less often than `alpha`), never anti-conservative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from rul.errors import ConfigurationError

CORRECTIONS = {"bh": "benjamini-hochberg", "holm": "holm"}
DEFAULT_CORRECTION = "bh"
PSI_BINS = 10
PSI_EPSILON = 1e-4
PSI_MEDIUM = 0.1
PSI_HIGH = 0.2
NEAR_CONSTANT_SHARE = 0.95
LOW, MEDIUM, HIGH = "low", "medium", "high"


def ks_test(
    reference: np.ndarray, current: np.ndarray, effective_rows: float | None = None
) -> tuple[float, float]:
    """Two-sided two-sample KS statistic and p-value.

    With `effective_rows` (fewer than the rows of `current`), the p-value is the asymptotic one scipy's
    `method="asymp"` computes, `kstwo.sf(D, round(n*m/(n+m)))`, with n the effective number of rows.
    """
    result = stats.ks_2samp(reference, current, alternative="two-sided", method="auto")
    statistic = float(result.statistic)
    if effective_rows is None or effective_rows >= current.size:
        return statistic, float(result.pvalue)
    m = reference.size
    en = max(1, round(effective_rows * m / (effective_rows + m)))
    return statistic, float(np.clip(stats.kstwo.sf(statistic, en), 0.0, 1.0))


def intraclass_correlation(values: np.ndarray, groups: np.ndarray) -> float:
    """One-way ANOVA intraclass correlation of `values` within `groups`, clipped to [0, 1].

    ICC = (MSB - MSW) / (MSB + (n0 - 1) MSW), with n0 the size-adjusted mean group size; 0 when there is a
    single group, one row per group or no variance.
    """
    frame = pd.DataFrame({"x": values, "g": groups})
    sizes = frame.groupby("g")["x"].size()
    k, n = sizes.size, len(frame)
    if k < 2 or n <= k:
        return 0.0
    means = frame.groupby("g")["x"].transform("mean")
    msb = float((sizes * (frame.groupby("g")["x"].mean() - frame["x"].mean()) ** 2).sum()) / (k - 1)
    msw = float(((frame["x"] - means) ** 2).sum()) / (n - k)
    n0 = (n - float((sizes**2).sum()) / n) / (k - 1)
    denominator = msb + (n0 - 1) * msw
    if denominator <= 0:
        return 0.0
    return float(np.clip((msb - msw) / denominator, 0.0, 1.0))


def effective_rows(values: np.ndarray, groups: np.ndarray | None) -> float:
    """Kish's effective sample size n / (1 + (mean group size - 1) * ICC); n without groups."""
    if groups is None:
        return float(values.size)
    icc = intraclass_correlation(values, groups)
    mean_size = values.size / max(1, len(np.unique(groups)))
    return float(values.size / (1.0 + (mean_size - 1.0) * icc))


def adjust_pvalues(pvalues: Sequence[float], correction: str = DEFAULT_CORRECTION) -> np.ndarray:
    """Multiple-testing adjusted p-values: `bh` (Benjamini–Hochberg step-up) or `holm` (step-down)."""
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)) or not np.all(np.isfinite(p)):
        raise ConfigurationError(f"p-values must be a 1-D list of numbers in [0, 1], got {list(p)}")
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if correction == "bh":
        scaled = ranked * m / np.arange(1, m + 1)
        adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    elif correction == "holm":
        scaled = ranked * (m - np.arange(m))
        adjusted = np.maximum.accumulate(scaled)
    else:
        raise ConfigurationError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    return result


def mode_share(values: np.ndarray) -> tuple[float, float]:
    """The most common value and the share of the values equal to it."""
    uniques, counts = np.unique(values, return_counts=True)
    top = int(np.argmax(counts))
    return float(uniques[top]), float(counts[top] / values.size)


@dataclass(frozen=True)
class Bins:
    """PSI bins of one feature: `edges` are right-closed inner edges between the baseline min and max."""

    low: float
    high: float
    edges: np.ndarray
    mode: float | None = None

    @property
    def count(self) -> int:
        """How many bins there are, the below-min and above-max bins included."""
        return int(self.edges.size) + 2 if self.mode is None else 5

    def assign(self, values: np.ndarray) -> np.ndarray:
        """Bin index of each value: 0 below the baseline min, count-1 above its max."""
        if self.mode is None:
            inner = np.searchsorted(self.edges, values, side="left") + 1
        else:
            inner = np.where(values < self.mode, 1, np.where(values == self.mode, 2, 3))
        return np.where(values < self.low, 0, np.where(values > self.high, self.count - 1, inner))


def psi_bins(
    reference: np.ndarray, bins: int = PSI_BINS, near_constant_share: float = NEAR_CONSTANT_SHARE
) -> Bins:
    """Quantile bins of `reference`, or below/at/above-mode bins when the mode holds >= the share."""
    if bins < 2:
        raise ConfigurationError(f"PSI needs at least 2 bins, got {bins}")
    low, high = float(reference.min()), float(reference.max())
    mode, share = mode_share(reference)
    if share >= near_constant_share:
        return Bins(low, high, np.array([]), mode)
    quantiles = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return Bins(low, high, np.unique(np.append(quantiles, high)))


def bin_shares(bins: Bins, values: np.ndarray) -> np.ndarray:
    """The share of `values` that falls in each of the PSI `bins`."""
    return np.bincount(bins.assign(values), minlength=bins.count) / values.size


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """PSI of two share vectors; a share of 0 becomes `epsilon`, bins empty on both sides add nothing."""
    both_empty = (expected == 0) & (actual == 0)
    e = np.where(expected == 0, epsilon, expected)[~both_empty]
    a = np.where(actual == 0, epsilon, actual)[~both_empty]
    return float(np.sum((a - e) * np.log(a / e)))


def severity(value: float) -> str:
    """low < 0.1 <= medium < 0.2 <= high."""
    if value >= PSI_HIGH:
        return HIGH
    if value >= PSI_MEDIUM:
        return MEDIUM
    return LOW
