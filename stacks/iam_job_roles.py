"""Execution roles SageMaker assumes for the project's workloads: pipeline jobs, experiments, the endpoint.

* ``job_role``: the processing, training and tuning jobs of both pipelines. Reads raw data, code and the
  champion; writes the pipeline's outputs (the expiring ``<pipeline>/`` intermediates, ``models/`` and
  the kept ``registry/``); the monitoring jobs read captures and write ``monitoring/``. It may delete
  only managed spot training checkpoints (``<pipeline>/checkpoints/``). Only the pipeline role may pass it.
* ``experiment_job_role``: the jobs data scientists start from Studio. Reads data and code, writes only
  ``studio/``, so an experiment can never replace a model, an evaluation report or a baseline.
* ``model_role``: the endpoint's model, passed by the deploy function. Reads ``models/`` and
  ``champion/``, writes data capture; on accounts that use Model Monitor its data-quality schedule runs
  as this role too, so it also reads captures and ``registry/`` baselines and writes ``monitoring/``.

Each role also writes its own SageMaker log groups, pulls the job image and manages the network
interfaces a VPC workload needs in the project subnets. Trust: SageMaker on behalf of this account
(``aws:SourceAccount``), with ``sts:SetSourceIdentity`` for Studio's per-user source identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import aws_kms as kms

from pipeline_steps.job_settings import CHECKPOINTS_PREFIX
from stacks.iam_conditions import (
    EC2_DESCRIBE_ACTIONS,
    ECR_PULL_ACTIONS,
    ECR_TOKEN_ACTIONS,
    KMS_JOB_OUTPUTS,
    S3_READ,
    S3_WRITE,
    SAGEMAKER_SERVICE,
    SOURCE_IDENTITY_ACTIONS,
    ProjectArns,
    service_principal,
)
from stacks.network_stack import JobNetwork
from stacks.roles import LeastPrivilegeRole

JOB_LOG_GROUPS = ("ProcessingJobs", "TrainingJobs")
# Managed spot training checkpoints, under the intermediates prefix.
CHECKPOINTS_KEY = f"{CHECKPOINTS_PREFIX}/"
ENDPOINT_LOG_GROUPS = ("Endpoints/", "ProcessingJobs")


@dataclass(frozen=True)
class WorkloadContext:
    """What every workload role refers to: the stack's ARNs, the key, the job network, the image."""

    arns: ProjectArns
    key: kms.IKey
    job_network: JobNetwork
    image_repository_arn: str


def sagemaker_role(
    ctx: WorkloadContext, construct_id: str, role_name: str, description: str
) -> LeastPrivilegeRole:
    """A role only SageMaker may assume, for this account, with Studio's source identity allowed."""
    return LeastPrivilegeRole(
        ctx.arns.stack,
        construct_id,
        role_name=role_name,
        assumed_by=service_principal(SAGEMAKER_SERVICE, ctx.arns.stack.account),
        description=description,
        extra_trust_actions=SOURCE_IDENTITY_ACTIONS,
    )


def create_job_role(ctx: WorkloadContext) -> LeastPrivilegeRole:
    """The role of the pipelines' processing, training and tuning jobs."""
    names = ctx.arns.names
    role = sagemaker_role(
        ctx, "JobRole", names.job_role, "Processing, training and tuning jobs of the pipelines"
    )
    _allow_read_inputs(role, ctx)
    _allow_pipeline_outputs(role, ctx)
    _allow_monitoring_data(role, ctx)
    _allow_batch_scoring(role, ctx)
    _allow_list(
        role,
        ctx,
        [
            names.batch_prefix,
            names.intermediates_prefix,
            names.models_prefix,
            names.registry_prefix,
            names.code_prefix,
            names.champion_prefix,
            names.data_capture_prefix,
            names.ground_truth_prefix,
            names.monitoring_prefix,
        ],
    )
    _allow_runtime(role, ctx, JOB_LOG_GROUPS)
    return role


