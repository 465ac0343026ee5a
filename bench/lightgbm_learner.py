"""LightGBM in place of scikit-learn's histogram gradient boosting, for the model bench only.

`bench_models.py --learner lightgbm` calls `install()` in each fold's process: the gbm family's ensemble
(`rul.ensemble.GbmEnsemble`, also behind the two-cap blend) is replaced by `LgbmEnsemble`, which fits
LightGBM members with the same settings (learning rate, iterations, leaves, leaf size, L2, a per-split
feature subsample, seeds), on the same feature table, labels and rows. LightGBM is the candidate
distributed learner (it trains across machines); this measures whether it earns its place by the same
cross-validation before any of that. It is pinned in requirements-dev.txt, not in the job image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class LgbmEnsemble:
    """Average of LightGBM members that differ by seed; the interface `rul.models` uses of `GbmEnsemble`."""

    hyperparameters: Any  # a rul.hyperparameters.Hyperparameters
    members: list = field(default_factory=list)

    def fit(self, features: np.ndarray, labels: np.ndarray, validation=None, on_metrics=None) -> LgbmEnsemble:
        """Fit `ensemble_size` members (validation and metrics are not used by the bench)."""
        import lightgbm

        hp = self.hyperparameters
        for index in range(hp.ensemble_size):
            member = lightgbm.LGBMRegressor(
                learning_rate=hp.effective_learning_rate,
                n_estimators=hp.max_iter,
                num_leaves=hp.max_leaf_nodes,
                min_child_samples=hp.min_samples_leaf,
                reg_lambda=hp.l2_regularization,
                feature_fraction_bynode=hp.max_features,
                random_state=hp.seed + index,
                n_jobs=1,
                verbose=-1,
            )
            self.members.append(member.fit(features, labels))
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The members' mean prediction."""
        return np.mean([member.predict(features) for member in self.members], axis=0)


def install() -> None:
    """Make the gbm family (single and two-cap) fit `LgbmEnsemble`s in this process."""
    import rul.ensemble
    import rul.models

    rul.ensemble.GbmEnsemble = LgbmEnsemble  # type: ignore[misc,assignment]
    rul.models.GbmEnsemble = LgbmEnsemble  # type: ignore[misc,assignment]
