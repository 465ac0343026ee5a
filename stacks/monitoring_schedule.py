"""The monitoring pipeline's schedule: EventBridge Scheduler starts it, as the trigger role.

`AWS::Scheduler::Schedule` with the templated SageMaker target (`SageMakerPipelineParameters`, the
target ARN is the pipeline's ARN) on ``monitoring.schedule_cron`` (hourly by default), in UTC, with no
flexible window: every execution's window is the previous full hour(s) of its own start time, so no
parameter has to be computed by the schedule. The role is the project's trigger role (assumable by
``scheduler.amazonaws.com``, allowed ``sagemaker:StartPipelineExecution`` on both pipelines; IAM stack).
Retries: Scheduler retries a failed start for up to an hour, since a later start would look at the next
window anyway.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from settings import MonitoringSettings, ResourceNames

MAX_EVENT_AGE_SECONDS = 3600
MAX_RETRY_ATTEMPTS = 3


class MonitoringSchedule(Construct):
    """``schedule`` (the CfnSchedule) and ``pipeline_arn``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        monitoring: MonitoringSettings,
        trigger_role: iam.IRole,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.pipeline_arn = stack.format_arn(
            service="sagemaker", resource="pipeline", resource_name=names.monitoring_pipeline
        )
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            name=f"{names.prefix}-monitoring",
            description=f"Start {names.monitoring_pipeline} on the captures of the last window",
            schedule_expression=monitoring.schedule_cron,
            schedule_expression_timezone="UTC",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.pipeline_arn,
                role_arn=trigger_role.role_arn,
                sage_maker_pipeline_parameters=scheduler.CfnSchedule.SageMakerPipelineParametersProperty(
                    pipeline_parameter_list=[]
                ),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
                    maximum_retry_attempts=MAX_RETRY_ATTEMPTS,
                ),
            ),
        )
