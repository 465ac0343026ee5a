"""The monitoring pipeline on AWS: the pipeline resource, its schedule, the metrics rule and the alarms.

Reads the templates of the whole app, synthesized once per session with the cdk-nag plugins (conftest).
"""

from __future__ import annotations

import pytest
from cdk_helpers import json_text, resources_of

from pipeline_steps import monitoring_names as mnames
from settings import MonitoringSettings, load_settings
from stacks.monitoring_dashboard import (
    MODEL_MONITOR_DRIFT_NAMESPACE,
    PIPELINE_DRIFT_NAMESPACE,
    drift_namespace,
)

pytestmark = pytest.mark.slow

SETTINGS = load_settings()
NAMES = SETTINGS.names


def test_the_monitoring_pipeline_is_deployed_inline_with_its_two_steps(templates):
    pipelines = {
        p["Properties"]["PipelineName"]: p for p in resources_of(templates, "AWS::SageMaker::Pipeline")
    }
    monitoring = pipelines[NAMES.monitoring_pipeline]["Properties"]
    body = json_text(monitoring["PipelineDefinition"]["PipelineDefinitionBody"])
    for step in mnames.STEP_NAMES:
        assert step in body
    assert (
        mnames.WINDOW_SCRIPT in body and f"s3://{NAMES.artifacts_bucket}/{NAMES.data_capture_prefix}" in body
    )
    assert monitoring["RoleArn"] == pipelines[NAMES.pipeline]["Properties"]["RoleArn"]  # the pipeline role


def test_eventbridge_scheduler_starts_it_hourly_as_the_trigger_role(templates):
    (schedule,) = [  # the batch pipeline has a schedule of its own
        s
        for s in resources_of(templates, "AWS::Scheduler::Schedule")
        if NAMES.monitoring_pipeline in json_text(s)
    ]
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == SETTINGS.monitoring.schedule_cron
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = props["Target"]
    assert f"pipeline/{NAMES.monitoring_pipeline}" in json_text(target["Arn"])
    assert "SageMakerPipelineParameters" in target
    assert "RetryPolicy" in target
    assert "Trigger" in json_text(target["RoleArn"]) or NAMES.scheduler_role in json_text(target["RoleArn"])


def test_finished_monitoring_executions_reach_the_metrics_function(templates):
    rules = {r["Properties"]["Name"]: r["Properties"] for r in resources_of(templates, "AWS::Events::Rule")}
    rule = rules[f"{NAMES.prefix}-publish-monitoring-metrics"]
    pattern = rule["EventPattern"]
    assert f"pipeline/{NAMES.monitoring_pipeline}" in json_text(pattern["detail"]["pipelineArn"])
    assert pattern["detail"]["currentPipelineExecutionStatus"] == ["Succeeded", "Failed"]
    functions = [
        f["Properties"]
        for f in resources_of(templates, "AWS::Lambda::Function")
        if "MONITORING_PIPELINE_NAME" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    (function,) = functions
    variables = function["Environment"]["Variables"]
    assert variables["MONITORING_PIPELINE_NAME"] == NAMES.monitoring_pipeline
    assert variables["MONITORING_REPORTS_PREFIX"] == NAMES.monitoring_prefix
    assert PIPELINE_DRIFT_NAMESPACE in variables["MONITORING_NAMESPACES"].split(",")


def test_the_metrics_role_puts_only_the_monitoring_namespaces(templates):
    statements = [
        s
        for policy in resources_of(templates, "AWS::IAM::ManagedPolicy")
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "PutMonitoringMetrics"
    ]
    (statement,) = statements
    namespaces = statement["Condition"]["StringEquals"]["cloudwatch:namespace"]
    assert PIPELINE_DRIFT_NAMESPACE in namespaces and len(namespaces) == 2


def test_drift_alarm_reads_the_pipeline_namespace_and_silence_breaches(templates):
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in resources_of(templates, "AWS::CloudWatch::Alarm")
    }
    drift = alarms[f"{NAMES.prefix}-drift"]
    assert drift["Namespace"] == PIPELINE_DRIFT_NAMESPACE
    assert drift["Dimensions"] == [{"Name": "Endpoint", "Value": NAMES.endpoint}]
    silent = alarms[f"{NAMES.prefix}-monitoring-silent"]
    metrics = {query["Id"]: query for query in silent["Metrics"]}
    assert metrics[next(i for i in metrics if "Expression" in metrics[i])]["Expression"] == (
        "IF(FILL(invocations, 0) > 0, FILL(datapoints, 0), 1)"
    )
    datapoints = metrics["datapoints"]["MetricStat"]
    assert (
        datapoints["Metric"]["Namespace"] == PIPELINE_DRIFT_NAMESPACE and datapoints["Stat"] == "SampleCount"
    )
    assert datapoints["Period"] == SETTINGS.monitoring.silent_alarm_hours * 3600
    invocations = metrics["invocations"]["MetricStat"]["Metric"]
    assert (invocations["Namespace"], invocations["MetricName"]) == ("AWS/SageMaker", "Invocations")
    assert silent["TreatMissingData"] == "notBreaching"  # no traffic, or no endpoint yet, is not silence
    assert silent["ComparisonOperator"] == "LessThanThreshold"
    assert silent["AlarmActions"]


def test_model_monitor_setting_moves_the_drift_alarm_to_its_namespace():
    assert drift_namespace(MonitoringSettings()) == PIPELINE_DRIFT_NAMESPACE
    assert drift_namespace(MonitoringSettings(use_model_monitor=True)) == MODEL_MONITOR_DRIFT_NAMESPACE
