"""A faster route to the very same predictions for a served gbm model, and the rule for when it applies.

The reference path (`RulPredictor.predict_last`) computes the tabular features of every row of a request,
keeps each unit's last row, and asks each scikit-learn `HistGradientBoostingRegressor` member of the
`GbmEnsemble` to predict: one Python call and one OpenMP region per tree, about 20 us each, so a one-unit
prediction with the default model (3 members x 400 trees) spends most of its time calling trees, not
computing. This module gives the same answer with less work:

- `rul.serving_forest.CompiledForest` predicts every tree of the ensemble in a few numpy steps, with the
  same floats as the estimator.
- `last_row_features` evaluates the `rich` and `stats` feature sets at each unit's last row only, with
  `FeatureTransformer.tabular`'s own per-unit running sums and window arithmetic (`rul.running_sums`),
  every window width at once.
- `FastPredictor` works on the request's float table (`rul.serving_request.RequestRows`, or a frame's
  columns) and answers numpy columns, with no DataFrame on the way.

`FastPredictor.build` returns None, and the server keeps the reference path, for anything else: a deep
model, a feature set not in `FAST_FEATURE_SETS` (one added to `rul.features` later is not known here), a
member with another loss, categorical features or a preprocessor, or a compiled forest whose predictions
on probe rows differ in any bit from the estimator's. Requests (or batches of requests) larger than one
feature block (`rul.models.FEATURE_BLOCK_ROWS`), and a predictor whose `predict_last` or estimator
`predict` is overridden on the instance, also take the reference path (`FastPredictor.handles`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rul.data import COLUMNS, SETTING_COLUMNS
from rul.features import ewm
from rul.models import FEATURE_BLOCK_ROWS, GbmEnsemble, RulPredictor
from rul.running_sums import RunningSums, window_statistics_at
from rul.serving_forest import CompiledForest, compile_forest
from rul.serving_request import RequestRows

__all__ = ["FAST_FEATURE_SETS", "CompiledForest", "FastPredictor", "compile_forest", "last_row_features"]

FAST_FEATURE_SETS = ("rich", "stats")
_RICH_MEANS, _RICH_STDS, _RICH_SLOPES = (5, 10, 20, 30), (10, 30), (10, 30, 60)
_RICH_ALPHAS = (0.05, 0.1, 0.3)
_PROBE_ROWS = 64


def last_row_features(
    feature_set: str, window: int, values: np.ndarray, units: np.ndarray, cycles: np.ndarray
) -> np.ndarray:
    """`FeatureTransformer.tabular` of normalised `values` (one block sorted by unit), at each unit's last
    row only; `feature_set` is one of `FAST_FEATURE_SETS`."""
    at = np.flatnonzero(np.r_[units[1:] != units[:-1], True])
    running = RunningSums.of(values, units)
    columns = [cycles.astype(np.float64)[at, None], values[at]]
    if feature_set == "stats":
        stats = window_statistics_at(running, at, (window,))
        columns += [stats["mean"][0], stats["std"][0], stats["slope"][0]]
    elif feature_set == "rich":
        widths = (5, 10, 20, 30, 60)
        stats = window_statistics_at(running, at, widths)
        columns += [stats["mean"][widths.index(width)] for width in _RICH_MEANS]
        columns += [stats["std"][widths.index(width)] for width in _RICH_STDS]
        columns += [stats["slope"][widths.index(width)] for width in _RICH_SLOPES]
        columns += [ewm(values, units, alpha)[at] for alpha in _RICH_ALPHAS]
    else:
        raise ValueError(f"the fast path has no features for feature set {feature_set!r}")
    return np.hstack(columns).astype(np.float32)


def _probe_rows(forest: CompiledForest, seed: int = 0) -> np.ndarray:
    """Rows whose features sit on, just above or just below the trees' own split thresholds (float32,
    as the features are), so a probe takes both sides of many splits; a few values are missing (NaN)."""
    rng = np.random.default_rng(seed)
    internal = ~forest.is_leaf
    probes = rng.normal(size=(_PROBE_ROWS, forest.n_features))
    for column in range(forest.n_features):
        thresholds = forest.threshold[internal & (forest.feature == column)]
        if len(thresholds):
            picked = rng.choice(thresholds, _PROBE_ROWS) * (1 + rng.choice([-1e-6, 0.0, 1e-6], _PROBE_ROWS))
            probes[:, column] = picked
    probes[rng.random(probes.shape) < 0.02] = np.nan
    return probes.astype(np.float32)


@dataclass(frozen=True)
class FastPredictor:
    """`RulPredictor.predict_last` for gbm models with a feature set of `FAST_FEATURE_SETS`, cheaper."""

    predictor: RulPredictor
    forest: CompiledForest
    estimator: GbmEnsemble  # the one compiled

    @classmethod
    def build(cls, predictor: RulPredictor) -> FastPredictor | None:
        """The fast path of a loaded model, or None when the model must take the reference path."""
        if predictor.deep or predictor.transformer.feature_set not in FAST_FEATURE_SETS:
            return None
        forest = compile_forest(predictor.estimator)
        if forest is None or forest.n_features != len(predictor.transformer.feature_names):
            return None
        probes = _probe_rows(forest)
        if not np.array_equal(forest.predict(probes), predictor.estimator.predict(probes), equal_nan=True):
            return None
        return cls(predictor, forest, predictor.estimator)

    def handles(self, rows: int) -> bool:
        """Whether this path reproduces the reference for `rows` rows: one feature block at most, and the
        predictor still has the estimator compiled and the class's own `predict_last` and `predict` (an
        instance that overrides one, say a wrapper or an injected fault, is served by its own methods)."""
        predictor, estimator = self.predictor, self.predictor.estimator
        return (
            0 < rows <= FEATURE_BLOCK_ROWS
            and estimator is self.estimator
            and "predict_last" not in vars(predictor)
            and "predict" not in vars(estimator)
        )

    def predict_columns(self, rows: RequestRows | pd.DataFrame) -> dict[str, np.ndarray]:
        """The columns of the frame `RulPredictor.predict_last` gives, for a request's rows (any unit
        order; each unit's rows contiguous with increasing cycles, as `rul.serving_request` checks)."""
        return self._predict_table(_table(rows))

    def predict_last(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame `RulPredictor.predict_last` gives for a frame of `COLUMNS`."""
        return pd.DataFrame(self.predict_columns(frame))

    def predict_many(self, requests: list[RequestRows | pd.DataFrame]) -> list[dict[str, np.ndarray]] | None:
        """`predict_columns` of several requests at once (units renumbered apart, predicted together, split
        back and sorted by unit), or None when a request repeats a unit block (the reference path then
        answers)."""
        tables, originals, offset = [], [], 0
        for rows in requests:
            table = _table(rows, copy=True)
            starts = np.r_[True, table[1:, 0] != table[:-1, 0]]
            units = table[starts, 0].astype(np.int64)
            if len(np.unique(units)) != len(units):
                return None
            table[:, 0] = np.cumsum(starts) + offset  # pd.factorize's codes + offset + 1, as float
            tables.append(table)
            originals.append(units)
            offset += len(units)
        columns = self._predict_table(np.concatenate(tables))
        results, first = [], 0
        for units in originals:
            order = np.argsort(units, kind="stable")
            part = {name: values[first : first + len(units)][order] for name, values in columns.items()}
            part["unit"] = units[order]
            results.append(part)
            first += len(units)
        return results

    def _predict_table(self, table: np.ndarray) -> dict[str, np.ndarray]:
        """The columns of `predict_last`'s frame for a table of `COLUMNS`."""
        units, cycles = table[:, 0].astype(np.int64), table[:, 1].astype(np.int64)
        if len(table) > 1 and ((np.diff(units) < 0) | ((np.diff(units) == 0) & (np.diff(cycles) <= 0))).any():
            order = np.lexsort((cycles, units))
            table, units, cycles = table[order], units[order], cycles[order]
        transformer, hp = self.predictor.transformer, self.predictor.hyperparameters
        sensors = [COLUMNS.index(name) for name in transformer.sensors]
        settings = [COLUMNS.index(name) for name in SETTING_COLUMNS]
        assert transformer.normalizer is not None  # a fitted predictor's
        values = transformer.normalizer.transform(table[:, settings], table[:, sensors])
        features = last_row_features(transformer.feature_set, transformer.window, values, units, cycles)
        predicted = np.clip(self.forest.predict(features), 0.0, hp.rul_cap)
        last = np.r_[units[1:] != units[:-1], True]
        counts = np.diff(np.r_[np.flatnonzero(np.r_[True, last[:-1]]), len(units)])
        columns = {
            "unit": units[last],
            "predicted_rul": predicted,
            "cycles_used": np.minimum(counts, transformer.window),
            "padded": counts < transformer.window,
        }
        if self.predictor.calibration is not None:
            columns["rul_lower"], columns["rul_upper"] = self.predictor.calibration.bounds(
                predicted, hp.interval_level
            )
        return columns


def _table(rows: RequestRows | pd.DataFrame, copy: bool = False) -> np.ndarray:
    """A request's `COLUMNS` as one float64 array (selecting a frame's columns costs ~1 ms: skipped when
    they are in order)."""
    if isinstance(rows, RequestRows):
        return rows.values.copy() if copy else rows.values
    selected = rows if list(rows.columns) == COLUMNS else rows[COLUMNS]
    return selected.to_numpy(dtype=np.float64, copy=copy)
