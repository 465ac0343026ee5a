"""`python -m pipeline_steps start`: the run parameters checked against the deployed definition, then sent.

Requests are checked with botocore's `Stubber` on a real `boto3.client("sagemaker")`: the parameters the
deployed pipeline declares (DescribePipeline), unknown, renamed, repeated and mistyped names refused before
anything starts, the windowed idempotency token, and the parameters of the rendered definition read back
with their types. The other verbs: test_aws_verbs.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from aws_stubs import (  # noqa: F401 - fixtures
    CREATED,
    DECLARED,
    DEFINITION,
    EXECUTION_ARN,
    PIPELINE,
    no_cdk_context_fixture,
    run,
    stub_describe_pipeline,
    stubbed_fixture,
)
from botocore.stub import ANY

from pipeline_steps import aws_verbs, names
from pipeline_steps.__main__ import main
from pipeline_steps.aws_parameters import ParameterError, build_request, declared_parameters

# --- start -----------------------------------------------------------------------------------------------


def test_start_sends_the_checked_parameters_with_a_windowed_client_token(stubbed):
    client, stubber = stubbed
    parameters = [
        {"Name": names.SUBSET, "Value": "FD003"},
        {"Name": names.DATA_VERSION, "Value": "s3-0123456789abcdef"},
        {"Name": names.PROCESSING_INSTANCE_COUNT, "Value": "2"},
        {"Name": "UseSpot", "Value": "true"},
    ]
    tokens = []
    for _ in range(2):
        stub_describe_pipeline(stubber)
        stubber.add_response(
            "start_pipeline_execution",
            {"PipelineExecutionArn": EXECUTION_ARN},
            {
                "PipelineName": PIPELINE,
                "PipelineExecutionDisplayName": "manual-20261203-090000",
                "PipelineExecutionDescription": ANY,
                "PipelineParameters": parameters,
                "ClientRequestToken": ANY,
            },
        )
    argv = ["start", *(f"--param={item['Name']}={item['Value']}" for item in parameters)]
    for _ in range(2):
        code, out, err = run(client, *argv)
        assert (code, out.strip()) == (0, EXECUTION_ARN)
        tokens.append(err.split("client token ")[1].split()[0])
    assert "note:" not in err  # DataVersion was given
    assert tokens[0] == tokens[1] and 32 <= len(tokens[0]) <= 128
    later = aws_verbs.client_token(PIPELINE, parameters, CREATED + timedelta(minutes=10))
    other = aws_verbs.client_token(PIPELINE, parameters[:1], CREATED)
    assert tokens[0] == aws_verbs.client_token(PIPELINE, list(reversed(parameters)), CREATED)
    assert later != tokens[0] and other != tokens[0]


def test_start_with_an_explicit_token_and_no_data_version_notes_the_cache_default(stubbed):
    client, stubber = stubbed
    token = "t" * 40
    stub_describe_pipeline(stubber)
    stubber.add_response(
        "start_pipeline_execution",
        {"PipelineExecutionArn": EXECUTION_ARN},
        {
            "PipelineName": PIPELINE,
            "PipelineExecutionDisplayName": "retrain-fd001",
            "PipelineExecutionDescription": ANY,
            "PipelineParameters": [],
            "ClientRequestToken": token,
        },
    )
    code, _, err = run(client, "start", "--display-name", "retrain-fd001", "--client-token", token)
    assert code == 0
    assert f"note: {names.DATA_VERSION} not given" in err and repr(names.DEFAULT_DATA_VERSION) in err


def test_start_refuses_unknown_names_listing_the_declared_ones_before_starting(stubbed):
    client, stubber = stubbed
    stub_describe_pipeline(stubber)  # and no start_pipeline_execution: a call would fail the test
    code, out, err = run(client, "start", "--param", "Subsett=FD002", "--param", "Colour=red")
    assert (code, out) == (2, "")
    declared = ", ".join(item["Name"] for item in DECLARED)
    assert f"unknown parameters Subsett, Colour; pipeline {PIPELINE} declares: {declared}" in err


def test_start_names_the_new_name_of_a_renamed_parameter_before_starting(stubbed):
    client, stubber = stubbed
    stub_describe_pipeline(stubber)  # and no start_pipeline_execution: a call would fail the test
    code, out, err = run(client, "start", "--param", "MaxTuningJobs=2")
    assert (code, out) == (2, "")
    assert f"renamed: MaxTuningJobs is now {names.TUNING_MAX_JOBS}" in err


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        (f"{names.PROCESSING_INSTANCE_COUNT}=two", "expected an Integer, got 'two'"),
        (f"{names.PROCESSING_INSTANCE_COUNT}=1.5", "expected an Integer, got '1.5'"),
        (f"{names.RMSE_THRESHOLD}=abc", "expected a Float, got 'abc'"),
        (f"{names.RMSE_THRESHOLD}=nan", "expected a Float, got 'nan'"),
        ("UseSpot=yes", "expected a Boolean (true or false), got 'yes'"),
        (f"{names.SUBSET}=FD009", "'FD009' is not one of FD001, FD002, FD003, FD004"),
        ("novalue", "parameter 'novalue' is not Name=Value"),
    ],
)
def test_start_type_checks_each_value(stubbed, assignment, message):
    client, stubber = stubbed
    stub_describe_pipeline(stubber)
    code, _, err = run(client, "start", "--param", assignment)
    assert code == 2 and message in err


def test_parameter_problems_are_reported_together():
    declared = declared_parameters(DEFINITION)
    assignments = [
        (names.SUBSET, "FD002"),
        (names.SUBSET, "FD003"),
        (names.RMSE_THRESHOLD, "x"),
        ("Nope", "1"),
    ]
    with pytest.raises(ParameterError) as caught:
        build_request(assignments, declared, PIPELINE)
    text = str(caught.value)
    assert "unknown parameter Nope;" in text and "given more than once: Subset" in text
    assert "RmseThreshold: expected a Float" in text


@pytest.mark.slow
def test_parameters_of_the_rendered_definition_are_read_with_their_types(tmp_path):
    out = tmp_path / "definition.json"
    assert main(["render", "--out", str(out)]) == 0  # the render verb still works, and writes atomically
    assert [path.name for path in tmp_path.iterdir()] == ["definition.json"]
    declared = declared_parameters(out.read_text())
    assert tuple(declared) == names.PARAMETER_NAMES
    assert declared[names.PROCESSING_INSTANCE_COUNT].type == "Integer"
    assert declared[names.RMSE_THRESHOLD].type == "Float"
    assert declared[names.SUBSET].enum_values == names.SUBSETS
    request = build_request(
        [(names.TUNING_MAX_JOBS, "4"), (names.RMSE_THRESHOLD, "18.5")], declared, PIPELINE
    )
    assert request == [{"Name": "TuningMaxJobs", "Value": "4"}, {"Name": "RmseThreshold", "Value": "18.5"}]