def _allow_pipeline_outputs(role: LeastPrivilegeRole, ctx: WorkloadContext) -> None:
    names, arns = ctx.arns.names, ctx.arns
    role.allow(
        "ReadWritePipelineOutputs",
        [*S3_READ, *S3_WRITE],
        [arns.artifacts(p) for p in (names.intermediates_prefix, names.models_prefix, names.registry_prefix)],
        wildcard_reason="job outputs are keyed by pipeline execution id, unknown before the run",
    )
    role.allow(
        "DeleteOwnTrainingCheckpoints",
        ["s3:DeleteObject"],
        [arns.artifacts(names.intermediates_prefix + CHECKPOINTS_KEY)],
        wildcard_reason="SageMaker mirrors a training job's deletions in its checkpoint folder to the "
        "checkpoint S3 prefix (a superseded epoch, a finished job's checkpoints); keys are per step and fit",
    )


def _allow_monitoring_data(role: LeastPrivilegeRole, ctx: WorkloadContext) -> None:
    names, arns = ctx.arns.names, ctx.arns
    role.allow(
        "ReadChampionCapturesAndLabels",
        S3_READ,
        [
            arns.artifacts(names.champion_prefix),
            arns.artifacts(names.data_capture_prefix),
            arns.artifacts(names.ground_truth_prefix),
        ],
        wildcard_reason="the champion has a fixed prefix; captures are keyed by endpoint, variant and hour; "
        "late labels by delivery",
    )
    role.allow(
        "WriteMonitoringReports",
        [*S3_READ, *S3_WRITE],
        [arns.artifacts(names.monitoring_prefix)],
        wildcard_reason="monitoring reports are keyed by monitoring execution",
    )


def create_experiment_job_role(ctx: WorkloadContext) -> LeastPrivilegeRole:
    """The role of jobs started from Studio: reads the inputs, writes only the studio prefix."""
    names, arns = ctx.arns.names, ctx.arns
    role = sagemaker_role(
        ctx, "ExperimentJobRole", names.experiment_job_role, "Jobs data scientists start from Studio"
    )
    _allow_read_inputs(role, ctx)
    role.allow(
        "WriteStudioPrefixOnly",
        [*S3_READ, *S3_WRITE],
        [arns.artifacts(names.studio_prefix)],
        wildcard_reason="experiment outputs are keyed by job name under the studio prefix",
    )
    _allow_list(role, ctx, [names.code_prefix, names.studio_prefix])
    _allow_runtime(role, ctx, JOB_LOG_GROUPS)
    return role


def create_model_role(ctx: WorkloadContext) -> LeastPrivilegeRole:
    """The role of the endpoint model and the optional Model Monitor schedule."""
    names, arns = ctx.arns.names, ctx.arns
    role = sagemaker_role(
        ctx,
        "ModelRole",
        names.model_role,
        "Endpoint model (and optional Model Monitor schedule) of the project",
    )
    role.allow(
        "ReadServedModels",
        S3_READ,
        [
            arns.artifacts(names.models_prefix),
            arns.artifacts(names.champion_prefix),
            arns.artifacts(names.registry_prefix),
        ],
        wildcard_reason="model artifacts and drift baselines are keyed by execution; the champion is fixed",
    )
    role.allow(
        "WriteDataCaptureAndMonitoring",
        [*S3_READ, *S3_WRITE],
        [arns.artifacts(names.data_capture_prefix), arns.artifacts(names.monitoring_prefix)],
        wildcard_reason="captures are keyed by endpoint, variant and hour; reports by schedule and run",
    )
    _allow_list(
        role,
        ctx,
        [
            names.models_prefix,
            names.champion_prefix,
            names.registry_prefix,
            names.data_capture_prefix,
            names.monitoring_prefix,
        ],
    )
    _allow_runtime(role, ctx, ENDPOINT_LOG_GROUPS)
    return role


def _allow_read_inputs(role: LeastPrivilegeRole, ctx: WorkloadContext) -> None:
    names, arns = ctx.arns.names, ctx.arns
    role.allow(
        "ReadRawDataAndCode",
        S3_READ,
        [arns.objects(names.data_bucket, names.raw_data_prefix), arns.artifacts(names.code_prefix)],
        wildcard_reason="jobs read every input file under raw/; code bundles are versioned by content hash",
    )
    role.allow(
        "ListRawData",
        ["s3:ListBucket"],
        [arns.bucket(names.data_bucket)],
        conditions={"StringLike": {"s3:prefix": [f"{names.raw_data_prefix}*"]}},
    )


