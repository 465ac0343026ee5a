"""Evaluation metrics for RUL predictions, in the shapes the jobs report them.

Point metrics (RMSE, MAE, R², the asymmetric PHM08 score summed over the units, and the same score per
100 units, which does not grow with the number of test units) take one true and one predicted RUL per engine
unit; `evaluation_report` bundles them with bootstrap standard deviations, the same metrics against truth
clipped at the training cap, the error per true-RUL bucket and the per-unit predictions, in the JSON
shape of a SageMaker Model Monitor model-quality (regression) report. `format_metrics` prints the
`prefix:name=value` lines that a SageMaker tuner's metric regex (`metric_regex`) reads back from the log.
Inputs are checked by `validate_predictions`, which raises `DataFormatError` naming the problem.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from rul.errors import ConfigurationError, DataFormatError

Metric = Callable[[np.ndarray, np.ndarray], float]

DEFAULT_BUCKETS: tuple[float, ...] = (0, 25, 50, 75, 100, 125, math.inf)
METRIC_NAMES = ("rmse", "mae", "r2", "phm08_score", "phm08_score_per_100_units")
PHM08_UNITS_PER_BLOCK = 100
METRIC_REGEX_TEMPLATE = "{name}=([-0-9.eE+]+)"
PREDICTIONS_SOURCE = "predictions"


def validate_predictions(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return both as 1-D float arrays; raise `DataFormatError` unless 1-D, equal non-zero length, finite."""
    arrays = []
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        try:
            array = np.asarray(values, dtype=float)
        except (TypeError, ValueError) as exc:
            raise DataFormatError(PREDICTIONS_SOURCE, None, f"{name} is not numeric: {exc}") from None
        if array.ndim != 1:
            raise DataFormatError(
                PREDICTIONS_SOURCE, None, f"{name} must be 1-D, got shape {tuple(array.shape)}"
            )
        arrays.append(array)
    true, pred = arrays
    if len(true) != len(pred):
        raise DataFormatError(
            PREDICTIONS_SOURCE,
            None,
            f"length mismatch: y_true has {len(true)} values, y_pred has {len(pred)}",
        )
    if len(true) == 0:
        raise DataFormatError(PREDICTIONS_SOURCE, None, "empty: y_true and y_pred have no values")
    for name, array in (("y_true", true), ("y_pred", pred)):
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            index = int(bad[0])
            kind = "NaN" if np.isnan(array[index]) else "infinite value"
            raise DataFormatError(
                PREDICTIONS_SOURCE, None, f"{name} has {kind} at index {index} ({bad.size} non-finite in all)"
            )
    return true, pred


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error, in cycles."""
    true, pred = validate_predictions(y_true, y_pred)
    return float(np.sqrt(np.mean((pred - true) ** 2)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error, in cycles."""
    true, pred = validate_predictions(y_true, y_pred)
    return float(np.mean(np.abs(pred - true)))


