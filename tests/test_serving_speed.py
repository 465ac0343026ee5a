"""The serving fast path (`rul.fast_path`) gives bit-identical predictions, and falls back when it must."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

import rul.fast_path as fast_path
from rul.data import COLUMNS
from rul.fast_path import FAST_FEATURE_SETS, FastPredictor, compile_forest, last_row_features
from rul.features import last_rows
from rul.hyperparameters import FEATURE_SETS, Hyperparameters
from rul.inference import ServingModel, load_model, predict, predict_many
from rul.intervals import IntervalCalibration
from rul.models import GbmEnsemble, fit_predictor
from rul.serving_forest import BITVECTOR_ROWS
from rul.serving_numbers import number_table
from rul.synthetic import SyntheticSpec, generate

# Small but real: two members, trees deep enough to use most features, fitted in about a second each.
HYPERPARAMETERS = {"ensemble_size": 2, "max_iter": 40, "max_leaf_nodes": 31, "min_samples_leaf": 5}
CONDITIONS = (1, 6)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One OpenMP thread for the reference predictions, as the server runs them (and fast on a busy host)."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def subsets():
    return {
        conditions: generate(
            SyntheticSpec(n_train_units=16, n_test_units=12, n_conditions=conditions, seed=conditions)
        )
        for conditions in CONDITIONS
    }


@pytest.fixture(scope="module")
def predictors(subsets):
    """A fitted gbm predictor per (feature set the fast path knows, number of operating conditions)."""
    fitted = {}
    for feature_set in FAST_FEATURE_SETS:
        for conditions in CONDITIONS:
            hp = Hyperparameters.from_dict({**HYPERPARAMETERS, "feature_set": feature_set})
            fitted[feature_set, conditions] = fit_predictor(subsets[conditions].train, None, hp)
    return fitted


def random_units(test: pd.DataFrame, seed: int, count: int) -> pd.DataFrame:
    """`count` test units cut at random lengths (some shorter than the window), in a shuffled unit order."""
    rng = np.random.default_rng(seed)
    units = rng.choice(test["unit"].unique(), size=count, replace=False)
    parts = []
    for unit in units:
        rows = test[test["unit"] == unit]
        parts.append(rows.head(int(rng.integers(1, len(rows) + 1))))
    return pd.concat(parts, ignore_index=True)[COLUMNS]


@pytest.mark.parametrize("feature_set", FAST_FEATURE_SETS)
@pytest.mark.parametrize("conditions", CONDITIONS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_predictions_equal_the_reference_bit_for_bit(predictors, subsets, feature_set, conditions, seed):
    predictor = predictors[feature_set, conditions]
    fast = FastPredictor.build(predictor)
    assert fast is not None
    for count in (1, 5):
        frame = random_units(subsets[conditions].test, seed * 10 + count, count)
        expected = predictor.predict_last(frame)
        pd.testing.assert_frame_equal(fast.predict_last(frame), expected, check_exact=True)


@pytest.mark.parametrize("feature_set", FAST_FEATURE_SETS)
def test_last_row_features_equal_the_transformers_table(predictors, subsets, feature_set):
    transformer = predictors[feature_set, 6].transformer
    frame = random_units(subsets[6].test, 7, 6).sort_values(["unit", "cycle"]).reset_index(drop=True)
    expected = transformer.tabular(frame)[last_rows(frame)]
    features = last_row_features(
        feature_set,
        transformer.window,
        transformer.normalized(frame),
        frame["unit"].to_numpy(),
        frame["cycle"].to_numpy(),
    )
    assert features.dtype == expected.dtype and features.shape == expected.shape
    assert np.array_equal(features, expected)


def test_compiled_forest_equals_the_ensemble_on_random_and_missing_values(predictors):
    estimator = predictors["rich", 1].estimator
    forest = compile_forest(estimator)
    rng = np.random.default_rng(3)
    rows = rng.normal(scale=3.0, size=(200, forest.n_features)).astype(np.float32)
    rows[rng.random(rows.shape) < 0.05] = np.nan
    assert np.array_equal(forest.predict(rows), estimator.predict(rows))
    assert forest.bits is not None  # leaf bitvectors, in chunks of BITVECTOR_ROWS rows
    for count in (1, 2, 3, BITVECTOR_ROWS + 1):
        assert np.array_equal(forest.predict(rows[:count]), estimator.predict(rows[:count]))
        walked = forest._leaves_by_level(rows[:count].astype(np.float64))
        assert np.array_equal(walked, forest.bits.leaves(rows[:count].astype(np.float64)))
    with pytest.raises(ValueError, match="expected features of shape"):
        forest.predict(rows[:, :-1])


def test_a_tree_of_more_than_64_leaves_is_walked_level_by_level():
    """Bitvectors hold 64 leaves: a wider tree makes the forest take the level walk, with the same floats."""
    hp = Hyperparameters.from_dict({"ensemble_size": 1})
    wide = HistGradientBoostingRegressor(max_iter=3, max_leaf_nodes=90, min_samples_leaf=2, random_state=0)
    features = np.random.default_rng(0).normal(size=(2000, 8))
    wide.fit(features, features[:, 0] * 3 + np.sin(features[:, 1] * 5))
    assert max(int(tree.nodes["is_leaf"].sum()) for (tree,) in wide._predictors) > 64
    estimator = GbmEnsemble(hp, members=[wide])
    forest = compile_forest(estimator)
    assert forest is not None and forest.bits is None
    assert np.array_equal(forest.predict(features[:5]), estimator.predict(features[:5]))


def plain_field(rng: np.random.Generator) -> str:
    """A decimal as clients write them: short, long (past 15 digits), signed, or with a bare point."""
    kind = rng.integers(6)
    if kind == 0:
        return repr(round(float(rng.normal(scale=1e4)), int(rng.integers(0, 7))))
    if kind == 1:
        return repr(float(rng.normal()))  # up to 17 significant digits
    if kind == 2:
        return f"{rng.random():.{int(rng.integers(1, 25))}f}"
    if kind == 3:
        return str(
            rng.choice(["0", "-0", ".5", "5.", "-.5", "0.0", "007", "1" + "0" * 400, "-9" * 1 + "9" * 30])
        )
    return f"{int(rng.integers(0, 99999))}.{int(rng.integers(0, 99999)):05d}"


def test_number_table_reads_plain_decimals_exactly_as_float_does():
    """Random short, long, signed and bare-point decimals, LF or CRLF lines: the same bits as float()."""
    rng = np.random.default_rng(5)
    for _ in range(300):
        columns, rows = int(rng.integers(1, 6)), int(rng.integers(1, 8))
        fields = [[plain_field(rng) for _ in range(columns)] for _ in range(rows)]
        ending = str(rng.choice(["\n", "\r\n"]))
        text = ending.join(",".join(line) for line in fields) + str(rng.choice(["", ending]))
        table = number_table(text.encode(), columns)
        expected = np.array([[float(field) for field in line] for line in fields])
        assert table is not None and table.shape == expected.shape
        assert np.array_equal(table.view(np.int64), expected.view(np.int64)), text


@pytest.mark.parametrize(
    "text",
    ["1,2\n3", "1,,2", "1 ,2", "1e5,2", "+1,2", "1-2,3", "--1,2", "-,2", ".,2", "1.2.3,4", "1,2\n\n3,4",
     "1,2\r3,4", "nan,1", "1\n2,3", "1,2,3\n4", "", "\n", "1,2\n3,4,5,6", "\u0661,2", "inf,1"],
)  # fmt: skip
def test_number_table_refuses_anything_but_plain_decimal_lines(text):
    """Each shape outside the plain grammar returns None, so the general parser answers it."""
    assert number_table(text.encode(), 2 if text != "1,,2" else 3) is None


def test_intervals_and_batches_match_the_reference(predictors, subsets, tmp_path):
    predictor = predictors["stats", 1]
    predictor.calibration = IntervalCalibration(
        edges=(60.0,), residuals=((-9.0, -1.0, 4.0), (-20.0, 8.0)), units=3
    )
    try:
        model = load_model(predictor.save(tmp_path / "model"), environ={})
    finally:
        predictor.calibration = None
    assert model.fast is not None
    reference = dataclasses.replace(model, fast=None)
    frames = [random_units(subsets[1].test, seed, 1 + seed % 3) for seed in range(4)]
    for got, expected in zip(predict_many(model, frames), predict_many(reference, frames), strict=True):
        assert "rul_lower" in got.frame.columns
        pd.testing.assert_frame_equal(got.frame, expected.frame, check_exact=True)


def spy_on_reference(monkeypatch, predictor) -> list[int]:
    calls = []
    original = predictor.predict_last

    def counted(frame):
        calls.append(len(frame))
        return original(frame)

    monkeypatch.setattr(predictor, "predict_last", counted)
    return calls


def test_a_feature_set_unknown_to_the_fast_path_takes_the_reference_path(
    predictors, subsets, tmp_path, monkeypatch
):
    # as if `stats` were a feature set added to rul.features after the fast path was written
    monkeypatch.setattr(fast_path, "FAST_FEATURE_SETS", ("rich",))
    predictor = predictors["stats", 1]
    model = load_model(predictor.save(tmp_path / "model"), environ={})
    assert model.fast is None
    calls = spy_on_reference(monkeypatch, model.predictor)
    frame = random_units(subsets[1].test, 4, 2)
    result = predict(model, frame).frame
    assert calls == [len(frame)]
    pd.testing.assert_frame_equal(result, predictor.predict_last(frame), check_exact=True)


@pytest.mark.parametrize("feature_set", [name for name in FEATURE_SETS if name not in FAST_FEATURE_SETS])
def test_a_known_feature_set_without_a_fast_path_serves_the_reference(subsets, tmp_path, feature_set):
    hp = Hyperparameters.from_dict({**HYPERPARAMETERS, "feature_set": feature_set, "ensemble_size": 1})
    predictor = fit_predictor(subsets[6].train, None, hp)
    model = load_model(predictor.save(tmp_path / "model"), environ={})
    assert model.fast is None
    frame = random_units(subsets[6].test, 5, 3)
    pd.testing.assert_frame_equal(
        predict(model, frame).frame,
        predictor.predict_last(frame).sort_values("unit").reset_index(drop=True),
        check_exact=True,
    )


def test_an_unsupported_member_or_a_large_request_takes_the_reference_path(predictors, subsets, monkeypatch):
    predictor = predictors["stats", 1]
    features = np.random.default_rng(0).normal(size=(300, len(predictor.transformer.feature_names)))
    absolute = HistGradientBoostingRegressor(loss="absolute_error", max_iter=5).fit(features, features[:, 0])
    hp = predictor.hyperparameters
    assert compile_forest(GbmEnsemble(hp, members=[absolute])) is None
    assert compile_forest(GbmEnsemble(hp)) is None
    assert compile_forest(object()) is None

    model = ServingModel(predictor, "1", "gbm", directory=Path("."), fast=FastPredictor.build(predictor))
    frame = random_units(subsets[1].test, 6, 3)
    assert model.fast.handles(len(frame))
    monkeypatch.setattr(fast_path, "FEATURE_BLOCK_ROWS", len(frame) - 1)
    assert not model.fast.handles(len(frame))


def test_an_overridden_predictor_method_is_served_by_the_override(predictors, subsets, monkeypatch):
    predictor = predictors["stats", 1]
    model = ServingModel(predictor, "1", "gbm", directory=Path("."), fast=FastPredictor.build(predictor))
    frame = random_units(subsets[1].test, 8, 2)
    calls = spy_on_reference(monkeypatch, predictor)
    predict(model, frame)
    assert calls == [len(frame)]
    monkeypatch.undo()
    monkeypatch.setattr(predictor.estimator, "predict", lambda features: np.full(len(features), 7.0))
    assert predict(model, frame).frame["predicted_rul"].tolist() == [7.0, 7.0]
