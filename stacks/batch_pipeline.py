"""The batch-scoring pipeline on AWS: `AWS::SageMaker::Pipeline` of `get_batch_pipeline()`, started daily.

Built in the ML stack beside the monitoring pipeline, from the same code bundle version, job image, job
role, key and job network. The definition is rendered at synth time by `render_batch_definition` (the one
the local runner executes) and, being small, is passed inline (`PipelineDefinitionBody`, at most 1 MB);
its tokens (image URI, subnet and security-group ids) are resolved by CloudFormation. Inputs: the fleet's
recent cycles (`s3://<data>/fleet/`) and the champion prefix (`champion/`, kept by the deploy function);
outputs under `s3://<artifacts>/batch/<execution id>/`. EventBridge Scheduler starts it once a day
(``batch.schedule_cron``, UTC, no flexible window, templated SageMaker target without parameters, so the
defaults apply) as the project's trigger role; ``batch.enabled: false`` keeps the pipeline and disables
the schedule. Scheduler retries a failed start for up to six hours: a late list is better than none.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from pipeline_steps.batch_config import BatchPipelineConfig, from_training_config
from pipeline_steps.batch_pipeline import render_batch_definition
from pipeline_steps.config import PipelineConfig
from settings import BatchSettings
from stacks.platform import Platform

MAX_EVENT_AGE_SECONDS = 6 * 3600
MAX_RETRY_ATTEMPTS = 3


def batch_pipeline_config(platform: Platform, training: PipelineConfig) -> BatchPipelineConfig:
    """The batch definition's inputs: the training config's role, image, code, key and job network, the
    fleet and champion prefixes, and the app's `batch` settings as they are."""
    names = platform.names
    return BatchPipelineConfig(
        **from_training_config(
            training,
            pipeline_name=names.batch_pipeline,
            fleet_uri=f"s3://{names.data_bucket}/{names.fleet_prefix}",
        ),
        batch=platform.settings.batch,
        output_prefix=names.batch_prefix,
    )


class BatchPipeline(Construct):
    """``config``, ``definition`` (JSON text), ``pipeline`` (the CfnPipeline) and ``schedule``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: Platform,
        config: BatchPipelineConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.definition = render_batch_definition(config)
        self.pipeline = self._create_pipeline(platform.pipeline_role)
        self.schedule = self._create_schedule(platform, config.batch)

    def _create_pipeline(self, pipeline_role: iam.IRole) -> sagemaker.CfnPipeline:
        body = cdk.Stack.of(self).to_json_string(json.loads(self.definition))
        return sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=self.config.pipeline_name,
            pipeline_description="Turbofan RUL batch scoring: every engine by the champion, ranked daily",
            role_arn=pipeline_role.role_arn,
            pipeline_definition={"PipelineDefinitionBody": body},
        )

    def _create_schedule(self, platform: Platform, batch: BatchSettings) -> scheduler.CfnSchedule:
        pipeline_arn = cdk.Stack.of(self).format_arn(
            service="sagemaker", resource="pipeline", resource_name=self.config.pipeline_name
        )
        schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            name=self.config.pipeline_name,
            description=f"Start {self.config.pipeline_name} daily: score and rank the fleet",
            schedule_expression=batch.schedule_cron,
            schedule_expression_timezone="UTC",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED" if batch.enabled else "DISABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=pipeline_arn,
                role_arn=platform.trigger_role.role_arn,
                sage_maker_pipeline_parameters=scheduler.CfnSchedule.SageMakerPipelineParametersProperty(
                    pipeline_parameter_list=[]
                ),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
                    maximum_retry_attempts=MAX_RETRY_ATTEMPTS,
                ),
            ),
        )
        schedule.node.add_dependency(self.pipeline)  # started only once the pipeline exists
        return schedule
