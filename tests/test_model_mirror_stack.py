"""The model mirror's CDK construct: the approval rule, the function outside the VPC, least privilege.

The always-on tests synthesize one small stack holding only the construct (with the project key, the
events dead-letter queue and the alerts topic), checked by cdk-nag like the app; `long` synthesizes the
whole app with the mirror on and checks the Ops stack has it and stays nag-clean, and that it is absent
by default.
"""

from __future__ import annotations

import functools

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match, Template
from cdk_helpers import SynthOutcome, as_list, cdk_json_context, policy_statements, synth_with_report
from test_lambda_asset import check_asset_runs, function_assets

from settings import load_settings
from stacks.model_mirror import ModelMirror, mirror_role_name
from stacks.nag import add_nag_checks
from stacks.ops_common import encrypted_queue

SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:rul-mirror-AbCdEf"
SECRET_KEY_ARN = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
MIRROR = {
    "enabled": True,
    "endpoint_url": "https://abcd.supabase.co/storage/v1/s3",
    "bucket": "models",
    "region": "eu-central-1",
    "secret_arn": SECRET_ARN,
    "secret_kms_key_arn": SECRET_KEY_ARN,
}


@functools.cache
def synthesized() -> tuple[SynthOutcome, dict]:
    settings = load_settings({"mirror": MIRROR})
    app = cdk.App(context=cdk_json_context())
    add_nag_checks(app)
    stack = cdk.Stack(app, "MirrorOnly", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    queue = encrypted_queue(stack, "Dlq", queue_name="event-targets-dlq", key=key)
    topic = sns.Topic(stack, "Alerts", master_key=key)
    ModelMirror(
        stack,
        "ModelMirror",
        names=settings.names,
        mirror=settings.mirror,
        key=key,
        dead_letter_queue=queue,
        alerts_topic=topic,
        log_retention_days=30,
    )
    outcome = synth_with_report(app)
    assert outcome.assembly is not None, outcome.error
    return outcome, outcome.assembly.get_stack_by_name("MirrorOnly").template


def template() -> Template:
    return Template.from_json(synthesized()[1])


def mirror_function() -> dict:
    functions = template().find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "lambdas.mirror_model.handler.handler"}}
    )
    assert len(functions) == 1
    return next(iter(functions.values()))["Properties"]


def test_the_function_runs_from_its_asset_in_the_lambda_layout():
    assets = function_assets(synthesized()[0].outdir)
    assert list(assets) == ["lambdas.mirror_model.handler.handler"]
    loaded = check_asset_runs(assets["lambdas.mirror_model.handler.handler"], list(assets))
    assert {"lambdas.mirror_model.store", "lambdas.common.s3uri"} <= set(loaded)


def statement(sid: str) -> dict:
    found = [s for s in policy_statements(template()) if s.get("Sid") == sid]
    assert len(found) == 1, sid
    return found[0]


def test_the_rule_sends_only_approvals_of_the_group_with_a_dead_letter_queue():
    template().has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Package State Change"],
                "detail": {
                    "ModelPackageGroupName": ["turbofan-rul-dev-models"],
                    "ModelApprovalStatus": ["Approved"],
                },
            },
            "Targets": [
                Match.object_like({"DeadLetterConfig": Match.any_value(), "RetryPolicy": Match.any_value()})
            ],
        },
    )


def test_the_function_runs_outside_the_vpc_with_no_key_in_its_environment():
    properties = mirror_function()
    assert "VpcConfig" not in properties
    variables = properties["Environment"]["Variables"]
    assert variables["MIRROR_SECRET_ARN"] == SECRET_ARN
    assert variables["MIRROR_ENDPOINT_URL"] == MIRROR["endpoint_url"]
    assert not any("KEY" in name and "ARN" not in name for name in variables)


def test_the_role_reads_one_secret_and_its_key_through_secrets_manager_only():
    assert statement("ReadStoreKeys")["Resource"] == SECRET_ARN
    assert as_list(statement("ReadStoreKeys")["Action"]) == ["secretsmanager:GetSecretValue"]
    decrypt = statement("DecryptStoreKeys")
    assert decrypt["Resource"] == SECRET_KEY_ARN
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}
    }
    every_action = {action for s in policy_statements(template()) for action in as_list(s["Action"])}
    assert not {action for action in every_action if action.startswith("s3:Put") or action.endswith("*")}


def test_the_role_reads_only_registered_artifacts_and_describes_only_the_group():
    reads = statement("ReadRegisteredArtifacts")
    resources = [str(resource) for resource in as_list(reads["Resource"])]
    assert all("models/*" in r or "registry/*" in r for r in resources) and len(resources) == 2
    assert "model-package/turbofan-rul-dev-models/*" in str(statement("DescribeModelVersions")["Resource"])
    template().has_resource_properties(
        "AWS::IAM::Role", {"RoleName": mirror_role_name(load_settings({}).names)}
    )


def test_the_construct_is_nag_clean_with_reasons():
    outcome, _ = synthesized()
    assert outcome.blocking() == []


def test_deploying_without_the_secret_is_refused():
    settings = load_settings({"mirror": {**MIRROR, "secret_arn": None, "secret_kms_key_arn": None}})
    stack = cdk.Stack(cdk.App())
    with pytest.raises(ValueError, match=r"mirror\.secret_arn is required"):
        ModelMirror(
            stack,
            "ModelMirror",
            names=settings.names,
            mirror=settings.mirror,
            key=kms.Key(stack, "Key"),
            dead_letter_queue=sqs.Queue(stack, "Dlq"),
            alerts_topic=sns.Topic(stack, "Alerts"),
            log_retention_days=30,
        )


@pytest.mark.long
def test_the_whole_app_has_the_mirror_only_when_enabled_and_stays_nag_clean(tmp_path):
    from app import build_app

    context = {**cdk_json_context(), "settings": {"mirror": MIRROR}}
    outcome = synth_with_report(build_app(context=context, outdir=str(tmp_path)))
    assert outcome.assembly is not None, outcome.error
    assert outcome.blocking() == []
    ops = next(stack.template for stack in outcome.assembly.stacks if stack.stack_name.endswith("-ops"))
    handlers = [
        r["Properties"].get("Handler")
        for r in ops["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
    ]
    assert "lambdas.mirror_model.handler.handler" in handlers
