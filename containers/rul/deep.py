"""The deep model families: a small 1D CNN and a two-layer LSTM on normalised sensor windows (Keras).

TensorFlow is imported only when a deep model is built or loaded (the import alone takes seconds).
Labels are scaled to [0, 1] by the RUL cap; with validation units the fit stops early on their loss
(patience `patience`, then the best epoch's weights are restored, as Keras' EarlyStopping does).
Per epoch `loss`, `rmse` and, with validation data, `val_loss` and `val_rmse` go to `on_metrics`
(RMSE in cycles on capped labels).

The fit runs one epoch at a time in an order drawn from (seed, epoch), so that, with a checkpoint folder
active (`rul.checkpoints`), the state after each epoch (every model variable including the dropout
layers' seed states, the optimizer's variables and the early-stopping state) is a complete checkpoint: a
fit resumed from it trains the same remaining epochs as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rul.checkpoints import CheckpointStore, open_store, save_arrays
from rul.errors import ConfigurationError
from rul.hyperparameters import Hyperparameters
from rul.progress import MetricsCallback, log


def import_keras():
    """The `keras` module, imported with TensorFlow's info and warning logs turned off."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def build_keras_model(family: str, window: int, n_sensors: int, hp: Hyperparameters):
    """A compiled Keras CNN or LSTM (`family`) regressing RUL from (window, sensors) inputs."""
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
class EarlyStopping:
    """Keras' EarlyStopping on `val_loss` (min_delta 0, best weights restored), as resumable state."""

    patience: int
    best: float = math.inf
    best_epoch: int = -1
    wait: int = 0
    stopped: bool = False
    best_weights: list[np.ndarray] | None = field(default=None, repr=False)

    def update(self, epoch: int, val_loss: float, weights) -> None:
        """Record one epoch's validation loss; `weights()` gives the model's current weights."""
        if self.best_weights is None:
            self.best_weights, self.best_epoch = weights(), epoch
        self.wait += 1
        if val_loss < self.best:
            self.best, self.best_epoch, self.best_weights, self.wait = val_loss, epoch, weights(), 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped = True

    def scalars(self) -> dict:
        """The state without the best weights: what is written to a checkpoint's JSON."""
        return {key: value for key, value in asdict(self).items() if key != "best_weights"}


