"""The deploy-on-approval construct (`stacks.deployment`) alone, in a small stack, under settings variations.

The whole app (tests/test_stacks_ops.py) is synthesized with the default settings only; here the construct
is built with Model Monitor on and with container capture, to check what each setting changes: the
environment the handler validates, and the Model Monitor permissions granted only when they are needed.
"""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template
from cdk_helpers import as_list, cdk_json_context

from lambdas.deploy_on_approval import config as deploy_config
from settings import load_settings
from stacks.deployment import DeployOnApproval
from stacks.network_stack import JobNetwork
from stacks.ops_common import LambdaNetwork

pytestmark = pytest.mark.slow

ACCOUNT, REGION = "111111111111", "eu-west-1"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/turbofan-rul-jobs@sha256:{'0' * 64}"
FAKE_TOKENS = {
    "SUBNET_IDS": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
    "SECURITY_GROUP_IDS": "sg-0123456789abcdef0",
    "KMS_KEY_ARN": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}


def build(overrides: dict) -> tuple[dict, list[dict], object]:
    """(environment, deploy-role statements, settings) of the construct built with `overrides`."""
    settings = load_settings(overrides)
    app = cdk.App(context=cdk_json_context())  # the project's feature flags (e.g. literal partitions)
    stack = cdk.Stack(app, "Deploy", env=cdk.Environment(account=ACCOUNT, region=REGION))
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        max_azs=2,
        nat_gateways=0,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="jobs", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        ],
    )
    subnets = tuple(vpc.isolated_subnets)
    group = ec2.SecurityGroup(stack, "Group", vpc=vpc)
    key = kms.Key(stack, "Key")
    DeployOnApproval(
        stack,
        "Deployment",
        names=settings.names,
        serving=settings.serving,
        monitoring=settings.monitoring,
        key=key,
        network=LambdaNetwork(vpc, subnets, group),
        job_network=JobNetwork(vpc, subnets, group),
        rollback_alarm_names=["turbofan-5xx", "turbofan-latency"],
        dead_letter_queue=sqs.Queue(stack, "Dlq"),
        drift_image_uri=IMAGE,
    )
    resources = Template.from_stack(stack).to_json()["Resources"]
    (function,) = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("FunctionName") == f"{settings.names.prefix}-deploy-on-approval"
    ]
    statements = [
        statement
        for r in resources.values()
        if r["Type"] == "AWS::IAM::ManagedPolicy"
        for statement in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    return function["Properties"]["Environment"]["Variables"], statements, settings


def concrete(environment: dict) -> dict[str, str]:
    return {key: FAKE_TOKENS.get(key, value) for key, value in environment.items()}


def actions(statements: list[dict]) -> set[str]:
    return {action for s in statements for action in as_list(s["Action"])}


def test_model_monitor_on_passes_the_schedule_and_grants_only_its_calls():
    environment, statements, settings = build({"monitoring": {"use_model_monitor": True}})
    names = settings.names

    config = deploy_config.load_config(concrete(environment))

    assert config.monitoring is not None
    assert config.monitoring.role_arn == f"arn:aws:iam::{ACCOUNT}:role/{names.model_role}"
    assert config.monitoring.schedule_name == names.monitoring_schedule
    assert config.monitoring.image_uri == IMAGE
    assert config.monitoring.output_s3_uri == f"s3://{names.artifacts_bucket}/{names.monitoring_prefix}"
    (schedule,) = [s for s in statements if "sagemaker:CreateMonitoringSchedule" in as_list(s["Action"])]
    assert set(as_list(schedule["Action"])) == {
        "sagemaker:DescribeMonitoringSchedule",
        "sagemaker:CreateMonitoringSchedule",
        "sagemaker:UpdateMonitoringSchedule",
        "sagemaker:DeleteMonitoringSchedule",
        "sagemaker:AddTags",
    }
    assert schedule["Resource"] == (
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:monitoring-schedule/{names.monitoring_schedule}"
    )


def test_defaults_grant_no_model_monitor_call_and_container_capture_is_passed_on():
    environment, statements, settings = build({"serving": {"capture_mode": "container"}})

    config = deploy_config.load_config(concrete(environment))

    assert config.monitoring is None and config.capture_mode == "container"
    assert not {a for a in actions(statements) if "Monitoring" in a}
    (pass_role,) = [s for s in statements if "iam:PassRole" in as_list(s["Action"])]
    assert pass_role["Resource"] == f"arn:aws:iam::{ACCOUNT}:role/{settings.names.model_role}"


def _endpoint_config_conditions(statements: list[dict]) -> dict:
    (create,) = [s for s in statements if "sagemaker:CreateEndpointConfig" in as_list(s["Action"])]
    return create["Condition"]


def test_serverless_settings_reach_the_function_and_free_the_instance_type_condition():
    environment, statements, settings = build(
        {
            "serving": {"mode": "serverless", "serverless_memory_mb": 4096},
            "security": {"data_perimeter": False},
        }
    )

    config = deploy_config.load_config(concrete(environment))

    assert config.serverless == deploy_config.ServerlessConfig(memory_mb=4096, max_concurrency=5)
    conditions = _endpoint_config_conditions(statements)
    # A serverless config names no instance type; any type it names must still be the serving type.
    assert "Null" not in conditions
    assert conditions["ForAllValues:StringEquals"] == {
        "sagemaker:InstanceTypes": [settings.serving.instance_type]
    }


def test_instance_endpoints_must_name_the_serving_instance_type():
    environment, statements, _ = build({})

    assert deploy_config.load_config(concrete(environment)).serverless is None
    assert _endpoint_config_conditions(statements)["Null"] == {"sagemaker:InstanceTypes": "false"}
