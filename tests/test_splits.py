"""Tests of rul.splits: unit-level splits and official-style cuts of held-out units."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from rul.errors import ConfigurationError, DataFormatError
from rul.splits import (
    FILE_KEYS,
    UNIT_SPAN,
    CutProtocol,
    assign_splits,
    check_unique_units,
    cut_point,
    cut_units,
    file_key,
    label_units,
    split_by_unit,
    unit_uniform,
)


def _lives_frame(lives: dict[int, int]) -> pd.DataFrame:
    units = np.concatenate([np.full(life, unit) for unit, life in lives.items()])
    cycles = np.concatenate([np.arange(1, life + 1) for life in lives.values()])
    return pd.DataFrame({"unit": units, "cycle": cycles, "sensor_2": np.arange(len(units), dtype=float)})


# --- unit_uniform and assign_splits -------------------------------------------------------------------


def test_unit_uniform_deterministic_and_in_range():
    draws = [unit_uniform(unit, 0, "split") for unit in range(1, 2001)]
    assert draws == [unit_uniform(unit, 0, "split") for unit in range(1, 2001)]
    assert all(0.0 <= draw < 1.0 for draw in draws)
    assert len(set(draws)) == len(draws)
    assert 0.45 < float(np.mean(draws)) < 0.55
    assert min(draws) < 0.01 and max(draws) > 0.99


def test_unit_uniform_depends_on_seed_purpose_and_unit():
    reference = unit_uniform(7, 0, "split")
    assert unit_uniform(7, 1, "split") != reference
    assert unit_uniform(7, 0, "cut-0") != reference
    assert unit_uniform(8, 0, "split") != reference
    # numpy integers and floats holding an integer give the same draw as the int.
    assert unit_uniform(np.int64(7), 0, "split") == reference
    assert unit_uniform(7.0, 0, "split") == reference


def test_assign_splits_independent_of_other_units():
    full = assign_splits(range(1, 101), seed=5, validation_fraction=0.2, test_fraction=0.2)
    half = assign_splits(range(1, 51), seed=5, validation_fraction=0.2, test_fraction=0.2)
    shuffled = assign_splits([50, 3, 17, *range(1, 51)], seed=5, validation_fraction=0.2, test_fraction=0.2)
    assert sorted(full) == list(range(1, 101))
    assert half == {unit: full[unit] for unit in range(1, 51)}
    assert shuffled == half
    assert set(full.values()) == {"train", "validation", "test"}


def test_assign_splits_depends_on_seed():
    first = assign_splits(range(1, 101), seed=0, validation_fraction=0.2, test_fraction=0.2)
    second = assign_splits(range(1, 101), seed=1, validation_fraction=0.2, test_fraction=0.2)
    assert first != second


def test_assign_splits_fractions_on_1000_units():
    splits = assign_splits(range(1, 1001), seed=0, validation_fraction=0.15, test_fraction=0.25)
    labels = list(splits.values())
    assert 100 <= labels.count("validation") <= 200
    assert 200 <= labels.count("test") <= 300
    assert 500 <= labels.count("train") <= 700
    assert len(labels) == 1000


def test_assign_splits_zero_fractions_put_everything_in_train():
    splits = assign_splits(np.arange(1, 51), seed=0, validation_fraction=0.0, test_fraction=0.0)
    assert set(splits.values()) == {"train"}
    assert all(type(unit) is int for unit in splits)


@pytest.mark.parametrize(
    ("validation", "test", "message"),
    [
        (-0.1, 0.2, "must lie in [0, 1)"),
        (0.2, -0.01, "must lie in [0, 1)"),
        (1.0, 0.0, "must lie in [0, 1)"),
        (0.0, 1.0, "must lie in [0, 1)"),
        (0.5, 0.5, "must be below 1, got 1.0"),
        (0.6, 0.7, "must be below 1, got 1.2999"),
    ],
)
def test_assign_splits_bad_fractions(validation, test, message):
    with pytest.raises(ConfigurationError) as caught:
        assign_splits([1, 2, 3], seed=0, validation_fraction=validation, test_fraction=test)
    assert message in str(caught.value)


def test_split_by_unit_keeps_whole_units_and_all_rows():
    frame = _lives_frame({unit: 10 + unit for unit in range(1, 61)})
    parts = split_by_unit(frame, seed=2, validation_fraction=0.2, test_fraction=0.2)
    assert set(parts) == {"train", "validation", "test"}
    assert sum(len(part) for part in parts.values()) == len(frame)
    unit_sets = [set(part["unit"]) for part in parts.values()]
    assert all(unit_sets)
    assert unit_sets[0].isdisjoint(unit_sets[1])
    assert unit_sets[0].isdisjoint(unit_sets[2])
    assert unit_sets[1].isdisjoint(unit_sets[2])
    assert set().union(*unit_sets) == set(range(1, 61))
    expected = assign_splits(range(1, 61), seed=2, validation_fraction=0.2, test_fraction=0.2)
    for name, part in parts.items():
        assert list(part.index) == list(range(len(part)))
        for unit, rows in part.groupby("unit"):
            assert expected[unit] == name
            assert len(rows) == 10 + unit
    combined = pd.concat(parts.values()).sort_values("sensor_2").reset_index(drop=True)
    pd.testing.assert_frame_equal(combined, frame)


def test_split_by_unit_sharded_equals_unsharded():
    frame = _lives_frame({unit: 5 for unit in range(1, 41)})
    whole = split_by_unit(frame, seed=9, validation_fraction=0.25, test_fraction=0.25)
    shards = [
        split_by_unit(frame[frame["unit"] <= 20], seed=9, validation_fraction=0.25, test_fraction=0.25),
        split_by_unit(frame[frame["unit"] > 20], seed=9, validation_fraction=0.25, test_fraction=0.25),
    ]
    for name in ("train", "validation", "test"):
        joined = pd.concat([shard[name] for shard in shards], ignore_index=True)
        pd.testing.assert_frame_equal(joined, whole[name])


# --- cut_point and cut_units --------------------------------------------------------------------------


@pytest.mark.parametrize("life", [36, 37, 100, 180, 181, 250, 362])
def test_cut_point_long_lives(life):
    protocol = CutProtocol()
    kept_values = {cut_point(life, draw, protocol) for draw in np.linspace(0.0, 0.999999, 401)}
    for kept in kept_values:
        rul = life - kept
        assert kept >= protocol.min_cycles
        assert protocol.min_rul <= rul <= protocol.max_rul
    highest = min(protocol.max_rul, life - protocol.min_cycles)
    assert max(kept_values) == life - protocol.min_rul
    assert min(kept_values) == life - highest


def test_cut_point_extremes_for_a_long_life():
    protocol = CutProtocol(min_cycles=30, min_rul=6, max_rul=150)
    assert cut_point(300, 0.0, protocol) == 294
    assert cut_point(300, 0.9999999, protocol) == 150
    assert cut_point(100, 0.9999999, protocol) == 30


@pytest.mark.parametrize(
    ("life", "kept"),
    [(35, 29), (20, 14), (7, 1), (6, 1), (2, 1), (1, 1)],
)
def test_cut_point_short_lives(life, kept):
    protocol = CutProtocol()
    for draw in (0.0, 0.5, 0.999):
        assert cut_point(life, draw, protocol) == kept
    assert 1 <= kept <= life


def test_cut_point_custom_protocol():
    protocol = CutProtocol(min_cycles=10, min_rul=0, max_rul=5)
    assert sorted({cut_point(50, draw, protocol) for draw in np.linspace(0, 0.9999, 100)}) == list(
        range(45, 51)
    )


def test_cut_units_truth_matches_kept_cycles():
    lives = {1: 200, 2: 150, 5: 40, 9: 25, 12: 310}
    frame = _lives_frame(lives)
    cut, truth = cut_units(frame, seed=4)
    assert truth["unit"].tolist() == [1, 2, 5, 9, 12]
    assert list(truth.columns) == ["unit", "rul"]
    kept = cut.groupby("unit")["cycle"].agg(["count", "max", "min"])
    for unit, rul in zip(truth["unit"], truth["rul"], strict=True):
        assert kept.loc[unit, "min"] == 1
        assert kept.loc[unit, "count"] == kept.loc[unit, "max"]
        assert rul == lives[unit] - kept.loc[unit, "count"]
        assert rul == lives[unit] - cut_point(lives[unit], unit_uniform(unit, 4, "cut-0"), CutProtocol())
    assert list(cut.columns) == list(frame.columns)
    # The kept rows are the original rows, unchanged.
    merged = cut.merge(frame, on=["unit", "cycle"], suffixes=("", "_orig"))
    assert len(merged) == len(cut)
    assert (merged["sensor_2"] == merged["sensor_2_orig"]).all()


def test_cut_units_deterministic_per_seed():
    frame = _lives_frame({unit: 120 + 3 * unit for unit in range(1, 21)})
    first = cut_units(frame, seed=11)
    again = cut_units(frame, seed=11)
    other = cut_units(frame, seed=12)
    pd.testing.assert_frame_equal(first[0], again[0])
    pd.testing.assert_frame_equal(first[1], again[1])
    assert first[1]["rul"].tolist() != other[1]["rul"].tolist()


def test_cut_units_several_draws_renumbers_units():
    lives = {1: 200, 2: 220, 3: 180}
    frame = _lives_frame(lives)
    cut, truth = cut_units(frame, seed=0, draws=4)
    expected_units = [unit * 1000 + draw for unit in (1, 2, 3) for draw in range(4)]
    assert truth["unit"].tolist() == expected_units
    assert sorted(pd.unique(cut["unit"])) == expected_units
    for new_unit, rul in zip(truth["unit"], truth["rul"], strict=True):
        original = new_unit // 1000
        rows = cut[cut["unit"] == new_unit]
        assert rul == lives[original] - len(rows)
        assert rows["cycle"].tolist() == list(range(1, len(rows) + 1))
    for unit in (1, 2, 3):
        cuts = truth[truth["unit"] // 1000 == unit]["rul"]
        assert cuts.nunique() > 1
    # The first draw of each unit equals the single-draw cut.
    single = cut_units(frame, seed=0)[1]
    assert truth[truth["unit"] % 1000 == 0]["rul"].tolist() == single["rul"].tolist()


def test_cut_distribution_resembles_official_test_set():
    rng = np.random.default_rng(0)
    lives = {unit: int(life) for unit, life in enumerate(rng.normal(200, 40, size=300).clip(128, 362), 1)}
    frame = _lives_frame(lives)
    cut, truth = cut_units(frame, seed=0)
    protocol = CutProtocol()
    assert 60 <= float(truth["rul"].median()) <= 100
    assert truth["rul"].min() >= protocol.min_rul
    assert truth["rul"].max() <= protocol.max_rul
    assert cut.groupby("unit").size().min() >= protocol.min_cycles
    elapsed = np.array([1 - rul / lives[unit] for unit, rul in zip(truth["unit"], truth["rul"], strict=True)])
    quartiles = np.quantile(elapsed, [0.25, 0.5, 0.75])
    assert 0.3 < quartiles[0] < quartiles[1] < quartiles[2] < 0.97
    assert 0.5 < quartiles[1] < 0.75


def test_cut_units_rejects_draw_counts_that_would_collide_and_empty_frames():
    frame = pd.DataFrame({"unit": [1] * 80, "cycle": range(1, 81)})
    with pytest.raises(ConfigurationError, match="draws"):
        cut_units(frame, seed=0, draws=1000)
    with pytest.raises(ConfigurationError, match="no units"):
        cut_units(frame.iloc[:0], seed=0)


# --- file_key, label_units and check_unique_units -----------------------------------------------------


def test_the_subsets_own_file_keeps_its_unit_numbers_and_other_files_get_a_stable_key():
    assert file_key("train_FD001", "FD001") == 0
    keys = {file_key(f"train_FD001_part{index}", "FD001") for index in range(200)}
    assert len(keys) == 200 and all(1 <= key < FILE_KEYS for key in keys)
    assert file_key("train_FD001_part7", "FD001") == file_key("train_FD001_part7", "FD001")
    assert file_key("train_FD002", "FD001") != 0  # another subset's file is not this subset's own


def test_label_units_names_units_by_file_and_number():
    frame = _lives_frame({1: 3, 2: 4})
    own = label_units(frame, "train_FD001.txt", "FD001")
    assert own["unit"].tolist() == frame["unit"].tolist() and set(own["source"]) == {"train_FD001.txt"}
    other = label_units(frame, "new/train_FD001_week2.txt", "FD001")
    key = file_key("train_FD001_week2", "FD001")
    assert other["unit"].tolist() == (key * UNIT_SPAN + frame["unit"]).tolist()
    assert other["source_unit"].tolist() == frame["unit"].tolist() and frame["unit"].max() == 2  # input kept
    assert set(other["unit"]).isdisjoint(own["unit"])


def test_label_units_refuses_unit_numbers_beyond_the_span():
    with pytest.raises(DataFormatError, match=re.escape(f"big.txt: unit {UNIT_SPAN} exceeds")):
        label_units(_lives_frame({UNIT_SPAN: 2}), "big.txt", "FD001")


def test_splits_of_labelled_units_do_not_depend_on_the_other_files():
    frame = _lives_frame({unit: 40 for unit in range(1, 31)})
    alone = split_by_unit(label_units(frame, "train_FD001_b.txt", "FD001"), 3, 0.2, 0.2)
    both = split_by_unit(
        pd.concat(
            [label_units(frame, "train_FD001.txt", "FD001"), label_units(frame, "train_FD001_b.txt", "FD001")]
        ),
        3,
        0.2,
        0.2,
    )
    for name, part in alone.items():
        from_b = both[name][both[name]["source"] == "train_FD001_b.txt"].reset_index(drop=True)
        pd.testing.assert_frame_equal(from_b, part)


def test_check_unique_units_names_both_files_of_a_repeated_unit():
    frame = _lives_frame({1: 3, 2: 3})
    first, second = (
        label_units(frame, "a/train_FD001.txt", "FD001"),
        label_units(frame, "b/train_FD001.txt", "FD001"),
    )
    check_unique_units(first, "input")
    with pytest.raises(
        DataFormatError,
        match=re.escape("input: unit 1 occurs in both a/train_FD001.txt and b/train_FD001.txt"),
    ):
        check_unique_units(pd.concat([first, second]), "input")
    with pytest.raises(DataFormatError, match=re.escape("unit 2 of a/train_FD001.txt occurs twice")):
        check_unique_units(pd.concat([first, first[first["unit"] == 2]]), "input")
    with pytest.raises(DataFormatError, match="input: unit 1 occurs twice"):
        check_unique_units(pd.concat([frame, frame]), "input")