def _allow_batch_scoring(role: LeastPrivilegeRole, ctx: WorkloadContext) -> None:
    """The batch pipeline's job: reads the fleet's recent cycles, writes the ranked tables under batch/."""
    names, arns = ctx.arns.names, ctx.arns
    role.allow(
        "ReadFleetData",
        S3_READ,
        [arns.objects(names.data_bucket, names.fleet_prefix)],
        wildcard_reason="the batch job reads every engine file under fleet/",
    )
    role.allow(
        "ListFleetData",
        ["s3:ListBucket"],
        [arns.bucket(names.data_bucket)],
        conditions={"StringLike": {"s3:prefix": [f"{names.fleet_prefix}*"]}},
    )
    role.allow(
        "WriteBatchScores",
        [*S3_READ, *S3_WRITE],
        [arns.artifacts(names.batch_prefix)],
        wildcard_reason="fleet predictions are keyed by batch execution",
    )


def _allow_list(role: LeastPrivilegeRole, ctx: WorkloadContext, prefixes: Sequence[str]) -> None:
    role.allow(
        "ListArtifactPrefixes",
        ["s3:ListBucket"],
        [ctx.arns.bucket(ctx.arns.names.artifacts_bucket)],
        conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
    )


def _allow_runtime(role: LeastPrivilegeRole, ctx: WorkloadContext, log_groups: Sequence[str]) -> None:
    """Key, logs, image pull and VPC interfaces: what any SageMaker workload of the project needs."""
    role.allow("UseKeyForWorkloadData", KMS_JOB_OUTPUTS, [ctx.key.key_arn])
    role.allow(
        "WriteSageMakerLogs",
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
        [ctx.arns.log_groups(f"/aws/sagemaker/{group}*") for group in log_groups],
        wildcard_reason="SageMaker writes one log stream per job or endpoint instance in these groups",
    )
    role.allow("PullJobImage", ECR_PULL_ACTIONS, [ctx.image_repository_arn])
    role.allow(
        "ActionsWithoutResourceLevelPermissions",
        [*ECR_TOKEN_ACTIONS, *EC2_DESCRIBE_ACTIONS],
        ["*"],
        wildcard_reason=(
            "ecr:GetAuthorizationToken and the EC2 Describe* calls of VPC workloads have no resource-level "
            "permissions; image pulls and interface changes are scoped in other statements"
        ),
    )
    _allow_vpc_network_interfaces(role, ctx)


def _allow_vpc_network_interfaces(role: LeastPrivilegeRole, ctx: WorkloadContext) -> None:
    """What SageMaker needs to attach a workload in VPC mode to the project subnets."""
    stack, network = ctx.arns.stack, ctx.job_network
    interfaces = stack.format_arn(service="ec2", resource="network-interface", resource_name="*")
    role.allow(
        "CreateNetworkInterfaces",
        ["ec2:CreateNetworkInterface"],
        [
            interfaces,
            *[
                stack.format_arn(service="ec2", resource="subnet", resource_name=s)
                for s in network.subnet_ids
            ],
            *[
                stack.format_arn(service="ec2", resource="security-group", resource_name=g)
                for g in network.security_group_ids
            ],
        ],
        wildcard_reason="the interface id is chosen by EC2 at creation; subnets and group are fixed",
    )
    role.allow(
        "ManageNetworkInterfaces",
        [
            "ec2:CreateNetworkInterfacePermission",
            "ec2:DeleteNetworkInterface",
            "ec2:DeleteNetworkInterfacePermission",
        ],
        [interfaces],
        conditions={
            "ArnEquals": {
                "ec2:Vpc": stack.format_arn(service="ec2", resource="vpc", resource_name=network.vpc.vpc_id)
            }
        },
        wildcard_reason="interface ids are created per workload; the ec2:Vpc condition keeps them in our VPC",
    )
