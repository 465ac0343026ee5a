"""Model families: learning on synthetic data, the saved artifact, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rul.errors import ModelArtifactError
from rul.features import capped_rul
from rul.hyperparameters import Hyperparameters
from rul.metrics import rmse
from rul.models import RulPredictor, fit_predictor
from rul.splits import split_by_unit

FAST_GBM = {"model_family": "gbm", "feature_set": "stats", "ensemble_size": 1, "max_iter": 80}


@pytest.fixture(scope="module")
def splits(small_subset):
    return split_by_unit(small_subset.train, seed=0, validation_fraction=0.2, test_fraction=0.0)


@pytest.fixture(scope="module")
def gbm(splits):
    return fit_predictor(splits["train"], splits["validation"], Hyperparameters.from_dict(FAST_GBM))


def test_gbm_beats_a_constant_predictor_by_a_wide_margin(gbm, splits, small_subset):
    predicted = gbm.predict_last(small_subset.test).merge(small_subset.test_rul, on="unit")
    truth = np.minimum(predicted["rul"], 125)  # a model trained on capped labels is judged on capped truth
    constant = np.full(len(predicted), capped_rul(splits["train"], 125).mean())
    model_error, constant_error = rmse(truth, predicted["predicted_rul"]), rmse(truth, constant)
    assert model_error < 0.5 * constant_error, (model_error, constant_error)


def test_predict_last_reports_one_row_per_unit_with_cycles_used(gbm, small_subset):
    predicted = gbm.predict_last(small_subset.test)
    assert predicted["unit"].tolist() == sorted(small_subset.test["unit"].unique())
    assert (predicted["cycles_used"] <= 30).all()
    assert predicted["predicted_rul"].between(0, 125).all()
    short = small_subset.test[small_subset.test["unit"] == 1].head(10)
    row = gbm.predict_last(short).iloc[0]
    assert bool(row["padded"]) and row["cycles_used"] == 10


def test_gbm_artifact_round_trip(gbm, small_subset, tmp_path):
    gbm.metadata["validation_metrics"] = {"rmse": 1.0}
    gbm.save(tmp_path)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["artifact_format"] == 1
    assert metadata["sensors"] == gbm.transformer.sensors
    assert metadata["dropped_sensors"] == gbm.transformer.dropped_sensors
    loaded = RulPredictor.load(tmp_path)
    assert loaded.metadata["validation_metrics"] == {"rmse": 1.0}
    np.testing.assert_array_equal(loaded.predict_rows(small_subset.test), gbm.predict_rows(small_subset.test))


def test_loading_a_broken_artifact_names_the_problem(gbm, tmp_path):
    with pytest.raises(ModelArtifactError, match=r"metadata\.json"):
        RulPredictor.load(tmp_path)
    gbm.save(tmp_path)
    (tmp_path / "estimator.joblib").unlink()
    with pytest.raises(ModelArtifactError, match=r"estimator\.joblib is missing"):
        RulPredictor.load(tmp_path)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    (tmp_path / "metadata.json").write_text(json.dumps({**metadata, "artifact_format": 99}))
    with pytest.raises(ModelArtifactError, match="artifact_format 99"):
        RulPredictor.load(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["cnn", "lstm"])
def test_deep_families_train_and_round_trip(family, splits, small_subset, tmp_path):
    hp = Hyperparameters.from_dict(
        {"model_family": family, "epochs": 2, "units": 16, "filters": 8, "window": 20}
    )
    predictor = fit_predictor(splits["train"], splits["validation"], hp)
    before = predictor.predict_last(small_subset.test)
    predictor.save(tmp_path)
    assert (tmp_path / "estimator.keras").is_file()
    after = RulPredictor.load(tmp_path).predict_last(small_subset.test)
    np.testing.assert_allclose(after["predicted_rul"], before["predicted_rul"], rtol=1e-5)
    assert after["padded"].sum() == 0  # every test unit keeps at least 31 cycles
