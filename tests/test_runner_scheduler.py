"""The scheduler (`local_runner.execution.PipelineExecutor`) on definitions without real jobs: condition
branches, nested conditions, unknown dependencies, side-by-side steps."""

from __future__ import annotations

import json

import pytest

from local_runner import jobs
from local_runner.execution import PipelineExecutor
from local_runner.graph import ExecutionError
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from local_runner.threads import RUNNING


@pytest.fixture
def store(tmp_path):
    """An empty object store in the test's folder."""
    return ObjectStore(tmp_path / "s3")


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
    """A true condition skips the else branch; a false one runs its Fail step, whose message resolves a
    parameter."""
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
    """A `DependsOn` naming no step fails when the executor is built, before anything runs."""
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
    """An inner condition in an if-branch runs, or is skipped with its leaf, as the outer one decides."""
    registry = LocalRegistry(tmp_path / "registry.sqlite")
    executor = PipelineExecutor(nested_definition(), tmp_path, store, registry, echo=lambda line: None)
    result = executor.start(parameters)
    assert result.status == status, result.failure_reason
    assert (result.step("Inner").status, result.step("Leaf").status) == (inner, leaf)


def test_side_by_side_jobs_get_their_share_of_the_cores(tmp_path, store, monkeypatch):
    """Two steps at once get half the (8) cores each; a job alone gets all; OMP_NUM_THREADS caps them."""
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
