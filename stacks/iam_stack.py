"""IAM stack: one least-privilege role per duty, and the explicit denies that separate the duties.

Service roles (assumed by AWS services for this account only, ``aws:SourceAccount``):

* ``pipeline_role``: SageMaker Pipelines, for both pipelines. Starts jobs (only on the instance types
  from the settings, only in the project's subnets and security group), is the only role that passes the
  job role, registers model versions as ``PendingManualApproval`` only, reads evaluation reports.
* ``job_role``, ``experiment_job_role``, ``model_role``: the workloads (:mod:`stacks.iam_job_roles`).
* ``trigger_role``: EventBridge rules and EventBridge Scheduler schedules; starts both pipelines.

Personas (:mod:`stacks.iam_personas`): ``studio_role`` (data scientist), ``approver_role``,
``operator_role``. Every role but the approver carries an explicit Deny of ``CreateModelPackage`` and
``UpdateModelPackage`` that set ``sagemaker:ModelApprovalStatus`` to ``Approved``, so no later grant
can let it approve; the Studio and experiment roles also carry denies of writes outside ``studio/`` and
of passing any other role. Bucket ARNs are written from the deterministic bucket names, so that each
wildcard is a literal string its cdk-nag acknowledgement can name exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from settings import PipelineSettings, ResourceNames, SecuritySettings
from stacks.iam_conditions import (
    CREATE_JOB_ACTIONS,
    GRANT_FOR_AWS_RESOURCE,
    KMS_READ,
    KMS_VOLUME_GRANTS,
    MANAGE_JOB_ACTIONS,
    PENDING,
    REGISTRY_READ_ACTIONS,
    REGISTRY_WRITE_ACTIONS,
    S3_READ,
    ProjectArns,
    instance_type_guardrail,
    service_principal,
    sets_approval,
)
from stacks.iam_job_roles import (
    WorkloadContext,
    create_experiment_job_role,
    create_job_role,
    create_model_role,
    sagemaker_role,
)
from stacks.iam_personas import (
    PASS_TO_SAGEMAKER,
    StudioGuardrails,
    create_approver_role,
    create_operator_role,
    create_studio_role,
)
from stacks.network_stack import JobNetwork
from stacks.roles import LeastPrivilegeRole

S3_OBJECT_CHANGES = ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"]
SCHEDULER_SERVICES = ("events.amazonaws.com", "scheduler.amazonaws.com")


class IamStack(cdk.Stack):
    """The project roles; ``roles`` maps each role name to its :class:`LeastPrivilegeRole`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        pipeline: PipelineSettings,
        security: SecuritySettings,
        instance_types: Sequence[str],
        key: kms.IKey,
        job_network: JobNetwork,
        image_repository_arn: str,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.names = names
        self.pipeline = pipeline
        self.instance_types = tuple(instance_types)
        self.job_network = job_network
        self.arns = ProjectArns(self, names)
        ctx = WorkloadContext(self.arns, key, job_network, image_repository_arn)

        job, experiment, model = create_job_role(ctx), create_experiment_job_role(ctx), create_model_role(ctx)
        pipeline_role = self._create_pipeline_role(ctx, job.role)
        studio = create_studio_role(ctx, StudioGuardrails(experiment.role, self.job_create_conditions()))
        approver = create_approver_role(self.arns, key, security)
        operator = create_operator_role(self.arns, key, security)
        trigger = self._create_trigger_role()
        self.roles = {
            r.role_name: r
            for r in (pipeline_role, job, experiment, model, studio, approver, operator, trigger)
        }

        self._separate_duties(approver, studio=studio, experiment=experiment, pipeline_role=pipeline_role)
        for role in self.roles.values():
            role.acknowledge_wildcards()

        self.pipeline_role, self.job_role, self.experiment_job_role = (
            pipeline_role.role,
            job.role,
            experiment.role,
        )
        self.model_role, self.studio_role, self.trigger_role = model.role, studio.role, trigger.role
        self.approver_role, self.operator_role = approver.role, operator.role

    def job_create_conditions(self) -> dict[str, dict]:
        """Cost and network guardrails on every job a project role creates."""
        conditions = instance_type_guardrail(self.instance_types)
        conditions["ForAllValues:StringEquals"].update(
            {
                "sagemaker:VpcSubnets": self.job_network.subnet_ids,
                "sagemaker:VpcSecurityGroupIds": self.job_network.security_group_ids,
            }
        )
        conditions["Null"]["sagemaker:VpcSubnets"] = "false"
        if self.pipeline.network_isolation:
            conditions["Bool"] = {"sagemaker:NetworkIsolation": "true"}
        return conditions

    def _separate_duties(
        self,
        approver: LeastPrivilegeRole,
        *,
        studio: LeastPrivilegeRole,
        experiment: LeastPrivilegeRole,
        pipeline_role: LeastPrivilegeRole,
    ) -> None:
        for role in self.roles.values():
            if role is not approver:
                role.deny("NeverApproveModels", REGISTRY_WRITE_ACTIONS, ["*"], conditions=sets_approval())
        # A version registered as anything but pending would skip the approver (or, as Rejected, hide it).
        pipeline_role.deny(
            "RegisterOnlyPendingVersions",
            ["sagemaker:CreateModelPackage"],
            ["*"],
            conditions={"StringNotEquals": {"sagemaker:ModelApprovalStatus": PENDING}},
        )
        names = self.names
        protected = [
            names.intermediates_prefix,
            f"{names.monitoring_pipeline}/",
            names.models_prefix,
            names.champion_prefix,
            names.registry_prefix,
            names.code_prefix,
            names.data_capture_prefix,
            names.monitoring_prefix,
            names.batch_prefix,
        ]
        other_roles = [
            self.roles[n].role_arn for n in (names.job_role, names.pipeline_role, names.model_role)
        ]
        for role in (studio, experiment):
            role.deny(
                "NeverWriteServedOrRegisteredArtifacts",
                S3_OBJECT_CHANGES,
                [self.arns.artifacts(p) for p in protected],
            )
        studio.deny("NeverPassWorkloadRoles", ["iam:PassRole"], other_roles)

    def _create_pipeline_role(self, ctx: WorkloadContext, job_role: iam.IRole) -> LeastPrivilegeRole:
        arns, names = self.arns, self.names
        role = sagemaker_role(
            ctx, "PipelineRole", names.pipeline_role, "SageMaker Pipelines role of both pipelines"
        )
        # SageMaker Pipelines names the jobs it starts itself ("pipelines-<execution>-<step>-<suffix>");
        # tuning job names are generated without that prefix (they are limited to 32 characters).
        job_arns = [
            arns.sagemaker("processing-job", "pipelines-*"),
            arns.sagemaker("training-job", "pipelines-*"),
            arns.sagemaker("hyper-parameter-tuning-job", "*"),
        ]
        reason = (
            "job names are generated by SageMaker Pipelines per execution; creation is limited by conditions"
        )
        role.allow(
            "CreateGuardedJobs",
            CREATE_JOB_ACTIONS,
            job_arns,
            conditions=self.job_create_conditions(),
            wildcard_reason=reason,
        )
        role.allow("ManagePipelineJobs", MANAGE_JOB_ACTIONS, job_arns, wildcard_reason=reason)
        role.allow(
            "RegisterPendingModelVersions",
            ["sagemaker:CreateModelPackage", *REGISTRY_READ_ACTIONS, "sagemaker:AddTags"],
            arns.model_packages(),
            wildcard_reason="model package versions are numbered by the registry inside the project's group",
        )
        role.allow("PassJobRoleOnly", ["iam:PassRole"], [job_role.role_arn], conditions=PASS_TO_SAGEMAKER)
        role.allow(
            "ReadEvaluationReports",  # property files (evaluation.json) read by condition steps
            S3_READ,
            [
                arns.artifacts(p)
                for p in (names.intermediates_prefix, f"{names.monitoring_pipeline}/", names.registry_prefix)
            ],
            wildcard_reason="reports are keyed by pipeline execution id",
        )
        role.allow("DecryptReports", KMS_READ, [ctx.key.key_arn])
        role.allow(
            "GrantKeyToJobVolumes", KMS_VOLUME_GRANTS, [ctx.key.key_arn], conditions=GRANT_FOR_AWS_RESOURCE
        )
        return role

    def _create_trigger_role(self) -> LeastPrivilegeRole:
        role = LeastPrivilegeRole(
            self,
            "TriggerRole",
            role_name=self.names.scheduler_role,
            assumed_by=iam.CompositePrincipal(
                *[service_principal(s, self.account) for s in SCHEDULER_SERVICES]
            ),
            description="EventBridge rule and Scheduler target role: starts the project pipelines",
        )
        role.allow("StartProjectPipelines", ["sagemaker:StartPipelineExecution"], self.arns.pipelines())
        return role
