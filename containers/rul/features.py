"""Labels and features: capped RUL, sensor selection, per-condition normalisation, windows.

Everything fitted (the near-constant sensors dropped, the operating-condition clusters, the per-condition
means and standard deviations) is learned from training units only by `FeatureTransformer.fit` and saved
with the model, so evaluation and serving apply the very same transform.

Windows look back over the last `window` cycles of a unit. A unit observed for fewer cycles than the
window is front-padded by repeating its first cycle (deep models) or summarised over the cycles it has
(tabular features); `padded` tells which predictions saw fewer cycles than the window. Training keeps
every k-th window of a unit (`thinning_mask`, `effective_stride`): neighbouring windows nearly repeat.
A row's features are a function of its own unit's rows only, bit for bit: the running sums behind them
restart at each unit (`rul.running_sums`), so a unit gets the same features alone as with other units.

Feature sets: `stats` (last value, mean, std and slope over the window), `rich` (means, stds, slopes and
exponentially weighted means over several spans) and `regime`, for multi-condition subsets: `rich` plus
the cycles the unit has spent in each operating condition so far and, per sensor, the drift of its recent
mean from the unit's own baseline (the mean of its first `BASELINE_CYCLES` cycles), which removes the
unit-to-unit offsets that per-condition z-scores leave.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from rul.data import SENSOR_COLUMNS, SETTING_COLUMNS
from rul.errors import ConfigurationError, DataFormatError
from rul.hyperparameters import FEATURE_SETS
from rul.running_sums import RunningSums, unit_cumsum, unit_positions, unit_starts, window_statistics_at

# Cycles at the start of a unit whose mean is its own baseline (the `regime` feature set).
BASELINE_CYCLES = 20
# The `regime` features computed from a unit's whole history: the per-sensor drift from the baseline (a
# kind of `FeatureTransformer._kinds`) and the cycles spent in each condition (a column-name prefix).
DRIFT_KIND = "drift10"
CONDITION_HISTORY = "cycles_in_condition"
# Grid on which operating settings are rounded to count the distinct flight conditions
# (altitude in kft, Mach number, throttle resolver angle).
_CONDITION_GRID = np.array([1.0, 0.01, 1.0])
_MIN_CONDITION_SHARE = 0.01


def remaining_cycles(frame: pd.DataFrame) -> pd.Series:
    """Cycles left until the unit's last recorded cycle (its failure, for run-to-failure data)."""
    return frame.groupby("unit")["cycle"].transform("max") - frame["cycle"]


def capped_rul(frame: pd.DataFrame, cap: float) -> np.ndarray:
    """The piecewise-linear RUL label: remaining cycles, flat at `cap` early in life."""
    return np.minimum(remaining_cycles(frame).to_numpy(dtype=np.float64), cap)


def detect_condition_count(settings: np.ndarray) -> int:
    """Number of distinct operating conditions: setting triples that recur in at least 1% of rows."""
    rounded = np.round(np.asarray(settings, dtype=np.float64) / _CONDITION_GRID) + 0.0
    _, counts = np.unique(rounded, axis=0, return_counts=True)
    return int(max(1, (counts >= _MIN_CONDITION_SHARE * len(rounded)).sum()))


@dataclass
class ConditionNormalizer:
    """Assigns rows to operating conditions (KMeans on the scaled settings) and z-scores per condition."""

    n_conditions: int
    scaler: StandardScaler | None = None
    clusters: KMeans | None = None
    means: np.ndarray | None = None
    stds: np.ndarray | None = None

    def conditions(self, settings: np.ndarray) -> np.ndarray:
        """The operating-condition index of each settings row (all 0 with one condition)."""
        if self.n_conditions == 1:
            return np.zeros(len(settings), dtype=np.int64)
        assert self.clusters is not None and self.scaler is not None  # fitted
        return self.clusters.predict(self.scaler.transform(settings)).astype(np.int64)

    def fit(self, settings: np.ndarray, sensors: np.ndarray) -> ConditionNormalizer:
        """Learn the conditions from `settings` and each condition's sensor mean and std; returns self."""
        if self.n_conditions > 1:
            self.scaler = StandardScaler().fit(settings)
            self.clusters = KMeans(self.n_conditions, n_init=10, random_state=0).fit(
                self.scaler.transform(settings)
            )
        labels = self.conditions(settings)
        self.means = np.zeros((self.n_conditions, sensors.shape[1]))
        self.stds = np.ones((self.n_conditions, sensors.shape[1]))
        for condition in range(self.n_conditions):
            rows = sensors[labels == condition]
            if len(rows):
                self.means[condition] = rows.mean(axis=0)
                self.stds[condition] = np.maximum(rows.std(axis=0), 1e-6)
        return self

    def transform(self, settings: np.ndarray, sensors: np.ndarray) -> np.ndarray:
        """`sensors` z-scored with the mean and std of each row's operating condition."""
        labels = self.conditions(settings)
        assert self.means is not None and self.stds is not None  # fitted
        return (sensors - self.means[labels]) / self.stds[labels]


