"""Labels, sensor selection, condition normalisation and windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rul.data import SENSOR_COLUMNS, SETTING_COLUMNS
from rul.errors import ConfigurationError
from rul.features import (
    FeatureTransformer,
    capped_rul,
    detect_condition_count,
    effective_stride,
    last_rows,
    remaining_cycles,
    sliding_windows,
    thinning_mask,
    window_statistics,
)


def two_units() -> pd.DataFrame:
    """The module's shared `two_units` fixture."""
    rows = [(1, cycle) for cycle in range(1, 6)] + [(2, cycle) for cycle in range(1, 4)]
    frame = pd.DataFrame(rows, columns=["unit", "cycle"])
    return frame


def test_remaining_cycles_and_capped_label():
    """Checks: remaining cycles and capped label."""
    frame = two_units()
    assert remaining_cycles(frame).tolist() == [4, 3, 2, 1, 0, 2, 1, 0]
    assert capped_rul(frame, cap=2).tolist() == [2, 2, 2, 1, 0, 2, 1, 0]


def test_window_statistics_match_pandas_rolling_within_units():
    """Checks: window statistics match pandas rolling within units."""
    rng = np.random.default_rng(0)
    frame = two_units()
    values = rng.normal(size=(len(frame), 2))
    stats = window_statistics(values, frame["unit"].to_numpy(), width=3)
    expected_mean = pd.DataFrame(values).groupby(frame["unit"]).transform(lambda s: s.rolling(3, 1).mean())
    expected_std = (
        pd.DataFrame(values).groupby(frame["unit"]).transform(lambda s: s.rolling(3, 1).std(ddof=0))
    )
    np.testing.assert_allclose(stats["mean"], expected_mean.to_numpy())
    np.testing.assert_allclose(stats["std"], expected_std.fillna(0).to_numpy(), atol=1e-6)
    # A unit's first row has no slope; the window never reaches into the previous unit.
    assert stats["slope"][0].tolist() == [0.0, 0.0]
    assert stats["slope"][5].tolist() == [0.0, 0.0]


def test_slope_of_a_linear_signal_is_its_rate():
    """Checks: slope of a linear signal is its rate."""
    units = np.ones(10, dtype=int)
    values = (3.0 * np.arange(10) + 7.0)[:, None]
    assert window_statistics(values, units, width=4)["slope"][1:, 0] == pytest.approx(3.0)


def test_sliding_windows_pad_short_units_with_their_first_row():
    """Checks: sliding windows pad short units with their first row."""
    frame = two_units()
    values = np.arange(len(frame), dtype=float)[:, None]
    windows, padded = sliding_windows(values, frame["unit"].to_numpy(), window=4)
    assert windows.shape == (8, 4, 1)
    assert windows[4, :, 0].tolist() == [1, 2, 3, 4]  # unit 1, cycle 5
    assert windows[7, :, 0].tolist() == [5, 5, 6, 7]  # unit 2 (rows 5..7), padded with its first row
    assert padded.tolist() == [True, True, True, False, False, True, True, True]


def test_last_rows_marks_each_units_final_cycle():
    """Checks: last rows marks each units final cycle."""
    assert last_rows(two_units()).tolist() == [False] * 4 + [True, False, False, True]


def test_condition_count_detected_for_one_and_six_conditions(small_subset, multi_condition_subset):
    """Checks: condition count detected for one and six conditions."""
    assert detect_condition_count(small_subset.train[SETTING_COLUMNS].to_numpy()) == 1
    assert detect_condition_count(multi_condition_subset.train[SETTING_COLUMNS].to_numpy()) == 6


