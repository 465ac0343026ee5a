"""The model families and the artifact that carries a trained model with its feature transform.

- `gbm`: an ensemble of scikit-learn histogram gradient-boosting regressors on tabular window features
  (`rul.ensemble`); members differ by seed and feature subsample, and with `inner_cap` below `rul_cap`
  two such ensembles at two label caps are blended. Fast and, on C-MAPSS, the most accurate family we
  measured. `auto` feature set and caps are resolved from the training units first (`rul.auto_settings`).
- `cnn`, `lstm`: small Keras networks on normalised sensor windows (`rul.deep`).

A `RulPredictor` saves to a folder (transformer, estimator, metadata.json) that becomes model.tar.gz.
Training rows are thinned (`rul.features.thinning_mask`): every `row_stride`-th window of a unit, the
stride raised until at most `max_train_rows` remain, and features are computed a block of units at a
time, so fit time and memory grow no faster than the fleet. `fit_predictor` fits on the training units
(tuning trials); `fit_final_predictor` makes the registered model: a fit on the training units whose
residuals on the cut validation units calibrate prediction intervals (`rul.intervals`; or, with
`calibration_folds`, out-of-fold residuals of every unit), then a refit on every unit that keeps that
calibration and records which units it saw.

`fit_predictor` takes an optional `on_metrics(metrics, step)` callback (e.g. `rul.tracking`'s
`log_metrics`): per iteration of each gbm member its validation RMSE (`member_<k>_rmse`), per member the
ensemble's (`ensemble_rmse`), per epoch of a deep model `loss`, `rmse` and, with validation data,
`val_loss` and `val_rmse` (RMSE in cycles on capped labels over all validation rows).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from rul.auto_settings import resolve
from rul.deep import KerasRegressor, import_keras
from rul.ensemble import CapBlend, GbmEnsemble
from rul.errors import ConfigurationError, ModelArtifactError
from rul.features import FeatureTransformer, capped_rul, effective_stride, last_rows, thinning_mask
from rul.hyperparameters import Hyperparameters
from rul.intervals import IntervalCalibration, calibrate
from rul.progress import MetricsCallback, log
from rul.splits import CutProtocol, check_unique_units, cut_units, unit_uniform

__all__ = ["GbmEnsemble", "MetricsCallback", "RulPredictor", "fit_final_predictor", "fit_predictor", "log"]

ARTIFACT_FORMAT = 1
# Rows of whole units whose features are computed at once (training tables, predictions).
FEATURE_BLOCK_ROWS = 50_000
CALIBRATION_DRAWS = 20


@dataclass
class RulPredictor:
    """A fitted feature transform and estimator: raw C-MAPSS rows in, RUL (and, calibrated, intervals) out."""

    transformer: FeatureTransformer
    hyperparameters: Hyperparameters
    estimator: Any  # a GbmEnsemble (scikit-learn's API) or a KerasRegressor
    metadata: dict = field(default_factory=dict)
    calibration: IntervalCalibration | None = None

    @property
    def deep(self) -> bool:
        """Whether the estimator is a Keras network (cnn, lstm) that reads windows, not feature rows."""
        return self.hyperparameters.model_family in ("cnn", "lstm")

    def inputs(self, frame: pd.DataFrame) -> np.ndarray:
        """The estimator's input for `frame`: sensor windows for a deep model, the feature table otherwise."""
        if self.deep:
            return self.transformer.windows(frame)[0]
        return self.transformer.tabular(frame)

    def predict_rows(self, frame: pd.DataFrame) -> np.ndarray:
        """RUL predicted at every row, clipped to [0, cap]."""
        return np.clip(self.estimator.predict(self.inputs(frame)), 0.0, self.hyperparameters.rul_cap)

    def predict_last(self, frame: pd.DataFrame) -> pd.DataFrame:
        """RUL at each unit's last observed cycle, with the cycles used and whether the window was padded;
        a calibrated predictor adds `rul_lower` and `rul_upper` (nominal coverage `interval_level`)."""
        frame = frame.sort_values(["unit", "cycle"], kind="stable").reset_index(drop=True)
        last = last_rows(frame)
        predictions = self.estimator.predict(blocked_inputs(self, frame, last))
        counts = frame.groupby("unit", sort=False)["cycle"].size().to_numpy()
        predicted = np.clip(predictions, 0.0, self.hyperparameters.rul_cap)
        result = pd.DataFrame(
            {
                "unit": frame["unit"].to_numpy()[last],
                "predicted_rul": predicted,
                "cycles_used": np.minimum(counts, self.transformer.window),
                "padded": counts < self.transformer.window,
            }
        )
        if self.calibration is not None:
            lower, upper = self.calibration.bounds(predicted, self.hyperparameters.interval_level)
            result["rul_lower"], result["rul_upper"] = lower, upper
        return result

    def save(self, directory: str | Path) -> Path:
        """Write transformer, estimator and metadata.json (last, atomically) into `directory`; return it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.transformer, directory / "transformer.joblib")
        if self.deep:
            self.estimator.model.save(directory / "estimator.keras")
        else:
            joblib.dump(self.estimator, directory / "estimator.joblib")
        metadata = {
            "artifact_format": ARTIFACT_FORMAT,
            "model_family": self.hyperparameters.model_family,
            "hyperparameters": self.hyperparameters.as_dict(),
            "window": self.transformer.window,
            "sensors": self.transformer.sensors,
            "dropped_sensors": self.transformer.dropped_sensors,
            "n_conditions": self.transformer.n_conditions,
            "feature_names": self.transformer.feature_names if not self.deep else self.transformer.sensors,
            **self.metadata,
        }
        if self.calibration is not None:
            metadata["interval_calibration"] = self.calibration.as_dict()
        temporary = directory / "metadata.json.tmp"
        temporary.write_text(json.dumps(metadata, indent=2))
        temporary.replace(directory / "metadata.json")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> RulPredictor:
        """Load a predictor saved by `save`; a missing or unsupported artifact is a `ModelArtifactError`."""
        directory = Path(directory)
        metadata_path = directory / "metadata.json"
        if not metadata_path.is_file():
            raise ModelArtifactError(f"{directory} holds no metadata.json; is it a model folder?")
        metadata = json.loads(metadata_path.read_text())
        if metadata.get("artifact_format") != ARTIFACT_FORMAT:
            raise ModelArtifactError(
                f"{metadata_path}: artifact_format {metadata.get('artifact_format')!r} is not supported "
                f"(this code reads {ARTIFACT_FORMAT})"
            )
        saved = metadata["hyperparameters"]
        # Artifacts from before the inner cap had one cap; before `auto` every saved value was concrete.
        hyperparameters = Hyperparameters.from_dict({"inner_cap": saved.get("rul_cap"), **saved})
        transformer = joblib.load(directory / "transformer.joblib")
        if hyperparameters.model_family in ("cnn", "lstm"):
            path = directory / "estimator.keras"
            if not path.is_file():
                raise ModelArtifactError(f"{path} is missing")
            estimator = KerasRegressor(hyperparameters, import_keras().models.load_model(path))
        else:
            path = directory / "estimator.joblib"
            if not path.is_file():
                raise ModelArtifactError(f"{path} is missing")
            estimator = joblib.load(path)
        calibration = None
        if "interval_calibration" in metadata:
            calibration = IntervalCalibration.from_dict(metadata["interval_calibration"])
        extra = {key: value for key, value in metadata.items() if key not in _SAVED_KEYS}
        return cls(transformer, hyperparameters, estimator, extra, calibration)


_SAVED_KEYS = {
    "artifact_format",
    "model_family",
    "hyperparameters",
    "window",
    "sensors",
    "dropped_sensors",
    "n_conditions",
    "feature_names",
    "interval_calibration",
}


def training_table(
    predictor: RulPredictor, frame: pd.DataFrame, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and capped labels of the kept rows of a frame sorted by unit."""
    labels = capped_rul(frame, predictor.hyperparameters.rul_cap)[keep]
    return blocked_inputs(predictor, frame, keep), labels


