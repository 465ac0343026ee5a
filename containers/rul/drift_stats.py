"""Data-drift statistics of captured endpoint inputs against the training baseline (pure functions).

Reference: the rows of the pipeline's `DataQualityBaseline` step. From Model Monitor's statistics.json the
reference sample of a feature is its `distribution.kll.sketch.data` (items of sketch level h weigh 2**h, as
in a KLL compactor; `rul.monitoring` writes one level of up to 2048 values at evenly spaced ranks), its
range is the exact `min`/`max`; a training CSV gives every row. Per feature (settings and sensors) the
drift job computes a clustered two-sample KS test with adjusted p-values and the PSI (`rul.drift_tests`
explains both), and calls a feature drifted when its adjusted p-value is below `alpha` AND its PSI reaches
`psi_threshold` (default 0.1, medium): a change must be both unlikely by chance and large enough to matter.

Compare like with like: sensor marginals follow the engines' wear, so a baseline of whole run-to-failure
trajectories differs from served windows (cut earlier in life) by a PSI of about 0.1-0.2 on the
informative sensors without any drift, and captured whole histories differ from a baseline of windows just
as much. The baseline holds served-like windows and the captured side keeps the rows each prediction read
(`rul.model_window.model_rows`; see bench/bench_drift.py). Constraint checks live in
`rul.drift_constraints`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rul.data import SENSOR_COLUMNS, SETTING_COLUMNS
from rul.drift_tests import (
    CORRECTIONS,
    DEFAULT_CORRECTION,
    HIGH,
    LOW,
    MEDIUM,
    NEAR_CONSTANT_SHARE,
    PSI_BINS,
    PSI_EPSILON,
    PSI_MEDIUM,
    adjust_pvalues,
    bin_shares,
    effective_rows,
    ks_test,
    psi,
    psi_bins,
    severity,
)
from rul.errors import ConfigurationError, DataFormatError

FEATURES = (*SETTING_COLUMNS, *SENSOR_COLUMNS)
DEFAULT_ALPHA = 0.05
DEFAULT_PSI_THRESHOLD = PSI_MEDIUM
DEFAULT_RANGE_THRESHOLD = 0.01
DEFAULT_COMPARISON_THRESHOLD = 0.1
CONTINUOUS, NEAR_CONSTANT = "continuous", "near_constant"


# ---------------------------------------------------------------------------------------------------------
# Baseline


@dataclass(frozen=True)
class FeatureBaseline:
    """One feature's reference sample, observed range, type and constraints from the baseline."""

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
        """The distribution comparison threshold of the constraints, or the default when they set none."""
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
    """The drift tests' settings (significance, correction, PSI and range thresholds), checked."""

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
        """The settings as recorded in the drift report (the correction under its full name)."""
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
    """The numeric values of column `name` of `frame`; text that is not a number is dropped."""
    return pd.to_numeric(frame[name], errors="coerce").dropna().to_numpy(dtype=float)


def compare_features(baseline: Baseline, frame: pd.DataFrame, settings: DriftSettings) -> list[dict]:
    """One result per feature present in both, in `FEATURES` order: KS, adjusted p, PSI, severity."""
    names = [name for name in FEATURES if name in baseline.features and name in frame.columns]
    names += sorted(set(baseline.features) & set(frame.columns) - set(names))
    results: list[dict[str, Any]] = []
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