def near_constant_sensors(
    sensors: pd.DataFrame, conditions: np.ndarray, threshold: float = 0.95
) -> list[str]:
    """Sensors whose value equals its condition's most common value in at least `threshold` of rows."""
    constant = []
    for name in sensors.columns:
        values = sensors[name].round(6)
        share = values.groupby(conditions).agg(lambda column: column.value_counts().iloc[0] / len(column))
        weights = pd.Series(conditions).value_counts().reindex(share.index)
        if float((share * weights).sum() / weights.sum()) >= threshold:
            constant.append(name)
    return constant


def window_statistics(values: np.ndarray, units: np.ndarray, width: int) -> dict[str, np.ndarray]:
    """Trailing mean, standard deviation and least-squares slope (per cycle) over `width` cycles, at every
    row of `values` sorted by unit (`rul.running_sums.window_statistics_at`)."""
    stats = window_statistics_at(RunningSums.of(values, units), np.arange(len(values)), (width,))
    return {name: columns[0] for name, columns in stats.items()}


def unit_baseline(values: np.ndarray, units: np.ndarray, cycles: int) -> np.ndarray:
    """Per row, the mean of its unit's first `cycles` rows, or of the rows seen so far if fewer."""
    start_rows, positions = unit_positions(units)
    last = start_rows + np.minimum(positions, cycles - 1)
    counts = (last - start_rows + 1)[:, None].astype(np.float64)
    return unit_cumsum(values, units)[last] / counts


def regime_history(conditions: np.ndarray, units: np.ndarray, n_conditions: int) -> np.ndarray:
    """Per row, the cycles its unit has spent in each operating condition up to and including the row."""
    one_hot = np.zeros((len(conditions), n_conditions))
    one_hot[np.arange(len(conditions)), conditions] = 1.0
    return unit_cumsum(one_hot, units)


def ewm(values: np.ndarray, units: np.ndarray, alpha: float) -> np.ndarray:
    """Exponentially weighted mean restarted at each unit (pandas' `ewm(alpha, adjust=False)`)."""
    result = np.empty_like(values)
    starts = unit_starts(units)
    for start, end in zip(starts, np.r_[starts[1:], len(units)], strict=True):
        block = values[start:end]
        # y[n] = (1 - alpha) y[n-1] + alpha x[n], started at y[0] = x[0]
        result[start:end], _ = lfilter([alpha], [1.0, alpha - 1.0], block, axis=0, zi=(1 - alpha) * block[:1])
    return result


