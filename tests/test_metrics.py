"""Tests of rul.metrics: point metrics, buckets, bootstrap, the report shape and the metric log lines."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from rul import metrics
from rul.errors import DataFormatError, RulError


def test_phm08_hand_computed_case():
    # d = [3, 0, -13]: (e^0.3 - 1) + 0 + (e^1 - 1)
    score = metrics.phm08_score([10, 20, 30], [13, 20, 17])
    assert score == pytest.approx(0.349859 + 1.718282, abs=1e-6)
    assert score == pytest.approx(2.068141, abs=1e-6)


def test_phm08_per_100_units_is_the_mean_unit_score_times_100():
    y_true, y_pred = [10, 20, 30], [13, 20, 17]
    assert metrics.phm08_score_per_100_units(y_true, y_pred) == pytest.approx(
        metrics.phm08_score(y_true, y_pred) * 100 / 3
    )
    # The same errors on ten times the units: the sum grows tenfold, the per-100 figure does not.
    many_true, many_pred = y_true * 10, y_pred * 10
    assert metrics.phm08_score(many_true, many_pred) == pytest.approx(
        10 * metrics.phm08_score(y_true, y_pred)
    )
    assert metrics.phm08_score_per_100_units(many_true, many_pred) == pytest.approx(
        metrics.phm08_score_per_100_units(y_true, y_pred)
    )
    with pytest.raises(DataFormatError):
        metrics.phm08_score_per_100_units([], [])


def test_phm08_penalises_late_more_than_early():
    late = metrics.phm08_score([50], [60])
    early = metrics.phm08_score([50], [40])
    assert late == pytest.approx(math.e - 1)
    assert early == pytest.approx(math.exp(10 / 13) - 1)
    assert late > early > 0


def test_rmse_mae_known_values():
    y_true = [0, 0, 0, 0]
    y_pred = [3, -3, 4, -4]
    assert metrics.rmse(y_true, y_pred) == pytest.approx(math.sqrt((9 + 9 + 16 + 16) / 4))
    assert metrics.mae(y_true, y_pred) == pytest.approx(3.5)


def test_r2_known_value():
    # ss_res = 0 + 1 + 0 + 1 = 2; ss_tot about the mean 2.5 = 2.25 + 0.25 + 0.25 + 2.25 = 5
    y_true = np.array([1.0, 2.0, 3.0, 4.0])
    y_pred = np.array([1.0, 3.0, 3.0, 3.0])
    expected = 1 - np.sum((y_true - y_pred) ** 2) / np.sum((y_true - y_true.mean()) ** 2)
    assert metrics.r2(y_true, y_pred) == pytest.approx(expected)
    assert metrics.r2(y_true, y_pred) == pytest.approx(1 - 2 / 5)


def test_perfect_prediction():
    y = [5, 17, 60, 130]
    assert metrics.rmse(y, y) == 0.0
    assert metrics.mae(y, y) == 0.0
    assert metrics.phm08_score(y, y) == 0.0
    assert metrics.r2(y, y) == 1.0


def test_r2_with_constant_truth_is_finite():
    assert metrics.r2([5, 5, 5], [5, 5, 5]) == 1.0
    assert metrics.r2([5, 5, 5], [4, 5, 6]) == 0.0


def test_error_by_bucket_assignment_and_counts():
    # buckets [0,25) [25,50) [50,75) [75,100) [100,125) [125,inf); 75-100 stays empty
    y_true = np.array([0, 24, 25, 60, 110, 125, 200])
    y_pred = np.array([2, 20, 30, 60, 100, 130, 180])
    buckets = metrics.error_by_bucket(y_true, y_pred)
    assert [b["bucket"] for b in buckets] == ["0-25", "25-50", "50-75", "75-100", "100-125", "125+"]
    assert [b["count"] for b in buckets] == [2, 1, 1, 0, 1, 2]
    first, second, _, empty, _, last = buckets
    assert (first["lower"], first["upper"]) == (0, 25)
    assert first["mean_error"] == pytest.approx((2 + -4) / 2)
    assert first["mae"] == pytest.approx(3.0)
    assert first["rmse"] == pytest.approx(math.sqrt((4 + 16) / 2))
    assert second["mean_error"] == pytest.approx(5.0)
    assert empty["count"] == 0
    assert empty["rmse"] is None and empty["mae"] is None and empty["mean_error"] is None
    assert last["lower"] == 125 and last["upper"] is None
    assert last["mean_error"] == pytest.approx((5 - 20) / 2)
    assert sum(b["count"] for b in buckets) == len(y_true)


def test_error_by_bucket_custom_edges():
    buckets = metrics.error_by_bucket([1, 11, 12], [1, 11, 12], edges=(0, 10, 20))
    assert [(b["bucket"], b["count"]) for b in buckets] == [("0-10", 1), ("10-20", 2)]


def test_bootstrap_is_deterministic_and_positive_for_noise():
    rng = np.random.default_rng(1)
    y_true = rng.uniform(0, 125, 50)
    y_pred = y_true + rng.normal(0, 10, 50)
    first = metrics.bootstrap_std(y_true, y_pred, metrics.rmse, n=100, seed=7)
    second = metrics.bootstrap_std(y_true, y_pred, metrics.rmse, n=100, seed=7)
    other = metrics.bootstrap_std(y_true, y_pred, metrics.rmse, n=100, seed=8)
    assert first == second
    assert first > 0
    assert other != first


def test_bootstrap_of_perfect_predictions_is_zero():
    y = [10, 20, 30, 40]
    assert metrics.bootstrap_std(y, y, metrics.mae, n=50) == 0.0


def _report():
    y_true = [10, 40, 90, 130, 160]
    y_pred = [12, 35, 100, 120, 125]
    return y_true, y_pred, metrics.evaluation_report(y_true, y_pred, cap=125, n_bootstrap=50)


def test_report_is_json_serialisable_with_exact_shape():
    _, _, report = _report()
    round_trip = json.loads(json.dumps(report, allow_nan=False))
    assert round_trip == report
    assert set(report) == {
        "regression_metrics",
        "capped_truth_metrics",
        "error_by_rul_bucket",
        "n_units",
        "rul_cap",
        "predictions",
    }
    for block in ("regression_metrics", "capped_truth_metrics"):
        assert set(report[block]) == {"rmse", "mae", "r2", "phm08_score", "phm08_score_per_100_units"}
        for entry in report[block].values():
            assert set(entry) == {"value", "standard_deviation"}
            assert type(entry["value"]) is float and type(entry["standard_deviation"]) is float
    assert report["n_units"] == 5 and type(report["n_units"]) is int
    assert report["rul_cap"] == 125
    assert len(report["error_by_rul_bucket"]) == len(metrics.DEFAULT_BUCKETS) - 1
    assert set(report["error_by_rul_bucket"][0]) == {
        "bucket",
        "lower",
        "upper",
        "count",
        "rmse",
        "mean_error",
        "mae",
    }
    assert [p["unit"] for p in report["predictions"]] == [1, 2, 3, 4, 5]
    assert set(report["predictions"][0]) == {"unit", "true_rul", "predicted_rul", "error"}
    assert report["predictions"][2]["error"] == pytest.approx(10.0)


def test_report_capped_truth_metrics_use_clipped_truth():
    y_true, y_pred, report = _report()
    clipped = np.minimum(y_true, 125)
    capped = report["capped_truth_metrics"]
    assert capped["rmse"]["value"] == pytest.approx(metrics.rmse(clipped, y_pred))
    assert capped["mae"]["value"] == pytest.approx(metrics.mae(clipped, y_pred))
    assert capped["phm08_score"]["value"] == pytest.approx(metrics.phm08_score(clipped, y_pred))
    assert capped["rmse"]["value"] < report["regression_metrics"]["rmse"]["value"]
    assert report["regression_metrics"]["rmse"]["value"] == pytest.approx(metrics.rmse(y_true, y_pred))
    # the per-unit listing keeps the raw truth
    assert report["predictions"][4]["true_rul"] == 160


def test_report_with_numpy_units_and_mismatched_units():
    report = metrics.evaluation_report([1, 2], [1, 2], units=np.array([7, 9]), n_bootstrap=10)
    assert [p["unit"] for p in report["predictions"]] == [7, 9]
    json.dumps(report)
    with pytest.raises(DataFormatError, match="length mismatch"):
        metrics.evaluation_report([1, 2], [1, 2], units=[1, 2, 3], n_bootstrap=10)


def test_flat_metrics():
    y_true, y_pred, report = _report()
    flat = metrics.flat_metrics(report)
    assert list(flat) == ["rmse", "mae", "r2", "phm08_score", "phm08_score_per_100_units"]
    assert flat["rmse"] == pytest.approx(metrics.rmse(y_true, y_pred))
    assert flat["r2"] == report["regression_metrics"]["r2"]["value"]


def test_format_metrics_lines_and_regex_round_trip():
    values = {"rmse": 12.345678, "r2": -0.25, "phm08_score": 1234.5}
    lines = metrics.format_metrics("validation", values)
    assert lines == ["validation:rmse=12.3457", "validation:r2=-0.2500", "validation:phm08_score=1234.5000"]
    log = "\n".join(["epoch 3 done", *lines])
    for name, value in values.items():
        match = re.search(metrics.metric_regex(f"validation:{name}"), log)
        assert match is not None
        assert float(match.group(1)) == pytest.approx(value, abs=5e-5)
    # the tuner's own regex style reads it too
    assert re.search(r"validation:rmse=([0-9\.]+)", log).group(1) == "12.3457"
    assert metrics.format_metrics("", {"mae": 1}) == ["mae=1.0000"]


def test_metric_definitions_match_format():
    definitions = metrics.metric_definitions("train")
    assert [d["Name"] for d in definitions] == [f"train:{n}" for n in metrics.METRIC_NAMES]
    line = metrics.format_metrics("train", {"mae": 3.21})[0]
    mae_regex = definitions[1]["Regex"]
    assert re.search(mae_regex, line).group(1) == "3.2100"


@pytest.mark.parametrize(
    ("y_true", "y_pred", "pattern"),
    [
        ([1, 2, 3], [1, 2], r"length mismatch: y_true has 3 values, y_pred has 2"),
        ([1, float("nan"), 3], [1, 2, 3], r"y_true has NaN at index 1"),
        ([1, 2, 3], [1, 2, float("nan")], r"y_pred has NaN at index 2"),
        ([1, 2], [1, float("inf")], r"y_pred has infinite value at index 1"),
        ([], [], r"empty"),
        ([[1, 2]], [[1, 2]], r"1-D"),
    ],
)
def test_validation_errors_name_the_problem(y_true, y_pred, pattern):
    with pytest.raises(DataFormatError, match=pattern) as info:
        metrics.validate_predictions(y_true, y_pred)
    assert isinstance(info.value, RulError)
    assert info.value.path == "predictions" and info.value.line is None
    with pytest.raises(DataFormatError):
        metrics.rmse(y_true, y_pred)


def test_validate_returns_float_arrays():
    true, pred = metrics.validate_predictions([1, 2], (3, 4))
    assert true.dtype == float and pred.dtype == float
    assert true.tolist() == [1.0, 2.0]
