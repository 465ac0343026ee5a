"""What starts the training pipeline: a schedule, new raw data, and drift.

* ``ScheduleRule`` — ``pipeline.schedule_expression`` (none when it is unset) starts the pipeline
  directly (an EventBridge SageMaker-pipeline target, assuming the Iam stack's trigger role) on all the
  raw data.
* ``NewDataRule`` — S3 ``Object Created`` events of the data bucket under ``raw/`` (the bucket sends its
  events to EventBridge) invoke the ``start_pipeline`` function, which debounces a burst of files into
  one execution on the files' folder.
* ``DriftRule`` — the drift alarm entering ALARM ("CloudWatch Alarm State Change") starts a retraining
  execution on all the raw data, like the schedule.

Every target has a retry policy and the shared, KMS-encrypted dead-letter queue of EventBridge targets.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from pipeline_steps.names import INPUT_DATA_URI
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
        trigger_role: iam.IRole,
        drift_alarm: cloudwatch.IAlarm,
        dead_letter_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.names = names
        self.dead_letter_queue = dead_letter_queue
        self.trigger_role = trigger_role
        self.pipeline_arn = cdk.Stack.of(self).format_arn(
            service="sagemaker", resource="pipeline", resource_name=names.pipeline
        )
        self.all_raw_data_uri = f"s3://{names.data_bucket}/{names.raw_data_prefix}"
        self.schedule_rule = self._create_schedule_rule(schedule_expression) if schedule_expression else None
        self.start_function = self._create_start_function(monitoring, key, network)
        self.new_data_rule = self._create_new_data_rule()
        self.drift_rule = self._create_drift_rule(drift_alarm)

    def _pipeline_target(self) -> dict[str, object]:
        """Start the pipeline on every file under raw/ (the definition's default, made explicit)."""
        return {
            "id": "TrainingPipeline",
            "arn": self.pipeline_arn,
            "role_arn": self.trigger_role.role_arn,
            "sage_maker_pipeline_parameters": events.CfnRule.SageMakerPipelineParametersProperty(
                pipeline_parameter_list=[
                    events.CfnRule.SageMakerPipelineParameterProperty(
                        name=INPUT_DATA_URI, value=self.all_raw_data_uri
                    )
                ]
            ),
        }

    def _create_schedule_rule(self, schedule_expression: str) -> events.CfnRule:
        return add_rule(
            self,
            "ScheduleRule",
            rule_name=f"{self.names.prefix}-scheduled-training",
            description=f"Start {self.names.pipeline} on a schedule",
            schedule_expression=schedule_expression,
            target=self._pipeline_target(),
            dead_letter_queue=self.dead_letter_queue,
        )

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
                handler="start_pipeline.handler.handler",
                description="Starts the training pipeline once per burst of new raw-data files",
                environment={
                    "PIPELINE_NAME": names.pipeline,
                    "DATA_BUCKET": names.data_bucket,
                    "RAW_PREFIX": names.raw_data_prefix,
                    "ALLOWED_SUFFIXES": ",".join(monitoring.raw_data_suffixes),
                    "DEBOUNCE_SECONDS": str(monitoring.new_data_debounce_seconds),
                },
                timeout=cdk.Duration.seconds(60),
                # One at a time: the debounce check then always sees the execution an earlier file started.
                reserved_concurrency=1,
            ),
            names=names,
            key=key,
            network=network,
            log_retention_days=monitoring.log_retention_days,
        )
        start.role.allow(
            "StartAndListProjectPipeline",
            ["sagemaker:StartPipelineExecution", "sagemaker:ListPipelineExecutions"],
            [self.pipeline_arn],
        )
        start.role.acknowledge_wildcards()
        return start

    def _create_new_data_rule(self) -> events.CfnRule:
        function = self.start_function.function
        rule = add_rule(
            self,
            "NewDataRule",
            rule_name=f"{self.names.prefix}-new-raw-data",
            description=f"New objects under s3://{self.names.data_bucket}/{self.names.raw_data_prefix}",
            event_pattern={
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": [self.names.data_bucket]},
                    "object": {"key": [{"prefix": self.names.raw_data_prefix}]},
                },
            },
            target={"id": "StartPipelineFunction", "arn": function.function_arn},
            dead_letter_queue=self.dead_letter_queue,
        )
        function.add_permission("InvokedByNewDataRule", principal=EVENTS, source_arn=rule.attr_arn)
        return rule

    def _create_drift_rule(self, drift_alarm: cloudwatch.IAlarm) -> events.CfnRule:
        return add_rule(
            self,
            "DriftRule",
            rule_name=f"{self.names.prefix}-retrain-on-drift",
            description=f"Retrain {self.names.pipeline} when the drift alarm enters ALARM",
            event_pattern={
                "source": ["aws.cloudwatch"],
                "detail-type": ["CloudWatch Alarm State Change"],
                "resources": [drift_alarm.alarm_arn],
                "detail": {"state": {"value": ["ALARM"]}},
            },
            target=self._pipeline_target(),
            dead_letter_queue=self.dead_letter_queue,
        )
