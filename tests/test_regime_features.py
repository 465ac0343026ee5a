"""The `regime` feature set (cycles spent in each operating condition, drift from a unit's baseline) and the
`auto` settings that pick it, with two caps, for fleets flown in several operating conditions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rul.auto_settings import resolve
from rul.data import SETTING_COLUMNS
from rul.ensemble import CapBlend, GbmEnsemble
from rul.errors import ConfigurationError
from rul.fast_path import FastPredictor
from rul.features import BASELINE_CYCLES, FeatureTransformer, regime_history, unit_baseline
from rul.hyperparameters import Hyperparameters
from rul.models import RulPredictor, fit_predictor

TINY = {"ensemble_size": 1, "max_iter": 20}


def test_regime_history_counts_cycles_per_condition_and_restarts_per_unit():
    units = np.array([1, 1, 1, 1, 2, 2, 2])
    conditions = np.array([0, 2, 2, 1, 2, 0, 2])
    history = regime_history(conditions, units, n_conditions=3)
    assert history.tolist() == [
        [1, 0, 0],
        [1, 0, 1],
        [1, 0, 2],
        [1, 1, 2],
        [0, 0, 1],
        [1, 0, 1],
        [1, 0, 2],
    ]
    # The counts add up to the cycles seen so far in the unit.
    assert history.sum(axis=1).tolist() == [1, 2, 3, 4, 1, 2, 3]


def test_unit_baseline_is_the_mean_of_the_first_cycles_seen_so_far():
    units = np.array([1] * 6 + [2] * 2)
    values = np.arange(8, dtype=float)[:, None]
    baseline = unit_baseline(values, units, cycles=3)[:, 0]
    # Unit 1: running mean until 3 cycles, then fixed at mean(0, 1, 2); unit 2 starts afresh.
    assert baseline.tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 6.0, 6.5])


def test_regime_features_extend_rich_ones_on_a_multi_condition_fleet(multi_condition_subset):
    train = multi_condition_subset.train.sort_values(["unit", "cycle"]).reset_index(drop=True)
    rich = FeatureTransformer(feature_set="rich").fit(train)
    regime = FeatureTransformer(feature_set="regime").fit(train)
    rich_features, regime_features = rich.tabular(train), regime.tabular(train)
    sensors = len(regime.sensors)
    assert regime_features.shape[1] == len(regime.feature_names) == rich_features.shape[1] + sensors + 6
    np.testing.assert_array_equal(regime_features[:, : rich_features.shape[1]], rich_features)
    history = regime_features[:, -6:]
    # Every row's counts add up to its position in the unit, and they match the normaliser's conditions.
    positions = train.groupby("unit").cumcount().to_numpy() + 1
    np.testing.assert_array_equal(history.sum(axis=1), positions)
    conditions = regime.normalizer.conditions(train[SETTING_COLUMNS].to_numpy())
    first_rows = positions == 1
    assert (history[first_rows].argmax(axis=1) == conditions[first_rows]).all()
    drift = regime_features[:, rich_features.shape[1] : rich_features.shape[1] + sensors]
    # Drift is zero-mean early in life (the baseline is those very cycles) and grows towards failure.
    early = positions <= BASELINE_CYCLES
    late = train.groupby("unit")["cycle"].transform("max").to_numpy() - train["cycle"].to_numpy() < 10
    assert np.abs(drift[late]).mean() > 3 * np.abs(drift[early]).mean()


def test_single_condition_regime_features_add_only_the_drift(small_subset):
    transformer = FeatureTransformer(feature_set="regime").fit(small_subset.train)
    features = transformer.tabular(small_subset.train)
    assert features.shape[1] == len(transformer.feature_names) == 1 + 14 * len(transformer.sensors)
    assert np.isfinite(features).all()


def test_regime_features_of_a_unit_do_not_depend_on_other_units(multi_condition_subset):
    """A unit's features are computed from its own rows only, so serving one unit gives what training saw."""
    train = multi_condition_subset.train.sort_values(["unit", "cycle"]).reset_index(drop=True)
    transformer = FeatureTransformer(feature_set="regime").fit(train)
    unit = int(train["unit"].iloc[-1])
    alone = train[train["unit"] == unit].reset_index(drop=True)
    together = transformer.tabular(train)[train["unit"].to_numpy() == unit]
    np.testing.assert_allclose(transformer.tabular(alone), together, rtol=1e-5, atol=1e-5)


