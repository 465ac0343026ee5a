"""Settings every job step shares: retries, caching, network, job names, S3 locations, the processor.

Retry policies (API faults and throttling on the step; capacity and resource limits on the job), the
cache config, one `NetworkConfig` (isolation, VPC, inter-container encryption) for all processing jobs,
the per-execution output prefixes, scratch `s3://<bucket>/<pipeline>/<execution id>/<step>/...` (expires)
and registry `s3://<bucket>/registry/<pipeline>/<execution id>/<step>/...` (kept: what a model package
refers to), the models prefix, the library input and the `ScriptProcessor` that runs `python3 <script>` on
the project image with the config's stopping condition. With managed spot training, the training jobs'
checkpoints go to `s3://<bucket>/<pipeline>/checkpoints/<step>/` (under the expiring intermediates prefix):
a fixed URI, because SageMaker's cache key of a training step includes `CheckpointConfig` (an execution id
in it would defeat caching) and because a retried or re-run job must find the checkpoints it left.
"""

from __future__ import annotations

from typing import Protocol

from sagemaker.network import NetworkConfig
from sagemaker.processing import ProcessingInput, ScriptProcessor
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.functions import Join
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.retry import (
    SageMakerJobExceptionTypeEnum,
    SageMakerJobStepRetryPolicy,
    StepExceptionTypeEnum,
    StepRetryPolicy,
)
from sagemaker.workflow.steps import CacheConfig, ProcessingStep

from pipeline_steps import names
from pipeline_steps.code import library_uri
from pipeline_steps.config import PipelineConfig
from pipeline_steps.parameters import PipelineParameters
from settings.names import ResourceNames

# A fixed job-name base: the SDK appends a timestamp to it, which render_definition normalises.
JOB_NAME_BASE = "turbofan-rul"
# Artifacts-bucket prefix of what registered model packages refer to besides their model data; no
# lifecycle rule touches it.
REGISTRY_PREFIX = ResourceNames.registry_prefix.rstrip("/")
# Under the intermediates prefix `<pipeline>/` (the job role may delete there: stacks.iam_job_roles); the
# job's folder of it, SageMaker's default LocalPath.
CHECKPOINTS_PREFIX = "checkpoints"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"


def step_retry_policy() -> StepRetryPolicy:
    """Retry AWS-side faults and throttling of the step's API call (the only kind a ModelStep accepts)."""
    return StepRetryPolicy(
        exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
        interval_seconds=10,
        backoff_rate=2.0,
        max_attempts=3,
    )


def retry_policies() -> list:
    """For job steps: the step policy, plus retries of the job on capacity and resource-limit errors."""
    return [
        step_retry_policy(),
        SageMakerJobStepRetryPolicy(
            exception_types=[
                SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT,
            ],
            interval_seconds=60,
            backoff_rate=2.0,
            max_attempts=5,
        ),
    ]


def cache_config(config: PipelineConfig) -> CacheConfig:
    """Reuse a job step's earlier result for the same arguments within the expiry."""
    return CacheConfig(enable_caching=True, expire_after=config.cache_expiry)


class JobNetwork(Protocol):
    """What `network_config` reads: the training, monitoring and batch configurations all have it."""

    @property
    def subnet_ids(self) -> tuple[str, ...]:
        """The subnets of the jobs' VpcConfig; empty outside a VPC."""

    @property
    def security_group_ids(self) -> tuple[str, ...]:
        """The security groups of the jobs' VpcConfig; empty outside a VPC."""

    @property
    def network_isolation(self) -> bool:
        """Whether the jobs' containers run without network access."""


class CodeLocation(Protocol):
    """What `library_input` reads: where the code bundle of a pipeline's configuration lies."""

    @property
    def code_uri(self) -> str:
        """The S3 prefix of the code bundle, ending in '/'."""


def network_config(config: JobNetwork) -> NetworkConfig:
    """The same isolation, VPC and inter-container encryption for every processing job."""
    return NetworkConfig(
        enable_network_isolation=config.network_isolation,
        security_group_ids=list(config.security_group_ids) or None,
        subnets=list(config.subnet_ids) or None,
        encrypt_inter_container_traffic=True,
    )


def execution_uri(config: PipelineConfig, step: str, *parts: str) -> Join:
    """`s3://<bucket>/<pipeline>/<execution id>/<step>/<parts...>`: one prefix per run, step and output."""
    return Join(
        on="/",
        values=[
            "s3:/",
            config.artifact_bucket,
            config.pipeline_name,
            ExecutionVariables.PIPELINE_EXECUTION_ID,
            step,
            *parts,
        ],
    )


def registry_uri(config: PipelineConfig, step: str, *parts: str) -> Join:
    """`s3://<bucket>/registry/<pipeline>/<execution id>/<step>/<parts...>`: kept, unlike `execution_uri`."""
    return Join(
        on="/",
        values=[
            "s3:/",
            config.artifact_bucket,
            REGISTRY_PREFIX,
            config.pipeline_name,
            ExecutionVariables.PIPELINE_EXECUTION_ID,
            step,
            *parts,
        ],
    )


def models_prefix(config: PipelineConfig) -> str:
    """Key prefix (no bucket) under which the tuning jobs write `<job>/output/model.tar.gz`."""
    return f"models/{config.pipeline_name}"


def checkpoint_uri(config: PipelineConfig, step: str) -> str:
    """`s3://<bucket>/<pipeline>/checkpoints/<step>/`: where a training job's checkpoints are kept.

    The trailing slash matters: SageMaker syncs every key starting with the URI, so without it the
    checkpoints of `<step>` would bring those of any step whose name starts with it."""
    return f"s3://{config.artifact_bucket}/{config.pipeline_name}/{CHECKPOINTS_PREFIX}/{step}/"


def spot_arguments(config: PipelineConfig, step: str) -> dict:
    """The estimator's managed-spot arguments for the training jobs of `step` (none when spot is off)."""
    if not config.pipeline.spot_training:
        return {}
    return {
        "use_spot_instances": True,
        "max_wait": config.spot_max_wait_seconds,
        "checkpoint_s3_uri": checkpoint_uri(config, step),
        "checkpoint_local_path": CHECKPOINT_LOCAL_PATH,
    }


def library_input(config: CodeLocation) -> ProcessingInput:
    """The unpacked `containers/` files, importable through PYTHONPATH in every processing job."""
    return ProcessingInput(
        source=library_uri(config.code_uri), destination=names.LIBRARY_PATH, input_name=names.LIBRARY_INPUT
    )


def script_processor(
    session: PipelineSession, config: PipelineConfig, params: PipelineParameters, base: str, count=1
) -> ScriptProcessor:
    """A processor running `python3 <script>` in the project image with the library on PYTHONPATH."""
    return ScriptProcessor(
        role=config.role_arn,
        image_uri=config.image_uri,
        command=["python3"],
        instance_count=count,
        instance_type=params.processing_instance_type,
        volume_kms_key=config.kms_key_arn,
        output_kms_key=config.kms_key_arn,
        base_job_name=f"{JOB_NAME_BASE}-{base}",
        sagemaker_session=session,
        env={"PYTHONPATH": names.LIBRARY_PATH},
        network_config=network_config(config),
        max_runtime_in_seconds=config.max_runtime_seconds,
    )


def output_uri(step: ProcessingStep, name: str):
    """The S3 URI property of one processing output (resolved when the pipeline runs)."""
    return step.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri
