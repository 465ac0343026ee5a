"""How much history a request needs (issue #19): a unit sent from cycle 1 is always taken; one sent from a
later cycle must carry the rows the model reads (`history_cycles`: 60 for `rich`, the window for `stats`
and deep models), and a `regime` model, which reads each unit from cycle 1, refuses it whatever its
length. Serving (both paths) and batch scoring apply the one rule."""

from __future__ import annotations

import json

import batch_score
import numpy as np
import pandas as pd
import pytest
from test_batch_fleet import champion_folder

import serve
from local_runner.demo_state import DemoOptions
from rul.capture import CaptureConfig, DataCapture, read_window
from rul.data import COLUMNS, write_trajectories
from rul.errors import DataFormatError
from rul.features import BASELINE_CYCLES, FeatureTransformer, late_starts
from rul.fleet import check_whole_histories, read_fleet
from rul.hyperparameters import Hyperparameters
from rul.inference import RequestError, ServingModel, late_start_problem, load_model
from rul.models import RulPredictor, fit_predictor

# The smallest gbm the regime tests train; the feature set and caps stay `auto`, chosen from the data.
TINY = {"ensemble_size": 1, "max_iter": 20}
TRAILING = 31  # rows of a trailing window: more than the window of 30 cycles
RICH_HISTORY = 60  # the longest span of the `rich` features: `slope60`


def sorted_units(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["unit", "cycle"]).reset_index(drop=True)


