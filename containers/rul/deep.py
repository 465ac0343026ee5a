"""The deep model families: a small 1D CNN and a two-layer LSTM on normalised sensor windows (Keras).

TensorFlow is imported only when a deep model is built or loaded (the import alone takes seconds).
Labels are scaled to [0, 1] by the RUL cap; with validation units the fit stops early on their loss.
Per epoch `loss`, `rmse` and, with validation data, `val_loss` and `val_rmse` go to `on_metrics`
(RMSE in cycles on capped labels).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from rul.hyperparameters import Hyperparameters
from rul.progress import MetricsCallback, log


def import_keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


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
