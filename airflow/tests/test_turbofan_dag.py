"""The `turbofan_rul_pipeline` DAG: it parses, its plan is right, and it runs with `dag.test()` offline.

Runs inside `.venv-airflow` (`make airflow-test`), never in the project's own test run. The aws mode runs
against moto, whose SageMaker keeps pipelines and executions (CreatePipeline, DescribePipeline,
StartPipelineExecution, DescribePipelineExecution) and reports every execution `Succeeded` at once, so
the sensor's first poke ends the wait; a failed execution is made by patching moto's execution model.
The local mode runs the real `python -m local_runner run` in the project's `.venv`: always a run that
fails fast on a missing data folder, and, marked `long`, a whole tiny run checked by its execution record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("airflow.sdk", reason="Airflow is installed only in .venv-airflow (make airflow-test)")

import boto3
from moto import mock_aws

from pipeline_steps import names
from settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = REPO_ROOT / "airflow" / "dags" / "turbofan_rul_pipeline.py"
ACCOUNT, REGION = "123456789012", "us-east-1"
AWS_TASKS = ("check_parameters", "start_pipeline", "wait_for_pipeline")


def task_states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


@pytest.fixture
def settings_file(tmp_path) -> Path:
    path = tmp_path / "deployed.json"
    path.write_text(json.dumps({"aws": {"account": ACCOUNT, "region": REGION}}))
    return path


@pytest.fixture
def sagemaker(monkeypatch, settings_file):
    """A moto SageMaker holding the deployed pipeline, with the parameters it declares."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    declared = [
        {"Name": names.SUBSET, "Type": "String", "DefaultValue": "FD001", "EnumValues": list(names.SUBSETS)},
        {"Name": names.DATA_VERSION, "Type": "String", "DefaultValue": names.DEFAULT_DATA_VERSION},
        {"Name": names.TUNING_MAX_JOBS, "Type": "Integer", "DefaultValue": 6},
        {"Name": names.TUNING_MAX_PARALLEL_JOBS, "Type": "Integer", "DefaultValue": 2},
    ]
    pipeline = load_settings(None, settings_file).names.pipeline
    with mock_aws():
        client = boto3.client("sagemaker", region_name=REGION)
        client.create_pipeline(
            PipelineName=pipeline,
            PipelineDefinition=json.dumps({"Version": "2020-12-01", "Parameters": declared, "Steps": []}),
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/pipeline",
        )
        yield client, pipeline


def executions(client, pipeline: str) -> list[dict]:
    return client.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"]


def test_the_dag_parses_with_the_expected_tasks_and_dependencies(dag):
    downstream = {task.task_id: sorted(task.downstream_task_ids) for task in dag.tasks}
    assert downstream == {
        "resolve_run": sorted(["choose_mode", "run_local", *AWS_TASKS]),
        "choose_mode": ["check_parameters", "run_local"],
        "check_parameters": ["start_pipeline"],
        "start_pipeline": ["wait_for_pipeline"],
        "wait_for_pipeline": [],
        "run_local": [],
    }
    assert dag.schedule is None
    assert {names.SUBSET, names.MODEL_FAMILY, names.DATA_VERSION, names.TUNING_MAX_JOBS} <= set(dag.params)
    sensor = dag.get_task("wait_for_pipeline")
    assert (sensor.mode, sensor.poke_interval) == ("reschedule", 60)


def test_without_the_repository_on_the_path_the_dag_says_what_to_set(tmp_path):
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", f"import runpy; runpy.run_path({str(DAG_FILE)!r})"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "needs the turbofan repository root on PYTHONPATH" in result.stderr


def test_the_plan_names_the_deployed_pipeline_and_refuses_what_cannot_run(dag, settings_file):
    from turbofan_rul_pipeline import RunPlanError, plan_run

    params = {**dag.params.dump(), "mode": "aws", "settings_file": str(settings_file), "DataVersion": "v1"}
    plan = plan_run(params, "manual__2026-12-03T10:00:00+00:00")
    assert plan["pipeline"] == load_settings(None, settings_file).names.pipeline
    assert plan["region"] == REGION
    assert plan["assignments"] == [("Subset", "FD001"), ("DataVersion", "v1")]
    assert plan["display_name"] == "airflow-manual-2026-12-03T10-00-00-00-00"
    with pytest.raises(RunPlanError, match="placeholder account"):
        plan_run({**params, "settings_file": None}, "r")
    with pytest.raises(RunPlanError, match="deployed pipeline tunes 'gbm'"):
        plan_run({**params, names.MODEL_FAMILY: "lstm"}, "r")
    with pytest.raises(RunPlanError, match="project_python '/nowhere/python' does not exist"):
        plan_run({**params, "mode": "local", "project_python": "/nowhere/python"}, "r")


