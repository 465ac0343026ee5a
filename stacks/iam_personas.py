"""The three human personas of the project, each one role with one least-privilege policy.

* ``studio_role`` (data scientist): the Studio execution role. Explores the data (read), starts the
  training pipeline and reads both pipelines' executions and the registry, runs experiment jobs that are
  passed ``experiment_job_role`` only, and writes only ``studio/``. It never passes the job, pipeline or
  model role, never writes what is served or registered, never approves. Its Studio apps and spaces are
  granted by the Studio stack, scoped to the domain once it exists (:mod:`stacks.studio_stack`).
* ``approver_role``: the only role that may set a model package to ``Approved`` (or ``Rejected``), with
  read access to what the decision needs: packages, their ``registry/`` evaluation reports, the key.
* ``operator_role``: starts, stops and retries executions of both pipelines, reads jobs, endpoints,
  logs, alarms, dashboards and monitoring reports; when a deleted group is restored from a backup it
  registers the group and its versions again, as pending only; it cannot approve.

Approver and operator are assumed by people: the principals named in ``settings.security`` (or, when
none are named, whoever an account administrator delegates to), with MFA unless turned off.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms

from settings import SecuritySettings
from stacks.iam_conditions import (
    APPROVAL_STATUS_KEY,
    APPROVED,
    CREATE_JOB_ACTIONS,
    DESCRIBE_JOB_ACTIONS,
    GRANT_FOR_AWS_RESOURCE,
    JOB_KINDS,
    KMS_READ,
    KMS_VOLUME_GRANTS,
    KMS_WRITE_OBJECTS,
    MANAGE_JOB_ACTIONS,
    PENDING,
    PIPELINE_READ_ACTIONS,
    PIPELINE_RUN_ACTIONS,
    REGISTRY_READ_ACTIONS,
    REJECTED,
    S3_READ,
    S3_WRITE,
    SAGEMAKER_SERVICE,
    STUDIO_LIST_ACTIONS,
    ProjectArns,
    human_principal,
)
from stacks.iam_job_roles import WorkloadContext, sagemaker_role
from stacks.roles import LeastPrivilegeRole

PASS_TO_SAGEMAKER = {"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}}
LIST_PACKAGES_REASON = "ListModelPackages is authorized on model-package resources; it returns summaries only"


@dataclass(frozen=True)
class StudioGuardrails:
    """What limits the data scientist's experiment jobs: the role they run as and the job conditions."""

    experiment_job_role: iam.IRole
    job_conditions: dict


def create_studio_role(ctx: WorkloadContext, guardrails: StudioGuardrails) -> LeastPrivilegeRole:
    """The data scientists' Studio execution role."""
    names, arns = ctx.arns.names, ctx.arns
    role = sagemaker_role(
        ctx, "StudioRole", names.studio_role, "Data-scientist persona: Studio execution role"
    )
    role.allow(
        "ListStudioResources",
        STUDIO_LIST_ACTIONS,
        ["*"],
        wildcard_reason="SageMaker List* actions of Studio have no resource-level permissions",
    )
    role.allow(
        "StartTrainingPipeline",
        ["sagemaker:StartPipelineExecution"],
        [arns.sagemaker("pipeline", names.pipeline)],
    )
    role.allow(
        "ReadPipelineExecutions",
        PIPELINE_READ_ACTIONS,
        [*arns.pipelines(), *arns.pipeline_executions()],
        wildcard_reason="execution ids are generated per run of the project pipelines",
    )
    _allow_read_registry(role, arns)
    experiment_jobs = [arns.sagemaker(kind, f"{names.prefix}-*") for kind in JOB_KINDS]
    reason = "experiment jobs must carry the project prefix; creation is limited by conditions"
    role.allow(
        "CreateGuardedExperimentJobs",
        CREATE_JOB_ACTIONS,
        experiment_jobs,
        conditions=guardrails.job_conditions,
        wildcard_reason=reason,
    )
    role.allow("ManageExperimentJobs", MANAGE_JOB_ACTIONS, experiment_jobs, wildcard_reason=reason)
    role.allow(
        "PassExperimentJobRoleOnly",
        ["iam:PassRole"],
        [guardrails.experiment_job_role.role_arn],
        conditions=PASS_TO_SAGEMAKER,
    )
    _allow_studio_data(role, ctx)
    return role


