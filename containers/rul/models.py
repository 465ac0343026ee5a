"""The model families and the artifact that carries a trained model with its feature transform.

- `gbm`: an ensemble of scikit-learn histogram gradient-boosting regressors on tabular window features;
  members differ by seed and feature subsample. Fast and, on C-MAPSS, the most accurate family we measured.
- `cnn`: a small 1D convolutional network on normalised sensor windows.
- `lstm`: the seed plan's two-layer LSTM on the same windows.

TensorFlow is imported only when a deep model is built or loaded (the import alone takes seconds).
A `RulPredictor` saves to a folder (transformer, estimator, metadata.json) that becomes model.tar.gz.
`fit_predictor` takes an optional `on_metrics(metrics, step)` callback (e.g. `rul.tracking`'s
`log_metrics`): per iteration of each gbm member its validation RMSE (`member_<k>_rmse`), per member the
ensemble's (`ensemble_rmse`), per epoch of a deep model `loss`, `rmse` and, with validation data,
`val_loss` and `val_rmse` (RMSE in cycles on capped labels over all validation rows).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from rul.errors import ModelArtifactError
from rul.features import FeatureTransformer, capped_rul, last_rows
from rul.hyperparameters import Hyperparameters

ARTIFACT_FORMAT = 1
# Receives a dict of metric values and the step (iteration, member or epoch, from 1) they belong to.
MetricsCallback = Callable[[dict[str, float], int], None]


def log(message: str) -> None:
    """Progress output for long work: one flushed line, visible in CloudWatch and the local runner."""
    print(message, file=sys.stdout, flush=True)


def import_keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


@dataclass
class GbmEnsemble:
    """Average of gradient-boosting members that differ by seed and by feature subsample."""

    hyperparameters: Hyperparameters
    members: list = field(default_factory=list)

    def fit(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        validation=None,
        on_metrics: MetricsCallback | None = None,
    ) -> GbmEnsemble:
        hp = self.hyperparameters
        for index in range(hp.ensemble_size):
            started = time.perf_counter()
            member = HistGradientBoostingRegressor(
                learning_rate=hp.effective_learning_rate,
                max_iter=hp.max_iter,
                max_leaf_nodes=hp.max_leaf_nodes,
                min_samples_leaf=hp.min_samples_leaf,
                l2_regularization=hp.l2_regularization,
                max_features=hp.max_features,
                early_stopping=False,
                random_state=hp.seed + index,
            ).fit(features, labels)
            self.members.append(member)
            message = (
                f"gbm member {index + 1}/{hp.ensemble_size} fitted in {time.perf_counter() - started:.1f}s"
            )
            if validation is not None:
                error = self.predict(validation[0]) - validation[1]
                ensemble_rmse = float(np.sqrt(np.mean(error**2)))
                message += f", validation rmse of the ensemble so far {ensemble_rmse:.3f}"
                if on_metrics is not None:
                    _report_staged(member, index + 1, validation, on_metrics)
                    on_metrics({"ensemble_rmse": ensemble_rmse}, index + 1)
            log(message)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.mean([member.predict(features) for member in self.members], axis=0)


def _report_staged(member, number: int, validation, on_metrics: MetricsCallback) -> None:
    """The validation RMSE of one member after each boosting iteration (a cumulative pass, cheap)."""
    for iteration, predicted in enumerate(member.staged_predict(validation[0]), start=1):
        on_metrics(
            {f"member_{number}_rmse": float(np.sqrt(np.mean((predicted - validation[1]) ** 2)))}, iteration
        )


def build_keras_model(family: str, window: int, n_sensors: int, hp: Hyperparameters):
    keras = import_keras()
    layers = keras.layers
    inputs = keras.Input(shape=(window, n_sensors))
    if family == "cnn":
        # Shaped like the 2018 C-MAPSS CNN (Li et al.): long tanh kernels, a one-filter bottleneck, then
        # a dense layer; wider ReLU stacks with less dropout overfit within a few epochs here.
        x = inputs
        for _ in range(3):
            x = layers.Conv1D(hp.filters, 10, padding="same", activation="tanh")(x)
        x = layers.Conv1D(1, 3, padding="same", activation="tanh")(x)
        x = layers.Flatten()(x)
        x = layers.Dropout(hp.dropout)(x)
        x = layers.Dense(hp.units, activation="tanh")(x)
    else:
        x = layers.LSTM(hp.units, return_sequences=True)(inputs)
        x = layers.Dropout(hp.dropout)(x)
        x = layers.LSTM(hp.units // 2)(x)
        x = layers.Dropout(hp.dropout)(x)
    outputs = layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(hp.effective_learning_rate), loss="mse")
    return model


@dataclass
class KerasRegressor:
    """A Keras network trained on labels scaled to [0, 1] by the RUL cap, with early stopping."""

    hyperparameters: Hyperparameters
    model: object = None

    def fit(
        self,
        windows: np.ndarray,
        labels: np.ndarray,
        validation=None,
        on_metrics: MetricsCallback | None = None,
    ) -> KerasRegressor:
        keras = import_keras()
        hp = self.hyperparameters
        keras.utils.set_random_seed(hp.seed)
        self.model = build_keras_model(hp.model_family, windows.shape[1], windows.shape[2], hp)
        cap = hp.rul_cap
        callbacks = [EpochLogger(hp.epochs, on_metrics, cap)]
        validation_data = None
        if validation is not None:
            validation_data = (validation[0], validation[1] / cap)
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    patience=hp.patience, restore_best_weights=True, monitor="val_loss"
                )
            )
        self.model.fit(
            windows,
            labels / cap,
            validation_data=validation_data,
            epochs=hp.epochs,
            batch_size=hp.batch_size,
            verbose=0,
            callbacks=callbacks,
            shuffle=True,
        )
        return self

    def predict(self, windows: np.ndarray) -> np.ndarray:
        scaled = self.model.predict(windows, batch_size=1024, verbose=0)[:, 0]
        return scaled * self.hyperparameters.rul_cap


def EpochLogger(epochs: int, on_metrics: MetricsCallback | None = None, cap: float = 1.0):
    """Logs each epoch's losses; `on_metrics` also gets them, with RMSEs in cycles (labels are cap-scaled)."""
    keras = import_keras()

    class _EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            parts = [f"epoch {epoch + 1}/{epochs}", f"loss={logs.get('loss', float('nan')):.5f}"]
            if "val_loss" in logs:
                parts.append(f"val_loss={logs['val_loss']:.5f}")
            log(" ".join(parts))
            if on_metrics is not None:
                losses = {name: float(logs[name]) for name in ("loss", "val_loss") if name in logs}
                rmses = {name.replace("loss", "rmse"): cap * value**0.5 for name, value in losses.items()}
                on_metrics({**losses, **rmses}, epoch + 1)

    return _EpochLogger()