def r2(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination; with constant truth 1.0 if perfect else 0.0 (as scikit-learn)."""
    true, pred = validate_predictions(y_true, y_pred)
    ss_res = float(np.sum((true - pred) ** 2))
    ss_tot = float(np.sum((true - true.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def phm08_score(y_true: Any, y_pred: Any) -> float:
    """PHM08 challenge score: sum of exp(-d/13)-1 (early, d<0) or exp(d/10)-1 (late), d = pred - true."""
    true, pred = validate_predictions(y_true, y_pred)
    d = pred - true
    with np.errstate(over="ignore"):
        per_unit = np.where(d < 0, np.expm1(-d / 13.0), np.expm1(d / 10.0))
    return float(np.sum(per_unit))


def phm08_score_per_100_units(y_true: Any, y_pred: Any) -> float:
    """The PHM08 score as if there were 100 units with these errors: independent of the number of units."""
    true, _ = validate_predictions(y_true, y_pred)
    return phm08_score(y_true, y_pred) * PHM08_UNITS_PER_BLOCK / len(true)


METRICS: dict[str, Metric] = {
    "rmse": rmse,
    "mae": mae,
    "r2": r2,
    "phm08_score": phm08_score,
    "phm08_score_per_100_units": phm08_score_per_100_units,
}


def _edge_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def _bucket_label(lower: float, upper: float) -> str:
    if math.isinf(upper):
        return f"{_edge_number(lower)}+"
    return f"{_edge_number(lower)}-{_edge_number(upper)}"


def error_by_bucket(
    y_true: Any, y_pred: Any, edges: Sequence[float] = DEFAULT_BUCKETS
) -> list[dict[str, Any]]:
    """Error per true-RUL bucket [lower, upper); empty buckets get count 0 and None metrics.

    `upper` is None for an unbounded last bucket (so the result stays valid JSON); truth outside
    [edges[0], edges[-1]) is not counted.
    """
    true, pred = validate_predictions(y_true, y_pred)
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(not b > a for a, b in itertools.pairwise(edges)):
        raise ConfigurationError(f"bucket edges must be at least two strictly increasing values, got {edges}")
    buckets = []
    for lower, upper in itertools.pairwise(edges):
        mask = (true >= lower) & (true < upper)
        count = int(mask.sum())
        d = pred[mask] - true[mask]
        buckets.append(
            {
                "bucket": _bucket_label(lower, upper),
                "lower": _edge_number(lower),
                "upper": None if math.isinf(upper) else _edge_number(upper),
                "count": count,
                "rmse": float(np.sqrt(np.mean(d**2))) if count else None,
                "mean_error": float(np.mean(d)) if count else None,
                "mae": float(np.mean(np.abs(d))) if count else None,
            }
        )
    return buckets


def bootstrap_std(y_true: Any, y_pred: Any, metric: Metric, n: int = 200, seed: int = 0) -> float:
    """Standard deviation of `metric` over `n` resamples of the units with replacement (seeded)."""
    true, pred = validate_predictions(y_true, y_pred)
    if n < 2:
        raise ConfigurationError(f"bootstrap needs at least 2 resamples, got n={n}")
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, len(true), size=(n, len(true)))
    values = np.array([metric(true[idx], pred[idx]) for idx in indices], dtype=float)
    return float(np.std(values, ddof=1))


def _metric_block(true: np.ndarray, pred: np.ndarray, n_bootstrap: int, seed: int) -> dict[str, dict]:
    return {
        name: {
            "value": float(fn(true, pred)),
            "standard_deviation": bootstrap_std(true, pred, fn, n=n_bootstrap, seed=seed),
        }
        for name, fn in METRICS.items()
    }


def evaluation_report(
    y_true: Any,
    y_pred: Any,
    cap: float = 125,
    units: Iterable[Any] | None = None,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Model-quality report (SageMaker Model Monitor regression shape) of plain, JSON-ready values."""
    true, pred = validate_predictions(y_true, y_pred)
    if not cap > 0:
        raise ConfigurationError(f"rul cap must be positive, got {cap}")
    unit_ids = list(range(1, len(true) + 1)) if units is None else [_plain(u) for u in units]
    if len(unit_ids) != len(true):
        raise DataFormatError(
            PREDICTIONS_SOURCE,
            None,
            f"length mismatch: {len(unit_ids)} units for {len(true)} predictions",
        )
    capped = np.minimum(true, cap)
    return {
        "regression_metrics": _metric_block(true, pred, n_bootstrap, seed),
        "capped_truth_metrics": _metric_block(capped, pred, n_bootstrap, seed),
        "error_by_rul_bucket": error_by_bucket(true, pred),
        "n_units": len(true),
        "rul_cap": _edge_number(cap),
        "predictions": [
            {"unit": unit, "true_rul": _edge_number(t), "predicted_rul": float(p), "error": float(p - t)}
            for unit, t, p in zip(unit_ids, true, pred, strict=True)
        ],
    }


def _plain(value: Any) -> Any:
    """A numpy scalar as the matching Python scalar; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def flat_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The headline values of `report["regression_metrics"]`, by name."""
    block = report["regression_metrics"]
    return {name: float(block[name]["value"]) for name in METRIC_NAMES}


def format_metrics(prefix: str, metrics: Mapping[str, float]) -> list[str]:
    """Lines `prefix:name=value` (4 decimals) for a SageMaker metric regex; no prefix gives `name=value`."""
    head = f"{prefix}:" if prefix else ""
    return [f"{head}{name}={float(value):.4f}" for name, value in metrics.items()]


def metric_regex(name: str) -> str:
    """Regex whose one group captures the value `format_metrics` printed for `name` (`validation:rmse`)."""
    return METRIC_REGEX_TEMPLATE.format(name=re.escape(name))


def metric_definitions(prefix: str, names: Iterable[str] = METRIC_NAMES) -> list[dict[str, str]]:
    """SageMaker `MetricDefinitions` entries ({"Name", "Regex"}) for the lines `format_metrics` prints."""
    full = [f"{prefix}:{name}" if prefix else name for name in names]
    return [{"Name": name, "Regex": metric_regex(name)} for name in full]
