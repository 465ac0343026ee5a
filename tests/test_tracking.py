"""MLflow tracking: off without MLFLOW_TRACKING_URI, container runs when it is set, and a local run's store.

The container tests run the scripts in-process against a SQLite store in a temporary folder; the
end-to-end test runs the main job once on small synthetic data and reads the runner's store back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import evaluate
import preprocess
import train
from local_runner.__main__ import main as cli_main
from local_runner.main_job import MainJobOptions, run_main_job
from local_runner.tracking import ExecutionTracker, default_tracking_uri, make_tracker, ui_command
from rul.contract import run_entrypoint
from rul.tracking import Tracker, tracked_run, tracker_from_environment

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FAST_HPS = {"feature_set": '"stats"', "ensemble_size": "2", "max_iter": "30", "validation_draws": "2"}
FAST = {"MaxTuningJobs": 2, "MaxParallelTuningJobs": 1}


# -- the containers' side ------------------------------------------------------------------------------------
def test_without_the_variable_nothing_is_tracked_and_mlflow_is_not_imported():
    code = (
        "import sys; import preprocess, train, evaluate\n"
        "from rul.tracking import tracked_run\n"
        "with tracked_run('job', environ={}) as tracker:\n"
        "    tracker.log_params({'a': 1}); tracker.log_metrics({'m': 1.0}, step=1)\n"
        "    tracker.log_artifact('nowhere'); tracker.log_dict({}, 'x.json')\n"
        "assert not tracker.enabled and tracker.run_id is None\n"
        "assert 'mlflow' not in sys.modules, 'mlflow was imported'\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT / "containers")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_blank_or_absent_uri_gives_the_no_op_tracker():
    assert type(tracker_from_environment("x", {})) is Tracker
    assert type(tracker_from_environment("x", {"MLFLOW_TRACKING_URI": "  "})) is Tracker


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A SQLite store with an experiment and a parent run; the MLFLOW_* variables point the jobs at it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("jobs", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment, run_name="parent").info.run_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "jobs")
    monkeypatch.setenv("MLFLOW_PARENT_RUN_ID", parent)
    monkeypatch.setenv("MLFLOW_RUN_TAGS", json.dumps({"step.name": "Step"}))
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt_ml"))
    return client, experiment, parent


def child_run(client, experiment, parent, name):
    runs = client.search_runs(
        [experiment], f"tags.mlflow.parentRunId = '{parent}' and attributes.run_name = '{name}'"
    )
    assert len(runs) == 1, [run.info.run_name for run in runs]
    return runs[0]


def test_container_jobs_log_nested_runs_with_params_curves_metrics_and_artifacts(
    store, tmp_path, monkeypatch, synthetic_dir
):
    client, experiment, parent = store
    opt_ml = tmp_path / "opt_ml"
    raw = opt_ml / "processing" / "input"
    raw.mkdir(parents=True)
    shutil.copy(synthetic_dir / "train_FD001.txt", raw)
    monkeypatch.setenv("MLFLOW_RUN_NAME", "preprocess-job")
    assert run_entrypoint(preprocess.main, ["--seed", "1"]) == 0
    run = child_run(client, experiment, parent, "preprocess-job")
    manifest = json.loads((opt_ml / "processing" / "manifest" / "manifest-algo-1.json").read_text())
    assert run.info.status == "FINISHED" and run.data.tags["step.name"] == "Step"
    assert run.data.params["seed"] == "1" and run.data.metrics["train_units"] > 0
    assert run.data.tags["data.version"] == manifest["version"]
    assert [d.dataset.digest for d in run.inputs.dataset_inputs] == [manifest["version"]]

    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(FAST_HPS))
    (config / "inputdataconfig.json").write_text(json.dumps({"train": {}, "validation": {}}))
    for channel in ("train", "validation"):
        shutil.copytree(opt_ml / "processing" / channel, opt_ml / "input" / "data" / channel)
    monkeypatch.setenv("MLFLOW_RUN_NAME", "train-job")
    assert run_entrypoint(train.main, []) == 0
    run = child_run(client, experiment, parent, "train-job")
    assert run.data.params["max_iter"] == "30" and run.data.params["feature_set"] == "stats"
    curve = client.get_metric_history(run.info.run_id, "member_2_rmse")
    assert [point.step for point in curve] == list(range(1, 31))
    assert [p.step for p in client.get_metric_history(run.info.run_id, "ensemble_rmse")] == [1, 2]
    assert run.data.metrics["validation_rmse"] > 0
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["validation_metrics.json"]

    monkeypatch.setenv("MLFLOW_RUN_NAME", "evaluate-job")
    evaluation = ["--model-dir", str(opt_ml / "model"), "--test-dir", str(opt_ml / "processing" / "test")]
    assert run_entrypoint(evaluate.main, evaluation) == 0
    run = child_run(client, experiment, parent, "evaluate-job")
    report = json.loads((opt_ml / "processing" / "evaluation" / "evaluation.json").read_text())
    assert run.data.metrics["test_rmse"] == pytest.approx(report["regression_metrics"]["rmse"]["value"])
    assert run.data.tags["gate.summary"] == report["gate"]["summary"]
    plots = [a.path for a in client.list_artifacts(run.info.run_id, "plots")]
    assert "plots/unit_trajectory.png" in plots
    assert "evaluation.json" in [a.path for a in client.list_artifacts(run.info.run_id)]


def test_a_failing_job_ends_its_run_failed(store, monkeypatch):
    client, experiment, parent = store
    monkeypatch.setenv("MLFLOW_RUN_NAME", "broken")
    assert run_entrypoint(preprocess.main, []) == 1  # no input files
    assert child_run(client, experiment, parent, "broken").info.status == "FAILED"


def test_an_unreachable_store_does_not_fail_the_job(tmp_path, monkeypatch, synthetic_dir, capsys):
    (tmp_path / "a-file").write_text("")  # a store under a regular file cannot be created
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}")
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt_ml"))
    raw = tmp_path / "opt_ml" / "processing" / "input"
    raw.mkdir(parents=True)
    shutil.copy(synthetic_dir / "train_FD001.txt", raw)
    assert run_entrypoint(preprocess.main, []) == 0
    assert "mlflow: cannot start a run" in capsys.readouterr().out
    assert (tmp_path / "opt_ml" / "processing" / "manifest" / "manifest-algo-1.json").is_file()


def test_a_tracked_block_that_raises_still_closes_the_run(store, monkeypatch):
    client, experiment, parent = store
    with pytest.raises(RuntimeError), tracked_run("boom") as tracker:
        tracker.log_metrics({"before": 1.0, "not_a_number": float("nan")})
        raise RuntimeError("boom")
    run = child_run(client, experiment, parent, "boom")
    assert run.info.status == "FAILED" and run.data.metrics == {"before": 1.0}


# -- the runner's side ---------------------------------------------------------------------------------------
def test_the_runner_tracker_off_blanks_the_jobs_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere.db")
    tracker = make_tracker(tmp_path, "exp", enabled=False)
    assert type(tracker) is ExecutionTracker
    assert tracker.job_environment("Step", "job") == {"MLFLOW_TRACKING_URI": ""}
    assert not (tmp_path / "mlflow").exists()


def test_the_ui_verb_points_mlflow_at_the_work_store(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    command = ui_command(tmp_path, "127.0.0.1", 5055, {})
    assert command[1:4] == ["-m", "mlflow", "ui"]
    assert command[command.index("--backend-store-uri") + 1] == default_tracking_uri(tmp_path)
    assert command[command.index("--host") + 1] == "127.0.0.1" and command[-1] == "5055"
    assert cli_main(["ui", "--work-dir", str(tmp_path)]) == 1
    assert "run `python -m local_runner run` first" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tracked_run_of_the_main_job(tmp_path_factory, synthetic_dir):
    work = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        workspace, result = run_main_job(
            MainJobOptions(work_dir=work, data_dir=synthetic_dir, parameters=FAST), echo=lambda line: None
        )
    assert result.status == "Succeeded", result.failure_reason
    client = MlflowClient(default_tracking_uri(work))
    experiment = client.get_experiment_by_name(workspace.config.pipeline_name)
    return work, workspace, result, client, experiment.experiment_id


@pytest.mark.slow
def test_a_local_run_leaves_nested_runs_and_metrics_in_the_sqlite_store(tracked_run_of_the_main_job):
    work, workspace, result, client, experiment = tracked_run_of_the_main_job
    assert (work / "mlflow" / "mlflow.db").is_file()
    runs = client.search_runs([experiment], "attributes.run_name = '" + result.execution_id + "'")
    assert len(runs) == 1
    execution = runs[0]
    assert execution.info.status == "FINISHED" and execution.data.params["MaxTuningJobs"] == "2"
    evaluation = json.loads(
        workspace.store.read_text(
            result.step("EvaluateModel").properties["ProcessingOutputConfig"]["Outputs"]["evaluation"][
                "S3Output"
            ]["S3Uri"]
            + "/evaluation.json"
        )
    )
    assert execution.data.metrics["test_rmse"] == pytest.approx(
        evaluation["regression_metrics"]["rmse"]["value"]
    )
    artifacts = {a.path for a in client.list_artifacts(execution.info.run_id)}
    assert {"execution.json", "report.html", "data"} <= artifacts

    steps = {
        r.info.run_name: r
        for r in client.search_runs([experiment], f"tags.mlflow.parentRunId = '{execution.info.run_id}'")
    }
    ran = {step.name for step in result.steps if step.status != "NotExecuted"}
    assert set(steps) == ran
    assert steps["TuneModel"].data.metrics["best_objective"] == pytest.approx(
        result.step("TuneModel").properties["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"][
            "Value"
        ]
    )
    objectives = client.get_metric_history(steps["TuneModel"].info.run_id, "trial_objective")
    assert sorted(point.step for point in objectives) == [1, 2]

    trials = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{steps['TuneModel'].info.run_id}'")
    assert len(trials) == 2 and all(trial.info.status == "FINISHED" for trial in trials)
    best = result.step("TuneModel").properties["BestTrainingJob"]["TrainingJobName"]
    assert [t.info.run_name for t in trials if t.data.tags.get("best_trial") == "true"] == [best]
    assert all(len(client.get_metric_history(t.info.run_id, "member_1_rmse")) > 10 for t in trials)
    for step in ("PreprocessData", "EvaluateModel"):
        jobs = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{steps[step].info.run_id}'")
        assert [job.info.run_name for job in jobs] == [f"{result.execution_id}-{step}"]


@pytest.mark.slow
def test_the_registered_version_names_its_data_in_both_registries(tracked_run_of_the_main_job):
    _, workspace, _, client, _ = tracked_run_of_the_main_job
    package = workspace.registry.list(workspace.config.model_package_group_name)[0]
    manifest_uri = package.customer_metadata["DataManifestUri"]
    manifest = json.loads(workspace.store.read_text(manifest_uri + "/manifest-algo-1.json"))
    versions = client.search_model_versions(f"name = '{package.group}'")
    assert len(versions) == 1
    tags = versions[0].tags
    assert tags["sagemaker.model_package_arn"] == package.arn
    assert tags["data.version"] == manifest["version"] and tags["data.manifest_uri"] == manifest_uri
    assert float(tags["metric.test_rmse"]) > 0 and versions[0].source == package.model_data_url


@pytest.mark.slow
def test_the_run_writes_and_names_its_report(tracked_run_of_the_main_job):
    _, _, result, _, _ = tracked_run_of_the_main_job
    assert result.report_path == result.record_path.parent / "report.html"
    page = result.report_path.read_text()
    assert "★ best" in page and "Data manifest" in page and "MLflow run" in page
    assert json.loads(result.record_path.read_text())["report_path"] == str(result.report_path)
