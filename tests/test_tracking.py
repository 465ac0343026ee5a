"""MLflow tracking: off without MLFLOW_TRACKING_URI, container runs when it is set, the runner's hooks.

The container tests run the scripts in-process against a SQLite store in a temporary folder; the runner's
hooks, the registry mirror and the approval mirror are tested on one module-scoped SQLite store. The main
job's tracked run, end to end, is in `test_runner_tracked_run.py`.
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
from local_runner.object_store import ObjectStore
from local_runner.registry import APPROVED, PENDING, REJECTED, ModelPackage
from local_runner.tracking import (
    ExecutionTracker,
    MlflowExecutionTracker,
    default_tracking_uri,
    make_tracker,
    mirror_approval,
    ui_command,
    ui_environment,
)
from local_runner.tracking_registry import register_version
from rul.contract import run_entrypoint
from rul.tracking import Tracker, tracked_run, tracker_from_environment

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FAST_HPS = {"feature_set": '"stats"', "ensemble_size": "2", "max_iter": "30", "validation_draws": "2"}


# -- the containers' side ------------------------------------------------------------------------------------
def test_without_the_variable_nothing_is_tracked_and_mlflow_is_not_imported():
    """In a clean process, the no-op tracker accepts every call and never imports mlflow."""
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
    """An empty or blank MLFLOW_TRACKING_URI means tracking off."""
    assert type(tracker_from_environment("x", {})) is Tracker
    assert type(tracker_from_environment("x", {"MLFLOW_TRACKING_URI": "  "})) is Tracker


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """A SQLite file holding MLflow's tables, made once: a copy costs far less than creating the tables."""
    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, monkeypatch, empty_store):
    """A SQLite store with an experiment and a parent run; the MLFLOW_* variables point the jobs at it."""
    shutil.copy(empty_store, tmp_path / "mlflow.db")
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
    """The one run named `name` under `parent`."""
    runs = client.search_runs(
        [experiment], f"tags.mlflow.parentRunId = '{parent}' and attributes.run_name = '{name}'"
    )
    assert len(runs) == 1, [run.info.run_name for run in runs]
    return runs[0]


def test_container_jobs_log_nested_runs_with_params_curves_metrics_and_artifacts(
    store, tmp_path, monkeypatch, synthetic_dir
):
    """Preprocess, train and evaluate each log a run under the parent: params, curves, metrics, artifacts."""
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
    """A job that exits non-zero leaves its run FAILED."""
    client, experiment, parent = store
    monkeypatch.setenv("MLFLOW_RUN_NAME", "broken")
    assert run_entrypoint(preprocess.main, []) == 1  # no input files
    assert child_run(client, experiment, parent, "broken").info.status == "FAILED"


def test_an_unreachable_store_does_not_fail_the_job(tmp_path, monkeypatch, synthetic_dir, capsys):
    """Tracking to a store that cannot be opened is reported and the job still succeeds."""
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
    """An exception inside `tracked_run` ends the run FAILED and propagates."""
    client, experiment, parent = store
    with pytest.raises(RuntimeError), tracked_run("boom") as tracker:
        tracker.log_metrics({"before": 1.0, "not_a_number": float("nan")})
        raise RuntimeError("boom")
    run = child_run(client, experiment, parent, "boom")
    assert run.info.status == "FAILED" and run.data.metrics == {"before": 1.0}


def test_a_job_given_a_run_id_logs_into_that_run_and_leaves_its_status_to_its_owner(store, monkeypatch):
    """With MLFLOW_RUN_ID the job logs into the step's run and does not terminate it."""
    client, experiment, parent = store
    step_run = client.create_run(experiment, run_name="Step").info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", step_run)
    with tracked_run("train") as tracker:
        tracker.log_params({"max_iter": 30})
        tracker.log_metrics({"validation_rmse": 12.5})
    assert tracker.run_id == step_run
    runs = client.search_runs([experiment])
    assert sorted(run.info.run_id for run in runs) == sorted([parent, step_run])
    run = client.get_run(step_run)
    assert run.info.status == "RUNNING" and run.data.params == {"max_iter": "30"}
    assert run.data.metrics == {"validation_rmse": 12.5} and run.data.tags["step.name"] == "Step"


