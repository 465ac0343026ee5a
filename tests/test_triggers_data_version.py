"""The triggers' side of "retraining keyed by data version" (`stacks/triggers.py`): the schedule and the
drift rule invoke the start function (never the pipeline) with an input its handler accepts, and the
function's role can do exactly what computing a data version takes.

The whole app is synthesized once for this module; the rule inputs are parsed by the handler's own
`parse_event` with the configuration built from the function's synthesized environment.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from cdk_helpers import as_list, cdk_json_context

from app import build_app
from lambdas.start_pipeline import config as start_config
from lambdas.start_pipeline import events as start_events
from settings import load_settings

pytestmark = pytest.mark.slow

SETTINGS = load_settings()
NAMES = SETTINGS.names
ALL_RAW = f"s3://{NAMES.data_bucket}/{NAMES.raw_data_prefix}"


@pytest.fixture(scope="module")
def resources() -> dict[str, dict]:
    app = build_app(cdk_json_context())
    stack = app.node.find_child("Ops")
    assert isinstance(stack, cdk.Stack)
    return Template.from_stack(stack).to_json()["Resources"]


def _of_type(resources: dict, kind: str) -> dict[str, dict]:
    return {key: value for key, value in resources.items() if value["Type"] == kind}


def _rule(resources: dict, name: str) -> tuple[str, dict]:
    (found,) = [
        (key, r["Properties"])
        for key, r in _of_type(resources, "AWS::Events::Rule").items()
        if r["Properties"]["Name"] == name
    ]
    return found


def _start_function(resources: dict) -> tuple[str, dict]:
    (found,) = [
        (key, r["Properties"])
        for key, r in _of_type(resources, "AWS::Lambda::Function").items()
        if r["Properties"]["FunctionName"] == f"{NAMES.prefix}-start-pipeline"
    ]
    return found


@pytest.mark.parametrize(
    ("rule_name", "reason"),
    [("scheduled-training", start_events.SCHEDULE), ("retrain-on-drift", start_events.DRIFT)],
)
def test_schedule_and_drift_rules_invoke_the_start_function_with_their_reason(resources, rule_name, reason):
    rule_id, rule = _rule(resources, f"{NAMES.prefix}-{rule_name}")
    function_id, function = _start_function(resources)
    (target,) = rule["Targets"]

    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert "SageMakerPipelineParameters" not in target and "RoleArn" not in target
    assert json.loads(target["Input"]) == {"reason": reason, "InputDataUri": ALL_RAW}
    assert target["RetryPolicy"] and target["DeadLetterConfig"]["Arn"]
    # The handler, configured as deployed, accepts the input as a start on all the raw data.
    config = start_config.load_config(function["Environment"]["Variables"])
    request = start_events.parse_event(json.loads(target["Input"]), config)
    assert (request.reason, request.input_data_uri) == (reason, ALL_RAW)
    permissions = [
        p["Properties"]
        for p in _of_type(resources, "AWS::Lambda::Permission").values()
        if p["Properties"]["SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}
    ]
    assert [(p["Principal"], p["FunctionName"]) for p in permissions] == [
        ("events.amazonaws.com", {"Fn::GetAtt": [function_id, "Arn"]})
    ]


def test_no_rule_targets_the_training_pipeline_directly(resources):
    training = f"arn:aws:sagemaker:{SETTINGS.aws.region}:{SETTINGS.aws.account}:pipeline/{NAMES.pipeline}"
    arns = [
        json.dumps(target["Arn"])
        for rule in _of_type(resources, "AWS::Events::Rule").values()
        for target in rule["Properties"]["Targets"]
    ]
    assert arns and json.dumps(training) not in arns


def test_start_function_knows_the_model_package_group(resources):
    _, function = _start_function(resources)
    environment = function["Environment"]["Variables"]
    assert environment[start_config.ENV_GROUP] == NAMES.model_package_group
    assert start_config.load_config(environment).model_package_group == NAMES.model_package_group


def _statements(resources: dict) -> dict[str, dict]:
    (role,) = [
        r
        for r in _of_type(resources, "AWS::IAM::Role").values()
        if r["Properties"]["RoleName"] == NAMES.start_pipeline_role
    ]
    policy_ids = [arn["Ref"] for arn in role["Properties"]["ManagedPolicyArns"]]
    return {
        s["Sid"]: s for key in policy_ids for s in resources[key]["Properties"]["PolicyDocument"]["Statement"]
    }


def test_start_role_lists_only_the_raw_prefix_and_reads_only_the_project_registry(resources):
    statements = _statements(resources)
    arn = f"arn:aws:sagemaker:{SETTINGS.aws.region}:{SETTINGS.aws.account}"

    listing = statements["ListRawData"]
    assert as_list(listing["Action"]) == ["s3:ListBucket"]
    assert listing["Resource"] == f"arn:aws:s3:::{NAMES.data_bucket}"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{NAMES.raw_data_prefix}*"]}}
    describe = statements["DescribeModelVersions"]
    assert describe["Action"] == "sagemaker:DescribeModelPackage"
    assert describe["Resource"] == f"{arn}:model-package/{NAMES.model_package_group}/*"
    assert statements["ListModelVersions"]["Action"] == "sagemaker:ListModelPackages"
    assert statements["ListModelVersions"]["Resource"] == "*"
    start = statements["StartAndListProjectPipeline"]
    assert sorted(as_list(start["Action"])) == [
        "sagemaker:ListPipelineExecutions",
        "sagemaker:StartPipelineExecution",
    ]
    assert start["Resource"] == f"{arn}:pipeline/{NAMES.pipeline}"
    granted = {
        action for s in statements.values() if s["Effect"] == "Allow" for action in as_list(s["Action"])
    }
    assert not {a for a in granted if a.startswith(("s3:Get", "s3:Put", "s3:Delete"))}
