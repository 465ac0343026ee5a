"""The batch-scoring pipeline on AWS: the pipeline resource and its daily schedule.

Reads the templates of the whole app, synthesized once per session with the cdk-nag plugins (conftest).
"""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from cdk_helpers import cdk_json_context, json_text, resources_of

from app import build_app
from pipeline_steps import batch_names as bnames
from settings import load_settings

pytestmark = pytest.mark.slow

SETTINGS = load_settings()
NAMES = SETTINGS.names


def batch_schedule(templates) -> dict:
    (schedule,) = [
        s["Properties"]
        for s in resources_of(templates, "AWS::Scheduler::Schedule")
        if f"pipeline/{NAMES.batch_pipeline}" in json_text(s["Properties"]["Target"]["Arn"])
    ]
    return schedule


def test_the_batch_pipeline_is_deployed_inline_as_the_pipeline_role(templates):
    pipelines = {
        p["Properties"]["PipelineName"]: p for p in resources_of(templates, "AWS::SageMaker::Pipeline")
    }
    batch = pipelines[NAMES.batch_pipeline]["Properties"]
    body = json_text(batch["PipelineDefinition"]["PipelineDefinitionBody"])
    assert bnames.SCORE_STEP in body and bnames.BATCH_SCRIPT in body
    assert f"s3://{NAMES.data_bucket}/{NAMES.fleet_prefix}" in body
    assert f"s3://{NAMES.artifacts_bucket}/{NAMES.champion_prefix}" in body
    assert f'\\"{NAMES.batch_prefix.rstrip("/")}\\"' in body  # the output prefix of the Join
    assert SETTINGS.batch.instance_type in body
    assert f'\\"MaxRuntimeInSeconds\\":{SETTINGS.batch.max_runtime_minutes * 60}' in body
    assert batch["RoleArn"] == pipelines[NAMES.pipeline]["Properties"]["RoleArn"]


def test_eventbridge_scheduler_starts_it_daily_as_the_trigger_role(templates):
    schedule = batch_schedule(templates)
    assert schedule["ScheduleExpression"] == SETTINGS.batch.schedule_cron
    assert schedule["ScheduleExpressionTimezone"] == "UTC" and schedule["State"] == "ENABLED"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = schedule["Target"]
    assert target["SageMakerPipelineParameters"] == {"PipelineParameterList": []}
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 6 * 3600
    assert "TriggerRole" in json_text(target["RoleArn"]) or NAMES.scheduler_role in json_text(
        target["RoleArn"]
    )


@pytest.mark.long  # a second synth of the whole app
def test_disabled_batch_keeps_the_pipeline_and_disables_its_schedule():
    context = {
        **cdk_json_context(),
        "settings": {"batch": {"enabled": False, "schedule_cron": "cron(15 1 * * ? *)"}},
    }
    app = build_app(context=context)
    ml = next(c for c in app.node.children if isinstance(c, cdk.Stack) and c.node.id == "Ml")
    template = Template.from_stack(ml)
    template.has_resource_properties(
        "AWS::Scheduler::Schedule", {"State": "DISABLED", "ScheduleExpression": "cron(15 1 * * ? *)"}
    )
    template.has_resource_properties("AWS::SageMaker::Pipeline", {"PipelineName": NAMES.batch_pipeline})
