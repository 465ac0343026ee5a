"""A tracked run of the main job, read back from the work folder's MLflow store.

The main job runs once (module fixture) on small synthetic data with tiny trials; the tests read what it
left: one parent run per execution, one run per step and per trial with their metrics, the registered
version in MLflow's registry naming its data, loadable as a pyfunc model inside and outside the project,
the champion alias following approvals, and the report written and named by the main job.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from tiny_run import FAST, TINY

from local_runner.main_job import MainJobOptions, run_main_job
from local_runner.registry import APPROVED, PENDING, REJECTED
from local_runner.tracking import (
    EXPERIMENT_KIND_TAGS,
    default_tracking_uri,
    mirror_approval,
)
from local_runner.tracking_model import MODEL_DIR_ARTIFACT
from local_runner.tracking_pyfunc import MODEL_DIR_ARTIFACT as PYFUNC_MODEL_DIR_ARTIFACT
from rul.data import COLUMNS, read_trajectories
from rul.inference import load_model, predict


@pytest.fixture(scope="module")
def tracked_run_of_the_main_job(tmp_path_factory, synthetic_dir):
    """One main-job run tracked in its work folder's store: (work, workspace, result, client, experiment)."""
    work = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        workspace, result = run_main_job(
            MainJobOptions(work_dir=work, data_dir=synthetic_dir, parameters=FAST, config_overrides=TINY),
            echo=lambda line: None,
        )
    assert result.status == "Succeeded", result.failure_reason
    client = MlflowClient(default_tracking_uri(work))
    experiment = client.get_experiment_by_name(workspace.config.pipeline_name)
    return work, workspace, result, client, experiment.experiment_id


@pytest.mark.slow
def test_a_local_run_leaves_nested_runs_and_metrics_in_the_sqlite_store(tracked_run_of_the_main_job):
    """The execution run's params, test metrics and artifacts; step and trial runs with their metrics and
    tags."""
    work, workspace, result, client, experiment = tracked_run_of_the_main_job
    assert (work / "mlflow" / "mlflow.db").is_file()
    runs = client.search_runs([experiment], "attributes.run_name = '" + result.execution_id + "'")
    assert len(runs) == 1
    execution = runs[0]
    assert execution.info.status == "FINISHED" and execution.data.params["TuningMaxJobs"] == "2"
    outputs = result.step("EvaluateModel").properties["ProcessingOutputConfig"]["Outputs"]
    uri = outputs["evaluation"]["S3Output"]["S3Uri"] + "/evaluation.json"
    evaluation = json.loads(workspace.store.read_text(uri))
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
        assert not client.search_runs([experiment], f"tags.mlflow.parentRunId = '{steps[step].info.run_id}'")
        assert steps[step].data.tags["job.name"] == f"{result.execution_id}-{step}"
    assert (
        steps["PreprocessData"].data.metrics["train_units"] > 0
        and "seed" in steps["PreprocessData"].data.params
    )
    assert steps["EvaluateModel"].data.metrics["test_rmse"] == execution.data.metrics["test_rmse"]


@pytest.mark.slow
def test_one_execution_is_one_parent_run_one_run_per_step_and_one_per_trial(tracked_run_of_the_main_job):
    """No stray runs: the experiment holds exactly the execution, its steps and its trials."""
    _, _, result, client, experiment = tracked_run_of_the_main_job
    ran = [step.name for step in result.steps if step.status != "NotExecuted"]
    runs = client.search_runs([experiment], max_results=1000)
    assert len(runs) == 1 + len(ran) + FAST["TuningMaxJobs"], sorted(run.info.run_name for run in runs)
    assert client.get_experiment(experiment).tags["mlflow.experimentKind"] == "custom_model_development"
    assert EXPERIMENT_KIND_TAGS == {"mlflow.experimentKind": "custom_model_development"}


@pytest.mark.slow
def test_the_registered_version_names_its_data_in_both_registries(tracked_run_of_the_main_job):
    """The MLflow version's tags carry the package ARN, data version, manifest URI and test metric."""
    _, workspace, _, client, _ = tracked_run_of_the_main_job
    package = workspace.registry.list(workspace.config.model_package_group_name)[0]
    manifest_uri = package.customer_metadata["DataManifestUri"]
    manifest = json.loads(workspace.store.read_text(manifest_uri + "/manifest-algo-1.json"))
    versions = client.search_model_versions(f"name = '{package.group}'")
    assert len(versions) == 1
    tags = versions[0].tags
    assert tags["sagemaker.model_package_arn"] == package.arn
    assert tags["data.version"] == manifest["version"] and tags["data.manifest_uri"] == manifest_uri
    assert float(tags["metric.test_rmse"]) > 0 and tags["sagemaker.model_data_url"] == package.model_data_url