def test_the_local_command_carries_the_same_parameters_quoted(dag, tmp_path):
    from turbofan_rul_pipeline import plan_run

    params = {**dag.params.dump(), "mode": "local", "work_dir": str(tmp_path / "w x"), "tracking": False}
    params.update({names.SUBSET: "FD003", names.MODEL_FAMILY: "cnn", names.TUNING_MAX_JOBS: 2})
    params["extra_parameters"] = {"RmseThreshold": 30}
    command = plan_run(params, "r")["command"]
    assert command == (
        f"{REPO_ROOT}/.venv/bin/python -m local_runner run --subset FD003 --work-dir '{tmp_path}/w x' "
        "--units 100 --no-tracking --param ModelFamily=cnn --param TuningMaxJobs=2 --param RmseThreshold=30"
    )


def test_aws_mode_starts_the_pipeline_with_the_params_and_waits_for_it(dag, sagemaker, settings_file):
    client, pipeline = sagemaker
    conf = {"mode": "aws", "settings_file": str(settings_file), "Subset": "FD002", "DataVersion": "d1"}
    run = dag.test(run_conf={**conf, names.TUNING_MAX_JOBS: 3})
    assert task_states(run) == {
        "resolve_run": "success",
        "choose_mode": "success",
        "check_parameters": "success",
        "start_pipeline": "success",
        "wait_for_pipeline": "success",
        "run_local": "skipped",
    }
    (execution,) = executions(client, pipeline)
    assert execution["PipelineExecutionDisplayName"].startswith("airflow-manual-")
    parameters = client.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=execution["PipelineExecutionArn"]
    )["PipelineParameters"]
    assert parameters == [
        {"Name": "Subset", "Value": "FD002"},
        {"Name": "DataVersion", "Value": "d1"},
        {"Name": "TuningMaxJobs", "Value": "3"},
    ]


def test_aws_mode_refuses_an_undeclared_parameter_before_starting(dag, sagemaker, settings_file):
    client, pipeline = sagemaker
    conf = {"mode": "aws", "settings_file": str(settings_file), "extra_parameters": {"Bogus": "1"}}
    run = dag.test(run_conf=conf)
    states = task_states(run)
    assert str(run.state) == "failed"
    assert states["check_parameters"] == "failed"
    assert states["start_pipeline"] == "upstream_failed"
    assert executions(client, pipeline) == []


def test_aws_mode_fails_when_the_execution_fails(dag, sagemaker, settings_file, monkeypatch, capfd):
    from moto.sagemaker import models

    started = models.FakePipelineExecution.__init__

    def start_failed(execution, *args, **kwargs):
        started(execution, *args, **kwargs)
        execution.pipeline_execution_status = "Failed"

    monkeypatch.setattr(models.FakePipelineExecution, "__init__", start_failed)
    run = dag.test(run_conf={"mode": "aws", "settings_file": str(settings_file)})
    states = task_states(run)
    assert (states["start_pipeline"], states["wait_for_pipeline"]) == ("success", "failed")
    assert str(run.state) == "failed"
    assert "Sagemaker pipeline failed" in "".join(capfd.readouterr())


def test_local_mode_runs_the_local_runner_and_fails_with_it(dag, tmp_path, capfd):
    conf = {"mode": "local", "work_dir": str(tmp_path / "work"), "data_dir": str(tmp_path / "absent")}
    run = dag.test(run_conf=conf)
    states = task_states(run)
    assert states["run_local"] == "failed"
    assert all(states[task] == "skipped" for task in AWS_TASKS)
    assert str(run.state) == "failed"
    assert "train_FD001.txt not found" in "".join(capfd.readouterr())


@pytest.mark.long
def test_local_mode_runs_the_pipeline_end_to_end_offline(dag, tmp_path):
    work = tmp_path / "work"
    conf = {"mode": "local", "work_dir": str(work), "units": 12, "tracking": False, "DataVersion": "af1"}
    run = dag.test(run_conf={**conf, names.TUNING_MAX_JOBS: 1, names.TUNING_MAX_PARALLEL_JOBS: 1})
    assert task_states(run)["run_local"] == "success"
    (record_path,) = work.glob("executions/*/execution.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "Succeeded", record["failure_reason"]
    assert record["parameters"][names.DATA_VERSION] == "af1"
    assert record["parameters"][names.TUNING_MAX_JOBS] == 1
    statuses = {step["name"]: step["status"] for step in record["steps"]}
    assert statuses[names.REGISTER_STEP_JSON_NAME] == "Succeeded"