def longest_unit(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the unit with the most cycles."""
    unit = frame.groupby("unit")["cycle"].max().idxmax()
    return frame[frame["unit"] == unit].reset_index(drop=True)


def trailing(unit: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The last `rows` cycles of one unit, as a client sending only recent cycles would."""
    return unit.iloc[-rows:].reset_index(drop=True)


def csv_body(frame: pd.DataFrame) -> bytes:
    return frame[COLUMNS].to_csv(index=False).encode()


@pytest.fixture(scope="module")
def regime_model_dir(tmp_path_factory, multi_condition_subset):
    """A tiny gbm trained on six operating conditions: `auto` picks the `regime` features."""
    directory = tmp_path_factory.mktemp("regime-model") / "model"
    fit_predictor(multi_condition_subset.train, None, Hyperparameters.from_dict(TINY)).save(directory)
    return directory


@pytest.fixture(scope="module")
def rich_model_dir(tmp_path_factory, small_subset):
    """A tiny gbm trained on one operating condition: `auto` picks the `rich` features."""
    directory = tmp_path_factory.mktemp("rich-model") / "model"
    fit_predictor(small_subset.train, None, Hyperparameters.from_dict(TINY)).save(directory)
    return directory


# --- which features need the whole history -------------------------------------------------------------


@pytest.mark.parametrize(
    ("feature_set", "conditions", "needs"),
    [("regime", 6, True), ("regime", 1, True), ("rich", 6, False), ("stats", 6, False)],
)
def test_needs_whole_history_follows_the_features_computed(
    feature_set, conditions, needs, multi_condition_subset, small_subset
):
    data = multi_condition_subset if conditions == 6 else small_subset
    transformer = FeatureTransformer(feature_set=feature_set).fit(data.train)
    assert transformer.needs_whole_history is needs
    history = transformer.whole_history_features
    assert set(history) <= set(transformer.feature_names)
    if needs:
        drift = [name for name in history if name.endswith(":drift10")]
        assert len(drift) == len(transformer.sensors)
        counted = [name for name in history if name.startswith("cycles_in_condition")]
        assert len(counted) == (conditions if conditions > 1 else 0)
        assert len(history) == len(drift) + len(counted)
        assert ("since cycle 1" in transformer.whole_history_reason()) is (conditions > 1)
        assert f"first {BASELINE_CYCLES} cycles" in transformer.whole_history_reason()
    else:
        assert history == []


def test_the_auto_choice_and_the_family_decide_what_serving_requires(regime_model_dir, rich_model_dir):
    regime, rich = load_model(regime_model_dir), load_model(rich_model_dir)
    assert regime.predictor.transformer.feature_set == "regime" and regime.needs_whole_history
    assert rich.predictor.transformer.feature_set == "rich" and not rich.needs_whole_history
    # A deep model reads its sensor windows only, whatever feature set its transformer was given.
    deep_hp = Hyperparameters.from_dict({"model_family": "cnn", "feature_set": "regime"})
    deep = RulPredictor(regime.predictor.transformer, deep_hp, estimator=None)
    assert not ServingModel(deep, None, "cnn", regime_model_dir).needs_whole_history


def test_late_starts_names_each_unit_that_starts_after_cycle_one():
    units = np.array([3, 3, 1, 1, 1, 2, 2, 3])
    cycles = np.array([8, 9, 1, 2, 3, 150, 151, 7])
    late, first = late_starts(units, cycles)
    assert late.tolist() == [2, 3] and first.tolist() == [150, 7]
    assert [len(part) for part in late_starts(np.array([5, 5]), np.array([1, 2]))] == [0, 0]


# --- the skew is real ------------------------------------------------------------------------------------


def last_row_features(transformer: FeatureTransformer, unit: pd.DataFrame) -> pd.Series:
    return pd.Series(transformer.tabular(unit)[-1], index=transformer.feature_names, dtype=np.float64)


def test_regime_features_of_a_trailing_window_differ_however_long_the_window(multi_condition_subset):
    train = sorted_units(multi_condition_subset.train)
    transformer = FeatureTransformer(feature_set="regime").fit(train)
    unit = longest_unit(train)
    full = last_row_features(transformer, unit)
    history = transformer.whole_history_features
    counted = [name for name in history if name.startswith("cycles_in_condition")]
    drift = [name for name in history if name.endswith(":drift10")]
    # Dropping only the first baseline's worth of cycles, or all but the last 31, shifts both kinds.
    for rows in (TRAILING, len(unit) - BASELINE_CYCLES):
        window = last_row_features(transformer, trailing(unit, rows))
        assert full[counted].sum() == len(unit) and window[counted].sum() == rows
        assert np.abs(full[drift] - window[drift]).max() > 0.1


def test_stats_features_of_a_trailing_window_equal_the_full_history_ones(multi_condition_subset):
    train = sorted_units(multi_condition_subset.train)
    transformer = FeatureTransformer(feature_set="stats").fit(train)
    unit = longest_unit(train)
    window = last_row_features(transformer, trailing(unit, TRAILING))
    np.testing.assert_allclose(window, last_row_features(transformer, unit), rtol=1e-5, atol=1e-4)


def test_rich_features_depend_on_earlier_cycles_only_through_decaying_averages(small_subset):
    """The `rich` set looks back at most 60 cycles, except its exponentially weighted means, whose memory of
    the cycles before a trailing window of L rows fades as (1 - alpha)^(L - 1): no cycle-1 anchor."""
    train = sorted_units(small_subset.train)
    transformer = FeatureTransformer(feature_set="rich").fit(train)
    unit = longest_unit(train)
    full = last_row_features(transformer, unit)
    values = transformer.normalized(unit)
    for rows in (60, 120, 240):
        window = last_row_features(transformer, trailing(unit, rows))
        ewm = [name for name in transformer.feature_names if ":ewm" in name]
        others = [name for name in transformer.feature_names if name not in ewm]
        np.testing.assert_allclose(window[others], full[others], rtol=1e-5, atol=1e-4)
        start = len(unit) - rows
        for alpha in (0.05, 0.1, 0.3):
            columns = [f"{sensor}:ewm{alpha}" for sensor in transformer.sensors]
            full_at_start = transformer.tabular(unit.iloc[: start + 1])[-1]
            starts = pd.Series(full_at_start, index=transformer.feature_names)[columns].to_numpy()
            bound = (1 - alpha) ** (rows - 1) * np.abs(values[start] - starts) + 1e-4
            assert (np.abs(window[columns].to_numpy() - full[columns].to_numpy()) <= bound).all()


# --- serving ---------------------------------------------------------------------------------------------


def test_a_regime_model_refuses_a_trailing_window_before_predicting_or_capturing(
    tmp_path, regime_model_dir, multi_condition_subset
):
    capture = DataCapture(CaptureConfig(tmp_path, "e", seed=0))
    service = serve.Service(serve.ServerSettings(model_dir=regime_model_dir), capture)
    unit = longest_unit(sorted_units(multi_condition_subset.test))
    window = trailing(unit, TRAILING)
    number, first = int(unit["unit"].iloc[0]), int(window["cycle"].iloc[0])
    status, body, content_type = service.invoke(csv_body(window), "text/csv", None)
    answer = json.loads(body)
    assert (status, content_type, answer["status"]) == (400, "application/json", 400)
    message = answer["error"]
    assert message.startswith(f"unit {number} starts at cycle {first}: feature set 'regime' counts ")
    assert "since cycle 1" in message and message.endswith("send the unit's rows from cycle 1")
    assert read_window(tmp_path).requests == ()

    status, body, _ = service.invoke(csv_body(unit), "text/csv", None)
    assert status == 200
    expected = service.model.predictor.predict_last(unit)["predicted_rul"].iloc[0]
    assert json.loads(body)["predictions"][0]["predicted_rul"] == pytest.approx(expected)
    assert len(read_window(tmp_path).requests) == 1


def test_the_batched_and_toolkit_paths_refuse_the_same_request(regime_model_dir, multi_condition_subset):
    service = serve.Service(serve.ServerSettings(model_dir=regime_model_dir))
    test = sorted_units(multi_condition_subset.test)
    late = pd.concat([test[test["unit"] == 1], trailing(test[test["unit"] == 2], TRAILING)])
    answers = service.invoke_many([(csv_body(late), "text/csv", None), (csv_body(test), "text/csv", None)])
    assert [status for status, _, _ in answers] == [400, 200]
    refused = json.loads(answers[0][1])["error"]
    assert refused.startswith("unit 2 starts at cycle ")
    with pytest.raises(RequestError) as caught:
        serve.predict_fn(serve.input_fn(csv_body(late), "text/csv"), service.model)
    assert (caught.value.status, caught.value.message) == (400, refused)
    several = pd.concat([trailing(test[test["unit"] == unit], TRAILING) for unit in (3, 4, 5)])
    status, body, _ = service.invoke(csv_body(several), "text/csv", None)
    assert status == 400 and "(and 2 more units start after cycle 1)" in json.loads(body)["error"]


def stretch(frame: pd.DataFrame, first: int, rows: int) -> pd.DataFrame:
    """`rows` cycles of the longest unit from cycle `first`: a client that sends a later stretch of it."""
    unit = longest_unit(sorted_units(frame))
    return unit[unit["cycle"] >= first].head(rows).reset_index(drop=True)


def test_a_rich_model_refuses_a_late_unit_with_too_few_rows_before_predicting_or_capturing(
    tmp_path, rich_model_dir, small_subset
):
    capture = DataCapture(CaptureConfig(tmp_path, "e", seed=0))
    service = serve.Service(serve.ServerSettings(model_dir=rich_model_dir), capture)
    short = stretch(small_subset.test, 50, 30)
    number = int(short["unit"].iloc[0])
    status, body, content_type = service.invoke(csv_body(short), "text/csv", None)
    answer = json.loads(body)
    assert (status, content_type, answer["status"]) == (400, "application/json", 400)
    message = answer["error"]
    assert message.startswith(
        f"unit {number} starts at cycle 50 with 30 rows, fewer than the 60 the model needs: "
    )
    assert (
        "feature set 'rich' computes rolling statistics over 60 cycles and exponentially weighted" in message
    )
    assert message.endswith("send the unit's last 60 cycles or its whole history")
    assert read_window(tmp_path).requests == ()
    with pytest.raises(RequestError) as caught:
        serve.predict_fn(serve.input_fn(csv_body(short), "text/csv"), service.model)
    assert (caught.value.status, caught.value.message) == (400, message)


def test_a_rich_model_takes_a_late_unit_with_its_history_and_any_unit_from_cycle_one(
    tmp_path, rich_model_dir, small_subset
):
    capture = DataCapture(CaptureConfig(tmp_path, "e", seed=0))
    service = serve.Service(serve.ServerSettings(model_dir=rich_model_dir), capture)
    enough = stretch(small_subset.test, 50, RICH_HISTORY)
    young = stretch(small_subset.test, 1, 20)
    for rows, padded in ((enough, False), (young, True)):
        status, body, _ = service.invoke(csv_body(rows), "text/csv", None)
        assert status == 200
        answer = json.loads(body)["predictions"][0]
        expected = service.model.predictor.predict_last(rows)["predicted_rul"].iloc[0]
        assert answer["predicted_rul"] == pytest.approx(expected) and answer["padded"] is padded
        toolkit = serve.predict_fn(serve.input_fn(csv_body(rows), "text/csv"), service.model)
        assert toolkit.frame["predicted_rul"].iloc[0] == pytest.approx(expected)
    assert len(read_window(tmp_path).requests) == 2


def test_a_request_names_the_first_short_unit_and_counts_the_others(rich_model_dir, small_subset):
    service = serve.Service(serve.ServerSettings(model_dir=rich_model_dir))
    test = sorted_units(small_subset.test)
    units = [test[test["unit"] == unit] for unit in (2, 3, 5)]
    request = pd.concat([units[0], trailing(units[1], 59), trailing(units[2], 40)])
    status, body, _ = service.invoke(csv_body(request), "text/csv", None)
    message = json.loads(body)["error"]
    assert status == 400 and message.startswith("unit 3 starts at cycle ")
    assert "with 59 rows" in message and "(and 1 more units start after cycle 1 with too few rows)" in message
    request = pd.concat([units[0], trailing(units[1], 60), trailing(units[2], 120)])
    assert service.invoke(csv_body(request), "text/csv", None)[0] == 200


def serving_model(transformer: FeatureTransformer, family: str, directory) -> ServingModel:
    """A model around `transformer` with no estimator: enough to ask what its requests need."""
    hp = Hyperparameters.from_dict({"model_family": family, "feature_set": transformer.feature_set})
    return ServingModel(RulPredictor(transformer, hp, estimator=None), None, family, directory)


@pytest.mark.parametrize(
    ("feature_set", "family", "needed", "reason"),
    [
        ("stats", "gbm", 45, "feature set 'stats' computes rolling statistics over 45 cycles, so"),
        ("rich", "cnn", 45, "model family 'cnn' reads windows of the last 45 cycles, so"),
        ("regime", "lstm", 45, "model family 'lstm' reads windows of the last 45 cycles, so"),
    ],
)
def test_stats_and_deep_models_need_their_window(
    feature_set, family, needed, reason, small_subset, rich_model_dir
):
    model = serving_model(FeatureTransformer(45, feature_set).fit(small_subset.train), family, rich_model_dir)
    assert model.history_cycles == needed
    unit = longest_unit(sorted_units(small_subset.test))
    for rows, refused in ((needed - 1, True), (needed, False), (len(unit), False)):
        window = trailing(unit, rows)
        problem = late_start_problem(model, window["unit"].to_numpy(), window["cycle"].to_numpy())
        assert (problem is not None) is refused
    short = trailing(unit, needed - 1)
    problem = late_start_problem(model, short["unit"].to_numpy(), short["cycle"].to_numpy())
    assert problem is not None and problem[0] == int(unit["unit"].iloc[0])
    assert f"with {needed - 1} rows, fewer than the {needed} the model needs: {reason}" in problem[1]
    young = unit.head(needed - 1)  # as few rows, but from cycle 1: padded, as in training
    assert late_start_problem(model, young["unit"].to_numpy(), young["cycle"].to_numpy()) is None


# --- how many rows a model reads ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feature_set", "window", "cycles"),
    [
        ("rich", 30, RICH_HISTORY),
        ("rich", 80, 80),
        ("stats", 30, 30),
        ("stats", 45, 45),
        ("regime", 30, None),
    ],
)
def test_history_cycles_is_the_longest_span_the_features_read(feature_set, window, cycles, small_subset):
    assert FeatureTransformer(window, feature_set).fit(small_subset.train).history_cycles == cycles