def _allow_studio_data(role: LeastPrivilegeRole, ctx: WorkloadContext) -> None:
    names, arns = ctx.arns.names, ctx.arns
    role.allow(
        "ReadProjectData",
        S3_READ,
        [arns.objects(names.data_bucket, ""), arns.objects(names.artifacts_bucket, "")],
        wildcard_reason="data scientists explore all project data and pipeline outputs (read only)",
    )
    role.allow(
        "WriteStudioPrefixOnly",
        S3_WRITE,
        [arns.artifacts(names.studio_prefix)],
        wildcard_reason="notebooks write and share files under the studio prefix only",
    )
    role.allow(
        "ListProjectBuckets",
        ["s3:ListBucket"],
        [arns.bucket(names.data_bucket), arns.bucket(names.artifacts_bucket)],
    )
    role.allow("UseKeyForProjectObjects", KMS_WRITE_OBJECTS, [ctx.key.key_arn])
    role.allow(
        "GrantKeyToExperimentVolumes",  # SageMaker encrypts job and space volumes through grants
        KMS_VOLUME_GRANTS,
        [ctx.key.key_arn],
        conditions=GRANT_FOR_AWS_RESOURCE,
    )
    role.allow(
        "WriteStudioLogs",
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        [arns.log_groups("/aws/sagemaker/studio*")],
        wildcard_reason="Studio apps log to /aws/sagemaker/studio with one stream per app",
    )


def _allow_read_registry(role: LeastPrivilegeRole, arns: ProjectArns) -> None:
    role.allow(
        "ReadModelRegistry",
        REGISTRY_READ_ACTIONS,
        arns.model_packages(),
        wildcard_reason="model package versions are numbered by the registry inside the project's group",
    )
    role.allow(
        "ListModelPackages",
        ["sagemaker:ListModelPackages"],
        [arns.sagemaker("model-package", "*")],
        wildcard_reason=LIST_PACKAGES_REASON,
    )


def create_approver_role(arns: ProjectArns, key: kms.IKey, security: SecuritySettings) -> LeastPrivilegeRole:
    """The approver persona: the only role that may approve or reject a model version."""
    names = arns.names
    role = LeastPrivilegeRole(
        arns.stack,
        "ApproverRole",
        role_name=names.approver_role,
        assumed_by=human_principal(
            security.approver_arns, arns.stack.account, require_mfa=security.require_mfa
        ),
        description="Approver persona: the only role that may approve a model package",
    )
    role.allow(
        "ApproveOrRejectModelVersions",
        ["sagemaker:UpdateModelPackage"],
        [arns.sagemaker("model-package", f"{names.model_package_group}/*")],
        conditions={"StringEquals": {APPROVAL_STATUS_KEY: [APPROVED, REJECTED]}},
        wildcard_reason="model package versions are numbered by the registry inside the project's group",
    )
    _allow_read_registry(role, arns)
    role.allow(
        "ReadEvaluationReports",
        S3_READ,
        [arns.artifacts(names.registry_prefix)],
        wildcard_reason="evaluation reports, baselines and manifests are kept per execution under registry/",
    )
    role.allow(
        "ListRegistryPrefix",
        ["s3:ListBucket"],
        [arns.bucket(names.artifacts_bucket)],
        conditions={"StringLike": {"s3:prefix": [f"{names.registry_prefix}*"]}},
    )
    role.allow("DecryptReports", KMS_READ, [key.key_arn])
    role.allow(
        "ReadPipelineExecutions",
        PIPELINE_READ_ACTIONS,
        [
            arns.sagemaker("pipeline", names.pipeline),
            arns.sagemaker("pipeline", f"{names.pipeline}/execution/*"),
        ],
        wildcard_reason="execution ids are generated per run; the approver traces a version to its run",
    )
    return role


