"""Shared vocabulary of the project's IAM policies: action groups, condition blocks, trust principals, ARNs.

Nothing here creates a construct: the IAM and Studio stacks build their statements from these names so
that every role states a guardrail the same way, and the tests import the same names instead of copying
strings. The approval guard relies on the SageMaker condition key ``sagemaker:ModelApprovalStatus``,
which the Service Authorization Reference lists for both ``CreateModelPackage`` and
``UpdateModelPackage`` ("Filters access by the model approval status with the model-package in the
request"). KMS actions are grouped by what a role does with the key, so no role gets ``ReEncrypt*`` or
``GenerateDataKeyWithoutPlaintext``, which nothing in the project calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from settings import ResourceNames

SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
# Studio with ExecutionRoleIdentityConfig=USER_PROFILE_NAME sets the user profile name as the source
# identity of every session of its execution role and of the roles assumed from it, so those trust
# policies must also allow sts:SetSourceIdentity.
SOURCE_IDENTITY_ACTIONS = ("sts:SetSourceIdentity",)

APPROVAL_STATUS_KEY = "sagemaker:ModelApprovalStatus"
APPROVED = "Approved"
REJECTED = "Rejected"
PENDING = "PendingManualApproval"
REGISTRY_WRITE_ACTIONS = ["sagemaker:CreateModelPackage", "sagemaker:UpdateModelPackage"]

JOB_KINDS = ("processing-job", "training-job", "hyper-parameter-tuning-job")
CREATE_JOB_ACTIONS = [
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateHyperParameterTuningJob",
]
MANAGE_JOB_ACTIONS = [
    "sagemaker:DescribeProcessingJob",
    "sagemaker:DescribeTrainingJob",
    "sagemaker:DescribeHyperParameterTuningJob",
    "sagemaker:StopProcessingJob",
    "sagemaker:StopTrainingJob",
    "sagemaker:StopHyperParameterTuningJob",
    "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
    "sagemaker:AddTags",
]
DESCRIBE_JOB_ACTIONS = [a for a in MANAGE_JOB_ACTIONS if ":Describe" in a or ":List" in a]
PIPELINE_RUN_ACTIONS = [
    "sagemaker:StartPipelineExecution",
    "sagemaker:StopPipelineExecution",
    "sagemaker:RetryPipelineExecution",
]
PIPELINE_READ_ACTIONS = [
    "sagemaker:DescribePipeline",
    "sagemaker:DescribePipelineExecution",
    "sagemaker:DescribePipelineDefinitionForExecution",
    "sagemaker:ListPipelineExecutions",
    "sagemaker:ListPipelineExecutionSteps",
    "sagemaker:ListPipelineParametersForExecution",
]
REGISTRY_READ_ACTIONS = ["sagemaker:DescribeModelPackageGroup", "sagemaker:DescribeModelPackage"]
# Actions that have no resource-level permissions in IAM, so "*" is the only possible resource.
ECR_TOKEN_ACTIONS = ["ecr:GetAuthorizationToken"]
EC2_DESCRIBE_ACTIONS = [
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
]
SAGEMAKER_LIST_ACTIONS = ["sagemaker:ListModelPackages"]
STUDIO_LIST_ACTIONS = [
    "sagemaker:ListApps",
    "sagemaker:ListSpaces",
    "sagemaker:ListUserProfiles",
    "sagemaker:ListDomains",
]
ECR_PULL_ACTIONS = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
S3_READ = ["s3:GetObject", "s3:GetObjectVersion"]
S3_WRITE = ["s3:PutObject", "s3:AbortMultipartUpload"]

# KMS, by use of the key. Reading an SSE-KMS object decrypts its data key; writing one generates a data
# key (and a multipart upload decrypts it again); SageMaker asks the execution role of a job or endpoint
# for kms:Encrypt when its output or capture configuration names the key; the principal that creates a
# job or space whose volume uses the key lets SageMaker create a grant for that volume.
KMS_READ = ["kms:Decrypt"]
KMS_WRITE_OBJECTS = ["kms:Decrypt", "kms:GenerateDataKey"]
KMS_JOB_OUTPUTS = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
KMS_VOLUME_GRANTS = ["kms:CreateGrant", "kms:DescribeKey"]
GRANT_FOR_AWS_RESOURCE = {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def instance_type_guardrail(instance_types: Sequence[str], *, required: bool = True) -> dict[str, dict]:
    """IAM condition: every instance type in the request is an allowed one (and, if ``required``, named).

    ``ForAllValues`` alone is true when the key is absent, so ``Null: false`` makes the key mandatory.
    """
    conditions: dict[str, dict] = {
        "ForAllValues:StringEquals": {"sagemaker:InstanceTypes": list(instance_types)}
    }
    if required:
        conditions["Null"] = {"sagemaker:InstanceTypes": "false"}
    return conditions


def sets_approval(status: str = APPROVED) -> dict[str, dict]:
    """IAM condition: the request sets the model package's approval status to ``status``."""
    return {"StringEquals": {APPROVAL_STATUS_KEY: status}}