@pytest.mark.parametrize(("feature_set", "window"), [("rich", 30), ("stats", 45)])
def test_the_last_history_cycles_rows_give_the_whole_history_windowed_features(
    feature_set, window, small_subset
):
    """With `history_cycles` trailing rows every windowed feature equals the whole history's; with one row
    fewer some do not (the exponentially weighted means only fade: see the `rich` test above)."""
    train = sorted_units(small_subset.train)
    transformer = FeatureTransformer(window, feature_set).fit(train)
    needed = transformer.history_cycles
    assert needed is not None
    unit = longest_unit(train)
    columns = [name for name in transformer.feature_names if ":ewm" not in name]
    full = last_row_features(transformer, unit)[columns]
    enough = last_row_features(transformer, trailing(unit, needed))[columns]
    np.testing.assert_allclose(enough, full, rtol=1e-5, atol=1e-4)
    short = last_row_features(transformer, trailing(unit, needed - 1))[columns]
    assert not np.allclose(short, full, rtol=1e-5, atol=1e-4)


def test_the_demo_fleet_sends_what_the_default_model_reads(small_subset):
    needed = FeatureTransformer().fit(small_subset.train).history_cycles
    assert needed is not None and DemoOptions().cycles_sent >= needed


# --- batch scoring ---------------------------------------------------------------------------------------


