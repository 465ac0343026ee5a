"""The local job launcher and the main job, running the container scripts in subprocesses."""

from __future__ import annotations

import json
import tarfile

from local_runner.__main__ import main as cli_main
from local_runner.jobs import pack_model, run_processing_job, run_training_job, to_local
from local_runner.main_job import MainJobOptions, run_main_job

FAST = {"feature_set": "stats", "ensemble_size": 1, "max_iter": 60, "validation_draws": 2}


def test_container_paths_map_into_the_job_folder(tmp_path):
    assert to_local("/opt/ml/processing/input", tmp_path) == tmp_path / "processing" / "input"


def test_pack_model_writes_a_flat_archive(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "metadata.json").write_text("{}")
    archive = pack_model(tmp_path / "model", tmp_path / "out" / "model.tar.gz")
    with tarfile.open(archive) as bundle:
        assert bundle.getnames() == ["metadata.json"]


def test_a_failing_processing_job_reports_the_scripts_reason(tmp_path, synthetic_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train_FD001.txt").write_text("1 1 2\n")
    lines = []
    result = run_processing_job(
        "PreprocessData",
        "preprocess.py",
        tmp_path / "work",
        inputs={"/opt/ml/processing/input": bad / "train_FD001.txt"},
        outputs={"/opt/ml/processing/train": tmp_path / "train"},
        echo=lines.append,
    )
    assert result.status == "Failed"
    assert "line 1: expected 26 columns, found 3" in result.failure_reason
    assert any("[PreprocessData]" in line for line in lines)
    assert not (tmp_path / "train").exists()


def test_training_job_writes_sdk_style_hyperparameters(tmp_path):
    channel = tmp_path / "empty"
    channel.mkdir()
    result = run_training_job(
        "TrainModel",
        "train.py",
        tmp_path / "work",
        channels={"train": channel, "validation": channel},
        hyperparameters={"model_family": "gbm", "window": 20},
        model_output=tmp_path / "model.tar.gz",
        echo=lambda line: None,
    )
    written = json.loads(
        (result.job_dir / "opt_ml" / "input" / "config" / "hyperparameters.json").read_text()
    )
    assert written == {"model_family": '"gbm"', "window": "20"}
    assert result.status == "Failed" and "no trajectories-*.csv file found" in result.failure_reason


def test_main_job_runs_preprocess_train_evaluate(tmp_path, synthetic_dir):
    lines = []
    outcome = run_main_job(
        MainJobOptions(work_dir=tmp_path, data_dir=synthetic_dir, hyperparameters=FAST), echo=lines.append
    )
    assert [step.name for step in outcome["steps"]] == ["PreprocessData", "TrainModel", "EvaluateModel"]
    assert all(step.ok for step in outcome["steps"])
    assert outcome["report"]["regression_metrics"]["rmse"]["value"] > 0
    assert any("validation:rmse=" in line for line in lines)
    assert (outcome["artifacts"] / "model" / "model.tar.gz").is_file()


def test_cli_runs_on_generated_synthetic_data(tmp_path, capsys):
    arguments = ["run", "--work-dir", str(tmp_path), "--units", "30"]
    arguments += [f"--hp={name}={value}" for name, value in FAST.items()]
    assert cli_main(arguments) == 0
    output = capsys.readouterr().out
    assert "PHM08 score" in output and "EvaluateModel" in output
    assert (tmp_path / "data" / "synthetic" / "train_FD001.txt").is_file()