def source_account(account: str) -> dict[str, dict]:
    """Confused-deputy guard of a service trust: the service acts for a resource of this account."""
    return {"StringEquals": {"aws:SourceAccount": account}}


def service_principal(service: str, account: str) -> iam.IPrincipal:
    """The AWS service `service`, acting for `account` only (aws:SourceAccount)."""
    return iam.ServicePrincipal(service, conditions=source_account(account))


def human_principal(arns: Sequence[str], account: str, *, require_mfa: bool) -> iam.IPrincipal:
    """The people allowed to assume a persona: the named principals, or the account (then IAM delegates)."""
    principals = [iam.ArnPrincipal(arn) for arn in arns] or [iam.AccountPrincipal(account)]
    principal: iam.PrincipalBase = iam.CompositePrincipal(*principals)
    if require_mfa:
        principal = principal.with_conditions({"Bool": {"aws:MultiFactorAuthPresent": "true"}})
    return principal


@dataclass(frozen=True)
class ProjectArns:
    """ARNs of the project's resources, as literal strings where the names are deterministic."""

    stack: cdk.Stack
    names: ResourceNames

    def sagemaker(self, resource: str, name: str) -> str:
        """The ARN of the SageMaker `resource` named `name` in the stack's account and region."""
        return self.stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

    def objects(self, bucket: str, prefix: str) -> str:
        """The ARN of every object under `prefix` in `bucket`."""
        return f"arn:{self.stack.partition}:s3:::{bucket}/{prefix}*"

    def bucket(self, bucket: str) -> str:
        """The ARN of the bucket itself, for bucket-level actions."""
        return f"arn:{self.stack.partition}:s3:::{bucket}"

    def artifacts(self, prefix: str) -> str:
        """The ARN of the artifacts bucket's objects under `prefix`."""
        return self.objects(self.names.artifacts_bucket, prefix)

    def pipeline_names(self) -> tuple[str, ...]:
        """The project pipelines: training, monitoring and batch scoring."""
        return (self.names.pipeline, self.names.monitoring_pipeline, self.names.batch_pipeline)

    def pipelines(self) -> list[str]:
        """The ARNs of the project pipelines."""
        return [self.sagemaker("pipeline", name) for name in self.pipeline_names()]

    def pipeline_executions(self) -> list[str]:
        """The ARNs of every execution of the project pipelines."""
        names = self.pipeline_names()
        return [self.sagemaker("pipeline", f"{name}/execution/*") for name in names]

    def model_packages(self) -> list[str]:
        """The ARNs of the model package group and of every package in it."""
        group = self.names.model_package_group
        return [self.sagemaker("model-package-group", group), self.sagemaker("model-package", f"{group}/*")]

    def log_groups(self, name_pattern: str) -> str:
        """The ARN of the log groups matching `name_pattern` in the stack's account and region."""
        return self.stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=name_pattern,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