def blocked_inputs(predictor: RulPredictor, frame: pd.DataFrame, keep: np.ndarray) -> np.ndarray:
    """Model inputs of the kept rows of a frame sorted by unit, computed a block of units at a time (a
    unit's features depend on its own rows only), so memory follows the kept rows, not the frame."""
    units = frame["unit"].to_numpy()
    starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
    bounds, begin = [], 0
    for start in starts[1:]:
        if start - begin >= FEATURE_BLOCK_ROWS:
            bounds.append((begin, start))
            begin = start
    bounds.append((begin, len(frame)))
    return np.concatenate([predictor.inputs(frame.iloc[a:b])[keep[a:b]] for a, b in bounds])


def _kept_rows(frame: pd.DataFrame, hp: Hyperparameters, deep: bool, stride: int) -> np.ndarray:
    keep = thinning_mask(frame, stride, hp.seed)
    if deep:
        # Windows padded at the start of a unit are early-life samples at the cap; leaving them out of
        # training measured better (FD001 fold: RMSE 16.4 vs 17.3).
        full = frame.groupby("unit").cumcount().to_numpy() + 1 >= hp.window
        if (keep & full).any():
            keep = keep & full
    return keep


def fit_predictor(
    train: pd.DataFrame,
    validation: pd.DataFrame | None,
    hyperparameters: Hyperparameters,
    on_metrics: MetricsCallback | None = None,
) -> RulPredictor:
    """Fit the feature transform on the training units, then the model family's estimator."""
    train = train.sort_values(["unit", "cycle"], kind="stable").reset_index(drop=True)
    hp, auto_record = resolve(hyperparameters, train)
    transformer = FeatureTransformer(hp.window, hp.feature_set, hp.n_conditions).fit(train)
    log(
        f"features: {len(transformer.sensors)} sensors kept, "
        f"dropped {transformer.dropped_sensors or 'none'}, "
        f"{transformer.n_conditions} operating condition(s)"
    )
    predictor = RulPredictor(transformer, hp, estimator=None)
    stride = effective_stride(len(train), hp.row_stride, hp.max_train_rows)
    features, labels = training_table(predictor, train, _kept_rows(train, hp, predictor.deep, stride))
    validation_set = None
    if validation is not None and len(validation):
        validation = validation.sort_values(["unit", "cycle"], kind="stable").reset_index(drop=True)
        validation_set = training_table(predictor, validation, thinning_mask(validation, stride, hp.seed))
    log(
        f"training {hp.model_family} on {len(labels)} rows (stride {stride}) "
        f"of {train['unit'].nunique()} units"
    )
    if predictor.deep:
        predictor.estimator = KerasRegressor(hp).fit(features, labels, validation_set, on_metrics)
    elif hp.inner_cap < hp.rul_cap:
        predictor.estimator = CapBlend.fitted(hp, features, labels, validation_set, on_metrics)
    else:
        predictor.estimator = GbmEnsemble(hp).fit(features, labels, validation_set, on_metrics)
    predictor.metadata["training_units"] = unit_fingerprint(train["unit"])
    if auto_record:
        predictor.metadata["auto_settings"] = auto_record
    return predictor


