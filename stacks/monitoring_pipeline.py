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

from pipeline_steps.monitoring_config import MonitoringPipelineConfig, champion_baselines_uri
from pipeline_steps.monitoring_pipeline import render_monitoring_definition
from settings import MonitoringSettings
from stacks.platform import Platform


def monitoring_pipeline_config(
    platform: Platform, monitoring: MonitoringSettings, code_uri: str, image_uri: str, network_isolation: bool
) -> MonitoringPipelineConfig:
    names, aws = platform.names, platform.settings.aws
    artifacts = f"s3://{names.artifacts_bucket}/"
    return MonitoringPipelineConfig(
        pipeline_name=names.monitoring_pipeline,
        region=aws.region,
        role_arn=f"arn:aws:iam::{aws.account}:role/{names.job_role}",
        artifact_bucket=names.artifacts_bucket,
        code_uri=code_uri,
        image_uri=image_uri,
        endpoint_name=names.endpoint,
        capture_uri=artifacts + names.data_capture_prefix,
        baseline_uri=champion_baselines_uri(artifacts + names.champion_prefix),
        ground_truth_uri=artifacts + names.ground_truth_prefix,
        output_prefix=names.monitoring_prefix,
        kms_key_arn=platform.key.key_arn,  # the APIs take a key id or key ARN, not an alias ARN
        subnet_ids=tuple(platform.job_network.subnet_ids),
        security_group_ids=tuple(platform.job_network.security_group_ids),
        enable_network_isolation=network_isolation,
        processing_instance_type=monitoring.instance_type,
        volume_gb=monitoring.volume_gb,
        max_runtime_seconds=monitoring.max_runtime_minutes * 60,
        window_hours=monitoring.window_hours,
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