def write_fleet(folder, frame: pd.DataFrame) -> None:
    """Two fleet files: units 1-5 and the rest."""
    folder.mkdir()
    write_trajectories(frame[frame["unit"] <= 5], folder / "a.txt")
    write_trajectories(frame[frame["unit"] > 5], folder / "b.txt")


def test_batch_scoring_refuses_a_late_unit_naming_its_file(
    tmp_path, regime_model_dir, multi_condition_subset
):
    test = sorted_units(multi_condition_subset.test)
    late = test[(test["unit"] != 7) | (test["cycle"] > 20)]
    write_fleet(tmp_path / "fleet", late)
    champion = champion_folder(tmp_path, regime_model_dir)
    argv = [
        "--fleet-dir",
        str(tmp_path / "fleet"),
        "--champion-dir",
        str(champion),
        "--threshold-cycles",
        "30",
    ]
    with pytest.raises(DataFormatError) as caught:
        batch_score.main([*argv, "--output-dir", str(tmp_path / "out")])
    assert caught.value.path == "b.txt"
    assert caught.value.problem.startswith("unit 7 starts at cycle 21: feature set 'regime' ")
    assert not (tmp_path / "out").exists()
    write_fleet(tmp_path / "whole", test)
    whole = [
        "--fleet-dir",
        str(tmp_path / "whole"),
        "--champion-dir",
        str(champion),
        "--threshold-cycles",
        "30",
    ]
    assert batch_score.main([*whole, "--output-dir", str(tmp_path / "scored")]) == 0


def test_batch_scoring_refuses_a_short_late_unit_of_a_rich_model_and_takes_its_history(
    rich_model_dir, small_subset, tmp_path
):
    test = sorted_units(small_subset.test)
    model = load_model(rich_model_dir)
    late = pd.concat([test[test["unit"] != 5], trailing(test[test["unit"] == 5], 30)])
    write_fleet(tmp_path / "fleet", sorted_units(late))
    with pytest.raises(DataFormatError) as caught:
        check_whole_histories(read_fleet(tmp_path / "fleet"), model)
    assert caught.value.path == "a.txt"
    assert caught.value.problem.startswith("unit 5 starts at cycle 202 with 30 rows, fewer than the 60 ")
    write_fleet(tmp_path / "recent", test.groupby("unit").tail(RICH_HISTORY))
    check_whole_histories(read_fleet(tmp_path / "recent"), model)
