"""The monitoring pipeline on AWS: `AWS::SageMaker::Pipeline` of `get_monitoring_pipeline()`.

Built in the ML stack, beside the training pipeline, from the same code bundle version, job image, job role,
key and job network. The definition is rendered at synth time by `render_monitoring_definition` (the one
the local runner executes) and, being small, is passed inline (`PipelineDefinitionBody`, at most 1 MB);
its tokens (image URI, subnet and security-group ids) are resolved by CloudFormation. Inputs: the
endpoint's captures (`datacapture/`), the in-service baselines (`champion/baselines/`, copied there by the
deploy function), the late labels (`ground-truth/`); reports under `monitoring/`.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from pipeline_steps.config import PipelineConfig
from pipeline_steps.monitoring_config import MonitoringPipelineConfig, from_training_config
from pipeline_steps.monitoring_pipeline import render_monitoring_definition
from stacks.platform import Platform


def monitoring_pipeline_config(platform: Platform, training: PipelineConfig) -> MonitoringPipelineConfig:
    """The monitoring definition's inputs: the training config's role, image, code, key and job network,
    the endpoint and its capture, label and report prefixes, and the app's `monitoring` settings."""
    names = platform.names
    artifacts = f"s3://{names.artifacts_bucket}/"
    return MonitoringPipelineConfig(
        **from_training_config(
            training,
            pipeline_name=names.monitoring_pipeline,
            endpoint_name=names.endpoint,
            capture_uri=artifacts + names.data_capture_prefix,
            ground_truth_uri=artifacts + names.ground_truth_prefix,
        ),
        monitoring=platform.settings.monitoring,
        output_prefix=names.monitoring_prefix,
    )


class MonitoringPipeline(Construct):
    """``config``, ``definition`` (JSON text) and ``pipeline`` (the CfnPipeline)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: Platform,
        config: MonitoringPipelineConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.definition = render_monitoring_definition(config)
        body = cdk.Stack.of(self).to_json_string(json.loads(self.definition))
        self.pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=config.pipeline_name,
            pipeline_description="Turbofan RUL monitoring: drift and late-label model quality per window",
            role_arn=platform.pipeline_role.role_arn,
            pipeline_definition={"PipelineDefinitionBody": body},
        )