@dataclass
class FeatureTransformer:
    """Fitted on training units; turns raw C-MAPSS rows into normalised sensors, tables or windows."""

    window: int = 30
    feature_set: str = "rich"
    n_conditions: int = 0
    sensors: list[str] = field(default_factory=list)
    dropped_sensors: list[str] = field(default_factory=list)
    normalizer: ConditionNormalizer | None = None

    def __post_init__(self):
        if self.feature_set not in FEATURE_SETS:
            raise ConfigurationError(f"feature_set must be one of {FEATURE_SETS}, got {self.feature_set!r}")
        if self.window < 1:
            raise ConfigurationError(f"window must be at least 1, got {self.window}")

    def fit(self, train: pd.DataFrame) -> FeatureTransformer:
        """Find the conditions (unless set), drop near-constant sensors, fit the normalizer; returns self."""
        settings = train[SETTING_COLUMNS].to_numpy(dtype=np.float64)
        if self.n_conditions <= 0:
            self.n_conditions = detect_condition_count(settings)
        probe = ConditionNormalizer(self.n_conditions).fit(settings, train[SENSOR_COLUMNS].to_numpy())
        self.dropped_sensors = near_constant_sensors(train[SENSOR_COLUMNS], probe.conditions(settings))
        self.sensors = [name for name in SENSOR_COLUMNS if name not in self.dropped_sensors]
        if not self.sensors:
            raise DataFormatError("training data", None, "every sensor is constant; nothing to learn from")
        self.normalizer = ConditionNormalizer(self.n_conditions).fit(settings, train[self.sensors].to_numpy())
        return self

    def normalized(self, frame: pd.DataFrame) -> np.ndarray:
        """The kept sensors, z-scored per operating condition; rows in the frame's order."""
        if self.normalizer is None:
            raise ConfigurationError("the feature transformer is not fitted")
        return self.normalizer.transform(
            frame[SETTING_COLUMNS].to_numpy(dtype=np.float64), frame[self.sensors].to_numpy(dtype=np.float64)
        )

    @property
    def _kinds(self) -> list[str]:
        """The per-sensor feature kinds, in column order."""
        if self.feature_set == "stats":
            return ["last", f"mean{self.window}", f"std{self.window}", f"slope{self.window}"]
        kinds = ["last", "mean5", "mean10", "mean20", "mean30", "std10", "std30"]
        kinds += ["slope10", "slope30", "slope60", "ewm0.05", "ewm0.1", "ewm0.3"]
        return [*kinds, DRIFT_KIND] if self.feature_set == "regime" else kinds

    @property
    def feature_names(self) -> list[str]:
        """The columns of `tabular`: the cycle, each kind per kept sensor, then any regime history."""
        names = ["cycle"] + [f"{sensor}:{kind}" for kind in self._kinds for sensor in self.sensors]
        if self.feature_set == "regime" and self.n_conditions > 1:
            names += [f"{CONDITION_HISTORY}{condition}" for condition in range(self.n_conditions)]
        return names

    @property
    def whole_history_features(self) -> list[str]:
        """The `tabular` columns computed from every row of a unit since its first: the drift from the
        baseline of its first `BASELINE_CYCLES` rows and the cycles counted in each condition. They equal
        the training features only when a unit's rows start at cycle 1."""
        return [
            name
            for name in self.feature_names
            if name.endswith(f":{DRIFT_KIND}") or name.startswith(CONDITION_HISTORY)
        ]

    @property
    def needs_whole_history(self) -> bool:
        """Whether `tabular` needs each unit's rows from cycle 1 (`whole_history_features` is not empty)."""
        return bool(self.whole_history_features)

    def whole_history_reason(self) -> str:
        """Why this transformer needs each unit's rows from cycle 1 (`needs_whole_history`), in words."""
        features = self.whole_history_features
        reasons = []
        if any(name.startswith(CONDITION_HISTORY) for name in features):
            reasons.append("counts each unit's cycles in each operating condition since cycle 1")
        if any(name.endswith(f":{DRIFT_KIND}") for name in features):
            reasons.append(
                f"measures sensor drift from the mean of each unit's first {BASELINE_CYCLES} cycles"
            )
        return f"feature set {self.feature_set!r} " + " and ".join(reasons)

    @property
    def history_cycles(self) -> int | None:
        """The trailing rows a unit must carry to get the training features when its rows do not start
        at cycle 1: the longest span a windowed kind (`mean`, `std`, `slope`) of the fitted transformer
        reads, at least `window`; None when no trailing window is enough (`needs_whole_history`). The
        exponentially weighted means have no span; by 60 rows their start's weight is below 5 %, and
        docs/model.md ("How much history a request needs") measures the error that leaves."""
        if self.needs_whole_history:
            return None
        spans = [
            int(kind.removeprefix(name))
            for kind in self._kinds
            for name in ("mean", "std", "slope")
            if kind.startswith(name) and kind.removeprefix(name).isdigit()
        ]
        return max([self.window, *spans])

    def tabular(self, frame: pd.DataFrame) -> np.ndarray:
        """One float32 feature row per input row, summarising the unit's trailing cycles (frame sorted by
        unit). Columns are written into the result as they are computed, so memory holds the result, the
        per-unit running sums and one window width's statistics, not every intermediate at once."""
        values = self.normalized(frame)
        units = frame["unit"].to_numpy()
        kinds, width = self._kinds, len(self.sensors)
        result = np.empty((len(frame), len(self.feature_names)), dtype=np.float32)
        result[:, 0] = frame["cycle"].to_numpy(dtype=np.float64)

        def put(kind: str, columns: np.ndarray) -> None:
            if kind in kinds:
                start = 1 + kinds.index(kind) * width
                result[:, start : start + width] = columns

        put("last", values)
        spans = (self.window,) if self.feature_set == "stats" else (5, 10, 20, 30, 60)
        running, rows = RunningSums.of(values, units), np.arange(len(frame))
        for span in spans:
            stats = window_statistics_at(running, rows, (span,))
            for name, columns in stats.items():
                put(f"{name}{span}", columns[0])
            if span == 10 and self.feature_set == "regime":
                put(DRIFT_KIND, stats["mean"][0] - unit_baseline(values, units, BASELINE_CYCLES))
        if self.feature_set != "stats":
            for alpha in (0.05, 0.1, 0.3):
                put(f"ewm{alpha}", ewm(values, units, alpha))
        if self.feature_set == "regime" and self.n_conditions > 1:
            assert self.normalizer is not None  # fitted
            conditions = self.normalizer.conditions(frame[SETTING_COLUMNS].to_numpy(dtype=np.float64))
            result[:, -self.n_conditions :] = regime_history(conditions, units, self.n_conditions)
        return result

    def windows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """A (rows, window, sensors) array ending at each row, and whether each window was padded."""
        return sliding_windows(self.normalized(frame), frame["unit"].to_numpy(), self.window)


