"""What starts the training pipeline: a schedule, new raw data, and drift — all through one function.

* ``ScheduleRule`` — ``pipeline.schedule_expression`` (none when it is unset) invokes the
  ``start_pipeline`` function with the input ``{"reason": "schedule", "InputDataUri": s3://<data>/raw/}``.
* ``NewDataRule`` — S3 ``Object Created`` events of the data bucket under ``raw/`` (the bucket sends its
  events to EventBridge) invoke the function, which debounces a burst of files into one execution on the
  files' folder.
* ``DriftRule`` — the drift alarm entering ALARM ("CloudWatch Alarm State Change") invokes the function
  with ``{"reason": "drift", "InputDataUri": s3://<data>/raw/}``.

No rule targets the pipeline directly: a static target cannot compute the input's data version, and
SageMaker's step cache, keyed by the steps' arguments, would then reuse the old outputs for 30 days. The
function lists the input prefix, passes ``DataVersion`` and ``RegisteredDataVersion`` (see
``lambdas/start_pipeline``) and starts nothing when the newest registered model was trained on the same
data. Its role may list the raw prefix, read the project's model registry and start and list the
project's pipeline executions, nothing else. Every target has a retry policy and the shared,
KMS-encrypted dead-letter queue of EventBridge targets.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.start_pipeline import config as start_config
from lambdas.start_pipeline.events import DRIFT, SCHEDULE, rule_input
from settings import MonitoringSettings, ResourceNames
from stacks.ops_common import EVENTS, FunctionSpec, LambdaNetwork, OpsFunction, add_rule


class PipelineTriggers(Construct):
    """Rules ``schedule_rule`` (or None), ``new_data_rule``, ``drift_rule``; the ``start_function``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        schedule_expression: str | None,
        monitoring: MonitoringSettings,
        key: kms.IKey,
        network: LambdaNetwork,
        drift_alarm: cloudwatch.IAlarm,
        dead_letter_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.names = names
        self.dead_letter_queue = dead_letter_queue
        stack = cdk.Stack.of(self)
        self.pipeline_arn = stack.format_arn(
            service="sagemaker", resource="pipeline", resource_name=names.pipeline
        )
        self.data_bucket_arn = f"arn:{stack.partition}:s3:::{names.data_bucket}"
        self.all_raw_data_uri = f"s3://{names.data_bucket}/{names.raw_data_prefix}"
        self.start_function = self._create_start_function(monitoring, key, network)
        self.schedule_rule = self._create_schedule_rule(schedule_expression) if schedule_expression else None
        self.new_data_rule = self._create_new_data_rule()
        self.drift_rule = self._create_drift_rule(drift_alarm)

    def _function_target(self, target_id: str, reason: str | None = None) -> dict[str, object]:
        """Invoke the start function; with a `reason`, on all of raw/ (the rule's constant input)."""
        target: dict[str, object] = {"id": target_id, "arn": self.start_function.function.function_arn}
        if reason is not None:
            target["input"] = json.dumps(rule_input(reason, self.all_raw_data_uri), sort_keys=True)
        return target

    def _invoked_by(self, rule: events.CfnRule, permission_id: str) -> None:
        self.start_function.function.add_permission(permission_id, principal=EVENTS, source_arn=rule.attr_arn)

    def _create_schedule_rule(self, schedule_expression: str) -> events.CfnRule:
        rule = add_rule(
            self,
            "ScheduleRule",
            rule_name=f"{self.names.prefix}-scheduled-training",
            description=f"Start {self.names.pipeline} on a schedule, if the raw data changed",
            schedule_expression=schedule_expression,
            target=self._function_target("StartPipelineOnSchedule", SCHEDULE),
            dead_letter_queue=self.dead_letter_queue,
        )
        self._invoked_by(rule, "InvokedByScheduleRule")
        return rule

    def _create_start_function(
        self, monitoring: MonitoringSettings, key: kms.IKey, network: LambdaNetwork
    ) -> OpsFunction:
        names = self.names
        start = OpsFunction(
            self,
            "StartPipeline",
            spec=FunctionSpec(
                name="start-pipeline",
                role_name=names.start_pipeline_role,
                handler="lambdas.start_pipeline.handler.handler",
                description="Starts the training pipeline on new, scheduled or drift-triggered data versions",
                environment={
                    start_config.ENV_PIPELINE: names.pipeline,
                    start_config.ENV_BUCKET: names.data_bucket,
                    start_config.ENV_RAW_PREFIX: names.raw_data_prefix,
                    start_config.ENV_SUFFIXES: ",".join(monitoring.raw_data_suffixes),
                    start_config.ENV_DEBOUNCE: str(monitoring.new_data_debounce_seconds),
                    start_config.ENV_GROUP: names.model_package_group,
                },
                # Listing the prefix and the registry adds a few calls; concurrent invocations are made
                # safe by the start request's idempotency token (see the handler).
                timeout=cdk.Duration.seconds(60),
            ),
            names=names,
            key=key,
            network=network,
            log_retention_days=monitoring.log_retention_days,
        )
        self._allow_start(start)
        return start

    def _allow_start(self, start: OpsFunction) -> None:
        names, role = self.names, start.role
        role.allow(
            "StartAndListProjectPipeline",
            ["sagemaker:StartPipelineExecution", "sagemaker:ListPipelineExecutions"],
            [self.pipeline_arn],
        )
        role.allow(
            "ListRawData",
            ["s3:ListBucket"],
            [self.data_bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{names.raw_data_prefix}*"]}},
        )
        role.allow(
            "DescribeModelVersions",
            ["sagemaker:DescribeModelPackage"],
            [
                cdk.Stack.of(self).format_arn(
                    service="sagemaker",
                    resource="model-package",
                    resource_name=f"{names.model_package_group}/*",
                )
            ],
            wildcard_reason="model package versions are numbered by the registry inside the project's group",
        )
        role.allow(
            "ListModelVersions",
            ["sagemaker:ListModelPackages"],
            ["*"],
            wildcard_reason="sagemaker:ListModelPackages supports no resource-level permissions",
        )
        role.acknowledge_wildcards()

    def _create_new_data_rule(self) -> events.CfnRule:
        rule = add_rule(
            self,
            "NewDataRule",
            rule_name=f"{self.names.prefix}-new-raw-data",
            description=f"New objects under {self.all_raw_data_uri}",
            event_pattern={
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": [self.names.data_bucket]},
                    "object": {"key": [{"prefix": self.names.raw_data_prefix}]},
                },
            },
            target=self._function_target("StartPipelineFunction"),
            dead_letter_queue=self.dead_letter_queue,
        )
        self._invoked_by(rule, "InvokedByNewDataRule")
        return rule

    def _create_drift_rule(self, drift_alarm: cloudwatch.IAlarm) -> events.CfnRule:
        rule = add_rule(
            self,
            "DriftRule",
            rule_name=f"{self.names.prefix}-retrain-on-drift",
            description=f"Retrain {self.names.pipeline} on drift (alarm in ALARM), if the raw data changed",
            event_pattern={
                "source": ["aws.cloudwatch"],
                "detail-type": ["CloudWatch Alarm State Change"],
                "resources": [drift_alarm.alarm_arn],
                "detail": {"state": {"value": ["ALARM"]}},
            },
            target=self._function_target("StartPipelineOnDrift", DRIFT),
            dead_letter_queue=self.dead_letter_queue,
        )
        self._invoked_by(rule, "InvokedByDriftRule")
        return rule
