"""A data-quality baseline in SageMaker Model Monitor's format: statistics.json and constraints.json.

SageMaker's data-quality check runs the Model Monitor analyzer (a Spark job built on Deequ) over a baseline
dataset; the local runner cannot run that image, so these pure functions write the same two files. The
shapes follow the "Schema for Statistics" and "Schema for Constraints" pages of the SageMaker developer
guide (model-monitor-byoc-statistics, model-monitor-byoc-constraints):

- statistics: `version`, `dataset.item_count` and per feature `name`, `inferred_type` and either
  `numerical_statistics` (`common.num_present/num_missing`, `mean`, `sum`, `std_dev`, `min`, `max`,
  `distribution.kll`) or `string_statistics` (`common`, `distinct_count`, `distribution.categorical`);
- constraints: `version`, per feature `name`, `inferred_type`, `completeness`,
  `num_constraints.is_non_negative` (numeric) or `string_constraints.domains` (strings), and the
  global `monitoring_config` the analyzer suggests (constraint evaluation and metrics enabled, robust
  distribution comparison at 0.1).

Types are inferred from the text of the values as the analyzer does: all integers -> Integral, all numbers
-> Fractional, else String. `std_dev` is the population standard deviation (Deequ's StandardDeviation).
The `kll` entry is a deterministic stand-in, not a KLL implementation: its `buckets` are an exact
equal-width histogram of 10 buckets from min to max (the guide: "we materialize the distribution in 10
buckets"; one bucket when min equals max; integer counts, as Deequ's bucket counts are longs), and its
`sketch.data` holds one level of sorted samples - every value when there are at most `k` of them, else `k`
values at evenly spaced ranks - with Deequ's default KLL parameters `c` = 0.64 and `k` = 2048 in
`sketch.parameters`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

INTEGRAL = "Integral"
FRACTIONAL = "Fractional"
STRING = "String"
NUMERIC_TYPES = (INTEGRAL, FRACTIONAL)
FORMAT_VERSION = 0.0
HISTOGRAM_BUCKETS = 10
# Deequ's KLLSketch.DEFAULT_SHRINKING_FACTOR and DEFAULT_SKETCH_SIZE, which the analyzer reports.
KLL_C = 0.64
KLL_K = 2048
# Our choice: list the observed values as a string feature's domain up to this many distinct values.
MAX_DOMAIN_SIZE = 20
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
MONITORING_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
    },
}

_INTEGER_TEXT = re.compile(r"^[+-]?\d+$")
# Decimal numbers with an optional exponent; "nan" and "inf" are not numbers in a baseline.
_NUMBER_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def is_number_text(text: str) -> bool:
    """Whether `text` (spaces ignored) is a decimal number; nan and inf are not."""
    return bool(_NUMBER_TEXT.match(text.strip()))


def infer_type(series: pd.Series) -> str:
    """Integral, Fractional or String, from the dtype or, for text, from every present value."""
    present = series.dropna()
    if present.empty:
        raise ValueError(f"column {series.name!r} has no values to infer a type from")
    if pd.api.types.is_bool_dtype(present):
        return STRING
    if pd.api.types.is_integer_dtype(present):
        return INTEGRAL
    if pd.api.types.is_float_dtype(present):
        return FRACTIONAL
    texts = present.astype(str).str.strip()
    if texts.str.match(_INTEGER_TEXT).all():
        return INTEGRAL
    if texts.str.match(_NUMBER_TEXT).all():
        return FRACTIONAL
    return STRING


def kll_distribution(values: np.ndarray) -> dict:
    """The `distribution.kll` entry: an exact 10-bucket histogram and sorted samples as the sketch."""
    ordered = np.sort(values)
    low, high = float(ordered[0]), float(ordered[-1])
    if low == high:
        buckets = [{"lower_bound": low, "upper_bound": high, "count": int(ordered.size)}]
    else:
        # numpy's last bucket includes its upper edge, as the analyzer's last bucket includes the max.
        counts, edges = np.histogram(ordered, bins=HISTOGRAM_BUCKETS, range=(low, high))
        buckets = [
            {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": int(counts[i])}
            for i in range(HISTOGRAM_BUCKETS)
        ]
    if ordered.size > KLL_K:
        ordered = ordered[np.linspace(0, ordered.size - 1, KLL_K).round().astype(int)]
    return {
        "buckets": buckets,
        "sketch": {"parameters": {"c": KLL_C, "k": float(KLL_K)}, "data": [ordered.tolist()]},
    }


def _numerical_statistics(series: pd.Series, item_count: int) -> dict:
    present = series.dropna()
    if not pd.api.types.is_numeric_dtype(present):
        present = pd.to_numeric(present.astype(str).str.strip())
    values = present.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"column {series.name!r} holds infinite values")
    return {
        "common": {"num_present": int(values.size), "num_missing": int(item_count - values.size)},
        "mean": float(values.mean()),
        "sum": float(values.sum()),
        "std_dev": float(values.std(ddof=0)),
        "min": float(values.min()),
        "max": float(values.max()),
        "distribution": {"kll": kll_distribution(values)},
    }


def _string_statistics(series: pd.Series, item_count: int) -> dict:
    counts = series.dropna().astype(str).value_counts(sort=False).sort_index()
    present = int(counts.sum())
    return {
        "common": {"num_present": present, "num_missing": int(item_count - present)},
        "distinct_count": float(counts.size),
        "distribution": {
            "categorical": {
                "buckets": [{"value": value, "count": int(count)} for value, count in counts.items()]
            }
        },
    }


def compute_statistics(frame: pd.DataFrame) -> dict:
    """The statistics.json document of `frame` (text or numeric columns; missing values are NaN/None)."""
    if frame.empty or not len(frame.columns):
        raise ValueError("the baseline dataset has no rows")
    item_count = len(frame)
    features = []
    for name in frame.columns:
        series = frame[name].rename(str(name))
        inferred = infer_type(series)
        feature: dict = {"name": str(name), "inferred_type": inferred}
        if inferred in NUMERIC_TYPES:
            feature["numerical_statistics"] = _numerical_statistics(series, item_count)
        else:
            feature["string_statistics"] = _string_statistics(series, item_count)
        features.append(feature)
    return {"version": FORMAT_VERSION, "dataset": {"item_count": item_count}, "features": features}


def suggest_constraints(frame: pd.DataFrame, statistics: dict) -> dict:
    """The constraints.json document the analyzer would suggest from `statistics` of `frame`."""
    item_count = statistics["dataset"]["item_count"]
    if item_count != len(frame):
        raise ValueError(f"the statistics count {item_count} items but the frame has {len(frame)} rows")
    features = []
    for feature in statistics["features"]:
        summary = feature.get("numerical_statistics") or feature["string_statistics"]
        constraint: dict = {
            "name": feature["name"],
            "inferred_type": feature["inferred_type"],
            "completeness": summary["common"]["num_present"] / item_count,
        }
        if feature["inferred_type"] in NUMERIC_TYPES:
            constraint["num_constraints"] = {"is_non_negative": bool(summary["min"] >= 0)}
        elif summary["distinct_count"] <= MAX_DOMAIN_SIZE:
            buckets = summary["distribution"]["categorical"]["buckets"]
            constraint["string_constraints"] = {"domains": [bucket["value"] for bucket in buckets]}
        features.append(constraint)
    return {
        "version": FORMAT_VERSION,
        "features": features,
        "monitoring_config": json.loads(json.dumps(MONITORING_CONFIG)),
    }


def write_baseline(frame: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write statistics.json and constraints.json of `frame` into `out_dir`; returns their paths by name."""
    statistics = compute_statistics(frame)
    constraints = suggest_constraints(frame, statistics)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"statistics": out_dir / STATISTICS_FILE, "constraints": out_dir / CONSTRAINTS_FILE}
    paths["statistics"].write_text(json.dumps(statistics, indent=2, allow_nan=False))
    paths["constraints"].write_text(json.dumps(constraints, indent=2, allow_nan=False))
    return paths
