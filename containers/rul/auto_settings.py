"""The `auto` feature set and label cap, resolved at fit time from the training units themselves.

Users bring their own fleets, so the setting is chosen from the data, never from a subset's name: the
number of operating conditions found in the training units' settings (`n_conditions` when it is set,
else `rul.features.detect_condition_count`). Several conditions (like C-MAPSS FD002/FD004, whose test
units run up to 195 cycles before failure) get the `regime` features and two caps, 150 with an inner
cap of 125 for gbm (`rul.ensemble`); a single condition (FD001/FD003) keeps `rich` and one cap of 125.
The choices were made by cross-validation on whole units (docs/model.md). Only the values left `auto` are
chosen; the two caps were measured with the `regime` features only, so an `auto` inner cap is the cap
itself (one cap) unless the feature set is `auto` too. The fitted model carries the concrete values in
its hyperparameters and how they were chosen in its metadata (`auto_settings`).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from rul.data import SETTING_COLUMNS
from rul.features import detect_condition_count
from rul.hyperparameters import AUTO, AUTO_CAP, Hyperparameters
from rul.progress import log

# (feature set, label cap, inner cap) for training units flown in one operating condition, and in several.
SINGLE_CONDITION = ("rich", 125.0, 125.0)
MULTI_CONDITION = ("regime", 150.0, 125.0)


def choice_for(conditions: int) -> tuple[str, float, float]:
    """The (feature set, cap, inner cap) for training units that visit `conditions` operating conditions."""
    return MULTI_CONDITION if conditions > 1 else SINGLE_CONDITION


def resolve(hyperparameters: Hyperparameters, train: pd.DataFrame) -> tuple[Hyperparameters, dict]:
    """`hyperparameters` with its `auto` values chosen from the training units, and a record of the
    choice for the model's metadata (empty when nothing was left to choose)."""
    hp = hyperparameters
    if hp.resolved:
        return hp, {}
    conditions = hp.n_conditions or detect_condition_count(train[SETTING_COLUMNS].to_numpy(dtype=float))
    feature_set, cap, inner_cap = choice_for(conditions)
    cap_used = cap if hp.rul_cap == AUTO_CAP else hp.rul_cap
    if hp.inner_cap != AUTO_CAP:
        inner_used = hp.inner_cap
    elif hp.rul_cap == AUTO_CAP and hp.feature_set == AUTO and hp.model_family == "gbm":
        inner_used = inner_cap
    else:
        inner_used = cap_used
    chosen = replace(
        hp,
        feature_set=feature_set if hp.feature_set == AUTO else hp.feature_set,
        rul_cap=cap_used,
        inner_cap=inner_used,
    )
    record: dict = {"operating_conditions": conditions}
    for name in ("feature_set", "rul_cap", "inner_cap"):
        requested = getattr(hp, name)
        record[name] = {
            "requested": AUTO if requested == AUTO_CAP else requested,
            "used": getattr(chosen, name),
        }
    log(
        f"auto settings: {conditions} operating condition(s) in the training units -> "
        f"feature_set={chosen.feature_set}, rul_cap={chosen.rul_cap:g}, inner_cap={chosen.inner_cap:g}"
    )
    return chosen, record
