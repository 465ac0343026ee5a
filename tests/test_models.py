"""Model families: learning on synthetic data, the saved artifact, and its errors."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from rul.ensemble import BLEND_SPAN, CapBlend
from rul.errors import ConfigurationError, DataFormatError, ModelArtifactError
from rul.features import capped_rul, effective_stride, thinning_mask
from rul.hyperparameters import Hyperparameters
from rul.metrics import rmse
from rul.models import RulPredictor, fit_final_predictor, fit_predictor, training_table, unit_fingerprint
from rul.splits import split_by_unit

FAST_GBM = {"model_family": "gbm", "feature_set": "stats", "ensemble_size": 1, "max_iter": 80}


@pytest.fixture(scope="module")
def splits(small_subset):
    """The module's shared `splits` fixture."""
    return split_by_unit(small_subset.train, seed=0, validation_fraction=0.2, test_fraction=0.0)


@pytest.fixture(scope="module")
def gbm(splits):
    """The module's shared `gbm` fixture."""
    return fit_predictor(splits["train"], splits["validation"], Hyperparameters.from_dict(FAST_GBM))


def test_gbm_beats_a_constant_predictor_by_a_wide_margin(gbm, splits, small_subset):
    """The gbm learns something: under half the RMSE of predicting the mean capped RUL."""
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
    """A saved gbm loads back with its metadata and predicts exactly as before saving."""
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
    """Each deep family trains briefly, saves as a Keras file and predicts the same (1e-5) after loading."""
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


@pytest.fixture(scope="module")
def final(small_subset):
    """A final model: calibrated on the validation units, refitted on train + validation + 5 extra units."""
    splits = split_by_unit(small_subset.train, seed=1, validation_fraction=0.3, test_fraction=0.0)
    extra = small_subset.train[small_subset.train["unit"] <= 5].copy()
    extra["unit"] += 1000
    return fit_final_predictor(
        splits["train"], splits["validation"], extra, Hyperparameters.from_dict(FAST_GBM)
    )


def test_final_predictor_is_fitted_on_every_unit_and_loads_back(final, small_subset, tmp_path):
    every_unit = [*small_subset.train["unit"].unique(), *range(1001, 1006)]
    assert final.metadata["training_units"] == unit_fingerprint(every_unit)
    assert final.metadata["training_units"]["count"] == 45
    assert final.calibration is not None and 0 < final.calibration.units < 45
    before = final.predict_last(small_subset.test)
    assert (before["rul_lower"] <= before["rul_upper"]).all() and (before["rul_lower"] >= 0).all()
    assert (before["rul_upper"] > before["predicted_rul"]).mean() > 0.9
    final.save(tmp_path)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["training_units"]["sha256"] == unit_fingerprint(every_unit)["sha256"]
    loaded = RulPredictor.load(tmp_path)
    assert loaded.calibration == final.calibration
    pd.testing.assert_frame_equal(loaded.predict_last(small_subset.test), before)


def test_cross_conformal_calibration_uses_every_unit_without_validation(small_subset):
    hp = Hyperparameters.from_dict({**FAST_GBM, "calibration_folds": 2, "max_iter": 30})
    predictor = fit_final_predictor(small_subset.train, None, None, hp)
    assert predictor.calibration.units == predictor.metadata["training_units"]["count"] == 40
    residuals = sum(len(block) for block in predictor.calibration.residuals)
    assert residuals == 40 * 20  # CALIBRATION_DRAWS cuts of every unit
    assert "rul_lower" in predictor.predict_last(small_subset.test)


def test_interval_level_comes_from_the_hyperparameters(final, small_subset):
    wide = final.predict_last(small_subset.test)
    narrow = replace(final, hyperparameters=replace(final.hyperparameters, interval_level=0.5))
    narrow = narrow.predict_last(small_subset.test)
    assert ((narrow["rul_upper"] - narrow["rul_lower"]) < (wide["rul_upper"] - wide["rul_lower"])).all()


def test_an_artifact_from_before_intervals_loads_and_predicts_without_them(gbm, small_subset, tmp_path):
    gbm.save(tmp_path)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    for name in ("interval_level", "cut_max_rul", "row_stride", "max_train_rows"):
        del metadata["hyperparameters"][name]
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    predicted = RulPredictor.load(tmp_path).predict_last(small_subset.test)
    assert list(predicted.columns) == ["unit", "predicted_rul", "cycles_used", "padded"]


