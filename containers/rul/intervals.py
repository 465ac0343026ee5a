"""Prediction intervals for the RUL: split-conformal residuals of held-out whole units, binned by prediction.

A model is fitted on the training units only; the held-out (validation) units are cut like the official
test set, several seeded cuts each, and the residuals `true RUL - predicted RUL` at the cuts are kept,
sorted, in bins of the predicted RUL (Mondrian conformal prediction: errors grow with the predicted RUL,
and a model capped at `rul_cap` cannot see how far beyond the cap a healthy unit's life runs, so one
width for all would be too wide near failure and too narrow near the cap). For a nominal level `1 - a`
the interval is `[prediction + q(a/2), prediction + q(1 - a/2)]` with the bin's finite-sample conformal
quantiles, the lower bound clipped at 0. Keeping the residuals (a few hundred numbers) rather than two
quantiles lets the served level be changed without refitting. `IntervalCalibration` round-trips through
the JSON of the model's metadata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rul.errors import ConfigurationError, ModelArtifactError

METHOD = "split-conformal, bins of predicted RUL"
MIN_PER_BIN = 50
MAX_BINS = 4


@dataclass(frozen=True)
class IntervalCalibration:
    """Sorted held-out residuals (true - predicted) per bin of predicted RUL; `edges` separate the bins."""

    edges: tuple[float, ...]
    residuals: tuple[tuple[float, ...], ...]
    units: int
    method: str = METHOD

    def bounds(self, predicted: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper RUL bounds of nominal coverage `level` around each prediction."""
        if not 0.0 < level < 1.0:
            raise ConfigurationError(f"interval level must lie in (0, 1), got {level}")
        predicted = np.asarray(predicted, dtype=np.float64)
        bins = np.searchsorted(np.asarray(self.edges), predicted, side="right")
        offsets = np.array([conformal_offsets(np.asarray(r), level) for r in self.residuals])
        lower = np.maximum(predicted + offsets[bins, 0], 0.0)
        upper = np.maximum(predicted + offsets[bins, 1], lower)
        return lower, upper

    def as_dict(self) -> dict:
        """The calibration as JSON-ready values, for the model metadata."""
        return {
            "method": self.method,
            "units": self.units,
            "edges": [float(edge) for edge in self.edges],
            "residuals": [[float(value) for value in block] for block in self.residuals],
        }

    @classmethod
    def from_dict(cls, values: dict) -> IntervalCalibration:
        """Rebuild a calibration from `as_dict`'s values; malformed values are a `ModelArtifactError`."""
        try:
            edges = tuple(float(edge) for edge in values["edges"])
            residuals = tuple(tuple(sorted(float(v) for v in block)) for block in values["residuals"])
            units = int(values["units"])
        except (KeyError, TypeError, ValueError) as error:
            raise ModelArtifactError(f"interval calibration is malformed: {error!r}") from None
        if len(residuals) != len(edges) + 1 or not all(residuals):
            raise ModelArtifactError(
                f"interval calibration has {len(edges)} edges for {len(residuals)} residual bins"
            )
        return cls(edges, residuals, units, str(values.get("method", METHOD)))


def conformal_offsets(sorted_residuals: np.ndarray, level: float) -> tuple[float, float]:
    """Finite-sample split-conformal quantiles of the residuals for a two-sided interval of `level`."""
    n = len(sorted_residuals)
    tail = (1.0 - level) / 2.0
    low_rank = max(math.floor(tail * (n + 1)), 1)
    high_rank = min(math.ceil((1.0 - tail) * (n + 1)), n)
    return float(sorted_residuals[low_rank - 1]), float(sorted_residuals[high_rank - 1])


def calibrate(
    predicted: np.ndarray, truth: np.ndarray, units: int, min_per_bin: int = MIN_PER_BIN
) -> IntervalCalibration:
    """Bin held-out residuals by predicted RUL: up to `MAX_BINS` quantile bins of `min_per_bin` or more."""
    predicted = np.asarray(predicted, dtype=np.float64)
    residuals = np.asarray(truth, dtype=np.float64) - predicted
    if len(residuals) < 2 or not np.isfinite(residuals).all():
        raise ConfigurationError(
            f"interval calibration needs at least 2 finite residuals, got {len(residuals)}"
        )
    count = int(min(MAX_BINS, max(1, len(residuals) // min_per_bin)))
    edges = np.unique(np.quantile(predicted, np.arange(1, count) / count)) if count > 1 else np.array([])
    bins = np.searchsorted(edges, predicted, side="right")
    blocks = [np.sort(residuals[bins == index]) for index in range(len(edges) + 1)]
    if any(len(block) == 0 for block in blocks):  # ties in the predictions: fall back to one bin
        edges, blocks = np.array([]), [np.sort(residuals)]
    return IntervalCalibration(
        tuple(float(edge) for edge in edges), tuple(tuple(block.tolist()) for block in blocks), units
    )


def coverage(truth: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of true values inside [lower, upper]."""
    truth = np.asarray(truth, dtype=np.float64)
    return float(np.mean((truth >= lower) & (truth <= upper)))