def create_operator_role(arns: ProjectArns, key: kms.IKey, security: SecuritySettings) -> LeastPrivilegeRole:
    """The operator persona: runs and watches the pipelines and the endpoint, never approves."""
    names = arns.names
    role = LeastPrivilegeRole(
        arns.stack,
        "OperatorRole",
        role_name=names.operator_role,
        assumed_by=human_principal(
            security.operator_arns, arns.stack.account, require_mfa=security.require_mfa
        ),
        description="Operator persona: runs and watches the pipelines and the endpoint; never approves",
    )
    reason = "execution ids are generated per run of the project pipelines"
    targets = [*arns.pipelines(), *arns.pipeline_executions()]
    role.allow("RunPipelines", PIPELINE_RUN_ACTIONS, targets, wildcard_reason=reason)
    role.allow("ReadPipelineExecutions", PIPELINE_READ_ACTIONS, targets, wildcard_reason=reason)
    role.allow(
        "DescribePipelineJobs",
        DESCRIBE_JOB_ACTIONS,
        [
            arns.sagemaker("processing-job", "pipelines-*"),
            arns.sagemaker("training-job", "pipelines-*"),
            arns.sagemaker("hyper-parameter-tuning-job", "*"),
        ],
        wildcard_reason="SageMaker Pipelines names the jobs it starts per execution",
    )
    role.allow(
        "DescribeEndpoint",
        ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"],
        [
            arns.sagemaker("endpoint", names.endpoint),
            arns.sagemaker("endpoint-config", f"{names.prefix}-*"),
            arns.sagemaker("model", f"{names.prefix}-*"),
        ],
        wildcard_reason="the deploy function names a config and model per version with the project prefix",
    )
    _allow_ab_commands(role, arns)
    _allow_observe(role, arns, key)
    _allow_register_restored_versions(role, arns)
    return role


def _allow_ab_commands(role: LeastPrivilegeRole, arns: ProjectArns) -> None:
    """Shift or promote an A/B test: invoke the deploy function with an operator command."""
    deploy_function = arns.stack.format_arn(
        service="lambda",
        resource="function",
        resource_name=arns.names.deploy_function,
        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )
    role.allow("ShiftOrPromoteAbTest", ["lambda:InvokeFunction"], [deploy_function])


def _allow_register_restored_versions(role: LeastPrivilegeRole, arns: ProjectArns) -> None:
    """The first half of re-creating a deleted group from a backup (lambdas/backup_registry/restore.py):
    the group and its versions, pending only; the approver decides them."""
    role.allow(
        "RegisterRestoredGroup",
        ["sagemaker:CreateModelPackageGroup"],
        [arns.sagemaker("model-package-group", arns.names.model_package_group)],
    )
    role.allow(
        "RegisterRestoredVersionsAsPending",
        ["sagemaker:CreateModelPackage"],
        arns.model_packages(),
        conditions={"StringEquals": {APPROVAL_STATUS_KEY: PENDING}},
        wildcard_reason="model package versions are numbered by the registry inside the project's group",
    )


def _allow_observe(role: LeastPrivilegeRole, arns: ProjectArns, key: kms.IKey) -> None:
    names, stack = arns.names, arns.stack
    role.allow(
        "ReadLogs",
        ["logs:DescribeLogStreams", "logs:GetLogEvents", "logs:FilterLogEvents"],
        [arns.log_groups("/aws/sagemaker/*"), arns.log_groups(f"{names.log_group_prefix}*")],
        wildcard_reason="job, endpoint and function log streams are created per run",
    )
    cloudwatch = {
        "DescribeAlarms": ("alarm", cdk.ArnFormat.COLON_RESOURCE_NAME),
        "GetDashboard": ("dashboard", cdk.ArnFormat.SLASH_RESOURCE_NAME),
    }
    role.allow(
        "ReadAlarmsAndDashboards",
        [f"cloudwatch:{action}" for action in cloudwatch],
        [
            stack.format_arn(
                service="cloudwatch",
                region=region,
                resource=resource,
                resource_name=f"{names.prefix}*",
                arn_format=fmt,
            )
            for (resource, fmt), region in zip(cloudwatch.values(), (None, ""), strict=True)
        ],
        wildcard_reason="alarms and dashboards of the project carry its prefix",
    )
    role.allow(
        "ReadMetrics",
        ["cloudwatch:GetMetricData", "cloudwatch:ListMetrics"],
        ["*"],
        wildcard_reason="CloudWatch metric reads have no resource-level permissions",
    )
    role.allow(
        "ReadMonitoringReports",
        S3_READ,
        [arns.artifacts(names.monitoring_prefix)],
        wildcard_reason="monitoring reports are keyed by run",
    )
    role.allow("DecryptReports", KMS_READ, [key.key_arn])