def test_transformer_drops_near_constant_sensors_and_scales_on_train(small_subset):
    """Checks: transformer drops near constant sensors and scales on train."""
    transformer = FeatureTransformer(window=30, feature_set="stats").fit(small_subset.train)
    assert transformer.dropped_sensors, "the generator has near-constant sensors"
    assert set(transformer.sensors) | set(transformer.dropped_sensors) == set(SENSOR_COLUMNS)
    normalized = transformer.normalized(small_subset.train)
    np.testing.assert_allclose(normalized.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(normalized.std(axis=0), 1.0, atol=1e-6)
    features = transformer.tabular(small_subset.train)
    assert features.shape == (len(small_subset.train), 1 + 4 * len(transformer.sensors))
    assert len(transformer.feature_names) == features.shape[1]


def test_per_condition_normalisation_removes_the_condition_offsets(multi_condition_subset):
    """Checks: per condition normalisation removes the condition offsets."""
    train = multi_condition_subset.train
    transformer = FeatureTransformer(feature_set="rich").fit(train)
    assert transformer.n_conditions == 6
    normalized = transformer.normalized(train)
    conditions = transformer.normalizer.conditions(train[SETTING_COLUMNS].to_numpy())
    for condition in range(6):
        np.testing.assert_allclose(normalized[conditions == condition].mean(axis=0), 0.0, atol=1e-6)
    raw_spread = train[transformer.sensors].std().to_numpy()
    assert (raw_spread > 0).all()
    features = transformer.tabular(train)
    assert features.shape[1] == len(transformer.feature_names) == 1 + 13 * len(transformer.sensors)
    assert np.isfinite(features).all()


def test_features_of_a_unit_do_not_depend_on_other_units(small_subset):
    """Checks: features of a unit do not depend on other units."""
    train = small_subset.train
    transformer = FeatureTransformer(feature_set="rich").fit(train)
    alone = train[train["unit"] == 5].reset_index(drop=True)
    together = transformer.tabular(train)[train["unit"].to_numpy() == 5]
    np.testing.assert_allclose(transformer.tabular(alone), together, rtol=1e-5, atol=1e-5)


def test_transformer_rejects_bad_settings():
    """Checks: transformer rejects bad settings."""
    with pytest.raises(ConfigurationError, match="feature_set"):
        FeatureTransformer(feature_set="fancy")
    with pytest.raises(ConfigurationError, match="window"):
        FeatureTransformer(window=0)
    with pytest.raises(ConfigurationError, match="not fitted"):
        FeatureTransformer().normalized(two_units())


def test_exponential_means_match_pandas_and_restart_per_unit():
    """Checks: exponential means match pandas and restart per unit."""
    from rul.features import ewm

    rng = np.random.default_rng(1)
    frame = two_units()
    values = rng.normal(size=(len(frame), 3))
    expected = (
        pd.DataFrame(values).groupby(frame["unit"]).transform(lambda s: s.ewm(alpha=0.3, adjust=False).mean())
    )
    np.testing.assert_allclose(ewm(values, frame["unit"].to_numpy(), 0.3), expected.to_numpy(), rtol=1e-12)


def test_thinning_keeps_every_kth_row_of_each_unit_from_varied_offsets():
    """Checks: thinning keeps every kth row of each unit from varied offsets."""
    frame = pd.DataFrame(
        [(unit, cycle) for unit in range(1, 41) for cycle in range(1, 101)], columns=["unit", "cycle"]
    )
    assert thinning_mask(frame, 1, 0).all()
    keep = thinning_mask(frame, 5, 0)
    assert (frame[keep].groupby("unit").size() == 20).all()
    from_end = frame.groupby("unit").cumcount(ascending=False)
    offsets = (from_end[keep] % 5).groupby(frame.loc[keep, "unit"]).unique()
    assert all(len(offset) == 1 for offset in offsets)  # one offset per unit: a regular stride
    assert len({int(offset[0]) for offset in offsets}) == 5  # units differ, so every RUL is covered
    assert not np.array_equal(thinning_mask(frame, 5, 1), keep)  # the seed moves the offsets


@pytest.mark.parametrize(
    ("rows", "stride", "max_rows", "expected"),
    [
        (1000, 1, 0, 1),
        (1000, 3, 0, 3),
        (1000, 1, 1000, 1),
        (1001, 1, 1000, 2),
        (1000, 7, 500, 7),
        (10, 1, 3, 4),
    ],
)
def test_effective_stride_meets_the_row_budget(rows, stride, max_rows, expected):
    """Checks: effective stride meets the row budget."""
    assert effective_stride(rows, stride, max_rows) == expected
