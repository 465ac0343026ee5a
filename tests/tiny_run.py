"""A main-job run small enough for the tests: two tuning trials, one at a time, of one small gbm member."""

from __future__ import annotations

from pipeline_steps import names

# Run parameters: the tuner's budget.
FAST = {names.TUNING_MAX_JOBS: 2, names.TUNING_MAX_PARALLEL_JOBS: 1}
# Static hyperparameters of every trial.
TINY_HYPERPARAMETERS = (
    ("feature_set", "stats"),
    ("ensemble_size", "1"),
    ("max_iter", "40"),
    ("validation_draws", "2"),
)
# Render-time config overrides (`MainJobOptions.config_overrides`).
TINY = {"static_hyperparameters": TINY_HYPERPARAMETERS}
