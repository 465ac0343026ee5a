"""The expression resolver (`local_runner.expressions`): property paths, `Get`/`Std:Join`/`Std:JsonGet`,
conditions, and errors that name the missing reference."""

from __future__ import annotations

import pytest

from local_runner.expressions import Context, ExpressionError, evaluate_condition, parse_path, resolve


def test_property_paths_parse_names_and_indexes():
    """Dotted names, quoted keys and list indexes of a `Get` path."""
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
    """An expression context with two parameters, an execution id, two steps' properties and `files` as
    property files."""
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
    """Nested `Std:Join`, `Get` into step properties and lists, and `Std:JsonGet` on a property file."""
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
    """An unknown parameter, a step that has not run and a missing output key."""
    with pytest.raises(ExpressionError, match="unknown pipeline parameter 'Nope'"):
        resolve({"Get": "Parameters.Nope"}, context())
    with pytest.raises(ExpressionError, match="step 'Q' has not run"):
        resolve({"Get": "Steps.Q.Anything"}, context())
    with pytest.raises(ExpressionError, match="no 'validation'"):
        resolve({"Get": "Steps.P.Outputs['validation'].S3Uri"}, context())


def test_conditions_true_and_false():
    """Comparisons, `Not`, `Or` and `In` evaluated against a property file and a parameter."""
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