def late_starts(units: np.ndarray, cycles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The units whose first cycle (their smallest) is after cycle 1, in ascending order, and those cycles."""
    unit_ids, inverse = np.unique(np.asarray(units), return_inverse=True)
    first = np.full(len(unit_ids), np.inf)
    np.minimum.at(first, inverse, np.asarray(cycles, dtype=np.float64))
    late = first > 1
    return unit_ids[late], first[late].astype(np.int64)


def sliding_windows(values: np.ndarray, units: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows ending at every row, front-padded with the unit's first row when it is too short."""
    start_rows, positions = unit_positions(units)
    offsets = np.arange(window) - (window - 1)
    indices = np.maximum(np.arange(len(values))[:, None] + offsets[None, :], start_rows[:, None])
    return values[indices].astype(np.float32), positions + 1 < window


def last_rows(frame: pd.DataFrame) -> np.ndarray:
    """Boolean mask of each unit's last observed row."""
    units = frame["unit"].to_numpy()
    return np.r_[units[1:] != units[:-1], True]


def effective_stride(rows: int, stride: int, max_rows: int) -> int:
    """`stride`, raised until at most `max_rows` of `rows` training rows remain (`max_rows` 0: no limit)."""
    if max_rows <= 0:
        return stride
    return max(stride, -(-rows // max_rows))


def thinning_mask(frame: pd.DataFrame, stride: int, seed: int) -> np.ndarray:
    """Every `stride`-th row of each unit, counted back from its last row from a per-unit offset.

    Consecutive windows of a unit are nearly identical, so a stride loses little; the offsets (seeded by
    the unit id) make the kept RUL values differ between units, so together they cover every RUL.
    """
    if stride <= 1:
        return np.ones(len(frame), dtype=bool)
    from_end = frame.groupby("unit", sort=False).cumcount(ascending=False).to_numpy()
    units = frame["unit"].to_numpy(dtype=np.int64).astype(np.uint64)
    # A multiplicative hash (wrapping in uint64) of unit and seed: deterministic, spread over the offsets.
    mixed = (units + np.uint64(seed)) * np.uint64(0x9E3779B97F4A7C15)
    offsets = (mixed >> np.uint64(32)) % np.uint64(stride)
    return from_end % stride == offsets.astype(np.int64)