def test_regime_is_a_hyperparameter_choice_and_auto_is_the_default():
    assert Hyperparameters().feature_set == "auto"
    assert Hyperparameters.from_dict({"feature_set": "regime"}).feature_set == "regime"


def test_auto_chooses_from_the_operating_conditions_found_not_from_a_name(
    small_subset, multi_condition_subset
):
    single, _ = resolve(Hyperparameters(), small_subset.train)
    multi, record = resolve(Hyperparameters(), multi_condition_subset.train)
    assert (single.feature_set, single.rul_cap, single.inner_cap) == ("rich", 125.0, 125.0)
    assert (multi.feature_set, multi.rul_cap, multi.inner_cap) == ("regime", 150.0, 125.0)
    assert record["operating_conditions"] == 6 and record["rul_cap"] == {"requested": "auto", "used": 150.0}
    # n_conditions, when set, is what counts; values the user set are kept; a cap set means one cap.
    assert resolve(Hyperparameters(n_conditions=1), multi_condition_subset.train)[0].feature_set == "rich"
    kept, _ = resolve(Hyperparameters(feature_set="stats", rul_cap=140.0), multi_condition_subset.train)
    assert (kept.feature_set, kept.rul_cap, kept.inner_cap) == ("stats", 140.0, 140.0)
    # The two caps were measured with the regime features: a feature set the user chose gets one cap.
    rich, _ = resolve(Hyperparameters(feature_set="rich"), multi_condition_subset.train)
    assert (rich.feature_set, rich.rul_cap, rich.inner_cap) == ("rich", 150.0, 150.0)
    deep, _ = resolve(Hyperparameters(model_family="cnn"), multi_condition_subset.train)
    assert (deep.rul_cap, deep.inner_cap) == (150.0, 150.0)
    concrete = Hyperparameters(feature_set="rich", rul_cap=125.0, inner_cap=125.0)
    assert resolve(concrete, multi_condition_subset.train) == (concrete, {})
    with pytest.raises(ConfigurationError, match=r"inner_cap=140\.0 must not exceed rul_cap=125\.0"):
        resolve(Hyperparameters(inner_cap=140.0), small_subset.train)


def test_an_auto_model_records_its_choice_and_a_multi_condition_one_blends_two_caps(
    small_subset, multi_condition_subset, tmp_path
):
    single = fit_predictor(small_subset.train, None, Hyperparameters.from_dict(TINY))
    multi = fit_predictor(multi_condition_subset.train, None, Hyperparameters.from_dict(TINY))
    assert isinstance(single.estimator, GbmEnsemble) and single.hyperparameters.feature_set == "rich"
    assert FastPredictor.build(single) is not None  # the resolved `rich` is served by the fast path
    assert FastPredictor.build(multi) is None  # regime, two caps: the reference path
    assert isinstance(multi.estimator, CapBlend) and multi.hyperparameters.feature_set == "regime"
    assert multi.estimator.inner.hyperparameters.rul_cap == 125.0
    assert multi.metadata["auto_settings"]["operating_conditions"] == 6
    loaded = RulPredictor.load(multi.save(tmp_path / "model"))
    assert loaded.hyperparameters == multi.hyperparameters and loaded.metadata["auto_settings"][
        "inner_cap"
    ] == {
        "requested": "auto",
        "used": 125.0,
    }
    test = multi_condition_subset.test
    assert np.array_equal(
        loaded.predict_last(test)["predicted_rul"], multi.predict_last(test)["predicted_rul"]
    )
    assert multi.predict_last(test)["predicted_rul"].between(0, 150).all()


def test_a_unit_shorter_than_the_baseline_still_gets_finite_features(multi_condition_subset):
    train = multi_condition_subset.train.sort_values(["unit", "cycle"]).reset_index(drop=True)
    transformer = FeatureTransformer(feature_set="regime").fit(train)
    short = train[train["unit"] == train["unit"].iloc[0]].head(3).reset_index(drop=True)
    assert isinstance(short, pd.DataFrame) and np.isfinite(transformer.tabular(short)).all()