def test_final_fit_refuses_missing_validation_and_a_unit_given_twice(splits):
    hp = Hyperparameters.from_dict(FAST_GBM)
    with pytest.raises(ConfigurationError, match="needs validation units"):
        fit_final_predictor(splits["train"], splits["validation"].iloc[0:0], None, hp)
    with pytest.raises(DataFormatError, match="occurs twice"):
        fit_final_predictor(splits["train"], splits["validation"], splits["train"], hp)


def test_a_row_budget_raises_the_stride_and_blocks_give_the_same_table(gbm, splits, capsys, monkeypatch):
    train = splits["train"]
    hp = Hyperparameters.from_dict({**FAST_GBM, "row_stride": 1, "max_train_rows": len(train) // 4})
    stride = effective_stride(len(train), hp.row_stride, hp.max_train_rows)
    assert stride in (4, 5)
    fit_predictor(train, None, hp)
    kept = int(thinning_mask(train, stride, hp.seed).sum())
    assert f"training gbm on {kept} rows (stride {stride})" in capsys.readouterr().out
    assert abs(kept - len(train) / stride) < train["unit"].nunique()
    keep = thinning_mask(train, 3, 0)
    whole = gbm.transformer.tabular(train)[keep]
    predicted = gbm.predict_last(train)
    monkeypatch.setattr("rul.models.FEATURE_BLOCK_ROWS", 500)  # many blocks of whole units
    pd.testing.assert_frame_equal(gbm.predict_last(train), predicted, rtol=1e-4)
    table, labels = training_table(gbm, train, keep)
    np.testing.assert_allclose(table, whole, rtol=1e-5, atol=1e-4)  # running sums start elsewhere
    np.testing.assert_array_equal(labels, capped_rul(train, 125)[keep])


@pytest.mark.slow
def test_the_best_trials_model_replaces_the_calibration_fit(splits, tmp_path):
    """The trial was fitted on the training units with the same values: its calibration equals a new fit's."""
    hp = Hyperparameters.from_dict({**FAST_GBM, "max_iter": 20})
    fit_predictor(splits["train"], splits["validation"], hp).save(tmp_path / "trial")
    trial = RulPredictor.load(tmp_path / "trial")
    reused = fit_final_predictor(splits["train"], splits["validation"], None, hp, trial=trial)
    plain = fit_final_predictor(splits["train"], splits["validation"], None, hp)
    assert reused.calibration == plain.calibration
    assert reused.metadata["training_units"] == plain.metadata["training_units"]
    assert reused.metadata["training_units"]["count"] == 40
    with pytest.raises(ConfigurationError, match="fitted on other units"):
        fit_final_predictor(splits["validation"], splits["train"], None, hp, trial=trial)
    with pytest.raises(ConfigurationError, match="differs from the refit in max_iter"):
        changed = replace(hp, max_iter=21)
        fit_final_predictor(splits["train"], splits["validation"], None, changed, trial=trial)


class _Constant:
    def __init__(self, value):
        self.value = value

    def predict(self, features):
        return np.full(len(features), self.value, dtype=float)


@pytest.mark.parametrize(("outer", "served"), [(60.0, 10.0), (112.5, 61.25), (125.0, 125.0), (190.0, 190.0)])
def test_a_two_cap_blend_serves_the_inner_members_inside_the_zone_and_the_outer_beyond(outer, served):
    # Inner members say 10 everywhere; the mix runs linearly over BLEND_SPAN cycles below the inner cap.
    blend = CapBlend(_Constant(outer), _Constant(10.0), inner_cap=125.0)  # type: ignore[arg-type]
    assert BLEND_SPAN == 25.0
    assert blend.predict(np.zeros((2, 3))) == pytest.approx([served, served])


def test_an_artifact_from_before_the_inner_cap_loads_with_one_cap(gbm, small_subset, tmp_path):
    folder = gbm.save(tmp_path / "model")
    metadata = json.loads((folder / "metadata.json").read_text())
    for name in ("inner_cap", "feature_set", "rul_cap"):
        metadata["hyperparameters"].pop(name)
    metadata["hyperparameters"].update(feature_set="stats", rul_cap=125.0)  # as saved before `auto`
    (folder / "metadata.json").write_text(json.dumps(metadata))
    loaded = RulPredictor.load(folder)
    assert (loaded.hyperparameters.rul_cap, loaded.hyperparameters.inner_cap) == (125.0, 125.0)
    assert loaded.hyperparameters.resolved
    assert np.array_equal(loaded.predict_last(small_subset.test), gbm.predict_last(small_subset.test))
