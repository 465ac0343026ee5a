"""Deterministic generator of C-MAPSS-format run-to-failure data, the project's embedded default dataset.

Following Saxena et al. (2008), each engine unit has a health index h(t) = 1 - d(t) with damage
d(t) = d0 + (1 - d0) * (exp(a * t^b) - 1), where the initial wear d0, the shape b and the lifetime L are drawn
per unit and a = ln 2 / L^b, so damage grows exponentially from d0 to 1 and the unit fails (h = 0) at
cycle L. Lifetimes are log-normal around a median of about 200 cycles and kept within 128-362 cycles, as in
FD001. Fourteen informative sensors (2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21) move linearly with
the damage through signed sensor-specific sensitivities: an HPC fault pattern and, with two fault modes, a
fan fault pattern for about half of the units that weights the fan sensors more and reverses sensors 7, 9,
12, 14, 20 and 21 (as in FD003). The other seven sensors (1, 5, 6, 10, 16, 18, 19) are constant within an
operating condition, sensor 6 with rare one-quantum dips. Each row adds Gaussian measurement noise and is
rounded to the precision of the published files. With six operating conditions every cycle draws one of the
FD002/FD004 setting triples, which moves all sensor baselines (sensitivities and noise scale with the
baseline). Test units are independent units cut at a random cycle, keeping a Beta(3, 2) fraction of their
life (median about 0.6); their true RUL goes to `test_rul`. An optional `DriftSpec` alters the test units
only, so the training set stays the baseline. One `numpy.random.default_rng(seed)` drives everything, and
the random draws never depend on the drift, so a seed fixes the output byte for byte.
"""

if __name__ == "__main__":
    import sys
    from pathlib import Path

    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path[0] = str(Path(__file__).resolve().parents[1])
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import math
import numbers
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rul.data import COLUMNS, SENSOR_COLUMNS, SETTING_COLUMNS, Subset, write_rul, write_trajectories
from rul.errors import ConfigurationError, RulError

SUBSET_NAME = "SYNTHETIC"
DRIFT_KINDS = ("offset", "noise", "new_condition")
INFORMATIVE_SENSORS = tuple(f"sensor_{i}" for i in (2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21))
CONSTANT_SENSORS = tuple(f"sensor_{i}" for i in (1, 5, 6, 10, 16, 18, 19))
MIN_LIFETIME = 128
MAX_LIFETIME = 362

CONDITION_SETTINGS = np.array(
    [
        [0.0, 0.0, 100.0],
        [10.0, 0.25, 100.0],
        [20.0, 0.70, 100.0],
        [25.0, 0.62, 60.0],
        [35.0, 0.84, 100.0],
        [42.0, 0.84, 100.0],
    ]
)
UNSEEN_SETTINGS = np.array([30.0, 0.45, 80.0])
SETTING_NOISE = np.array([0.002, 0.0003, 0.0])
SETTING_DECIMALS = (4, 4, 0)

# Sensor baselines per operating condition (rows follow CONDITION_SETTINGS; columns sensor_1..sensor_21).
CONDITION_BASELINES = np.array(
    [
        [518.67, 642.5, 1589.7, 1407.0, 14.62, 21.61, 553.4, 2388.06, 9050.0, 1.30, 47.45,
         521.7, 2388.06, 8135.0, 8.42, 0.03, 392.0, 2388.0, 100.0, 38.95, 23.37],
        [489.05, 604.8, 1499.0, 1311.0, 10.52, 15.49, 394.5, 2318.9, 8775.0, 1.26, 45.4,
         371.9, 2388.1, 8118.0, 8.64, 0.03, 370.0, 2319.0, 100.0, 28.6, 17.15],
        [491.19, 607.5, 1485.0, 1253.0, 9.35, 13.66, 334.5, 2323.9, 8710.0, 1.08, 44.2,
         315.3, 2388.1, 8065.0, 9.20, 0.02, 365.0, 2324.0, 100.0, 24.5, 14.7],
        [462.54, 536.9, 1262.0, 1049.0, 7.05, 9.03, 175.6, 1915.3, 7995.0, 0.94, 36.7,
         164.8, 2028.2, 7875.0, 10.89, 0.02, 307.0, 1915.0, 84.93, 14.3, 8.6],
        [449.44, 555.5, 1366.0, 1131.0, 5.48, 8.00, 194.5, 2222.8, 8340.0, 1.02, 41.9,
         183.1, 2388.0, 8080.0, 9.33, 0.02, 334.0, 2223.0, 100.0, 14.8, 8.88],
        [445.00, 549.5, 1352.0, 1117.0, 3.91, 5.71, 138.5, 2211.9, 8320.0, 1.02, 42.1,
         130.5, 2387.9, 8085.0, 9.38, 0.02, 330.0, 2212.0, 100.0, 10.6, 6.37],
    ]
)  # fmt: skip
UNSEEN_BASELINE = CONDITION_BASELINES[2:4].mean(axis=0)

