"""Constraint violations of captured rows against a baseline, in Model Monitor's shape.

`constraint_violations` evaluates constraints.json in the `constraint_violations.json` shape of Model
Monitor (`{"violations": [{"feature_name", "constraint_check_type", "description"}]}`): the documented
`missing_column_check`, `extra_column_check`, `data_type_check`, `completeness_check` and
`baseline_drift_check` (the KS distance, i.e. the largest gap of the two CDFs, above
`monitoring_config.distribution_constraints.comparison_threshold`; the guide does not define the distance
or the methods, so `comparison_method` "Simple" is read as the distance alone and "Robust", the
analyzer's suggestion, as the distance and a significant adjusted KS p-value), plus `out_of_range_check`, this
project's extension for values outside the baseline min/max (or negative where the baseline says
`is_non_negative`) beyond a share of the rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from rul.drift_stats import FEATURES, Baseline, DriftSettings, FeatureBaseline, current_values


def violation(feature: str, check: str, description: str) -> dict:
    """One entry of `violations`: the feature, the check that failed and why."""
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
    out.extend(_drift_violations(baseline, features, settings))
    return {"violations": out}


def _drift_violations(baseline: Baseline, features: list[dict], settings: DriftSettings) -> list[dict]:
    """`baseline_drift_check` violations of the per-feature KS results, as the monitoring config asks."""
    comparison = baseline.comparison_threshold
    distribution = baseline.monitoring_config.get("distribution_constraints", {})
    perform = distribution.get("perform_comparison", "Enabled") == "Enabled"
    robust = distribution.get("comparison_method", "Robust") == "Robust"
    found = []
    for result in features if perform else []:
        significant = result["adjusted_p_value"] < settings.alpha
        if result["ks_statistic"] > comparison and (significant or not robust):
            found.append(
                violation(
                    result["name"],
                    "baseline_drift_check",
                    f"Baseline drift distance: {result['ks_statistic']:.4f} exceeds threshold: "
                    f"{comparison} (largest gap of the baseline and current CDFs).",
                )
            )
    return found


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
