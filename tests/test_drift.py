"""The drift statistics (KS, PSI, severities, corrections), baselines, violations and the capture reader."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from drift_helpers import (  # noqa: F401 - fixtures
    ENDPOINT,
    FEATURES,
    START,
    baseline_dir_fixture,
    baseline_fixture,
    capture_line,
    served_windows,
    write_captures,
)
from scipy import stats

import drift
from rul import drift_stats as ds
from rul import drift_tests as dt
from rul.capture import read_window
from rul.data import COLUMNS
from rul.drift_constraints import constraint_violations
from rul.errors import ConfigurationError, DataFormatError
from rul.synthetic import SyntheticSpec, generate

# ---------------------------------------------------------------------------------------------------------
# Fixtures: a baseline and SageMaker data-capture files


# ---------------------------------------------------------------------------------------------------------
# KS, PSI, severities, corrections


def test_identical_samples_do_not_drift():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=2000)
    statistic, pvalue = dt.ks_test(reference, reference.copy())
    bins = dt.psi_bins(reference)
    value = dt.psi(dt.bin_shares(bins, reference), dt.bin_shares(bins, reference))
    assert statistic == 0 and pvalue == 1.0 and value == 0.0 and dt.severity(value) == dt.LOW


def test_shifted_sample_drifts_and_a_same_distribution_sample_does_not():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=2000)
    bins = dt.psi_bins(reference)
    expected = dt.bin_shares(bins, reference)
    same, shifted = rng.normal(size=500), rng.normal(0.5, 1, size=500)
    assert dt.ks_test(reference, same)[1] > 0.05 and dt.psi(expected, dt.bin_shares(bins, same)) < 0.1
    assert dt.ks_test(reference, shifted)[1] < 1e-6 and dt.psi(expected, dt.bin_shares(bins, shifted)) > 0.2


@pytest.mark.parametrize(
    ("value", "level"), [(0.0, "low"), (0.0999, "low"), (0.1, "medium"), (0.1999, "medium"), (0.2, "high")]
)
def test_severity_boundaries(value, level):
    assert dt.severity(value) == level


def test_psi_by_hand_and_epsilon_for_empty_bins():
    expected, actual = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.75, 0.0])
    assert dt.psi(expected, actual) == pytest.approx(-0.25 * np.log(0.5) + 0.25 * np.log(1.5))
    # A bin empty in the baseline counts with share 1e-4; a bin empty on both sides adds nothing.
    assert dt.psi(np.array([1.0, 0.0]), np.array([0.9, 0.1])) == pytest.approx(
        -0.1 * np.log(0.9) + (0.1 - 1e-4) * np.log(0.1 / 1e-4)
    )


def test_psi_bins_put_out_of_range_values_in_their_own_bins():
    bins = dt.psi_bins(np.arange(100.0))
    assigned = bins.assign(np.array([-1.0, 0.0, 99.0, 100.0]))
    assert (
        assigned[0] == 0
        and assigned[-1] == bins.count - 1
        and 0 < assigned[1] <= assigned[2] < bins.count - 1
    )


def test_near_constant_feature_bins_on_its_mode():
    reference = np.r_[np.full(980, 21.61), np.full(20, 21.60)]  # sensor 6 with 2% one-quantum dips
    bins = dt.psi_bins(reference)
    assert bins.mode == 21.61 and bins.count == 5
    same = dt.psi(dt.bin_shares(bins, reference), dt.bin_shares(bins, reference[::2]))
    more_dips = np.r_[np.full(400, 21.61), np.full(100, 21.60)]
    assert same == 0.0
    assert dt.psi(dt.bin_shares(bins, reference), dt.bin_shares(bins, more_dips)) > 0.2


def test_benjamini_hochberg_matches_scipy_and_holm_matches_a_hand_computation():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    assert dt.adjust_pvalues(p, "bh") == pytest.approx(stats.false_discovery_control(p, method="bh"))
    assert dt.adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert dt.adjust_pvalues([0.9, 0.8], "holm") == pytest.approx([1.0, 1.0])
    with pytest.raises(ConfigurationError):
        dt.adjust_pvalues(p, "bonferroni")
    with pytest.raises(ConfigurationError):
        dt.adjust_pvalues([1.5], "bh")


def test_effective_rows_count_units_not_rows_when_rows_of_a_unit_agree():
    groups = np.repeat(np.arange(10), 30)
    same_within = np.repeat(np.random.default_rng(0).normal(size=10), 30)
    independent = np.random.default_rng(1).normal(size=300)
    assert dt.effective_rows(same_within, groups) == pytest.approx(10)
    assert dt.effective_rows(independent, groups) > 200
    assert dt.effective_rows(independent, None) == 300


def test_settings_are_validated():
    with pytest.raises(ConfigurationError, match="alpha"):
        ds.DriftSettings(alpha=1.5)
    with pytest.raises(ConfigurationError, match="correction"):
        ds.DriftSettings(correction="sidak")


# ---------------------------------------------------------------------------------------------------------
# Baselines and constraint violations


def test_statistics_baseline_uses_the_sketch_and_weighs_levels():
    kll = {"sketch": {"data": [[1.0, 2.0], [3.0]]}}
    assert list(ds.sketch_sample(kll, "s")) == [1.0, 2.0, 3.0, 3.0]
    with pytest.raises(DataFormatError, match="no finite values"):
        ds.sketch_sample({"sketch": {"data": []}}, "s")


def test_baseline_from_statistics_and_from_csv_agree(baseline, baseline_dir, tmp_path):
    assert set(baseline.features) == set(FEATURES) and baseline.source == "statistics"
    assert baseline.comparison_threshold == 0.1
    train = generate(SyntheticSpec(n_train_units=100, n_test_units=1, seed=0)).train
    train[FEATURES].to_csv(tmp_path / "baseline.csv", index=False)
    from_csv = drift.load_baseline(tmp_path)
    assert from_csv.source == "csv" and from_csv.rows == len(train)
    for name in FEATURES:
        assert from_csv.features[name].minimum == baseline.features[name].minimum
        assert from_csv.features[name].maximum == baseline.features[name].maximum


def test_violations_have_model_monitors_shape_and_checks(baseline):
    current = served_windows(seed=5, units=10)[COLUMNS].astype(object)
    current = current.drop(columns=["sensor_3"])
    current.loc[0, "sensor_4"] = "n/a"
    current.loc[1:, "sensor_7"] = None
    current["sensor_9"] = 99999.0
    features = ds.compare_features(baseline, current, ds.DriftSettings())
    document = constraint_violations(baseline, current, features, ds.DriftSettings())
    assert set(document) == {"violations"}
    assert all(
        set(v) == {"feature_name", "constraint_check_type", "description"} for v in document["violations"]
    )
    found = {(v["feature_name"], v["constraint_check_type"]) for v in document["violations"]}
    assert {
        ("sensor_3", "missing_column_check"),
        ("sensor_4", "data_type_check"),
        ("sensor_7", "completeness_check"),
        ("sensor_9", "out_of_range_check"),
        ("sensor_9", "baseline_drift_check"),
    } <= found
    assert json.loads(json.dumps(document)) == document


# ---------------------------------------------------------------------------------------------------------
# Capture records


def test_malformed_records_are_skipped_with_their_file_and_line(tmp_path):
    folder = tmp_path / ENDPOINT / "AllTraffic" / "2026" / "11" / "25" / "13"
    folder.mkdir(parents=True)
    rows = served_windows(seed=5, units=1)
    good = capture_line(rows, START)
    bad_row = good.replace('"data": "1,', '"data": "1,2,', 1)
    stray = capture_line(rows, START, [{"unit": 7, "predicted_rul": 3.0, "cycles_used": 30, "padded": False}])
    (folder / "a.jsonl").write_text("\n".join([good, '{"captureData": {}', bad_row, stray, good]) + "\n")
    window = read_window(tmp_path)
    assert len(window.requests) == 2
    reasons = {skipped.line: skipped.reason for skipped in window.skipped}
    assert sorted(reasons) == [2, 3, 4] and all(s.path.endswith("a.jsonl") for s in window.skipped)
    assert reasons[2].startswith("not valid JSON")
    assert "serving would reject the request" in reasons[3] and "expected 26 columns, found 27" in reasons[3]
    assert "the response predicts units [7], the request sent [1]" in reasons[4]


def test_capture_window_and_predictions(tmp_path):
    write_captures(tmp_path, served_windows(seed=5, units=3))
    window = read_window(tmp_path, START + timedelta(minutes=1), START + timedelta(minutes=2))
    assert len(window.requests) == 1 and window.requests[0].inference_time == START + timedelta(minutes=1)
    predictions = window.predictions()
    assert list(predictions["unit"]) == [2]
    assert predictions["last_cycle"][0] == window.requests[0].rows["cycle"].max()


# ---------------------------------------------------------------------------------------------------------
# The drift job end to end


# ---------------------------------------------------------------------------------------------------------
# python -m local_runner monitor drift


# ---------------------------------------------------------------------------------------------------------
# Model Monitor's bring-your-own-container contract
