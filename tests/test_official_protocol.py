"""The official C-MAPSS test protocol: preprocess finds test/RUL files, evaluate scores them and says so.

Data comes from the project's generator (train, test and RUL files of a small synthetic subset); one test
unit is cut shorter than the model's window, so it must be scored from a padded window, not dropped. A
RUL file with a row too many must stop preprocess with an error naming both files and both counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import evaluate
import preprocess
from rul.contract import run_entrypoint
from rul.data import read_rul, read_trajectories, write_rul, write_trajectories
from rul.errors import DataFormatError
from rul.hyperparameters import Hyperparameters
from rul.models import fit_final_predictor
from rul.official import (
    INTERNAL,
    OFFICIAL,
    OfficialTestMismatch,
    find_official_files,
    load_official_test,
    read_protocol,
)
from rul.synthetic import SyntheticSpec, generate, write_subset

pytestmark = pytest.mark.slow
SHORT_UNIT, SHORT_CYCLES = 3, 12
TINY = {"feature_set": "stats", "ensemble_size": "1", "max_iter": "30", "validation_draws": "1"}


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory) -> Path:
    """train/test/RUL_FD001.txt of 30 training and 8 test units; test unit 3 keeps only 12 cycles."""
    directory = tmp_path_factory.mktemp("raw")
    subset = generate(SyntheticSpec(n_train_units=30, n_test_units=8, seed=5))
    write_subset(subset, directory, "FD001")
    test = read_trajectories(directory / "test_FD001.txt")
    short = (test["unit"] == SHORT_UNIT) & (test["cycle"] > SHORT_CYCLES)
    write_trajectories(test[~short], directory / "test_FD001.txt")
    return directory


@pytest.fixture(scope="module")
def processed(raw_dir, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("processed")
    arguments = ["--input-dir", str(raw_dir), "--output-dir", str(output), "--seed", "1"]
    assert run_entrypoint(preprocess.main, arguments) == 0
    return output


@pytest.fixture(scope="module")
def model_dir(processed, tmp_path_factory) -> Path:
    """A tiny final model (with interval calibration) fitted on the preprocessed train and validation."""
    train, validation = (
        pd.read_csv(processed / name / "trajectories-algo-1.csv") for name in ("train", "validation")
    )
    predictor = fit_final_predictor(train, validation, None, Hyperparameters.from_dict(TINY))
    return predictor.save(tmp_path_factory.mktemp("model"))


def test_preprocess_puts_the_official_units_under_test_and_the_held_out_units_under_holdout(
    raw_dir, processed
):
    test = pd.read_csv(processed / "test" / "trajectories-algo-1.csv")
    truth = pd.read_csv(processed / "test" / "truth-algo-1.csv")
    expected = read_rul(raw_dir / "RUL_FD001.txt")
    assert sorted(test["unit"].unique()) == list(range(1, 9))
    assert truth.sort_values("unit")["rul"].tolist() == expected["rul"].tolist()
    assert (
        test.groupby("unit")["cycle"].max()
        == read_trajectories(raw_dir / "test_FD001.txt").groupby("unit")["cycle"].max()
    ).all()
    metadata = json.loads((processed / "metadata" / "metadata-algo-1.json").read_text())
    holdout = pd.read_csv(processed / "holdout" / "trajectories-algo-1.csv")
    assert holdout["unit"].nunique() == metadata["units"]["test"] > 0
    # Whole run-to-failure units: every held-out unit's trajectory, not a cut.
    assert len(holdout) == metadata["rows"]["test"]
    protocol = read_protocol(processed / "test")
    assert protocol["name"] == OFFICIAL and protocol["units"] == 8
    assert protocol["files"] == ["RUL_FD001.txt", "test_FD001.txt"]
    assert protocol["short_units"] == [SHORT_UNIT]
    manifest = json.loads((processed / "manifest" / "manifest-algo-1.json").read_text())
    assert {entry["name"] for entry in manifest["files"]} == {
        "train_FD001.txt",
        "test_FD001.txt",
        "RUL_FD001.txt",
    }


def test_evaluate_scores_every_official_unit_pads_the_short_one_and_names_the_protocol(
    processed, model_dir, tmp_path
):
    arguments = ["--model-dir", str(model_dir), "--test-dir", str(processed / "test")]
    arguments += ["--output-dir", str(tmp_path / "evaluation"), "--champion-dir", str(tmp_path / "none")]
    assert run_entrypoint(evaluate.main, arguments) == 0
    report = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    assert report["n_units"] == 8
    assert report["protocol"]["name"] == OFFICIAL and report["gate"]["protocol"] == OFFICIAL
    assert report["protocol"]["padded_units"] == [SHORT_UNIT]
    by_unit = {row["unit"]: row for row in report["predictions"]}
    assert set(by_unit) == set(range(1, 9))
    intervals = report["prediction_intervals"]
    assert 0.0 <= intervals["coverage"] <= 1.0 and intervals["mean_width"] > 0
    assert intervals["n_units"] == 8 and intervals["nominal_coverage"] == pytest.approx(0.9)
    assert report["capped_truth_metrics"]["phm08_score_per_100_units"]["value"] == pytest.approx(
        report["capped_truth_metrics"]["phm08_score"]["value"] * 100 / 8
    )


def test_without_official_files_the_held_out_units_evaluate_and_holdout_is_empty(raw_dir, tmp_path):
    only_train = tmp_path / "raw"
    only_train.mkdir()
    (only_train / "train_FD001.txt").write_bytes((raw_dir / "train_FD001.txt").read_bytes())
    output = tmp_path / "out"
    arguments = ["--input-dir", str(only_train), "--output-dir", str(output), "--seed", "1"]
    assert run_entrypoint(preprocess.main, arguments) == 0
    assert read_protocol(output / "test")["name"] == INTERNAL
    assert pd.read_csv(output / "holdout" / "trajectories-algo-1.csv").empty
    assert pd.read_csv(output / "test" / "truth-algo-1.csv")["unit"].min() > 0


def test_a_rul_file_with_a_row_too_many_is_a_named_error(raw_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt_ml"))
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("train_FD001.txt", "test_FD001.txt"):
        (bad / name).write_bytes((raw_dir / name).read_bytes())
    rul = read_rul(raw_dir / "RUL_FD001.txt")
    write_rul(pd.concat([rul, pd.DataFrame({"unit": [99], "rul": [50]})]), bad / "RUL_FD001.txt")
    with pytest.raises(
        OfficialTestMismatch, match=r"RUL_FD001.txt has 9 RUL value\(s\) but test_FD001.txt has 8"
    ):
        load_official_test(find_official_files(bad, "FD001"))
    arguments = ["--input-dir", str(bad), "--output-dir", str(tmp_path / "out")]
    assert run_entrypoint(preprocess.main, arguments) == 1
    failure = (tmp_path / "opt_ml" / "output" / "failure").read_text()
    assert "RUL_FD001.txt has 9" in failure and "test_FD001.txt has 8 test unit(s)" in failure


def test_a_test_file_without_its_rul_file_is_an_error_and_no_files_mean_no_official_test(raw_dir, tmp_path):
    (tmp_path / "test_FD001.txt").write_bytes((raw_dir / "test_FD001.txt").read_bytes())
    with pytest.raises(DataFormatError, match=r"RUL_FD001\.txt not found beside it"):
        find_official_files(tmp_path, "FD001")
    assert find_official_files(tmp_path, "FD002") is None
    assert find_official_files(tmp_path / "absent", "FD001") is None