def test_each_instance_of_a_multi_instance_job_gets_its_own_run_under_the_given_one(
    store, tmp_path, monkeypatch
):
    """Instances of one job nest their own runs under the step's run."""
    client, experiment, parent = store
    config = tmp_path / "opt_ml" / "config"
    config.mkdir(parents=True)
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})
    )
    monkeypatch.setenv("MLFLOW_RUN_ID", parent)
    monkeypatch.setenv("MLFLOW_RUN_NAME", "preprocess-job")
    with tracked_run("preprocess") as tracker:
        tracker.log_params({"host": "algo-2"})
    run = child_run(client, experiment, parent, "preprocess-job-algo-2")
    assert run.info.status == "FINISHED" and run.data.params == {"host": "algo-2"}


def test_an_experiment_a_job_creates_is_a_model_development_experiment(store, monkeypatch):
    """A job creating its experiment tags it for MLflow 3's model-development view."""
    client, _, _ = store
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "made-by-a-job")
    monkeypatch.delenv("MLFLOW_PARENT_RUN_ID")
    with tracked_run("train"):
        pass
    experiment = client.get_experiment_by_name("made-by-a-job")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


# -- the runner's side ---------------------------------------------------------------------------------------
def test_the_runner_tracker_off_blanks_the_jobs_variable(tmp_path, monkeypatch):
    """Tracking off: jobs get a blank MLFLOW_TRACKING_URI, whatever the runner's environment says."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere.db")
    tracker = make_tracker(tmp_path, "exp", enabled=False)
    assert type(tracker) is ExecutionTracker
    assert tracker.job_environment("Step", "job") == {"MLFLOW_TRACKING_URI": ""}
    assert not (tmp_path / "mlflow").exists()


def test_the_ui_verb_points_mlflow_at_the_work_store(tmp_path, monkeypatch, capsys):
    """`ui` runs MLflow on the work folder's SQLite store; without one it says to run the pipeline first."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    command = ui_command(tmp_path, "127.0.0.1", 5055, {})
    assert command[1:4] == ["-m", "mlflow", "ui"]
    assert command[command.index("--backend-store-uri") + 1] == default_tracking_uri(tmp_path)
    assert command[command.index("--host") + 1] == "127.0.0.1" and command[-1] == "5055"
    assert cli_main(["ui", "--work-dir", str(tmp_path)]) == 1
    assert "run `python -m local_runner run` first" in capsys.readouterr().err


def test_the_ui_runs_with_telemetry_and_the_job_runner_off_on_loopback_only(tmp_path, monkeypatch, capsys):
    """Telemetry and the job runner are off; a non-loopback host is refused."""
    environment = ui_environment({"PATH": "/bin", "MLFLOW_DISABLE_TELEMETRY": "false"})
    assert environment == {
        "PATH": "/bin",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "mlflow").mkdir()
    (tmp_path / "mlflow" / "mlflow.db").write_bytes(b"")
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda command, env: calls.append((command, env)) or 0)
    assert cli_main(["ui", "--work-dir", str(tmp_path)]) == 0
    [(command, env)] = calls
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false" and env["DO_NOT_TRACK"] == "true"
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["ui", "--work-dir", str(tmp_path), "--host", "0.0.0.0"])
    assert exit_info.value.code == 2 and "not a loopback address" in capsys.readouterr().err
    with pytest.raises(Exception, match="not a loopback address"):
        ui_command(tmp_path, "192.0.2.1", 5000, {})


