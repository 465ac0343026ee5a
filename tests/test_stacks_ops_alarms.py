"""The Ops stack's function roles, key policy, alarms and dashboard, and what it asks of the other stacks."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template
from cdk_helpers import as_list
from ops_helpers import NAMES, SETTINGS, of_type, resources_fixture, stack_of, template_fixture  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


def _alarm(resources: dict, name: str) -> dict:
    (alarm,) = [
        r
        for r in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if r["Properties"]["AlarmName"] == name
    ]
    return alarm["Properties"]


def _policy_statements(resources: dict, role_name: str) -> list[dict]:
    """Statements of the managed policies attached to the named role (LeastPrivilegeRole: exactly one)."""
    (role,) = [
        r for r in of_type(resources, "AWS::IAM::Role").values() if r["Properties"]["RoleName"] == role_name
    ]
    policy_ids = [arn["Ref"] for arn in role["Properties"]["ManagedPolicyArns"]]
    return [s for key in policy_ids for s in resources[key]["Properties"]["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize(
    "role_name", [NAMES.deploy_role, NAMES.start_pipeline_role, NAMES.publish_metrics_role]
)
def test_function_roles_use_star_only_where_aws_requires_it(resources, role_name):
    statements = _policy_statements(resources, role_name)
    assert statements
    allowed_on_star = {
        "sagemaker:ListModelPackages",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "cloudwatch:PutMetricData",
    }
    for statement in statements:
        if "*" in as_list(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= allowed_on_star, statement
        assert all("*" not in action for action in as_list(statement["Action"])), statement
    roles = of_type(resources, "AWS::IAM::Role").values()
    assert all("Policies" not in r["Properties"] for r in roles)  # no inline policies


def test_metrics_role_reads_evaluations_and_puts_only_the_quality_namespace(resources):
    statements = {s["Sid"]: s for s in _policy_statements(resources, NAMES.publish_metrics_role)}
    arn = "arn:aws:sagemaker:eu-west-1:111111111111"
    assert statements["ListExecutionSteps"]["Action"] == "sagemaker:ListPipelineExecutionSteps"
    assert statements["ListExecutionSteps"]["Resource"] == f"{arn}:pipeline/{NAMES.pipeline}/execution/*"
    assert statements["DescribeEvaluationJobs"]["Action"] == "sagemaker:DescribeProcessingJob"
    assert statements["DescribeEvaluationJobs"]["Resource"] == f"{arn}:processing-job/pipelines-*"
    assert statements["ReadEvaluationReports"]["Action"] == "s3:GetObject"
    assert statements["ReadEvaluationReports"]["Resource"] == (
        f"arn:aws:s3:::{NAMES.artifacts_bucket}/{NAMES.registry_prefix}*"  # kept with the registered package
    )
    assert statements["DecryptEvaluationReports"]["Action"] == "kms:Decrypt"
    put = statements["PutModelQualityMetrics"]
    assert (put["Action"], put["Resource"]) == ("cloudwatch:PutMetricData", "*")
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": "TurbofanRul/ModelQuality"}}
    actions = {action for s in statements.values() for action in as_list(s["Action"])}
    assert not {a for a in actions if a.startswith(("s3:Put", "s3:Delete", "sagemaker:Create"))}


def test_deploy_role_passes_only_the_model_role_to_sagemaker(resources):
    statements = _policy_statements(resources, NAMES.deploy_role)
    (pass_role,) = [s for s in statements if "iam:PassRole" in as_list(s["Action"])]
    assert pass_role["Resource"] == f"arn:aws:iam::111111111111:role/{NAMES.model_role}"
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def _notifies_alerts_topic(alarm: dict) -> bool:
    return len(alarm["AlarmActions"]) == 1 and "AlertsTopic" in json.dumps(alarm["AlarmActions"][0])


def test_endpoint_5xx_alarm(resources):
    alarm = _alarm(resources, f"{NAMES.prefix}-endpoint-5xx-errors")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "AWS/SageMaker",
        "Invocation5XXErrors",
        "Sum",
    )
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
        "EndpointName": NAMES.endpoint,
        "VariantName": "AllTraffic",
    }
    assert alarm["Threshold"] == SETTINGS.serving.error_alarm_threshold
    assert alarm["TreatMissingData"] == "notBreaching"
    assert _notifies_alerts_topic(alarm)


def test_model_errors_alarm(resources):
    alarm = _alarm(resources, f"{NAMES.prefix}-endpoint-model-errors")
    assert alarm["MetricName"] == "InvocationModelErrors"
    assert _notifies_alerts_topic(alarm)


def test_latency_alarm_converts_milliseconds_to_microseconds(resources):
    alarm = _alarm(resources, f"{NAMES.prefix}-endpoint-latency-p99")
    assert (alarm["MetricName"], alarm["ExtendedStatistic"]) == ("ModelLatency", "p99")
    assert alarm["Threshold"] == SETTINGS.serving.latency_alarm_threshold_ms * 1000 == 200_000
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert _notifies_alerts_topic(alarm)


def test_drift_alarm(resources):
    alarm = _alarm(resources, f"{NAMES.prefix}-drift")
    # Default path: the monitoring pipeline's drift job; the metrics function publishes its namespace.
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        "TurbofanRul/Drift",
        SETTINGS.monitoring.drift_metric,
    )
    assert alarm["Dimensions"] == [{"Name": "Endpoint", "Value": NAMES.endpoint}]
    assert alarm["Threshold"] == SETTINGS.monitoring.drift_threshold
    assert _notifies_alerts_topic(alarm)


def test_dead_letter_queues_alarm_on_any_message(resources):
    alarms = [
        r["Properties"]
        for r in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if r["Properties"]["AlarmName"].endswith("-dead-letters")
    ]
    assert len(alarms) == 5
    for alarm in alarms:
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible" and alarm["Threshold"] == 1
        assert _notifies_alerts_topic(alarm)


def test_dashboard_shows_endpoint_drift_pipeline_and_quality_metrics(resources):
    (dashboard,) = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in (
        "Invocations",
        "Invocation5XXErrors",
        "InvocationModelErrors",
        "ModelLatency",
        "MaxPSI",
        "DriftedFeatures",
        "AWS/Sagemaker/ModelBuildingPipeline",
        "ExecutionStarted",
        "ExecutionSucceeded",
        "ExecutionFailed",
        "TurbofanRul/ModelQuality",
        "RMSE",
        "PHM08Score",
        "RMSECappedTruth",
        "Registered",
        f'\\"PipelineName\\",\\"{NAMES.pipeline}\\"',  # the evaluation metrics' dimension
    ):
        assert metric in body, metric


def test_key_policy_admits_the_function_roles_and_eventbridge(app):
    (key,) = Template.from_stack(stack_of(app, "Key")).find_resources("AWS::KMS::Key").values()
    statements = {s["Sid"]: s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    roles = statements["UseByProjectRoles"]["Condition"]["ArnEquals"]["aws:PrincipalArn"]
    for name in (NAMES.deploy_role, NAMES.start_pipeline_role, NAMES.publish_metrics_role):
        assert f"arn:aws:iam::111111111111:role/{name}" in roles
    assert "events.amazonaws.com" in statements["PublishToEncryptedAlertsTopic"]["Principal"]["Service"]


def test_model_role_writes_data_capture_and_job_role_writes_monitoring_reports(app):
    template = Template.from_stack(stack_of(app, "Iam"))
    statements = {
        s.get("Sid"): s
        for policy in template.find_resources("AWS::IAM::ManagedPolicy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    }
    capture = statements["WriteDataCaptureAndMonitoring"]  # the endpoint model's role
    assert set(as_list(capture["Resource"])) == {
        f"arn:aws:s3:::{NAMES.artifacts_bucket}/datacapture/*",
        f"arn:aws:s3:::{NAMES.artifacts_bucket}/monitoring/*",
    }
    reports = statements["WriteMonitoringReports"]  # the monitoring pipeline's jobs
    assert as_list(reports["Resource"]) == [f"arn:aws:s3:::{NAMES.artifacts_bucket}/monitoring/*"]
    for statement in (capture, reports):
        assert "s3:PutObject" in statement["Action"]


def test_function_security_group_is_admitted_by_the_vpc_endpoints(resources):
    (ingress,) = of_type(resources, "AWS::EC2::SecurityGroupIngress").values()
    assert (ingress["Properties"]["FromPort"], ingress["Properties"]["ToPort"]) == (443, 443)
    (group_id,) = of_type(resources, "AWS::EC2::SecurityGroup")
    assert ingress["Properties"]["SourceSecurityGroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}
    egress = of_type(resources, "AWS::EC2::SecurityGroup")[group_id]["Properties"]["SecurityGroupEgress"]
    assert [(rule["FromPort"], rule["ToPort"]) for rule in egress] == [(443, 443)]


def test_deploy_role_has_no_model_monitor_action_by_default(resources):
    """Model Monitor is off by default (closed to new customers): the role cannot touch a schedule."""
    statements = _policy_statements(resources, NAMES.deploy_role)
    actions = {action for s in statements for action in as_list(s["Action"])}
    assert not {a for a in actions if "Monitoring" in a or "JobDefinition" in a}


def test_deploy_role_copies_registered_baselines_to_the_champion(resources):
    statements = {s["Sid"]: s for s in _policy_statements(resources, NAMES.deploy_role)}
    bucket = f"arn:aws:s3:::{NAMES.artifacts_bucket}"
    read = statements["ReadRegisteredBaselines"]
    assert (read["Action"], read["Resource"]) == ("s3:GetObject", f"{bucket}/{NAMES.registry_prefix}*")
    publish = statements["PublishChampion"]
    assert publish["Resource"] == f"{bucket}/{NAMES.champion_prefix}*"  # baselines/ included
    assert {"s3:PutObject", "s3:DeleteObject"} <= set(as_list(publish["Action"]))
