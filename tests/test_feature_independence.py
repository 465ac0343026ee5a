"""A unit's features, predictions and served answer are functions of its own rows only: computed alone or
inside a frame (a request, a micro-batch) with other units before and after it, they are the same bit for
bit, even when the other units hold large values and the unit has a near-constant sensor."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

import serve
from rul.data import COLUMNS
from rul.fast_path import FastPredictor
from rul.features import window_statistics
from rul.hyperparameters import Hyperparameters
from rul.inference import CSV
from rul.models import RulPredictor, fit_predictor
from rul.synthetic import SyntheticSpec, generate

HYPERPARAMETERS = {"ensemble_size": 1, "max_iter": 40, "max_leaf_nodes": 31, "min_samples_leaf": 5}
# Feature set -> operating conditions of the data it is fitted on (`regime` is for multi-condition data).
FEATURE_SETS = {"rich": 1, "stats": 1, "regime": 6}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One OpenMP thread, as the server predicts (and cheap on a busy host)."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def subsets():
    return {
        conditions: generate(SyntheticSpec(n_train_units=16, n_test_units=6, n_conditions=conditions, seed=5))
        for conditions in set(FEATURE_SETS.values())
    }


@pytest.fixture(scope="module")
def predictors(subsets) -> dict[str, RulPredictor]:
    fitted = {}
    for feature_set, conditions in FEATURE_SETS.items():
        hp = Hyperparameters.from_dict({**HYPERPARAMETERS, "feature_set": feature_set})
        fitted[feature_set] = fit_predictor(subsets[conditions].train, None, hp)
    return fitted


def target_unit(test: pd.DataFrame, sensor: str) -> pd.DataFrame:
    """A test unit whose `sensor` holds one value for its first 80 cycles and another after them."""
    unit = test[test["unit"] == test["unit"].iloc[0]].copy()
    unit[sensor] = np.where(unit["cycle"] <= 80, 1.3, 1.31) + float(unit[sensor].iloc[0])
    return unit.assign(unit=50)[COLUMNS].reset_index(drop=True)


def neighbours(test: pd.DataFrame, sensors: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two other units, numbered before and after the target (50), with sensor values
    thousands of standard deviations from the training data."""
    units = test["unit"].unique()
    before = test[test["unit"] == units[1]].assign(unit=7)
    after = test[test["unit"] == units[2]].assign(unit=93)
    before[sensors] = before[sensors] * 1.0e4 + 3.0e6
    after[sensors] = after[sensors] * -50.0
    return before[COLUMNS].reset_index(drop=True), after[COLUMNS].reset_index(drop=True)


def frames(predictor: RulPredictor, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The target unit alone, and inside a frame with its neighbours before and after it."""
    alone = target_unit(test, predictor.transformer.sensors[0])
    before, after = neighbours(test, predictor.transformer.sensors)
    return alone, pd.concat([before, alone, after], ignore_index=True)


def unit_answer(body: bytes, unit: int) -> dict:
    """The prediction of `unit` in a served JSON answer."""
    (answer,) = [entry for entry in json.loads(body)["predictions"] if entry["unit"] == unit]
    return answer


@pytest.mark.parametrize("feature_set", FEATURE_SETS)
def test_a_units_features_are_the_same_alone_and_among_other_units(predictors, subsets, feature_set):
    predictor = predictors[feature_set]
    alone, together = frames(predictor, subsets[FEATURE_SETS[feature_set]].test)
    inside = (together["unit"] == 50).to_numpy()
    expected = predictor.transformer.tabular(alone)
    assert np.array_equal(predictor.transformer.tabular(together)[inside], expected)
    pd.testing.assert_frame_equal(
        predictor.predict_last(together).query("unit == 50").reset_index(drop=True),
        predictor.predict_last(alone),
        check_exact=True,
    )


@pytest.mark.parametrize("feature_set", ["rich", "stats"])
def test_the_fast_path_answers_a_unit_alone_as_among_other_units(predictors, subsets, feature_set):
    predictor = predictors[feature_set]
    fast = FastPredictor.build(predictor)
    assert fast is not None
    alone, together = frames(predictor, subsets[1].test)
    expected = predictor.predict_last(alone)
    pd.testing.assert_frame_equal(fast.predict_last(alone), expected, check_exact=True)
    pd.testing.assert_frame_equal(
        fast.predict_last(together).query("unit == 50").reset_index(drop=True), expected, check_exact=True
    )


@pytest.mark.parametrize("feature_set", FEATURE_SETS)
def test_the_served_answer_of_a_unit_does_not_depend_on_its_request_or_batch(
    predictors, subsets, feature_set, tmp_path
):
    predictor = predictors[feature_set]
    alone, together = frames(predictor, subsets[FEATURE_SETS[feature_set]].test)
    predictor.save(tmp_path / "model")
    service = serve.Service(serve.ServerSettings(model_dir=tmp_path / "model"))
    alone_body = alone.to_csv(index=False, header=False).encode()
    status, body, _ = service.invoke(alone_body, CSV, None)
    assert status == 200
    expected = unit_answer(body, 50)
    status, body, _ = service.invoke(together.to_csv(index=False, header=False).encode(), CSV, None)
    assert status == 200 and unit_answer(body, 50) == expected
    others = together[together["unit"] != 50].to_csv(index=False, header=False).encode()
    batched = service.invoke_many([(others, CSV, None, None), (alone_body, CSV, None, None)])
    assert [status for status, _, _ in batched] == [200, 200]
    assert unit_answer(batched[1][1], 50) == expected


def test_a_constant_window_has_a_standard_deviation_of_exactly_zero():
    """However large the unit's values before it, a window of one repeated value has std and slope
    exactly 0; a window with a small real change does not."""
    rng = np.random.default_rng(0)
    units = np.ones(240, dtype=np.int64)
    for ramp in (rng.normal(size=(200, 1)) * 1e3 + 5e3, rng.normal(size=(200, 1))):
        for value in (0.1, 1.0e4, -3.7):
            stats = window_statistics(np.vstack([ramp, np.full((40, 1), value)]), units, 30)
            assert stats["std"][-1, 0] == 0.0 and stats["slope"][-1, 0] == 0.0
    stepped = np.full((40, 1), 0.1)
    stepped[-1] += 1e-3
    stats = window_statistics(np.vstack([rng.normal(size=(200, 1)), stepped]), units, 30)
    assert stats["std"][-1, 0] == pytest.approx(1e-3 * np.sqrt(29) / 30, rel=1e-6)
    assert stats["slope"][-1, 0] > 0
