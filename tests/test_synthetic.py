"""Tests of the synthetic C-MAPSS generator: determinism, file format, physics, learnability and drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from rul import data
from rul.errors import ConfigurationError
from rul.synthetic import (
    CONSTANT_SENSORS,
    INFORMATIVE_SENSORS,
    NOISE_STD,
    UNSEEN_SETTINGS,
    DriftSpec,
    SyntheticSpec,
    generate,
    main,
    run_to_failure,
    write_subset,
)

SMALL = SyntheticSpec(n_train_units=20, n_test_units=20, seed=3)


@pytest.fixture(scope="module")
def default_subset() -> data.Subset:
    return generate(SyntheticSpec())


def remaining_cycles(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby("unit")["cycle"].transform("max") - frame["cycle"]


def sensor_index(name: str) -> int:
    return data.SENSOR_COLUMNS.index(name)


def test_same_seed_is_identical_and_other_seed_differs():
    first, second, other = generate(SMALL), generate(SMALL), generate(SyntheticSpec(20, 20, seed=4))
    pd.testing.assert_frame_equal(first.train, second.train)
    pd.testing.assert_frame_equal(first.test, second.test)
    pd.testing.assert_frame_equal(first.test_rul, second.test_rul)
    assert first.name == "SYNTHETIC"
    assert not first.train.equals(other.train)
    assert not first.test_rul.equals(other.test_rul)


def test_written_files_are_byte_identical_for_the_same_seed(tmp_path):
    first = write_subset(generate(SMALL), tmp_path / "a")
    second = write_subset(generate(SMALL), tmp_path / "b")
    for key in ("train", "test", "rul"):
        assert first[key].read_bytes() == second[key].read_bytes()


def test_round_trip_through_the_cmapss_files(tmp_path):
    subset = generate(SMALL)
    paths = write_subset(subset, tmp_path, name="FD003")
    assert paths == {
        "train": tmp_path / "train_FD003.txt",
        "test": tmp_path / "test_FD003.txt",
        "rul": tmp_path / "RUL_FD003.txt",
    }
    loaded = data.load_subset(tmp_path, "FD003")
    for written, read in ((subset.train, loaded.train), (subset.test, loaded.test)):
        assert list(read.columns) == data.COLUMNS and len(data.COLUMNS) == 26
        assert read[["unit", "cycle"]].equals(written[["unit", "cycle"]])
        np.testing.assert_allclose(read[data.COLUMNS].to_numpy(), written[data.COLUMNS].to_numpy(), atol=5e-5)
        assert (read.groupby("unit")["cycle"].diff().dropna() == 1).all()
    assert len(loaded.test_rul) == SMALL.n_test_units == loaded.test["unit"].nunique()
    assert loaded.test_rul.equals(subset.test_rul)
    pd.testing.assert_frame_equal(data.read_trajectories(paths["train"]), loaded.train)


def test_train_units_run_from_cycle_one_to_failure(default_subset):
    train = default_subset.train
    assert list(train.columns) == data.COLUMNS
    assert train["unit"].drop_duplicates().tolist() == list(range(1, 101))
    for _, cycles in train.groupby("unit")["cycle"]:
        assert cycles.tolist() == list(range(1, len(cycles) + 1))
    lifetimes = train.groupby("unit")["cycle"].max()
    assert lifetimes.min() >= 128 and lifetimes.max() <= 362
    assert 180 <= lifetimes.median() <= 225
    assert lifetimes.max() - lifetimes.min() >= 100


def test_test_units_are_cut_like_the_official_test_set(default_subset):
    spec = SyntheticSpec()
    kept = default_subset.test.groupby("unit")["cycle"].agg(["min", "max", "count"])
    rul = default_subset.test_rul.set_index("unit")["rul"]
    assert kept.index.tolist() == rul.index.tolist() == list(range(1, spec.n_test_units + 1))
    assert (kept["min"] == 1).all() and (kept["count"] == kept["max"]).all()
    assert (kept["max"] >= spec.min_test_cycles).all()
    assert (rul >= 1).all()
    elapsed = kept["max"] / (kept["max"] + rul)
    assert 0.5 <= elapsed.median() <= 0.7


def test_min_test_cycles_is_respected_when_large():
    subset = generate(SyntheticSpec(n_train_units=5, n_test_units=50, min_test_cycles=120, seed=1))
    assert (subset.test.groupby("unit")["cycle"].max() >= 120).all()
    assert (subset.test_rul["rul"] >= 1).all()


def test_one_condition_has_near_zero_settings(default_subset):
    settings = default_subset.train[data.SETTING_COLUMNS]
    assert settings["setting_1"].abs().max() < 0.02
    assert settings["setting_2"].abs().max() < 0.002
    assert (settings["setting_3"] == 100).all()


def test_six_conditions_form_six_setting_clusters():
    train = generate(SyntheticSpec(n_train_units=20, n_test_units=5, n_conditions=6)).train
    clusters = pd.DataFrame(
        {
            "altitude": train["setting_1"].round(0),
            "mach": train["setting_2"].round(2),
            "throttle": train["setting_3"],
        }
    )
    shares = clusters.value_counts(normalize=True)
    assert len(shares) == 6
    assert shares.min() > 0.1
    means = train.groupby(clusters["altitude"])["sensor_2"].mean()
    assert means.max() - means.min() > 50


def test_near_constant_sensors(default_subset):
    shares = {
        name: default_subset.train[name].value_counts(normalize=True).iloc[0] for name in data.SENSOR_COLUMNS
    }
    near_constant = {name for name, share in shares.items() if share >= 0.95}
    assert len(near_constant) >= 5
    assert near_constant == set(CONSTANT_SENSORS)
    assert default_subset.train["sensor_6"].nunique() == 2


def test_informative_sensors_track_remaining_life(default_subset):
    train = default_subset.train
    remaining = remaining_cycles(train)
    correlations = {name: train[name].corr(remaining, method="spearman") for name in INFORMATIVE_SENSORS}
    strong = [name for name, value in correlations.items() if abs(value) > 0.5]
    assert len(strong) >= 4, correlations
    assert correlations["sensor_4"] < -0.5
    assert correlations["sensor_12"] > 0.5


def trend_signs(train: pd.DataFrame, sensor: str) -> pd.Series:
    return train.groupby("unit")[[sensor, "cycle"]].apply(
        lambda unit: np.sign(unit[sensor].corr(unit["cycle"]))
    )


def test_second_fault_mode_moves_other_sensors():
    one = generate(SyntheticSpec(n_train_units=40, n_test_units=5, n_fault_modes=1)).train
    two = generate(SyntheticSpec(n_train_units=40, n_test_units=5, n_fault_modes=2)).train
    for sensor in ("sensor_7", "sensor_12", "sensor_20"):
        assert (trend_signs(one, sensor) < 0).all()
        rising = (trend_signs(two, sensor) > 0).mean()
        assert 0.2 < rising < 0.8
    end_gap = two.groupby("unit")["sensor_8"].agg(
        lambda values: values.iloc[-10:].mean() - values.iloc[:10].mean()
    )
    end_gap_one = one.groupby("unit")["sensor_8"].agg(
        lambda values: values.iloc[-10:].mean() - values.iloc[:10].mean()
    )
    assert end_gap.max() > 1.5 * end_gap_one.max()


def test_a_per_row_model_learns_the_remaining_life(default_subset):
    train = default_subset.train
    label = np.minimum(remaining_cycles(train), 125).to_numpy(dtype=float)
    features = train[list(INFORMATIVE_SENSORS)].to_numpy()
    fit = (train["unit"] <= 50).to_numpy()
    model = HistGradientBoostingRegressor(
        max_iter=40, learning_rate=0.2, max_leaf_nodes=15, early_stopping=False, random_state=0
    ).fit(features[fit], label[fit])
    rmse = np.sqrt(np.mean((model.predict(features[~fit]) - label[~fit]) ** 2))
    baseline = np.sqrt(np.mean((label[fit].mean() - label[~fit]) ** 2))
    assert rmse < 0.5 * baseline, (rmse, baseline)


def drifted(drift: DriftSpec, **fields) -> tuple[data.Subset, data.Subset]:
    spec = SyntheticSpec(n_train_units=10, n_test_units=30, seed=5, **fields)
    base = generate(spec)
    shifted = generate(SyntheticSpec(n_train_units=10, n_test_units=30, seed=5, drift=drift, **fields))
    pd.testing.assert_frame_equal(base.train, shifted.train)
    pd.testing.assert_frame_equal(base.test_rul, shifted.test_rul)
    assert base.test[["unit", "cycle"]].equals(shifted.test[["unit", "cycle"]])
    return base, shifted


def test_offset_drift_shifts_chosen_sensors_by_noise_std():
    base, shifted = drifted(DriftSpec("offset", magnitude=3.0, sensors=("sensor_2", "sensor_11")))
    for sensor in ("sensor_2", "sensor_11"):
        difference = shifted.test[sensor] - base.test[sensor]
        assert difference.mean() == pytest.approx(3.0 * NOISE_STD[sensor_index(sensor)], rel=0.05)
        assert difference.std() < 0.01
    others = [name for name in data.COLUMNS if name not in ("sensor_2", "sensor_11")]
    pd.testing.assert_frame_equal(base.test[others], shifted.test[others])


def test_offset_drift_defaults_to_all_informative_sensors_and_scales_with_condition():
    base, shifted = drifted(DriftSpec("offset", magnitude=-2.0), n_conditions=6)
    changed = [name for name in data.SENSOR_COLUMNS if not base.test[name].equals(shifted.test[name])]
    assert set(changed) == set(INFORMATIVE_SENSORS)
    difference = shifted.test["sensor_4"] - base.test["sensor_4"]
    assert (difference < 0).all()
    assert difference.nunique() > 6
    pd.testing.assert_frame_equal(base.test[data.SETTING_COLUMNS], shifted.test[data.SETTING_COLUMNS])


def test_noise_drift_inflates_measurement_noise():
    base, shifted = drifted(DriftSpec("noise", magnitude=2.0, sensors=("sensor_3",)))
    difference = shifted.test["sensor_3"] - base.test["sensor_3"]
    assert abs(difference.mean()) < 0.5
    assert difference.std() == pytest.approx(2.0 * NOISE_STD[sensor_index("sensor_3")], rel=0.1)
    others = [name for name in data.COLUMNS if name != "sensor_3"]
    pd.testing.assert_frame_equal(base.test[others], shifted.test[others])


def test_new_condition_drift_moves_settings_and_sensors_out_of_training_range():
    base, shifted = drifted(DriftSpec("new_condition"))
    settings = shifted.test[data.SETTING_COLUMNS]
    np.testing.assert_allclose(settings.median().to_numpy(), UNSEEN_SETTINGS, atol=0.01)
    for name in data.SETTING_COLUMNS:
        assert settings[name].min() > base.train[name].max() or settings[name].max() < base.train[name].min()
    for name in ("sensor_1", "sensor_2", "sensor_3"):
        assert shifted.test[name].max() < base.train[name].min()


def test_partial_new_condition_drift_lies_between():
    base, shifted = drifted(DriftSpec("new_condition", magnitude=0.5))
    assert shifted.test["setting_1"].median() == pytest.approx(UNSEEN_SETTINGS[0] / 2, abs=0.01)
    assert base.train["sensor_1"].iloc[0] > shifted.test["sensor_1"].iloc[0]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"n_train_units": 0}, "n_train_units"),
        ({"n_test_units": -1}, "n_test_units"),
        ({"n_train_units": 2.5}, "n_train_units"),
        ({"n_conditions": 3}, "n_conditions"),
        ({"n_fault_modes": 0}, "n_fault_modes"),
        ({"seed": -1}, "seed"),
        ({"min_test_cycles": 0}, "min_test_cycles"),
        ({"min_test_cycles": 500}, "min_test_cycles"),
        ({"drift": "offset"}, "drift"),
    ],
)
def test_invalid_spec_names_the_field(fields, field):
    with pytest.raises(ConfigurationError, match=field) as raised:
        SyntheticSpec(**fields)
    assert repr(next(iter(fields.values()))) in str(raised.value)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("wobble",), "kind"),
        (("offset", float("nan")), "magnitude"),
        (("noise", -1.0), "magnitude"),
        (("new_condition", 0.0), "magnitude"),
        (("offset", 1.0, ("sensor_1",)), "sensor_1"),
        (("offset", 1.0, ("sensor_99",)), "sensor_99"),
        (("offset", 1.0, ("sensor_2", "sensor_2")), "repeat"),
        (("new_condition", 1.0, ("sensor_2",)), "sensors"),
    ],
)
def test_invalid_drift_raises(arguments, message):
    with pytest.raises(ConfigurationError, match=message):
        DriftSpec(*arguments)


def test_cli_writes_the_three_files(tmp_path, capsys):
    status = main(
        [
            *("--output-dir", str(tmp_path), "--name", "FD002", "--train-units", "4", "--test-units", "3"),
            *("--conditions", "6", "--fault-modes", "2", "--seed", "7"),
            *("--drift-kind", "offset", "--drift-magnitude", "2"),
        ]
    )
    assert status == 0
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == ["RUL_FD002.txt", "test_FD002.txt", "train_FD002.txt"]
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    loaded = data.load_subset(tmp_path, "FD002")
    assert loaded.train["unit"].nunique() == 4 and len(loaded.test_rul) == 3


def test_cli_reports_invalid_values(tmp_path, capsys):
    assert main(["--output-dir", str(tmp_path), "--train-units", "0"]) != 0
    assert "n_train_units" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_module_runs_as_a_script(tmp_path):
    script = Path(__file__).resolve().parents[1] / "containers" / "rul" / "synthetic.py"
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--output-dir",
            str(tmp_path),
            "--train-units",
            "2",
            "--test-units",
            "2",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "train_FD001.txt").is_file() and (tmp_path / "RUL_FD001.txt").is_file()


def test_run_to_failure_histories_carry_the_drift_over_their_whole_life() -> None:
    spec = SyntheticSpec(n_train_units=6, seed=3)
    clean = run_to_failure(spec)
    drifted = run_to_failure(spec, DriftSpec(kind="offset", magnitude=3.0, sensors=("sensor_11",)))
    assert clean["unit"].nunique() == 6 and len(clean) == len(drifted)
    shift = (drifted["sensor_11"] - clean["sensor_11"]).abs()
    assert (shift > 0).mean() > 0.9  # every cycle, not only a cut tail
    untouched = (drifted["sensor_4"] - clean["sensor_4"]).abs().max()
    assert untouched < shift.mean()
