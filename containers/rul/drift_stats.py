"""Data-drift statistics of captured endpoint inputs against the training baseline (pure functions).

Reference: the training rows of the pipeline's `DataQualityBaseline` step. From Model Monitor's
statistics.json the reference sample of a feature is its `distribution.kll.sketch.data` (items of sketch
level h weigh 2**h, as in a KLL compactor; `rul.monitoring` writes one level of up to 2048 values at evenly
spaced ranks), its range is the exact `min`/`max`; a training CSV gives every row. Per feature (settings
and sensors):

- Two-sample Kolmogorov–Smirnov test (`scipy.stats.ks_2samp`, two-sided). Captured rows are not
  independent: a request carries 30 consecutive cycles of one unit, which share the unit's wear and
  offsets. Counting them as independent makes KS find "significant" differences in every clean batch (on
  synthetic data, 50 units x 30 cycles: most clean batches), so when the rows carry a `unit` column the
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

A feature is drifted when its adjusted p-value is below `alpha` AND its PSI reaches `psi_threshold`
(default 0.1, medium): a change must be both unlikely by chance and large enough to matter. Sensor
marginals follow the engines' wear, so a baseline of whole run-to-failure trajectories differs from
served windows (cut earlier in life) by a PSI of about 0.1-0.2 on the informative sensors without any
drift; a baseline of served-like windows is the better reference (see bench/bench_drift.py).

`constraint_violations` evaluates constraints.json in the `constraint_violations.json` shape of Model
Monitor (`{"violations": [{"feature_name", "constraint_check_type", "description"}]}`): the documented
`missing_column_check`, `extra_column_check`, `data_type_check`, `completeness_check` and
`baseline_drift_check` (the KS distance, i.e. the largest gap of the two CDFs, above
`monitoring_config.distribution_constraints.comparison_threshold`; the guide does not define the distance
or the methods, so `comparison_method` "Simple" is read as the distance alone and "Robust", the
analyzer's suggestion, as the distance and a significant adjusted KS p-value), plus `out_of_range_check`, this
project's extension for values outside the baseline min/max (or negative where the baseline says
`is_non_negative`) beyond a share of the rows.

The last part parses SageMaker data-capture records (JSON Lines, `captureData.endpointInput/Output`).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from rul.data import COLUMNS, SENSOR_COLUMNS, SETTING_COLUMNS
from rul.errors import ConfigurationError, DataFormatError

FEATURES = (*SETTING_COLUMNS, *SENSOR_COLUMNS)
DEFAULT_ALPHA = 0.05
CORRECTIONS = {"bh": "benjamini-hochberg", "holm": "holm"}
DEFAULT_CORRECTION = "bh"
PSI_BINS = 10
PSI_EPSILON = 1e-4
PSI_MEDIUM = 0.1
PSI_HIGH = 0.2
DEFAULT_PSI_THRESHOLD = PSI_MEDIUM
NEAR_CONSTANT_SHARE = 0.95
DEFAULT_RANGE_THRESHOLD = 0.01
DEFAULT_COMPARISON_THRESHOLD = 0.1
LOW, MEDIUM, HIGH = "low", "medium", "high"
CONTINUOUS, NEAR_CONSTANT = "continuous", "near_constant"


# ---------------------------------------------------------------------------------------------------------
# Tests and indices


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


# ---------------------------------------------------------------------------------------------------------
# Baseline


@dataclass(frozen=True)
class FeatureBaseline:
    name: str
    sample: np.ndarray
    minimum: float
    maximum: float
    inferred_type: str = "Fractional"
    completeness: float = 1.0
    is_non_negative: bool | None = None


@dataclass(frozen=True)
class Baseline:
    """Reference sample and constraints per feature, and the constraints' monitoring_config."""

    features: dict[str, FeatureBaseline]
    source: str
    rows: int
    monitoring_config: dict = field(default_factory=dict)

    @property
    def comparison_threshold(self) -> float:
        distribution = self.monitoring_config.get("distribution_constraints", {})
        return float(distribution.get("comparison_threshold", DEFAULT_COMPARISON_THRESHOLD))