def unit_fingerprint(units) -> dict:
    """The number of distinct units and a SHA-256 of their sorted ids: which units a model was fitted on."""
    ids = np.unique(np.asarray(units, dtype=np.int64))
    digest = hashlib.sha256(",".join(str(unit) for unit in ids).encode()).hexdigest()
    return {"count": len(ids), "sha256": digest}


def held_out_residuals(
    predictor: RulPredictor, held_out: pd.DataFrame, hp: Hyperparameters
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and true RUL at official-style cuts of held-out units (at least `CALIBRATION_DRAWS` per
    unit: cuts are cheap to predict and spread the residuals over the whole cut distribution)."""
    protocol = CutProtocol(min_cycles=hp.window, max_rul=hp.cut_max_rul)
    draws = max(hp.validation_draws, CALIBRATION_DRAWS)
    cut, truth = cut_units(held_out, hp.seed, protocol, draws=draws)
    predicted = predictor.predict_last(cut).merge(truth, on="unit")
    return predicted["predicted_rul"].to_numpy(), predicted["rul"].to_numpy(dtype=np.float64)


def cross_calibration(everything: pd.DataFrame, hp: Hyperparameters) -> IntervalCalibration:
    """Out-of-fold residuals of every unit: `calibration_folds` fits, each on the other folds' units."""
    folds = everything["unit"].map(
        lambda unit: int(unit_uniform(unit, hp.seed, "calibration-fold") * hp.calibration_folds)
    )
    pieces = []
    for fold in range(hp.calibration_folds):
        held_out = everything[folds == fold]
        if held_out.empty:
            continue
        model = fit_predictor(everything[folds != fold], None, hp)
        pieces.append(held_out_residuals(model, held_out, hp))
    predicted, truth = (np.concatenate(part) for part in zip(*pieces, strict=True))
    return calibrate(predicted, truth, everything["unit"].nunique())


def checked_trial(trial: RulPredictor, train: pd.DataFrame, hp: Hyperparameters) -> RulPredictor:
    """`trial` if it was fitted on exactly the units of `train` with `hp` (the interval level aside), so
    its validation residuals are those a new fit would give; else a `ConfigurationError` naming why not.
    `auto` values of `hp` are compared as the trial resolved them (from the same training units)."""
    hp, _ = resolve(hp, train)
    if trial.metadata.get("training_units") != unit_fingerprint(train["unit"]):
        raise ConfigurationError(
            f"the tuning trial's model was fitted on other units than the refit's training channel "
            f"({trial.metadata.get('training_units')} != {unit_fingerprint(train['unit'])})"
        )
    differing = sorted(
        name
        for name, value in trial.hyperparameters.as_dict().items()
        if name != "interval_level" and value != getattr(hp, name)
    )
    if differing:
        raise ConfigurationError(f"the tuning trial's model differs from the refit in {', '.join(differing)}")
    return trial


def fit_final_predictor(
    train: pd.DataFrame,
    validation: pd.DataFrame | None,
    extra: pd.DataFrame | None,
    hyperparameters: Hyperparameters,
    on_metrics: MetricsCallback | None = None,
    trial: RulPredictor | None = None,
) -> RulPredictor:
    """The model to register, fitted on every unit (train + validation + extra), with intervals calibrated
    on held-out whole units: with `calibration_folds` 0 on the validation units by a fit on the training
    units (split conformal), else on every unit by as many fits on the other folds (cross-conformal).
    `trial`, the best tuning trial's model (that very fit on the training units), saves the split
    calibration's fit: the refit then costs one fit and the predictions at the validation cuts. `auto`
    settings are chosen from the training units, as the tuning trial chose them."""
    hp, auto_record = resolve(hyperparameters, train)
    frames = [frame for frame in (train, validation, extra) if frame is not None and len(frame)]
    everything = pd.concat(frames, ignore_index=True)
    check_unique_units(everything, "final training data")
    started = time.perf_counter()
    if hp.calibration_folds:
        calibration = cross_calibration(everything, hp)
    elif validation is None or validation.empty:
        raise ConfigurationError("the final fit needs validation units to calibrate its intervals")
    else:
        if trial is not None:
            fitted = checked_trial(trial, train, hp)
        else:
            fitted = fit_predictor(train, validation, hp, on_metrics)
        calibration = calibrate(*held_out_residuals(fitted, validation, hp), validation["unit"].nunique())
    seconds = time.perf_counter() - started
    log(f"intervals calibrated on {calibration.units} held-out units in {seconds:.1f}s")
    predictor = fit_predictor(everything, None, hp)
    predictor.calibration = calibration
    predictor.metadata["training_units"] = unit_fingerprint(everything["unit"])
    if auto_record:
        predictor.metadata["auto_settings"] = auto_record
    log(f"final model fitted on {predictor.metadata['training_units']['count']} units")
    return predictor