_SENSOR_INDEX = {name: position for position, name in enumerate(SENSOR_COLUMNS)}


def _sensor_vector(values: dict[int, float]) -> np.ndarray:
    vector = np.zeros(len(SENSOR_COLUMNS))
    for number, value in values.items():
        vector[number - 1] = value
    return vector


# Per-sensor parameters at condition 1 (sea level), in sensor units; zero for the constant sensors.
NOISE_STD = _sensor_vector(
    {2: 0.25, 3: 4.5, 4: 6.0, 7: 0.5, 8: 0.05, 9: 10.0, 11: 0.15, 12: 0.4, 13: 0.05, 14: 8.0, 15: 0.025,
     17: 1.2, 20: 0.12, 21: 0.07}
)  # fmt: skip
UNIT_OFFSET_STD = _sensor_vector({9: 10.0, 14: 8.0})
HPC_SENSITIVITY = _sensor_vector(
    {2: 1.1, 3: 16.0, 4: 30.0, 7: -2.6, 8: 0.22, 9: 35.0, 11: 0.85, 12: -2.2, 13: 0.22, 14: 25.0, 15: 0.1,
     17: 5.0, 20: -0.6, 21: -0.36}
)  # fmt: skip
FAN_SENSITIVITY = _sensor_vector(
    {2: 0.6, 3: 9.0, 4: 18.0, 7: 2.0, 8: 0.4, 9: -25.0, 11: 0.4, 12: 1.8, 13: 0.4, 14: -20.0, 15: 0.18,
     17: 3.0, 20: 0.5, 21: 0.3}
)  # fmt: skip
SENSOR_DECIMALS = np.array([2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 4, 2, 0, 0, 2, 2, 4])
SENSOR_6_DIP = 0.01
SENSOR_6_DIP_RATE = 0.02


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigurationError(f"{name} must be an integer, got {value!r}")
    if int(value) < low or (high is not None and int(value) > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigurationError(f"{name} must be {bound}, got {value!r}")


@dataclass(frozen=True)
class DriftSpec:
    """A shift applied to the synthetic test units only (the training units are the baseline).

    - "offset": adds `magnitude` x the sensor's measurement-noise standard deviation (in the row's operating
      condition) to each chosen sensor; a negative magnitude shifts downwards.
    - "noise": multiplies the measurement-noise standard deviation of each chosen sensor by `1 + magnitude`
      (magnitude > -1).
    - "new_condition": moves every row `magnitude` of the way (1 = all the way, > 0) from its own operating
      condition to one never used in training, settings (30, 0.45, 80), shifting all 21 sensor baselines in
      proportion; `sensors` must stay empty.

    `sensors` lists informative sensor columns; empty means all of `INFORMATIVE_SENSORS`.
    """

    kind: str
    magnitude: float = 1.0
    sensors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ConfigurationError(f"drift kind must be one of {', '.join(DRIFT_KINDS)}, got {self.kind!r}")
        magnitude = self.magnitude
        if (
            isinstance(magnitude, bool)
            or not isinstance(magnitude, numbers.Real)
            or not math.isfinite(magnitude)
        ):
            raise ConfigurationError(f"drift magnitude must be a finite number, got {magnitude!r}")
        if self.kind == "noise" and magnitude <= -1:
            raise ConfigurationError(f"drift magnitude must be > -1 for kind 'noise', got {magnitude!r}")
        if self.kind == "new_condition" and magnitude <= 0:
            raise ConfigurationError(
                f"drift magnitude must be > 0 for kind 'new_condition', got {magnitude!r}"
            )
        if isinstance(self.sensors, str):
            raise ConfigurationError(
                f"drift sensors must be a sequence of column names, got {self.sensors!r}"
            )
        sensors = tuple(self.sensors)
        object.__setattr__(self, "sensors", sensors)
        unknown = [name for name in sensors if name not in INFORMATIVE_SENSORS]
        if unknown:
            allowed = ", ".join(INFORMATIVE_SENSORS)
            raise ConfigurationError(f"drift sensors must be among {allowed}; got {unknown[0]!r}")
        if len(set(sensors)) != len(sensors):
            raise ConfigurationError(f"drift sensors must not repeat, got {sensors!r}")
        if self.kind == "new_condition" and sensors:
            raise ConfigurationError(f"drift sensors must be empty for kind 'new_condition', got {sensors!r}")

    @property
    def columns(self) -> tuple[str, ...]:
        """The sensor columns the drift touches."""
        if self.kind == "new_condition":
            return tuple(SENSOR_COLUMNS)
        return self.sensors or INFORMATIVE_SENSORS


@dataclass(frozen=True)
class SyntheticSpec:
    """Size, operating regime, fault modes, seed and optional test-set drift of a synthetic subset."""

    n_train_units: int = 100
    n_test_units: int = 100
    n_conditions: int = 1
    n_fault_modes: int = 1
    seed: int = 0
    min_test_cycles: int = 31
    drift: DriftSpec | None = None

    def __post_init__(self) -> None:
        _check_int("n_train_units", self.n_train_units, 1)
        _check_int("n_test_units", self.n_test_units, 1)
        _check_int("seed", self.seed, 0)
        _check_int("min_test_cycles", self.min_test_cycles, 1, MIN_LIFETIME - 1)
        _check_int("n_conditions", self.n_conditions, 1)
        if self.n_conditions not in (1, 6):
            raise ConfigurationError(f"n_conditions must be 1 or 6, got {self.n_conditions!r}")
        _check_int("n_fault_modes", self.n_fault_modes, 1)
        if self.n_fault_modes not in (1, 2):
            raise ConfigurationError(f"n_fault_modes must be 1 or 2, got {self.n_fault_modes!r}")
        if self.drift is not None and not isinstance(self.drift, DriftSpec):
            raise ConfigurationError(f"drift must be a DriftSpec or None, got {self.drift!r}")


@dataclass(frozen=True)
class _Units:
    lifetime: np.ndarray
    initial_wear: np.ndarray
    shape: np.ndarray
    fan_fault: np.ndarray
    offsets: np.ndarray


def _draw_units(rng: np.random.Generator, count: int, spec: SyntheticSpec) -> _Units:
    lifetime = np.clip(
        np.rint(100.0 + rng.lognormal(math.log(100.0), 0.42, count)), MIN_LIFETIME, MAX_LIFETIME
    )
    initial_wear = rng.uniform(0.0, 0.1, count)
    shape = rng.uniform(1.6, 2.4, count)
    fan_draw = rng.random(count)
    fan_fault = fan_draw < 0.5 if spec.n_fault_modes == 2 else np.zeros(count, dtype=bool)
    offsets = rng.standard_normal((count, len(SENSOR_COLUMNS))) * UNIT_OFFSET_STD
    return _Units(lifetime.astype(np.int64), initial_wear, shape, fan_fault, offsets)


def _trajectories(
    rng: np.random.Generator,
    units: _Units,
    lengths: np.ndarray,
    spec: SyntheticSpec,
    drift: DriftSpec | None,
) -> pd.DataFrame:
    n_rows = int(lengths.sum())
    row_unit = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    cycle = np.arange(n_rows) - np.repeat(starts, lengths) + 1

    condition = rng.integers(0, 6, n_rows) if spec.n_conditions == 6 else np.zeros(n_rows, dtype=np.int64)
    settings = CONDITION_SETTINGS[condition] + rng.standard_normal((n_rows, 3)) * SETTING_NOISE
    noise = rng.standard_normal((n_rows, len(SENSOR_COLUMNS)))
    dips = rng.random(n_rows) < SENSOR_6_DIP_RATE

    shape = units.shape[row_unit]
    wear = units.initial_wear[row_unit]
    rate = math.log(2.0) / units.lifetime[row_unit].astype(np.float64) ** shape
    damage = wear + (1.0 - wear) * np.expm1(rate * cycle**shape)
    sensitivity = np.where(units.fan_fault[row_unit, None], FAN_SENSITIVITY, HPC_SENSITIVITY)

    baseline = CONDITION_BASELINES[condition]
    noise_std = np.broadcast_to(NOISE_STD, noise.shape).copy()
    shift = np.zeros_like(noise)
    if drift is not None:
        chosen = [_SENSOR_INDEX[name] for name in drift.columns]
        if drift.kind == "new_condition":
            settings = settings + drift.magnitude * (UNSEEN_SETTINGS - CONDITION_SETTINGS[condition])
            baseline = baseline + drift.magnitude * (UNSEEN_BASELINE - baseline)
        elif drift.kind == "noise":
            noise_std[:, chosen] *= 1.0 + drift.magnitude
        else:
            shift[:, chosen] = drift.magnitude * NOISE_STD[chosen]

    scale = baseline / CONDITION_BASELINES[0]
    sensors = baseline + scale * (
        sensitivity * damage[:, None] + units.offsets[row_unit] + noise_std * noise + shift
    )
    sensors[:, _SENSOR_INDEX["sensor_6"]] -= np.where(dips, SENSOR_6_DIP, 0.0)
    sensors = _round_columns(sensors, SENSOR_DECIMALS)
    settings = _round_columns(settings, np.array(SETTING_DECIMALS))

    frame = pd.DataFrame(np.column_stack([settings, sensors]), columns=[*SETTING_COLUMNS, *SENSOR_COLUMNS])
    frame.insert(0, "cycle", cycle.astype(np.int64))
    frame.insert(0, "unit", (row_unit + 1).astype(np.int64))
    return frame[COLUMNS]


def _round_columns(values: np.ndarray, decimals: np.ndarray) -> np.ndarray:
    factor = 10.0 ** decimals.astype(np.float64)
    return np.rint(values * factor) / factor + 0.0


def generate(spec: SyntheticSpec | None = None) -> Subset:
    """Generate a run-to-failure training set and a cut test set with its true RUL, named "SYNTHETIC"."""
    spec = spec if spec is not None else SyntheticSpec()
    rng = np.random.default_rng(spec.seed)
    train_units = _draw_units(rng, spec.n_train_units, spec)
    test_units = _draw_units(rng, spec.n_test_units, spec)
    elapsed = rng.beta(3.0, 2.0, spec.n_test_units)
    kept = np.clip(np.rint(elapsed * test_units.lifetime), spec.min_test_cycles, test_units.lifetime - 1)
    kept = kept.astype(np.int64)
    train = _trajectories(rng, train_units, train_units.lifetime, spec, None)
    test = _trajectories(rng, test_units, kept, spec, spec.drift)
    test_rul = pd.DataFrame(
        {"unit": np.arange(1, spec.n_test_units + 1, dtype=np.int64), "rul": test_units.lifetime - kept}
    )
    return Subset(name=SUBSET_NAME, train=train, test=test, test_rul=test_rul)


def run_to_failure(spec: SyntheticSpec, drift: DriftSpec | None = None) -> pd.DataFrame:
    """`spec.n_train_units` run-to-failure histories whose sensors carry `drift` over their whole life.

    `generate` drifts only its cut test units (what an endpoint sees); retraining after drift needs the
    drifted fleet's complete histories, i.e. new training data recorded under the changed conditions.
    """
    rng = np.random.default_rng(spec.seed)
    units = _draw_units(rng, spec.n_train_units, spec)
    return _trajectories(rng, units, units.lifetime, spec, drift)


def write_subset(subset: Subset, directory: str | Path, name: str = "FD001") -> dict[str, Path]:
    """Write train_<name>.txt, test_<name>.txt and RUL_<name>.txt; return paths keyed train, test, rul."""
    if subset.test is None or subset.test_rul is None:
        raise ConfigurationError(f"subset {subset.name!r} has no test set to write")
    if not name or Path(name).name != name:
        raise ConfigurationError(f"name must be a plain file-name part, got {name!r}")
    directory = Path(directory)
    paths = {
        "train": directory / f"train_{name}.txt",
        "test": directory / f"test_{name}.txt",
        "rul": directory / f"RUL_{name}.txt",
    }
    write_trajectories(subset.train, paths["train"])
    write_trajectories(subset.test, paths["test"])
    write_rul(subset.test_rul, paths["rul"])
    return paths


def _parser() -> argparse.ArgumentParser:
    defaults = SyntheticSpec()
    parser = argparse.ArgumentParser(description="Write a synthetic C-MAPSS-format subset.")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--name", default="FD001", help="file name suffix (default FD001)")
    parser.add_argument("--train-units", type=int, default=defaults.n_train_units)
    parser.add_argument("--test-units", type=int, default=defaults.n_test_units)
    parser.add_argument("--conditions", type=int, default=defaults.n_conditions, choices=(1, 6))
    parser.add_argument("--fault-modes", type=int, default=defaults.n_fault_modes, choices=(1, 2))
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--min-test-cycles", type=int, default=defaults.min_test_cycles)
    parser.add_argument("--drift-kind", choices=DRIFT_KINDS, default=None)
    parser.add_argument("--drift-magnitude", type=float, default=1.0)
    parser.add_argument("--drift-sensors", default="", help="comma-separated sensor columns (default: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: generate a subset and write its three files."""
    args = _parser().parse_args(argv)
    try:
        drift = None
        if args.drift_kind is not None:
            sensors = tuple(part.strip() for part in args.drift_sensors.split(",") if part.strip())
            drift = DriftSpec(args.drift_kind, args.drift_magnitude, sensors)
        spec = SyntheticSpec(
            n_train_units=args.train_units,
            n_test_units=args.test_units,
            n_conditions=args.conditions,
            n_fault_modes=args.fault_modes,
            seed=args.seed,
            min_test_cycles=args.min_test_cycles,
            drift=drift,
        )
        paths = write_subset(generate(spec), args.output_dir, args.name)
    except RulError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