def sketch_sample(kll: Mapping, where: str) -> np.ndarray:
    """The reference values of a KLL sketch: level h's items repeated 2**h times."""
    try:
        levels = kll["sketch"]["data"]
        parts = [np.repeat(np.asarray(level, dtype=float), 2**h) for h, level in enumerate(levels)]
    except (KeyError, TypeError, ValueError) as error:
        raise DataFormatError(where, None, f"distribution.kll.sketch.data is unreadable ({error})") from None
    sample = np.sort(np.concatenate(parts)) if parts else np.array([])
    if sample.size == 0 or not np.all(np.isfinite(sample)):
        raise DataFormatError(where, None, "distribution.kll.sketch.data holds no finite values")
    return sample


def baseline_from_statistics(
    statistics: Mapping, constraints: Mapping | None, where: str = "statistics.json"
) -> Baseline:
    """A `Baseline` from Model Monitor statistics.json (and constraints.json, when given)."""
    try:
        by_name = {feature["name"]: feature for feature in statistics["features"]}
        rows = int(statistics["dataset"]["item_count"])
    except (KeyError, TypeError) as error:
        raise DataFormatError(where, None, f"not a Model Monitor statistics file (missing {error})") from None
    limits = {c["name"]: c for c in (constraints or {}).get("features", [])}
    features = {}
    for name, feature in by_name.items():
        numeric = feature.get("numerical_statistics")
        if numeric is None:
            continue  # string features have no numeric distribution to compare
        constraint = limits.get(name, {})
        try:
            sample = sketch_sample(numeric["distribution"]["kll"], f"{where} feature {name}")
            features[name] = FeatureBaseline(
                name=name,
                sample=sample,
                minimum=float(numeric["min"]),
                maximum=float(numeric["max"]),
                inferred_type=constraint.get("inferred_type", feature.get("inferred_type", "Fractional")),
                completeness=float(constraint.get("completeness", 1.0)),
                is_non_negative=constraint.get("num_constraints", {}).get("is_non_negative"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DataFormatError(where, None, f"feature {name}: missing {error}") from None
    config = dict((constraints or {}).get("monitoring_config", {}))
    return Baseline(features, "statistics", rows, config)


def baseline_from_frame(frame: pd.DataFrame, where: str = "baseline CSV") -> Baseline:
    """A `Baseline` from training rows: every row is reference; bounds and types from the rows."""
    features = {}
    for name in frame.columns:
        if name not in FEATURES:
            continue
        column = pd.to_numeric(frame[name], errors="coerce")
        bad = column.isna() & frame[name].notna()
        if bad.any():
            raise DataFormatError(where, None, f"column {name} is not numeric: {frame[name][bad].iloc[0]!r}")
        values = column.dropna().to_numpy(dtype=float)
        if values.size == 0:
            raise DataFormatError(where, None, f"column {name} has no values")
        integral = bool(np.all(values == np.round(values))) and pd.api.types.is_integer_dtype(frame[name])
        features[name] = FeatureBaseline(
            name=name,
            sample=np.sort(values),
            minimum=float(values.min()),
            maximum=float(values.max()),
            inferred_type="Integral" if integral else "Fractional",
            completeness=values.size / len(frame),
            is_non_negative=bool(values.min() >= 0),
        )
    if not features:
        raise DataFormatError(where, None, f"no monitored column ({', '.join(FEATURES[:2])}, ...) found")
    return Baseline(features, "csv", len(frame))


# ---------------------------------------------------------------------------------------------------------
# Comparison


@dataclass(frozen=True)
class DriftSettings:
    alpha: float = DEFAULT_ALPHA
    correction: str = DEFAULT_CORRECTION
    psi_threshold: float = DEFAULT_PSI_THRESHOLD
    psi_bins: int = PSI_BINS
    psi_epsilon: float = PSI_EPSILON
    near_constant_share: float = NEAR_CONSTANT_SHARE
    range_threshold: float = DEFAULT_RANGE_THRESHOLD
    cluster_column: str | None = "unit"

    def __post_init__(self) -> None:
        for name in ("alpha", "near_constant_share", "range_threshold"):
            value = getattr(self, name)
            if not 0 < value < 1 and not (name == "near_constant_share" and value == 1):
                raise ConfigurationError(f"{name} must be between 0 and 1, got {value!r}")
        if self.correction not in CORRECTIONS:
            raise ConfigurationError(
                f"correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}"
            )
        if not self.psi_threshold > 0:
            raise ConfigurationError(f"psi_threshold must be positive, got {self.psi_threshold!r}")
        if not 0 < self.psi_epsilon < 0.01:
            raise ConfigurationError(f"psi_epsilon must be in (0, 0.01), got {self.psi_epsilon!r}")
        if self.psi_bins < 2:
            raise ConfigurationError(f"psi_bins must be at least 2, got {self.psi_bins!r}")

    def as_dict(self) -> dict:
        return {
            "alpha": self.alpha,
            "correction": CORRECTIONS[self.correction],
            "psi_threshold": self.psi_threshold,
            "psi_bins": self.psi_bins,
            "psi_epsilon": self.psi_epsilon,
            "near_constant_share": self.near_constant_share,
            "range_threshold": self.range_threshold,
            "cluster_column": self.cluster_column,
        }


def current_values(frame: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(frame[name], errors="coerce").dropna().to_numpy(dtype=float)


def compare_features(baseline: Baseline, frame: pd.DataFrame, settings: DriftSettings) -> list[dict]:
    """One result per feature present in both, in `FEATURES` order: KS, adjusted p, PSI, severity."""
    names = [name for name in FEATURES if name in baseline.features and name in frame.columns]
    names += sorted(set(baseline.features) & set(frame.columns) - set(names))
    results = []
    for name in names:
        reference = baseline.features[name]
        numbers = pd.to_numeric(frame[name], errors="coerce")
        present = numbers.notna().to_numpy()
        values = numbers.to_numpy(dtype=float)[present]
        if values.size == 0:
            continue  # reported by the completeness check
        groups = None
        if settings.cluster_column and settings.cluster_column in frame.columns:
            groups = frame[settings.cluster_column].to_numpy()[present]
        n_eff = effective_rows(values, groups)
        bins = psi_bins(reference.sample, settings.psi_bins, settings.near_constant_share)
        statistic, pvalue = ks_test(reference.sample, values, n_eff)
        value = psi(bin_shares(bins, reference.sample), bin_shares(bins, values), settings.psi_epsilon)
        results.append(
            {
                "name": name,
                "kind": CONTINUOUS if bins.mode is None else NEAR_CONSTANT,
                "rows": int(values.size),
                "effective_rows": round(n_eff, 1),
                "ks_statistic": statistic,
                "p_value": pvalue,
                "psi": value,
                "severity": severity(value),
                "baseline_mean": float(reference.sample.mean()),
                "current_mean": float(values.mean()),
            }
        )
    adjusted = adjust_pvalues([r["p_value"] for r in results], settings.correction)
    for result, p in zip(results, adjusted, strict=True):
        result["adjusted_p_value"] = float(p)
        result["drifted"] = bool(p < settings.alpha and result["psi"] >= settings.psi_threshold)
    return results


def summarise(features: list[dict]) -> dict:
    """Counts and the overall flag of a list of `compare_features` results."""
    drifted = [f["name"] for f in features if f["drifted"]]
    by_severity = {level: sum(f["severity"] == level for f in features) for level in (LOW, MEDIUM, HIGH)}
    return {
        "drift_detected": bool(drifted),
        "drifted_features": drifted,
        "max_psi": max((f["psi"] for f in features), default=0.0),
        "features_by_severity": by_severity,
    }


# ---------------------------------------------------------------------------------------------------------
# Constraint violations (constraint_violations.json)


def violation(feature: str, check: str, description: str) -> dict:
    return {"feature_name": feature, "constraint_check_type": check, "description": description}


def _type_violation(name: str, expected: str, raw: pd.Series, threshold: float) -> dict | None:
    present = raw.dropna().astype(str).str.strip()
    numeric = pd.to_numeric(present, errors="coerce")
    wrong = numeric.isna()
    if expected == "Integral":
        wrong |= numeric.notna() & (numeric != numeric.round())
    share_ok = 1.0 - float(wrong.mean()) if len(present) else 1.0
    if share_ok < threshold:
        return violation(
            name,
            "data_type_check",
            f"Data type match requirement is not met. Expected data type: {expected}, Expected match: "
            f"{threshold:.0%}. Observed: Only {share_ok:.2%} of data is {expected}.",
        )
    return None


def constraint_violations(
    baseline: Baseline,
    frame: pd.DataFrame,
    features: list[dict],
    settings: DriftSettings,
    columns: Iterable[str] | None = None,
) -> dict:
    """The `constraint_violations.json` document of the current rows against the baseline."""
    columns = list(frame.columns if columns is None else columns)
    config = baseline.monitoring_config
    type_threshold = float(config.get("datatype_check_threshold", 1.0))
    out: list[dict] = []
    for name in baseline.features:
        if name not in columns:
            out.append(violation(name, "missing_column_check", f"Column {name} of the baseline is missing."))
    for name in columns:
        if name in FEATURES and name not in baseline.features:
            out.append(violation(name, "extra_column_check", f"Column {name} is not in the baseline."))
    for name, reference in baseline.features.items():
        if name not in columns:
            continue
        raw = frame[name]
        found = _type_violation(name, reference.inferred_type, raw, type_threshold)
        if found:
            out.append(found)
        completeness = float(raw.notna().mean()) if len(raw) else 0.0
        if completeness < reference.completeness:
            out.append(
                violation(
                    name,
                    "completeness_check",
                    f"Data completeness requirement is not met. Expected completeness: "
                    f"{reference.completeness:.2%}. Observed completeness: {completeness:.2%}.",
                )
            )
        values = current_values(frame, name)
        out.extend(_range_violations(reference, values, settings.range_threshold))
    comparison = baseline.comparison_threshold
    distribution = config.get("distribution_constraints", {})
    perform = distribution.get("perform_comparison", "Enabled") == "Enabled"
    robust = distribution.get("comparison_method", "Robust") == "Robust"
    for result in features if perform else []:
        significant = result["adjusted_p_value"] < settings.alpha
        if result["ks_statistic"] > comparison and (significant or not robust):
            out.append(
                violation(
                    result["name"],
                    "baseline_drift_check",
                    f"Baseline drift distance: {result['ks_statistic']:.4f} exceeds threshold: "
                    f"{comparison} (largest gap of the baseline and current CDFs).",
                )
            )
    return {"violations": out}


def _range_violations(reference: FeatureBaseline, values: np.ndarray, threshold: float) -> list[dict]:
    if values.size == 0:
        return []
    outside = (values < reference.minimum) | (values > reference.maximum)
    found = []
    if outside.mean() > threshold:
        found.append(
            violation(
                reference.name,
                "out_of_range_check",
                f"{outside.mean():.2%} of the values lie outside the baseline range "
                f"[{reference.minimum:g}, {reference.maximum:g}] (allowed {threshold:.2%}); observed "
                f"[{values.min():g}, {values.max():g}].",
            )
        )
    negative = values < 0
    if reference.is_non_negative and negative.any():
        found.append(
            violation(
                reference.name,
                "out_of_range_check",
                f"The baseline is non-negative but {int(negative.sum())} values are negative "
                f"(smallest {values.min():g}).",
            )
        )
    return found


# ---------------------------------------------------------------------------------------------------------
# Captured requests (SageMaker data capture, JSON Lines)


@dataclass(frozen=True)
class CaptureRecord:
    """One captured request: its C-MAPSS input rows and its per-unit predictions."""

    source: str
    line: int
    event_id: str
    inference_time: datetime
    rows: pd.DataFrame
    predictions: list[dict]
    model_version: object = None


def parse_time(text: str, where: str, line: int | None = None) -> datetime:
    """An ISO 8601 time ("Z" allowed) as an aware UTC datetime; naive times are taken as UTC."""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise DataFormatError(where, line, f"not an ISO 8601 time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _payload(part: Mapping, name: str, where: str, line: int) -> str:
    if not isinstance(part, Mapping) or "data" not in part:
        raise DataFormatError(where, line, f"captureData.{name} has no data")
    data, encoding = part["data"], str(part.get("encoding", "")).upper()
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, TypeError):
            raise DataFormatError(where, line, f"captureData.{name}.data is not valid BASE64") from None
    if encoding not in ("CSV", "JSON"):
        raise DataFormatError(
            where, line, f"captureData.{name}.encoding {encoding!r} is not CSV, JSON or BASE64"
        )
    if not isinstance(data, str):
        raise DataFormatError(where, line, f"captureData.{name}.data is not a string")
    return data


def _json_rows(text: str, where: str, line: int) -> list[list]:
    try:
        instances = json.loads(text)["instances"]
        return [
            [instance[name] for name in COLUMNS] if isinstance(instance, Mapping) else list(instance)
            for instance in instances
        ]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DataFormatError(where, line, f"endpointInput is not an instances document ({error})") from None


def parse_input_rows(text: str, where: str, line: int, content_type: str = "text/csv") -> pd.DataFrame:
    """The C-MAPSS rows of a captured request: text/csv (an optional header row of `COLUMNS` allowed) or
    application/json `{"instances": [[26 numbers] or {column: number}]}`."""
    if content_type.split(";")[0].strip().lower() == "application/json":
        rows = _json_rows(text, where, line)
    else:
        rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
        if rows and [cell.strip() for cell in rows[0]] == COLUMNS:
            rows = rows[1:]
    if not rows:
        raise DataFormatError(where, line, "the captured request holds no rows")
    for number, row in enumerate(rows, start=1):
        if len(row) != len(COLUMNS):
            raise DataFormatError(
                where, line, f"request row {number} has {len(row)} fields, expected {len(COLUMNS)}"
            )
    try:
        values = np.asarray(rows, dtype=float)
    except ValueError as error:
        raise DataFormatError(
            where, line, f"the captured request has a non-numeric field ({error})"
        ) from None
    if not np.all(np.isfinite(values)):
        raise DataFormatError(where, line, "the captured request has a non-finite value")
    frame = pd.DataFrame(values, columns=COLUMNS)
    frame["unit"] = frame["unit"].astype(np.int64)
    frame["cycle"] = frame["cycle"].astype(np.int64)
    return frame


def _predictions(
    text: str, units: set[int], where: str, line: int, content_type: str = "application/json"
) -> tuple[list[dict], object]:
    try:
        if content_type.split(";")[0].strip().lower() == "text/csv":
            body, entries = {}, list(csv.DictReader(io.StringIO(text)))
        else:
            body = json.loads(text)
            entries = body["predictions"]
        predictions = [
            {
                "unit": int(entry["unit"]),
                "predicted_rul": float(entry["predicted_rul"]),
                "cycles_used": entry.get("cycles_used"),
                "padded": entry.get("padded"),
            }
            for entry in entries
        ]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise DataFormatError(
            where, line, f"endpointOutput is not a predictions document ({error})"
        ) from None
    for prediction in predictions:
        if prediction["unit"] not in units:
            raise DataFormatError(
                where, line, f"a prediction names unit {prediction['unit']}, absent from the input"
            )
        if not math.isfinite(prediction["predicted_rul"]):
            raise DataFormatError(where, line, f"the prediction of unit {prediction['unit']} is not finite")
    return predictions, body.get("model_version")


def parse_capture_line(text: str, where: str, line: int) -> CaptureRecord:
    """One JSON Lines record of SageMaker data capture."""
    try:
        record = json.loads(text)
        capture = record["captureData"]
        metadata = record["eventMetadata"]
        inference_time = metadata["inferenceTime"]
    except json.JSONDecodeError as error:
        raise DataFormatError(where, line, f"not valid JSON ({error.msg})") from None
    except (KeyError, TypeError) as error:
        raise DataFormatError(where, line, f"not a data-capture record (missing {error})") from None
    if not isinstance(capture, Mapping) or "endpointInput" not in capture:
        raise DataFormatError(where, line, "captureData has no endpointInput")
    request = capture["endpointInput"]
    text = _payload(request, "endpointInput", where, line)
    rows = parse_input_rows(text, where, line, str(request.get("observedContentType", "text/csv")))
    predictions: list[dict] = []
    version = None
    if "endpointOutput" in capture:
        response = capture["endpointOutput"]
        output = _payload(response, "endpointOutput", where, line)
        kind = str(response.get("observedContentType", "application/json"))
        predictions, version = _predictions(output, set(rows["unit"].tolist()), where, line, kind)
    return CaptureRecord(
        source=where,
        line=line,
        event_id=str(metadata.get("eventId", f"{where}:{line}")),
        inference_time=parse_time(inference_time, where, line),
        rows=rows,
        predictions=predictions,
        model_version=version,
    )


def capture_files(root: Path) -> list[Path]:
    """Every *.jsonl file under `root` (SageMaker writes <endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl)."""
    if root.is_file():
        return [root]
    return sorted(path for path in root.rglob("*.jsonl") if path.is_file())


def read_captures(
    root: str | Path, start: datetime | None = None, end: datetime | None = None
) -> Iterator[CaptureRecord]:
    """Captured records with start <= inferenceTime < end, file by file in name order."""
    root = Path(root)
    if not root.exists():
        raise DataFormatError(root, None, "the captures folder does not exist")
    for path in capture_files(root):
        with path.open(encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                record = parse_capture_line(text, str(path), number)
                if (start is None or record.inference_time >= start) and (
                    end is None or record.inference_time < end
                ):
                    yield record


def captured_rows(records: Iterable[CaptureRecord]) -> pd.DataFrame:
    """The input rows of the records, with the request's inference time and event id."""
    frames = [
        record.rows.assign(inference_time=record.inference_time, event_id=record.event_id)
        for record in records
    ]
    if not frames:
        return pd.DataFrame(columns=[*COLUMNS, "inference_time", "event_id"])
    return pd.concat(frames, ignore_index=True)


def captured_predictions(records: Iterable[CaptureRecord]) -> pd.DataFrame:
    """One row per (request, unit) prediction with the last cycle of that unit in the request."""
    rows = []
    for record in records:
        last_cycles = record.rows.groupby("unit")["cycle"].max()
        for prediction in record.predictions:
            rows.append(
                {
                    "event_id": record.event_id,
                    "inference_time": record.inference_time,
                    "unit": prediction["unit"],
                    "last_cycle": int(last_cycles[prediction["unit"]]),
                    "predicted_rul": prediction["predicted_rul"],
                    "model_version": record.model_version,
                    "source": record.source,
                    "line": record.line,
                }
            )
    columns = ["event_id", "inference_time", "unit", "last_cycle", "predicted_rul", "model_version"]
    return pd.DataFrame(rows, columns=[*columns, "source", "line"])


# ---------------------------------------------------------------------------------------------------------
# Metric data (the MetricData entries of CloudWatch PutMetricData)


def metric_datum(
    name: str, value: float, dimensions: Mapping[str, str], timestamp: datetime, unit: str = "None"
) -> dict:
    """One MetricData entry; CloudWatch rejects NaN and infinities, so those are refused here."""
    if not math.isfinite(value):
        raise ConfigurationError(f"metric {name} has the non-finite value {value}")
    return {
        "MetricName": name,
        "Dimensions": [{"Name": key, "Value": str(val)} for key, val in dimensions.items()],
        "Timestamp": timestamp,
        "Value": float(value),
        "Unit": unit,
    }