@dataclass
class RulPredictor:
    """A fitted feature transform and estimator: raw C-MAPSS rows in, RUL out."""

    transformer: FeatureTransformer
    hyperparameters: Hyperparameters
    estimator: object
    metadata: dict = field(default_factory=dict)

    @property
    def deep(self) -> bool:
        return self.hyperparameters.model_family in ("cnn", "lstm")

    def inputs(self, frame: pd.DataFrame) -> np.ndarray:
        if self.deep:
            return self.transformer.windows(frame)[0]
        return self.transformer.tabular(frame)

    def predict_rows(self, frame: pd.DataFrame) -> np.ndarray:
        """RUL predicted at every row, clipped to [0, cap]."""
        return np.clip(self.estimator.predict(self.inputs(frame)), 0.0, self.hyperparameters.rul_cap)

    def predict_last(self, frame: pd.DataFrame) -> pd.DataFrame:
        """RUL at each unit's last observed cycle, with the cycles used and whether the window was padded."""
        frame = frame.sort_values(["unit", "cycle"], kind="stable").reset_index(drop=True)
        last = last_rows(frame)
        if self.deep:
            windows, padded = self.transformer.windows(frame)
            predictions = self.estimator.predict(windows[last])
        else:
            predictions = self.estimator.predict(self.transformer.tabular(frame)[last])
            padded = frame.groupby("unit")["cycle"].transform("size").to_numpy() < self.transformer.window
        counts = frame.groupby("unit", sort=False)["cycle"].size().to_numpy()
        return pd.DataFrame(
            {
                "unit": frame["unit"].to_numpy()[last],
                "predicted_rul": np.clip(predictions, 0.0, self.hyperparameters.rul_cap),
                "cycles_used": np.minimum(counts, self.transformer.window),
                "padded": np.asarray(padded)[last],
            }
        )

    def save(self, directory: str | Path) -> Path:
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
        (directory / "metadata.json").write_text(json.dumps(metadata, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> RulPredictor:
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
        hyperparameters = Hyperparameters.from_dict(metadata["hyperparameters"])
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
        extra = {key: value for key, value in metadata.items() if key not in _SAVED_KEYS}
        return cls(transformer, hyperparameters, estimator, extra)


_SAVED_KEYS = {
    "artifact_format",
    "model_family",
    "hyperparameters",
    "window",
    "sensors",
    "dropped_sensors",
    "n_conditions",
    "feature_names",
}


def fit_predictor(
    train: pd.DataFrame,
    validation: pd.DataFrame | None,
    hyperparameters: Hyperparameters,
    on_metrics: MetricsCallback | None = None,
) -> RulPredictor:
    """Fit the feature transform on the training units, then the model family's estimator."""
    hp = hyperparameters
    transformer = FeatureTransformer(hp.window, hp.feature_set, hp.n_conditions).fit(train)
    log(
        f"features: {len(transformer.sensors)} sensors kept, "
        f"dropped {transformer.dropped_sensors or 'none'}, "
        f"{transformer.n_conditions} operating condition(s)"
    )
    predictor = RulPredictor(transformer, hp, estimator=None)
    features = predictor.inputs(train)
    labels = capped_rul(train, hp.rul_cap)
    validation_set = None
    if validation is not None and len(validation):
        validation_set = (predictor.inputs(validation), capped_rul(validation, hp.rul_cap))
    log(f"training {hp.model_family} on {len(labels)} rows of {train['unit'].nunique()} units")
    if predictor.deep:
        # Windows padded at the start of a unit are early-life samples at the cap; leaving them out of
        # training measured better (FD001 fold: RMSE 16.4 vs 17.3).
        full = ~transformer.windows(train)[1]
        if full.any():
            features, labels = features[full], labels[full]
        predictor.estimator = KerasRegressor(hp).fit(features, labels, validation_set, on_metrics)
    else:
        predictor.estimator = GbmEnsemble(hp).fit(features, labels, validation_set, on_metrics)
    return predictor