def epoch_order(rows: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the training rows in `epoch` (the same for a resumed fit)."""
    return np.random.default_rng([seed, epoch]).permutation(rows)


@dataclass
class KerasRegressor:
    """A Keras network trained on labels scaled to [0, 1] by the RUL cap, with early stopping."""

    hyperparameters: Hyperparameters
    model: Any = None  # a keras.Model once fitted (keras has no type information)

    def fit(
        self,
        windows: np.ndarray,
        labels: np.ndarray,
        validation=None,
        on_metrics: MetricsCallback | None = None,
    ) -> KerasRegressor:
        """Train epoch by epoch (resuming a checkpoint), stop early on val_loss, keep the best weights."""
        hp = self.hyperparameters
        cap = hp.rul_cap
        if not cap > 0:  # AUTO_CAP: `rul.auto_settings` resolves it from the training units first
            raise ConfigurationError(
                f"rul_cap must be resolved to a positive cap before a deep fit, got {cap}"
            )
        keras = import_keras()
        keras.utils.set_random_seed(hp.seed)
        self.model = build_keras_model(hp.model_family, windows.shape[1], windows.shape[2], hp)
        scaled = labels / cap
        validation_data = None if validation is None else (validation[0], validation[1] / cap)
        arrays = (windows, labels, *(validation if validation is not None else (None, None)))
        store = open_store(hp.model_family, hp.as_dict(), arrays)
        stopping, first = EarlyStopping(hp.patience), 0
        if store is not None:
            first = restore_epoch(self.model, store, stopping)
        for epoch in range(first, hp.epochs):
            if stopping.stopped:
                break
            order = epoch_order(len(windows), hp.seed, epoch)
            history = self.model.fit(
                windows[order],
                scaled[order],
                validation_data=validation_data,
                batch_size=hp.batch_size,
                epochs=1,
                verbose=0,
                shuffle=False,
            )
            logs = {name: float(values[-1]) for name, values in history.history.items()}
            report_epoch(epoch, hp.epochs, logs, on_metrics, cap)
            if validation_data is not None:
                stopping.update(epoch, logs["val_loss"], self.model.get_weights)
            if store is not None:
                save_epoch(self.model, store, epoch + 1, stopping)
        if validation_data is not None and stopping.best_weights is not None:
            self.model.set_weights(stopping.best_weights)
        return self

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Predicted RUL per window, scaled back from [0, 1] by the RUL cap."""
        scaled = self.model.predict(windows, batch_size=1024, verbose=0)[:, 0]
        return scaled * self.hyperparameters.rul_cap


def _optimizer_variables(model) -> list:
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return list(model.optimizer.variables)


def save_epoch(model, store: CheckpointStore, epochs_done: int, stopping: EarlyStopping) -> None:
    """Checkpoint the state after `epochs_done` epochs, then drop older epochs' files (a kill between the
    manifest and the removal leaves one behind: the next epoch removes it)."""
    arrays = {f"model_{i}": np.asarray(v.numpy()) for i, v in enumerate(model.variables)}
    arrays |= {f"optimizer_{i}": np.asarray(v.numpy()) for i, v in enumerate(_optimizer_variables(model))}
    arrays |= {f"best_{i}": weight for i, weight in enumerate(stopping.best_weights or [])}
    arrays["state"] = np.array(json.dumps({"epochs_done": epochs_done, **stopping.scalars()}))
    store.save(f"epoch-{epochs_done}", {f"epoch-{epochs_done:04d}.npz": save_arrays(arrays)})
    current = store.path(f"epoch-{epochs_done:04d}.npz")
    for older in store.folder.glob("epoch-*.npz"):
        if older != current:
            older.unlink(missing_ok=True)


def restore_epoch(model, store: CheckpointStore, stopping: EarlyStopping) -> int:
    """Load the newest complete epoch into the model and `stopping`; the number of epochs it had done."""
    done = [int(step.split("-")[1]) for step in store.steps if step.startswith("epoch-")]
    if not done:
        return 0
    with np.load(store.path(f"epoch-{max(done):04d}.npz")) as saved:
        state = json.loads(str(saved["state"]))
        for i, variable in enumerate(model.variables):
            variable.assign(saved[f"model_{i}"])
        for i, variable in enumerate(_optimizer_variables(model)):
            variable.assign(saved[f"optimizer_{i}"])
        best = sorted((key for key in saved.files if key.startswith("best_")), key=lambda k: int(k[5:]))
        stopping.best_weights = [saved[key] for key in best] or None
    for key in ("best", "best_epoch", "wait", "stopped"):
        setattr(stopping, key, state[key])
    log(f"resumed after epoch {state['epochs_done']} from its checkpoint in {store.folder}")
    return int(state["epochs_done"])


def report_epoch(
    epoch: int, epochs: int, logs: dict[str, float], on_metrics: MetricsCallback | None, cap: float
) -> None:
    """Log one epoch's losses; `on_metrics` also gets them, with RMSEs in cycles (labels are cap-scaled)."""
    parts = [f"epoch {epoch + 1}/{epochs}", f"loss={logs.get('loss', float('nan')):.5f}"]
    if "val_loss" in logs:
        parts.append(f"val_loss={logs['val_loss']:.5f}")
    log(" ".join(parts))
    if on_metrics is not None:
        losses = {name: logs[name] for name in ("loss", "val_loss") if name in logs}
        rmses = {name.replace("loss", "rmse"): cap * value**0.5 for name, value in losses.items()}
        on_metrics({**losses, **rmses}, epoch + 1)
