"""The Ops stack's rules, targets, queues and functions (roles and alarms: `test_stacks_ops_alarms.py`).

The session's whole app (with the cdk-nag plugins, tests/conftest.py) is synthesized once per module; the
tests read the template. The functions' environments are checked against the settings and fed, with the
cross-stack tokens replaced by well-formed ids, to the handlers' own ``load_config``.
"""

from __future__ import annotations

import json

import pytest
from ops_helpers import NAMES, SETTINGS, of_type, resources_fixture, stack_of, template_fixture  # noqa: F401 - fixtures

from lambdas.deploy_on_approval import config as deploy_config
from lambdas.publish_model_metrics import handler as publish_handler
from lambdas.publish_model_metrics import monitoring as publish_monitoring
from lambdas.start_pipeline import handler as start_handler
from pipeline_steps.names import INPUT_DATA_URI

pytestmark = pytest.mark.slow


def _rule(resources: dict, name: str) -> dict:
    (rule,) = [r for r in of_type(resources, "AWS::Events::Rule").values() if r["Properties"]["Name"] == name]
    return rule["Properties"]


def _function(resources: dict, name: str) -> tuple[str, dict]:
    (found,) = [
        (key, r)
        for key, r in of_type(resources, "AWS::Lambda::Function").items()
        if r["Properties"]["FunctionName"] == f"{NAMES.prefix}-{name}"
    ]
    return found


PIPELINE_ARN = f"arn:aws:sagemaker:eu-west-1:111111111111:pipeline/{NAMES.pipeline}"


# Rules ----------------------------------------------------------------------------------------------


def test_schedule_rule_starts_the_pipeline_on_all_raw_data(resources):
    """Through the start function, which computes the data version (tests/test_triggers_data_version.py)."""
    rule = _rule(resources, f"{NAMES.prefix}-scheduled-training")
    assert rule["ScheduleExpression"] == SETTINGS.pipeline.schedule_expression
    (target,) = rule["Targets"]
    function_id, _ = _function(resources, "start-pipeline")
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert json.loads(target["Input"])[INPUT_DATA_URI] == f"s3://{NAMES.data_bucket}/{NAMES.raw_data_prefix}"


def test_new_data_rule_matches_objects_under_the_raw_prefix(resources):
    rule = _rule(resources, f"{NAMES.prefix}-new-raw-data")
    assert rule["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [NAMES.data_bucket]},
            "object": {"key": [{"prefix": NAMES.raw_data_prefix}]},
        },
    }
    function_id, _ = _function(resources, "start-pipeline")
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}


def test_drift_alarm_entering_alarm_starts_retraining(resources):
    rule = _rule(resources, f"{NAMES.prefix}-retrain-on-drift")
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.cloudwatch"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    assert pattern["detail"] == {"state": {"value": ["ALARM"]}}
    (alarm_ref,) = pattern["resources"]
    alarm_id = alarm_ref["Fn::GetAtt"][0]
    assert resources[alarm_id]["Properties"]["AlarmName"] == f"{NAMES.prefix}-drift"
    function_id, _ = _function(resources, "start-pipeline")
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}


def test_model_package_rule_sends_our_groups_decisions_to_the_deploy_function(resources):
    rule = _rule(resources, f"{NAMES.prefix}-model-approval")
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {
            "ModelPackageGroupName": [NAMES.model_package_group],
            "ModelApprovalStatus": ["Approved", "Rejected"],
        },
    }
    function_id, _ = _function(resources, "deploy-on-approval")
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}


def test_failed_pipeline_executions_reach_the_alerts_topic_readably(resources):
    rule = _rule(resources, f"{NAMES.prefix}-pipeline-failed")
    assert rule["EventPattern"]["detail-type"] == [
        "SageMaker Model Building Pipeline Execution Status Change"
    ]
    assert rule["EventPattern"]["detail"] == {
        "pipelineArn": [PIPELINE_ARN],
        "currentPipelineExecutionStatus": ["Failed"],
    }
    (target,) = rule["Targets"]
    assert "AlertsTopic" in json.dumps(target["Arn"])
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"]["execution"] == "$.detail.pipelineExecutionArn"
    template = transformer["InputTemplate"]
    assert template.startswith('"') and template.endswith('"')  # a plain-text SNS message
    assert all(f"<{key}>" in template for key in transformer["InputPathsMap"])