def registered_model_and_rows(tracked_run_of_the_main_job, synthetic_dir, folder: Path):
    """The models:/ URI of the registered version, the project's own prediction and the rows it is of."""
    _, workspace, _, client, _ = tracked_run_of_the_main_job
    package = workspace.registry.list(workspace.config.model_package_group_name)[0]
    version = client.search_model_versions(f"name = '{package.group}'")[0]
    with tarfile.open(workspace.store.path_for(package.model_data_url)) as bundle:
        bundle.extractall(folder / "model", filter="data")
    rows = read_trajectories(synthetic_dir / "test_FD001.txt")
    rows = rows[rows["unit"] <= 3].reset_index(drop=True)
    expected = predict(load_model(folder / "model"), rows).frame
    return f"models:/{package.group}/{version.version}", expected, rows


@pytest.mark.slow
def test_the_registered_version_loads_from_mlflow_and_predicts_like_the_project(
    tracked_run_of_the_main_job, synthetic_dir, tmp_path, monkeypatch
):
    """`models:/<group>/<version>` loads as pyfunc with the input signature and predicts as `rul.inference`
    does."""
    work = tracked_run_of_the_main_job[0]
    uri, expected, rows = registered_model_and_rows(tracked_run_of_the_main_job, synthetic_dir, tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", default_tracking_uri(work))
    assert mlflow.get_tracking_uri() == default_tracking_uri(work)  # no global URI set by another test
    loaded = mlflow.pyfunc.load_model(uri)
    assert loaded.metadata.get_input_schema().input_names() == list(COLUMNS)
    assert "predicted_rul" in loaded.metadata.get_output_schema().input_names()
    pd.testing.assert_frame_equal(loaded.predict(rows), expected)
    assert len(expected) == 3 and MODEL_DIR_ARTIFACT == PYFUNC_MODEL_DIR_ARTIFACT


LOAD_AND_PREDICT = """
import sys, mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
model.predict(pd.read_pickle(sys.argv[2])).to_pickle(sys.argv[3])
"""


@pytest.mark.long
def test_the_registered_version_loads_in_a_process_outside_the_project(
    tracked_run_of_the_main_job, synthetic_dir, tmp_path
):
    """Without PYTHONPATH, from another folder: the model carries the `rul` code it needs."""
    work = tracked_run_of_the_main_job[0]
    uri, expected, rows = registered_model_and_rows(tracked_run_of_the_main_job, synthetic_dir, tmp_path)
    rows.to_pickle(tmp_path / "rows.pkl")
    # No PYTHONPATH and another folder: `rul` must come with the model.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "PYTHONPATH"}
    env.update(MLFLOW_TRACKING_URI=default_tracking_uri(work), MLFLOW_DISABLE_TELEMETRY="true")
    arguments = [uri, str(tmp_path / "rows.pkl"), str(tmp_path / "predictions.pkl")]
    command = [sys.executable, "-c", LOAD_AND_PREDICT, *arguments]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_pickle(tmp_path / "predictions.pkl"), expected)


@pytest.mark.slow
def test_an_approval_of_the_registered_version_moves_the_champion_alias(
    tracked_run_of_the_main_job, monkeypatch
):
    """Approval tags the version and sets the `champion` alias; rejection removes it."""
    work, workspace, _, client, _ = tracked_run_of_the_main_job
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the work folder's own store
    package = workspace.registry.list(workspace.config.model_package_group_name)[0]
    assert (
        client.search_model_versions(f"name = '{package.group}'")[0].tags["sagemaker.approval_status"]
        == PENDING
    )
    approved = dataclasses.replace(package, approval_status=APPROVED, approval_description="checked")
    assert "alias champion -> version 1" in mirror_approval(work, approved, echo=lambda line: None)
    assert (
        client.get_model_version_by_alias(package.group, "champion").tags["sagemaker.approval_status"]
        == APPROVED
    )
    rejected = dataclasses.replace(package, approval_status=REJECTED)
    mirror_approval(work, rejected, echo=lambda line: None)
    assert "champion" not in client.get_registered_model(package.group).aliases


@pytest.mark.slow
def test_the_run_writes_and_names_its_report(tracked_run_of_the_main_job):
    """The main job (not the executor) writes report.html and names it in the record."""
    _, _, result, _, _ = tracked_run_of_the_main_job
    assert result.report_path == result.record_path.parent / "report.html"
    page = result.report_path.read_text()
    assert "★ best" in page and "Data manifest" in page and "MLflow run" in page
    assert json.loads(result.record_path.read_text())["report_path"] == str(result.report_path)
