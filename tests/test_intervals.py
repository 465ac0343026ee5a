"""Prediction intervals (`rul.intervals`): conformal quantiles, bins, the saved form, measured coverage."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from rul.errors import ConfigurationError, ModelArtifactError
from rul.hyperparameters import Hyperparameters
from rul.intervals import IntervalCalibration, calibrate, conformal_offsets, coverage
from rul.models import fit_final_predictor
from rul.splits import CutProtocol, cut_units, split_by_unit
from rul.synthetic import SyntheticSpec, generate

FAST_GBM = {"feature_set": "stats", "ensemble_size": 1, "max_iter": 80}


def test_conformal_offsets_use_finite_sample_ranks():
    residuals = np.arange(1.0, 20.0)  # 19 values: ranks floor(0.05 * 20) = 1 and ceil(0.95 * 20) = 19
    assert conformal_offsets(residuals, 0.9) == (1.0, 19.0)
    assert conformal_offsets(residuals, 0.5) == (5.0, 15.0)
    assert conformal_offsets(np.array([-3.0, 4.0]), 0.9) == (-3.0, 4.0)  # too few: the extremes


def test_calibration_bins_by_predicted_rul_and_widens_where_errors_grow():
    rng = np.random.default_rng(0)
    predicted = rng.uniform(0, 125, 4000)
    truth = predicted + rng.normal(0, 1 + predicted / 10)  # error grows with the prediction
    calibration = calibrate(predicted, truth, units=400)
    assert len(calibration.edges) == 3 and len(calibration.residuals) == 4
    lower, upper = calibration.bounds(np.array([10.0, 110.0]), 0.9)
    assert upper[1] - lower[1] > 3 * (upper[0] - lower[0])
    fresh = rng.uniform(0, 125, 20_000)
    fresh_truth = fresh + rng.normal(0, 1 + fresh / 10)
    assert 0.88 <= coverage(fresh_truth, *calibration.bounds(fresh, 0.9)) <= 0.92
    assert 0.78 <= coverage(fresh_truth, *calibration.bounds(fresh, 0.8)) <= 0.82


def test_bounds_clip_at_zero_and_reject_a_bad_level():
    calibration = calibrate(np.full(100, 5.0), np.linspace(-40, 40, 100), units=20)
    assert calibration.edges == ()  # every prediction ties: one bin
    lower, upper = calibration.bounds(np.array([5.0]), 0.9)
    assert lower[0] == 0.0 and upper[0] > 5.0
    for level in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigurationError, match="interval level"):
            calibration.bounds(np.array([5.0]), level)
    with pytest.raises(ConfigurationError, match="at least 2 finite residuals"):
        calibrate(np.array([1.0]), np.array([np.nan]), units=1)


def test_calibration_round_trips_and_a_malformed_one_is_named():
    rng = np.random.default_rng(1)
    calibration = calibrate(rng.uniform(0, 125, 300), rng.uniform(0, 125, 300), units=60)
    assert IntervalCalibration.from_dict(calibration.as_dict()) == calibration
    with pytest.raises(ModelArtifactError, match="malformed"):
        IntervalCalibration.from_dict({"edges": [], "units": 3})
    with pytest.raises(ModelArtifactError, match="1 edges for 1 residual bins"):
        IntervalCalibration.from_dict({"edges": [50.0], "residuals": [[1.0]], "units": 3})


@pytest.mark.slow
def test_final_model_intervals_cover_held_out_units_at_the_nominal_rate():
    """Calibrated on 60 validation units, refitted on 200; scored on 300 other units cut 2 times each."""
    fleet = generate(SyntheticSpec(n_train_units=500, n_test_units=1, seed=21)).train
    splits = split_by_unit(fleet, seed=3, validation_fraction=0.12, test_fraction=0.6)
    hp = Hyperparameters.from_dict(FAST_GBM)
    with threadpool_limits(1):  # two OpenMP threads on a loaded 2-core machine can stall for minutes
        predictor = fit_final_predictor(splits["train"], splits["validation"], None, hp)
    cut, truth = cut_units(splits["test"], seed=5, protocol=CutProtocol(), draws=2)
    predicted = predictor.predict_last(cut).merge(truth, on="unit")
    assert len(predicted) >= 500
    share = coverage(predicted["rul"], predicted["rul_lower"], predicted["rul_upper"])
    assert 0.88 <= share <= 0.92, share