@pytest.fixture(scope="module")
def runner_store(tmp_path_factory, empty_store):
    """One SQLite store for the runner-side unit tests; each test uses its own experiment or model name."""
    folder = tmp_path_factory.mktemp("runner-store")
    shutil.copy(empty_store, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return uri, MlflowClient(uri), folder


def test_a_step_job_logs_into_the_step_run_and_a_trial_nests_under_the_tuning_run(runner_store):
    """The job environment of a step and of a trial, on an experiment made before the kind tag."""
    uri, client, _ = runner_store
    old = client.create_experiment("made-before-the-kind-tag")
    lines = []
    tracker = MlflowExecutionTracker(uri, "made-before-the-kind-tag", echo=lines.append)
    tracker.start_execution("exec-1", "pipeline", {"TuningMaxJobs": 2})
    tracker.start_step("PreprocessData", "Processing")
    tracker.start_step("TuneModel", "Tuning")
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
    runs = {run.info.run_name: run.info.run_id for run in client.search_runs([old])}
    job = tracker.job_environment("PreprocessData", "exec-1-PreprocessData")
    assert job["MLFLOW_RUN_ID"] == runs["PreprocessData"] and job["MLFLOW_PARENT_RUN_ID"] == ""
    assert job["MLFLOW_DISABLE_TELEMETRY"] == "true" and job["MLFLOW_TRACKING_URI"] == uri
    trial = tracker.job_environment("TuneModel", "exec-1-TuneModel-001")
    assert trial["MLFLOW_PARENT_RUN_ID"] == runs["TuneModel"] and trial["MLFLOW_RUN_ID"] == ""
    assert trial["MLFLOW_RUN_NAME"] == "exec-1-TuneModel-001" and not lines


def package(group: str, version: int, status: str = PENDING, reason: str = "") -> ModelPackage:
    """A model package of `group` for the mirror tests."""
    arn = f"arn:aws:sagemaker:us-east-1:000000000000:model-package/{group}/{version}"
    return ModelPackage(
        group, version, arn, status, f"s3://bucket/{group}/{version}/model.tar.gz", "image", None, None,
        None, "exec", "2026-12-03T00:00:00", "2026-12-03T00:00:00", reason,
    )  # fmt: skip


def test_approvals_are_mirrored_and_the_champion_alias_follows_the_newest_approved_version(runner_store):
    """Approve 1, approve 2, reject 2, reject 1: tags, descriptions and where `champion` points."""
    uri, client, folder = runner_store
    store = ObjectStore(folder / "s3")
    for version in (1, 2):  # no run: registered without a pyfunc model, pointing at the artifact
        register_version(client, "0", "", package("fleet", version), store, [], echo=print)
    lines = []

    def mirror(version, status, reason=""):
        assert mirror_approval(uri, package("fleet", version, status, reason), echo=lines.append) == lines[-1]
        champion = client.get_registered_model("fleet").aliases.get("champion")
        return None if champion is None else str(champion), client.get_model_version("fleet", str(version))

    champion, mirrored = mirror(1, APPROVED, "good enough")
    assert champion == "1" and mirrored.tags["sagemaker.approval_status"] == APPROVED
    assert mirrored.tags["sagemaker.approval_description"] == "good enough"
    assert "Approved: good enough" in mirrored.description
    assert mirror(2, APPROVED)[0] == "2"
    champion, mirrored = mirror(2, REJECTED, "drifts")
    assert champion == "1" and mirrored.tags["sagemaker.approval_status"] == REJECTED
    assert str(client.get_model_version_by_alias("fleet", "champion").version) == "1"
    champion, mirrored = mirror(1, REJECTED)
    assert champion is None and "sagemaker.approval_description" not in mirrored.tags
    assert lines[-1] == "mlflow: fleet version 1 is Rejected; alias champion -> no version"


def test_mirroring_an_approval_without_a_mirror_or_a_store_changes_nothing(runner_store, tmp_path):
    """An unknown model, a missing store and a broken store each leave things as they were."""
    uri = runner_store[0]
    lines = []
    assert "nothing to update" in mirror_approval(uri, package("unknown", 1, APPROVED), echo=lines.append)
    assert mirror_approval(tmp_path, package("fleet", 1, APPROVED), echo=lines.append) is None
    assert not (tmp_path / "mlflow").exists()
    (tmp_path / "a-file").write_text("")
    broken = f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"
    assert "failed" in mirror_approval(broken, package("fleet", 1, APPROVED), echo=lines.append)
    assert len(lines) == 2
