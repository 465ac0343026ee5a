"""The `gbm` family's estimators: an average of scikit-learn histogram gradient-boosting members, and a
blend of two such averages fitted at two label caps.

Members differ by seed and feature subsample. Each fitted member is checkpointed (`rul.checkpoints`), so
an interrupted (e.g. spot) training job resumes with the members it already has; with validation data the
ensemble reports its staged validation RMSE through the `on_metrics` callback (`rul.progress`).

`CapBlend` serves both yardsticks of a multi-condition fleet with one model: members capped at `rul_cap`
(150) see how far a healthy engine's life runs, members capped at `inner_cap` (125) are the sharper
inside that zone. Where the outer members predict at most `inner_cap - BLEND_SPAN` the inner members'
prediction is served, above `inner_cap` the outer one, and a linear mix in between (FD004 3-fold CV by
whole units chose this over a hard switch, docs/model.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import joblib
import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from rul.checkpoints import CheckpointStore, open_store
from rul.hyperparameters import Hyperparameters
from rul.progress import MetricsCallback, log

# Cycles below the inner cap over which the blend moves from the inner to the outer members.
BLEND_SPAN = 25.0


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
        """Fit (or restore from checkpoints) each member in turn, logging the ensemble's validation RMSE."""
        hp = self.hyperparameters
        validation_arrays = (None, None) if validation is None else validation
        store = open_store("gbm", hp.as_dict(), (features, labels, *validation_arrays))
        for index in range(hp.ensemble_size):
            started = time.perf_counter()
            member, action = self._member(index, features, labels, store), "fitted"
            if store is not None and store.has(f"member-{index}"):
                action = "restored from its checkpoint"
            elif store is not None:
                store.save(f"member-{index}", {f"member-{index:03d}.joblib": _dumper(member)})
            self.members.append(member)
            message = (
                f"gbm member {index + 1}/{hp.ensemble_size} {action} in {time.perf_counter() - started:.1f}s"
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

    def _member(self, index: int, features: np.ndarray, labels: np.ndarray, store: CheckpointStore | None):
        """Member `index`: loaded from its checkpoint when the store has one, else fitted (its own seed, so
        a resumed ensemble equals an uninterrupted one)."""
        if store is not None and store.has(f"member-{index}"):
            return joblib.load(store.path(f"member-{index:03d}.joblib"))
        hp = self.hyperparameters
        return HistGradientBoostingRegressor(
            learning_rate=hp.effective_learning_rate,
            max_iter=hp.max_iter,
            max_leaf_nodes=hp.max_leaf_nodes,
            min_samples_leaf=hp.min_samples_leaf,
            l2_regularization=hp.l2_regularization,
            max_features=hp.max_features,
            early_stopping=False,
            random_state=hp.seed + index,
        ).fit(features, labels)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The members' mean prediction per row."""
        return np.mean([member.predict(features) for member in self.members], axis=0)


def _dumper(value):
    """A writer of `value` as a joblib file, for `CheckpointStore.save`."""
    return lambda path: joblib.dump(value, path)


def _report_staged(member, number: int, validation, on_metrics: MetricsCallback) -> None:
    """The validation RMSE of one member after each boosting iteration (a cumulative pass, cheap)."""
    for iteration, predicted in enumerate(member.staged_predict(validation[0]), start=1):
        on_metrics(
            {f"member_{number}_rmse": float(np.sqrt(np.mean((predicted - validation[1]) ** 2)))}, iteration
        )


@dataclass
class CapBlend:
    """Two `GbmEnsemble`s on one feature table, labels capped at `rul_cap` (outer) and `inner_cap`
    (inner), blended by the outer prediction."""

    outer: GbmEnsemble
    inner: GbmEnsemble
    inner_cap: float

    @classmethod
    def fitted(
        cls,
        hyperparameters: Hyperparameters,
        features: np.ndarray,
        labels: np.ndarray,
        validation=None,
        on_metrics: MetricsCallback | None = None,
    ) -> CapBlend:
        """Fit both ensembles (`labels` capped at `rul_cap`; the inner ones are capped further here)."""
        hp = hyperparameters
        log(f"two caps: {hp.ensemble_size} member(s) capped at {hp.rul_cap:g}, then at {hp.inner_cap:g}")
        outer = GbmEnsemble(hp).fit(features, labels, validation, on_metrics)
        inner_validation = (
            None if validation is None else (validation[0], np.minimum(validation[1], hp.inner_cap))
        )
        inner = GbmEnsemble(replace(hp, rul_cap=hp.inner_cap)).fit(
            features, np.minimum(labels, hp.inner_cap), inner_validation
        )
        return cls(outer, inner, hp.inner_cap)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The inner members' RUL well inside the inner cap, the outer members' beyond it, mixed between."""
        outer = self.outer.predict(features)
        weight = np.clip((outer - (self.inner_cap - BLEND_SPAN)) / BLEND_SPAN, 0.0, 1.0)
        return weight * outer + (1.0 - weight) * self.inner.predict(features)
