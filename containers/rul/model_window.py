"""The rows a prediction reads: each unit's last `window` cycles, shared by the baseline and the monitors.

The model predicts at each unit's last cycle from a window of its trailing cycles
(`FeatureTransformer.window`, 30 by default), and serving reports per unit how many cycles that was
(`cycles_used` = min(rows sent, window)). Drift statistics must compare like with like: the baseline holds
test-like windows of training units, so the monitors take from each captured request only the rows the
model read, whatever history the client sent. Both sides cut with `model_rows`, never with their own
`tail`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rul.errors import ConfigurationError


def model_rows(frame: pd.DataFrame, window: int | Mapping[int, int]) -> pd.DataFrame:
    """Each unit's last `window` cycles (an int for every unit, or a per-unit mapping), sorted by unit and
    cycle; the other columns ride along. A unit missing from a mapping is an error, not dropped."""
    ordered = frame.sort_values(["unit", "cycle"], kind="stable")
    if isinstance(window, Mapping):
        missing = sorted(set(ordered["unit"].tolist()) - set(window))
        if missing:
            raise ConfigurationError(f"no window length for unit(s) {missing[:5]}")
        limits = ordered["unit"].map(window).to_numpy(dtype=np.int64)
    else:
        limits = np.full(len(ordered), int(window), dtype=np.int64)
    if (limits < 1).any():
        raise ConfigurationError(f"a window must hold at least one cycle, got {int(limits.min())}")
    from_end = ordered.groupby("unit", sort=False).cumcount(ascending=False).to_numpy()
    return ordered[from_end < limits].reset_index(drop=True)
