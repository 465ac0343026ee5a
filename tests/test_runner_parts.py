"""The local runner's parts on small inputs: object store, expressions, tuner, executor scheduling, the
thread budget of side-by-side jobs and how failure reasons name input files."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from local_runner import jobs
from local_runner.__main__ import exit_code
from local_runner.execution import ExecutionError, ExecutionResult, PipelineExecutor, StepRecord
from local_runner.expressions import Context, ExpressionError, evaluate_condition, parse_path, resolve
from local_runner.graph import cast_parameters
from local_runner.object_store import ObjectStore, ObjectStoreError
from local_runner.registry import LocalRegistry
from local_runner.step_cache import CacheConfigError, parse_duration
from local_runner.threads import RUNNING, JobCounter, thread_budget, thread_environment
from local_runner.tuner import read_metric, tune
from local_runner.tuning_step import trial_request


@pytest.fixture
def store(tmp_path):
    return ObjectStore(tmp_path / "s3")


def test_object_store_prefix_semantics(store, tmp_path):
    store.put_text("s3://b/data/a.csv", "1")
    store.put_text("s3://b/data/sub/b.csv", "2")
    assert [key for key, _ in store.objects("s3://b/data/")] == ["a.csv", "sub/b.csv"]
    assert [key for key, _ in store.objects("s3://b/data/a.csv")] == ["a.csv"]
    copied = store.download("s3://b/data", tmp_path / "out")
    assert sorted(path.read_text() for path in copied) == ["1", "2"]
    with pytest.raises(ObjectStoreError, match="no S3 objects found under s3://b/none"):
        store.download("s3://b/none", tmp_path / "x")
    with pytest.raises(ObjectStoreError, match="not an S3 URI"):
        store.path_for("/local/path")


def test_property_paths_parse_names_and_indexes():
    assert parse_path("Steps.P.Outputs['train'].S3Output.S3Uri") == [
        "Steps",
        "P",
        "Outputs",
        "train",
        "S3Output",
        "S3Uri",
    ]
    assert parse_path("Steps.T.TrainingJobSummaries[0].TrainingJobName") == [
        "Steps",
        "T",
        "TrainingJobSummaries",
        0,
        "TrainingJobName",
    ]


def context(files=None):
    return Context(
        parameters={"Threshold": 20.0, "Name": "x"},
        execution={"PipelineExecutionId": "exec-1"},
        steps={
            "P": {"Outputs": {"train": {"S3Uri": "s3://b/train"}}},
            "T": {"Summaries": [{"Name": "job-7"}]},
        },
        read_property_file=lambda step, name: (files or {})[(step, name)],
    )


def test_resolve_get_join_and_json_get():
    expression = {
        "Uri": {
            "Std:Join": {
                "On": "/",
                "Values": [
                    "s3:/",
                    "b",
                    {"Get": "Execution.PipelineExecutionId"},
                    {"Get": "Steps.T.Summaries[0].Name"},
                ],
            }
        },
        "Train": {"Get": "Steps.P.Outputs['train'].S3Uri"},
        "List": [{"Get": "Parameters.Name"}, 3],
        "Rmse": {
            "Std:JsonGet": {"PropertyFile": {"Get": "Steps.E.PropertyFiles.Report"}, "Path": "m.rmse[1]"}
        },
    }
    files = {("E", "Report"): {"m": {"rmse": [1.5, 12.5]}}}
    assert resolve(expression, context(files)) == {
        "Uri": "s3://b/exec-1/job-7",
        "Train": "s3://b/train",
        "List": ["x", 3],
        "Rmse": 12.5,
    }


def test_unresolvable_references_name_what_is_missing():
    with pytest.raises(ExpressionError, match="unknown pipeline parameter 'Nope'"):
        resolve({"Get": "Parameters.Nope"}, context())
    with pytest.raises(ExpressionError, match="step 'Q' has not run"):
        resolve({"Get": "Steps.Q.Anything"}, context())
    with pytest.raises(ExpressionError, match="no 'validation'"):
        resolve({"Get": "Steps.P.Outputs['validation'].S3Uri"}, context())


def test_conditions_true_and_false():
    left = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.E.PropertyFiles.R"}, "Path": "rmse"}}
    files = {("E", "R"): {"rmse": 12.0}}
    below = {"Type": "LessThanOrEqualTo", "LeftValue": left, "RightValue": {"Get": "Parameters.Threshold"}}
    above = {**below, "Type": "GreaterThan"}
    assert evaluate_condition(below, context(files)) is True
    assert evaluate_condition(above, context(files)) is False
    assert evaluate_condition({"Type": "Not", "Condition": above}, context(files)) is True
    assert evaluate_condition({"Type": "Or", "Conditions": [above, below]}, context(files)) is True
    assert (
        evaluate_condition(
            {"Type": "In", "QueryValue": {"Get": "Parameters.Name"}, "Values": ["y", "x"]}, context(files)
        )
        is True
    )


def test_parameters_are_cast_and_checked():
    declared = [
        {"Name": "N", "Type": "Integer", "DefaultValue": 2},
        {"Name": "S", "Type": "String", "DefaultValue": "a", "EnumValues": ["a", "b"]},
        {"Name": "F", "Type": "Float", "DefaultValue": 1.0},
    ]
    assert cast_parameters(declared, {"N": "5", "F": "0.5"}) == {"N": 5, "S": "a", "F": 0.5}
    with pytest.raises(ExecutionError, match="unknown pipeline parameter"):
        cast_parameters(declared, {"M": 1})
    with pytest.raises(ExecutionError, match="N='x' is not a Integer"):
        cast_parameters(declared, {"N": "x"})
    with pytest.raises(ExecutionError, match="not one of"):
        cast_parameters(declared, {"S": "c"})


def test_cache_expiry_durations():
    assert parse_duration("P30D").days == 30
    assert parse_duration("PT1H").total_seconds() == 3600
    assert parse_duration("T16m").total_seconds() == 960
    with pytest.raises(CacheConfigError, match="cache expiry"):
        parse_duration("soon")


def test_read_metric_takes_the_last_value():
    log = "epoch\nvalidation:rmse=15.5\nmore\nvalidation:rmse=12.25\n"
    assert read_metric(log, r"validation:rmse=([-0-9.eE+]+)") == 12.25
    assert read_metric("nothing", r"validation:rmse=([-0-9.eE+]+)") is None


def tuning_request(max_jobs=6, parallel=2, strategy="Bayesian"):
    return {
        "HyperParameterTuningJobConfig": {
            "HyperParameterTuningJobObjective": {"MetricName": "validation:rmse", "Type": "Minimize"},
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {"Name": "x", "MinValue": "0.0", "MaxValue": "4.0", "ScalingType": "Auto"}
                ],
                "IntegerParameterRanges": [
                    {"Name": "n", "MinValue": "1", "MaxValue": "5", "ScalingType": "Auto"}
                ],
                "CategoricalParameterRanges": [],
            },
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": parallel},
            "Strategy": strategy,
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {
                "MetricDefinitions": [{"Name": "validation:rmse", "Regex": r"validation:rmse=([-0-9.eE+]+)"}]
            }
        },
    }


@pytest.mark.parametrize("strategy", ["Bayesian", "Random"])
def test_tuner_honours_the_budget_and_ranks_best_first(strategy):
    seen = []

    def run_trial(number, hyperparameters):
        x, n = float(hyperparameters["x"]), int(hyperparameters["n"])
        assert 0 <= x <= 4 and 1 <= n <= 5
        seen.append(number)
        if number == 3:
            return f"job-{number}", "Failed", "boom"
        return f"job-{number}", "Completed", f"validation:rmse={(x - 1) ** 2 + n}"

    trials = tune(tuning_request(max_jobs=6, strategy=strategy), run_trial, echo=lambda line: None)
    assert sorted(seen) == [1, 2, 3, 4, 5, 6]
    objectives = [trial.objective for trial in trials if trial.objective is not None]
    assert objectives == sorted(objectives) and len(objectives) == 5
    assert trials[-1].status == "Failed" and trials[-1].failure_reason == "boom"


def test_tuner_runs_a_rounds_trials_side_by_side_and_tells_them_in_order():
    """Both trials of a round must be running at once (a barrier of two would time out otherwise), and
    the search must not depend on which trial finished first."""
    barrier = threading.Barrier(2, timeout=10)

    def searched(finish_late: int) -> list[dict[str, str]]:
        def run_trial(number, hyperparameters):
            barrier.wait()
            if number % 2 == finish_late % 2:
                time.sleep(0.05)
            return f"job-{number}", "Completed", f"validation:rmse={float(hyperparameters['x'])}"

        trials = tune(tuning_request(max_jobs=6, parallel=2), run_trial, echo=lambda line: None)
        return sorted((trial.number, trial.hyperparameters["x"]) for trial in trials)

    assert searched(finish_late=1) == searched(finish_late=2)


def small_definition(condition_right: float):
    """A definition with a condition and a fail step, no jobs: exercises scheduling and branches."""
    return {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "Limit", "Type": "Float", "DefaultValue": condition_right}],
        "Steps": [
            {
                "Name": "Gate",
                "Type": "Condition",
                "Arguments": {
                    "Conditions": [
                        {
                            "Type": "LessThanOrEqualTo",
                            "LeftValue": 1.0,
                            "RightValue": {"Get": "Parameters.Limit"},
                        }
                    ],
                    "IfSteps": [],
                    "ElseSteps": [
                        {
                            "Name": "Stop",
                            "Type": "Fail",
                            "Arguments": {
                                "ErrorMessage": {
                                    "Std:Join": {
                                        "On": " ",
                                        "Values": ["limit", {"Get": "Parameters.Limit"}, "too low"],
                                    }
                                }
                            },
                        }
                    ],
                },
            }
        ],
    }


def test_executor_follows_the_condition_branches(tmp_path, store):
    registry = LocalRegistry(tmp_path / "registry.sqlite")
    passed = PipelineExecutor(
        small_definition(5.0), tmp_path, store, registry, echo=lambda line: None
    ).start()
    assert passed.status == "Succeeded", passed.failure_reason
    assert passed.step("Stop").status == "NotExecuted"
    failed = PipelineExecutor(
        small_definition(0.5), tmp_path, store, registry, echo=lambda line: None
    ).start()
    assert failed.status == "Failed"
    assert failed.failure_reason == "step Stop failed: limit 0.5 too low"
    record = json.loads(failed.record_path.read_text())
    assert record["status"] == "Failed" and {step["name"] for step in record["steps"]} == {"Gate", "Stop"}


def test_executor_rejects_unknown_dependencies(tmp_path, store):
    definition = {
        "Parameters": [],
        "Steps": [{"Name": "A", "Type": "Fail", "DependsOn": ["Ghost"], "Arguments": {}}],
    }
    with pytest.raises(ExecutionError, match="unknown step"):
        PipelineExecutor(definition, tmp_path, store, LocalRegistry(tmp_path / "r.sqlite"))


def nested_definition() -> dict:
    """The gate's shape: an outer condition whose if-branch is a second condition (Equals of two string
    parameters, empty if-branch) guarding a leaf; a Fail step stands in for the register leaf."""
    leaf = {"Name": "Leaf", "Type": "Fail", "Arguments": {"ErrorMessage": "leaf ran"}}
    inner = {
        "Name": "Inner",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [
                {
                    "Type": "Equals",
                    "LeftValue": {"Get": "Parameters.A"},
                    "RightValue": {"Get": "Parameters.B"},
                }
            ],
            "IfSteps": [],
            "ElseSteps": [leaf],
        },
    }
    outer_condition = {
        "Type": "LessThanOrEqualTo",
        "LeftValue": 1.0,
        "RightValue": {"Get": "Parameters.Limit"},
    }
    return {
        "Parameters": [
            {"Name": "A", "Type": "String", "DefaultValue": "v1"},
            {"Name": "B", "Type": "String", "DefaultValue": ""},
            {"Name": "Limit", "Type": "Float", "DefaultValue": 5.0},
        ],
        "Steps": [
            {
                "Name": "Outer",
                "Type": "Condition",
                "Arguments": {"Conditions": [outer_condition], "IfSteps": [inner], "ElseSteps": []},
            }
        ],
    }


@pytest.mark.parametrize(
    ("parameters", "status", "inner", "leaf"),
    [
        ({}, "Failed", "Succeeded", "Failed"),  # new data version: the leaf runs
        ({"B": "v1"}, "Succeeded", "Succeeded", "NotExecuted"),  # same version: succeed, nothing more
        ({"Limit": 0.5}, "Succeeded", "NotExecuted", "NotExecuted"),  # outer false: the nest is skipped
    ],
)
def test_executor_runs_nested_conditions(tmp_path, store, parameters, status, inner, leaf):
    registry = LocalRegistry(tmp_path / "registry.sqlite")
    executor = PipelineExecutor(nested_definition(), tmp_path, store, registry, echo=lambda line: None)
    result = executor.start(parameters)
    assert result.status == status, result.failure_reason
    assert (result.step("Inner").status, result.step("Leaf").status) == (inner, leaf)


# -- input paths in failure reasons -------------------------------------------------------------------------
def test_job_local_input_paths_are_named_by_s3_uri_and_the_users_file(tmp_path):
    base = tmp_path / "jobs" / "j" / "algo-1" / "opt_ml"
    data_dir, lib_dir = base / "processing" / "input", base / "processing" / "input" / "lib"
    mapping = {
        **jobs.input_paths(base, data_dir, "s3://d/raw/", [("train_FD001.txt", Path("x"))]),
        **jobs.input_paths(base, lib_dir, "s3://a/code/src/", [("rul/data.py", Path("y"))]),
    }
    reason = (
        f"{data_dir}/train_FD001.txt, line 3: expected 26 columns\n"
        f'File "{lib_dir}/rul/data.py", line 9\n'
        "also /opt/ml/processing/input/train_FD001.txt and /opt/ml/processing/input/train_FD001.txt.bak"
    )
    mapped = jobs.map_paths(reason, mapping)
    assert mapped.splitlines()[0] == "s3://d/raw/train_FD001.txt, line 3: expected 26 columns"
    assert mapped.splitlines()[1] == 'File "s3://a/code/src/rul/data.py", line 9'
    assert mapped.endswith("also s3://d/raw/train_FD001.txt and s3://d/raw/train_FD001.txt.bak")
    user = tmp_path / "mine" / "train_FD001.txt"
    named = jobs.name_origins(mapped, {"s3://d/raw/train_FD001.txt": user})
    assert named.splitlines()[0] == f"{user}, line 3: expected 26 columns"
    assert named.splitlines()[-1] == f"({user} is s3://d/raw/train_FD001.txt in the local object store)"
    single = jobs.input_paths(base, data_dir, "s3://d/raw/train_FD001.txt", [("train_FD001.txt", Path("x"))])
    assert single[f"{data_dir}/train_FD001.txt"] == "s3://d/raw/train_FD001.txt"


# -- thread budget ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cores", "jobs_running", "user", "expected"),
    [(2, 1, None, 2), (2, 2, None, 1), (2, 3, None, 1), (8, 3, None, 2), (8, 2, "3", 3), (8, 1, "x", 8)],
)
def test_the_thread_budget_shares_the_cores_and_a_user_limit_caps_it(cores, jobs_running, user, expected):
    assert thread_budget(cores, jobs_running, user) == expected
    environ = {"OMP_NUM_THREADS": user} if user else {}
    variables = thread_environment(jobs_running, environ, cores)
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
    assert variables == {**dict.fromkeys(names, str(expected)), "TF_NUM_INTEROP_THREADS": "1"}


def test_job_counter_counts_processes_and_scheduled_steps():
    counter = JobCounter()
    counter.reserve_step()
    counter.reserve_step()
    with counter.process() as running:
        assert running == 2  # the sibling step's process has not started yet
    counter.release_step()
    counter.release_step()
    with counter.process() as first, counter.process() as second:
        assert (first, second) == (1, 2)
    assert counter.concurrent == 0


def test_side_by_side_jobs_get_their_share_of_the_cores(tmp_path, store, monkeypatch):
    monkeypatch.setattr("local_runner.threads.os.cpu_count", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    code = "import os, time; print('threads', os.environ['OMP_NUM_THREADS'], os.environ['MKL_NUM_THREADS'])"
    request = {"AppSpecification": {"ContainerEntrypoint": ["python3", "-c", code]}}
    slow = {"AppSpecification": {"ContainerEntrypoint": ["python3", "-c", code + "; time.sleep(1)"]}}
    steps = [{"Name": "A", "Type": "Processing", "Arguments": slow}]
    steps.append({"Name": "B", "Type": "Processing", "Arguments": request})
    lines: list[str] = []
    registry = LocalRegistry(tmp_path / "registry.sqlite")
    result = PipelineExecutor({"Steps": steps}, tmp_path, store, registry, echo=lines.append).start()
    assert result.status == "Succeeded"
    assert sorted(line.split("] ")[1] for line in lines if "] threads" in line) == ["threads 4 4"] * 2
    alone = jobs.run_processing_job("alone", request, store, tmp_path, lines.append)
    assert "threads 8 8" in alone.log_text and RUNNING.concurrent == 0
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert "threads 3 3" in jobs.run_processing_job("capped", request, store, tmp_path, print).log_text


@pytest.mark.parametrize(
    ("status", "failed_types", "expected"),
    [
        ("Succeeded", [], 0),
        ("Failed", ["Fail"], 3),  # only the quality gate's Fail step failed: the model was rejected
        ("Failed", ["Processing"], 1),
        ("Failed", ["Training", "Fail"], 1),  # a crash is a crash, whatever else failed
        ("Stopped", [], 143),
    ],
)
def test_run_exit_codes_tell_a_rejection_from_a_failure_and_a_stop(status, failed_types, expected):
    steps = [StepRecord(f"step{i}", kind, status="Failed") for i, kind in enumerate(failed_types)]
    steps.append(StepRecord("Other", "Processing", status="Succeeded"))
    result = ExecutionResult("local-x", status, "", {}, steps, 1.0, Path("execution.json"))
    assert exit_code(result, signal_code=143) == expected


def test_a_trial_request_keeps_the_spot_and_checkpoint_fields_of_the_definition():
    definition = {
        "AlgorithmSpecification": {"TrainingImage": "x"},
        "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
        "CheckpointConfig": {"S3Uri": "s3://b/checkpoints/TuneModel/", "LocalPath": "/opt/ml/checkpoints"},
        "EnableManagedSpotTraining": True,
        "StoppingCondition": {"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 120},
    }
    request = trial_request(definition, {"learning_rate": "0.1"})
    assert request["CheckpointConfig"] == definition["CheckpointConfig"]
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"]["MaxWaitTimeInSeconds"] == 120


def test_every_trial_of_a_round_sees_the_whole_round_running():
    """The thread budget each trial gets must count its siblings, even the ones not started yet."""
    seen = []
    before = RUNNING.concurrent

    def run_trial(number, hyperparameters):
        seen.append(RUNNING.concurrent)
        return f"job-{number}", "Completed", "validation:rmse=1.0"

    tune(tuning_request(max_jobs=4, parallel=2), run_trial, echo=lambda line: None)
    assert min(seen) >= before + 1 and len(seen) == 4
    assert RUNNING.concurrent == before
