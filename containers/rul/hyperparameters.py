"""The training hyperparameters: one typed, bounded object built from SageMaker's string dictionary.

A tuner searches these names; unknown names and out-of-range values stop the job with an error that
names the hyperparameter and the value. Besides the model's own settings: `interval_level` is the nominal
coverage of the prediction intervals a calibrated model serves, `calibration_folds` how the final fit
calibrates them (0: on the validation units; k: by k folds of all units), `cut_max_rul` the largest
true RUL at which calibration cuts its held-out units, and `row_stride` / `max_train_rows` thin the
training rows (consecutive windows of a unit are nearly identical), so fit time stops growing with the
fleet's cycles. `inner_cap` below `rul_cap` makes a gbm model of two caps: members fitted on labels
capped at `inner_cap` predict where the `rul_cap` members say the engine is inside that zone
(`rul.ensemble`). `feature_set`, `rul_cap` and `inner_cap` default to `auto` (the caps' 0 means the
same): the fit chooses them from the number of operating conditions in the training units
(`rul.auto_settings`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from rul.errors import ConfigurationError

MODEL_FAMILIES = ("gbm", "cnn", "lstm")
# The tabular feature sets (`rul.features`); `regime` adds operating-regime history for FD002/FD004.
FEATURE_SETS = ("rich", "stats", "regime")
# The value that lets the fit choose from the training units (`rul.auto_settings`); the caps' own is 0.
AUTO = "auto"
AUTO_CAP = 0.0
_CAPS = ("rul_cap", "inner_cap")

# The hyperparameters each family reads (besides the shared data settings): what a tuner may search for it.
_SHARED = (
    "window",
    "rul_cap",
    "n_conditions",
    "validation_draws",
    "seed",
    "feature_set",
    "learning_rate",
    "interval_level",
    "calibration_folds",
    "cut_max_rul",
    "row_stride",
    "max_train_rows",
)
_DEEP = ("epochs", "batch_size", "units", "dropout", "patience")
FAMILY_HYPERPARAMETERS: dict[str, tuple[str, ...]] = {
    "gbm": (
        *_SHARED,
        "inner_cap",
        "max_iter",
        "max_leaf_nodes",
        "min_samples_leaf",
        "l2_regularization",
        "max_features",
        "ensemble_size",
    ),
    "cnn": (*_SHARED, *_DEEP, "filters"),
    "lstm": (*_SHARED, *_DEEP),
}

# Inclusive bounds of the numeric hyperparameters.
BOUNDS: dict[str, tuple[float, float]] = {
    "window": (5, 200),
    "rul_cap": (50, 400),
    "inner_cap": (50, 400),
    "n_conditions": (0, 20),
    "validation_draws": (1, 50),
    "seed": (0, 2**31 - 1),
    "learning_rate": (1e-5, 1.0),
    "max_iter": (10, 5000),
    "max_leaf_nodes": (2, 512),
    "min_samples_leaf": (1, 5000),
    "l2_regularization": (0.0, 100.0),
    "max_features": (0.05, 1.0),
    "ensemble_size": (1, 20),
    "epochs": (1, 500),
    "batch_size": (8, 4096),
    "filters": (4, 256),
    "units": (4, 512),
    "dropout": (0.0, 0.9),
    "patience": (1, 100),
    "interval_level": (0.5, 0.99),
    "calibration_folds": (0, 20),
    "cut_max_rul": (10, 400),
    "row_stride": (1, 100),
    "max_train_rows": (0, 10_000_000),
}


@dataclass(frozen=True)
class Hyperparameters:
    """The training job's settings, typed and bounded; `auto` values are resolved by the fit."""

    model_family: str = "gbm"
    feature_set: str = AUTO  # a member of FEATURE_SETS, or auto: chosen from the training units
    window: int = 30
    rul_cap: float = AUTO_CAP  # AUTO_CAP (from_dict also reads "auto"): chosen from the training units
    inner_cap: float = AUTO_CAP  # gbm: members capped here serve below it; equal to rul_cap: one cap
    n_conditions: int = 0  # 0: detect the number of operating conditions from the settings
    validation_draws: int = 5  # cuts per validation unit when scoring at official-style cut points
    seed: int = 0
    learning_rate: float | None = None  # None: 0.05 for gbm, 1e-3 for the deep families
    max_iter: int = 400
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 50
    l2_regularization: float = 1.0
    max_features: float = 0.5
    ensemble_size: int = 3
    epochs: int = 60
    batch_size: int = 256
    filters: int = 10
    units: int = 64
    dropout: float = 0.5
    patience: int = 10
    interval_level: float = 0.9  # nominal coverage of the served [rul_lower, rul_upper]
    calibration_folds: int = 0  # 0: split conformal on the validation units; k >= 2: k-fold cross-conformal
    cut_max_rul: int = 150  # largest true RUL of a calibration cut (official tests: 145-195)
    row_stride: int = 5  # every k-th training row of a unit (offset per unit); FD001 CV: no loss at 5
    max_train_rows: int = 100_000  # 0: no limit; else the stride grows until the rows fit

    def __post_init__(self):
        if self.model_family not in MODEL_FAMILIES:
            raise ConfigurationError(
                f"hyperparameter model_family must be one of {MODEL_FAMILIES}, got {self.model_family!r}"
            )
        if self.feature_set not in (*FEATURE_SETS, AUTO):
            raise ConfigurationError(
                f"hyperparameter feature_set must be one of {', '.join(FEATURE_SETS)} or {AUTO}, "
                f"got {self.feature_set!r}"
            )
        if self.calibration_folds == 1:
            raise ConfigurationError(
                "hyperparameter calibration_folds must be 0 (split) or at least 2, got 1"
            )
        if AUTO_CAP not in (self.rul_cap, self.inner_cap) and self.inner_cap > self.rul_cap:
            raise ConfigurationError(
                f"hyperparameter inner_cap={self.inner_cap} must not exceed rul_cap={self.rul_cap}"
            )
        for name, (low, high) in BOUNDS.items():
            value = getattr(self, name)
            if name in _CAPS and value == AUTO_CAP:
                continue
            if value is not None and not low <= value <= high:
                raise ConfigurationError(f"hyperparameter {name}={value} is outside [{low}, {high}]")

    @property
    def resolved(self) -> bool:
        """Whether no setting is left for the fit to choose (feature set and both caps are concrete)."""
        return self.feature_set != AUTO and AUTO_CAP not in (self.rul_cap, self.inner_cap)

    @property
    def effective_learning_rate(self) -> float:
        """`learning_rate`, or the model family's default when unset (0.05 for gbm, 1e-3 for deep models)."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 0.05 if self.model_family == "gbm" else 1e-3

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Hyperparameters:
        """Build from SageMaker-style values (strings or decoded JSON); unknown names are an error."""
        known = {item.name: item for item in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigurationError(f"unknown hyperparameter(s): {', '.join(unknown)}")
        converted: dict[str, Any] = {}
        for name, value in values.items():
            kind = known[name].type
            try:
                if name in _CAPS and isinstance(value, str) and value.strip().lower() == AUTO:
                    converted[name] = AUTO_CAP
                elif value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
                    converted[name] = None
                elif kind.startswith("int"):
                    number = float(value)
                    if number != int(number):
                        raise ValueError("not an integer")
                    converted[name] = int(number)
                elif kind.startswith("float"):
                    converted[name] = float(value)
                else:
                    converted[name] = str(value)
            except (TypeError, ValueError, OverflowError):
                raise ConfigurationError(f"hyperparameter {name}={value!r} is not a valid {kind}") from None
            if converted[name] is None and name != "learning_rate":
                raise ConfigurationError(f"hyperparameter {name} must have a value")
        return cls(**converted)

    def as_dict(self) -> dict[str, object]:
        """Every hyperparameter by name, as stored in the model metadata and the checkpoint fingerprint."""
        return asdict(self)