def test_finished_pipeline_executions_invoke_the_metrics_publisher(resources):
    rule = _rule(resources, f"{NAMES.prefix}-publish-model-metrics")
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
        # Failed too: a rejected model ends the execution in the FailQualityGate step.
        "detail": {"pipelineArn": [PIPELINE_ARN], "currentPipelineExecutionStatus": ["Succeeded", "Failed"]},
    }
    assert tuple(rule["EventPattern"]["detail"]["currentPipelineExecutionStatus"]) == (
        publish_handler.HANDLED_STATUSES
    )
    function_id, _ = _function(resources, "publish-model-metrics")
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 8}
    assert "event-targets-dlq" in json.dumps(resources[target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]])
    permissions = [
        r["Properties"]
        for r in of_type(resources, "AWS::Lambda::Permission").values()
        if r["Properties"]["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    # One per rule: the training pipeline's and the monitoring pipeline's finished executions.
    assert len(permissions) == 2
    rules = of_type(resources, "AWS::Events::Rule")
    for permission in permissions:
        assert permission["Principal"] == "events.amazonaws.com"
        assert permission["SourceArn"]["Fn::GetAtt"][0] in rules


def test_every_target_has_a_retry_policy_and_an_encrypted_dead_letter_queue(resources):
    rules = of_type(resources, "AWS::Events::Rule")
    assert len(rules) == 9  # with the backup's deployment and schedule rules
    queue_policies = of_type(resources, "AWS::SQS::QueuePolicy").values()
    for rule in rules.values():
        (target,) = rule["Properties"]["Targets"]
        assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 8}
        queue_id = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        assert "KmsMasterKeyId" in resources[queue_id]["Properties"]
        # The queue's policy lets EventBridge send for this rule only.
        statements = [
            s
            for policy in queue_policies
            if {"Ref": queue_id} in policy["Properties"]["Queues"]
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        ]
        rule_id = next(key for key, value in rules.items() if value is rule)
        assert any(
            s["Effect"] == "Allow"
            and s["Principal"] == {"Service": "events.amazonaws.com"}
            and s["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}
            for s in statements
        ), rule_id


def test_every_queue_is_kms_encrypted_and_tls_only(resources):
    queues = of_type(resources, "AWS::SQS::Queue")
    assert len(queues) == 5
    for queue_id, queue in queues.items():
        assert "DataKey" in json.dumps(queue["Properties"]["KmsMasterKeyId"])  # the project key
        statements = [
            s
            for policy in of_type(resources, "AWS::SQS::QueuePolicy").values()
            if {"Ref": queue_id} in policy["Properties"]["Queues"]
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        ]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        ), queue_id


# Functions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["start-pipeline", "deploy-on-approval", "publish-model-metrics"])
def test_functions_run_in_the_vpc_unreserved_with_two_retries_and_a_failure_queue(resources, name):
    function_id, function = _function(resources, name)
    props = function["Properties"]
    assert props["Runtime"] == "python3.12"
    # No reservation: a new account's quota is 10 and all 10 must stay unreserved (the handlers are
    # idempotent instead, see each one's docstring).
    assert "ReservedConcurrentExecutions" not in props
    assert props["VpcConfig"]["SubnetIds"] and props["VpcConfig"]["SecurityGroupIds"]
    queue_id = props["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
    assert "KmsMasterKeyId" in resources[queue_id]["Properties"]
    log_group = resources[props["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
    assert log_group["LogGroupName"] == f"{NAMES.log_group_prefix}lambda/{name}"
    assert "KmsKeyId" in log_group and log_group["RetentionInDays"] == SETTINGS.monitoring.log_retention_days
    (invoke_config,) = [
        r["Properties"]
        for r in of_type(resources, "AWS::Lambda::EventInvokeConfig").values()
        if r["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    assert invoke_config["MaximumRetryAttempts"] == 2


def _environment(resources, name: str) -> dict:
    return _function(resources, name)[1]["Properties"]["Environment"]["Variables"]


def _concrete(environment: dict) -> dict[str, str]:
    """Replace cross-stack tokens with well-formed values, as CloudFormation would at deploy time."""
    fake = {
        "SUBNET_IDS": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
        "SECURITY_GROUP_IDS": "sg-0123456789abcdef0",
        "KMS_KEY_ARN": "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    }
    return {key: fake.get(key, value) for key, value in environment.items()}


def test_start_function_environment_matches_settings_and_its_handler_accepts_it(resources):
    environment = _environment(resources, "start-pipeline")
    assert environment == {
        "PIPELINE_NAME": NAMES.pipeline,
        "DATA_BUCKET": NAMES.data_bucket,
        "RAW_PREFIX": NAMES.raw_data_prefix,
        "ALLOWED_SUFFIXES": ".txt",
        "DEBOUNCE_SECONDS": "300",
        "MODEL_PACKAGE_GROUP_NAME": NAMES.model_package_group,
    }
    config = start_handler.load_config(environment)
    assert config.debounce_seconds == SETTINGS.monitoring.new_data_debounce_seconds


def test_deploy_function_environment_matches_settings_and_its_handler_accepts_it(resources):
    environment = _environment(resources, "deploy-on-approval")
    serving, strategy = SETTINGS.serving, SETTINGS.serving.deployment
    expected = {
        "MODEL_PACKAGE_GROUP_NAME": NAMES.model_package_group,
        "ENDPOINT_NAME": NAMES.endpoint,
        "MODEL_EXECUTION_ROLE_ARN": f"arn:aws:iam::111111111111:role/{NAMES.model_role}",
        "DATA_CAPTURE_S3_URI": f"s3://{NAMES.artifacts_bucket}/datacapture/",
        "DATA_CAPTURE_PERCENT": str(serving.data_capture_percent),
        "DATA_CAPTURE_MODE": "container",
        "USE_MODEL_MONITOR": "false",
        "INSTANCE_TYPE": serving.instance_type,
        "INSTANCE_COUNT": "2",
        "DEPLOYMENT_STRATEGY": strategy.type,
        "TRAFFIC_PERCENT": str(strategy.traffic_percent),
        "TRAFFIC_WAIT_SECONDS": str(strategy.wait_minutes * 60),
        "TERMINATION_WAIT_SECONDS": str(strategy.termination_wait_minutes * 60),
        "ROLLBACK_ALARM_NAMES": f"{NAMES.prefix}-endpoint-5xx-errors,{NAMES.prefix}-endpoint-latency-p99",
        "ARTIFACTS_BUCKET": NAMES.artifacts_bucket,
        "CHAMPION_PREFIX": NAMES.champion_prefix,
    }
    # Default settings: no Model Monitor, so none of the schedule's variables (tests/test_stacks_deployment.py
    # builds the construct with it on).
    assert {key: environment[key] for key in expected} == expected
    assert not {key for key in environment if key.startswith(("MONITORING_", "DRIFT_"))}
    config = deploy_config.load_config(_concrete(environment))
    assert config.traffic.wait_seconds == 600 and config.traffic.termination_wait_seconds == 300
    assert config.monitoring is None and config.capture_mode == "container"


def test_metrics_function_environment_matches_settings_and_its_handler_accepts_it(resources):
    environment = _environment(resources, "publish-model-metrics")
    assert environment == {
        "PIPELINE_NAME": NAMES.pipeline,
        "METRICS_NAMESPACE": "TurbofanRul/ModelQuality",
        "EVALUATE_STEP_NAME": "EvaluateModel",
        "REGISTER_STEP_NAME": "RegisterModel",
        "MONITORING_PIPELINE_NAME": NAMES.monitoring_pipeline,
        "MONITORING_REPORTS_BUCKET": NAMES.artifacts_bucket,
        "MONITORING_REPORTS_PREFIX": NAMES.monitoring_prefix,
        "MONITORING_NAMESPACES": "TurbofanRul/Drift,TurbofanRul/ModelQuality",
    }
    assert publish_monitoring.load_monitoring_config(environment) is not None
    config = publish_handler.load_config(environment)
    assert config.namespace == "TurbofanRul/ModelQuality"


# Alarms ---------------------------------------------------------------------------------------------


# What the other stacks give the Ops stack ---------------------------------------------------------
