"""Data perimeter policies: who may use the project's VPC endpoints and reach its buckets from where.

Pure builders of IAM policy statements, shared by the key, network and storage stacks and their tests.
Three controls, after the AWS data-perimeter guidance (identity, resource and network perimeters):

* The S3 gateway endpoint admits the project's principals to the project's buckets only, plus read-only
  access to the AWS-owned bucket that holds Amazon ECR image layers (``prod-<region>-starport-layer-bucket``,
  fetched through presigned URLs that ECR signs, so that request's principal is not ours).
* Each interface endpoint admits principals of the project account acting on resources of the project
  account (``aws:PrincipalAccount``, ``aws:ResourceAccount``); the ECR endpoints may also pull images
  from AWS-owned registries (the Model Monitor analyzer image of the baseline step lives in one).
* The data and artifacts buckets deny every request that does not come through the project's S3 endpoint
  (``aws:SourceVpce``), except: the named deploy principals (CloudFormation updates the buckets and their
  policies as the CDK ``cfn-exec`` role), AWS services acting for a principal (``aws:ViaAWSService``) or as
  themselves (``aws:PrincipalIsAWSService``), the pipeline role (SageMaker Pipelines reads the definition
  and evaluates property files service-side, outside the VPC), and the code-deployment role (CDK's
  BucketDeployment Lambda runs outside the VPC).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_iam as iam

from settings import ResourceNames, SecuritySettings

# Read-only image pulls; ecr:GetAuthorizationToken has no resource, so it carries no aws:ResourceAccount.
ECR_PULL_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetAuthorizationToken",
    "ecr:GetDownloadUrlForLayer",
]
# The bucket actions the perimeter denies outside the endpoints: every S3 action on the bucket.
PERIMETER_ACTIONS = ["s3:*"]
DENY_OUTSIDE_PERIMETER_SID = "DenyOutsideDataPerimeter"


def iam_role_arn(partition: str, account: str, role_name: str) -> str:
    """The ARN of the role `role_name` of `account`."""
    return f"arn:{partition}:iam::{account}:role/{role_name}"


def cfn_exec_role_arn(security: SecuritySettings, partition: str, account: str, region: str) -> str:
    """The CDK bootstrap role CloudFormation deploys as (``cdk-<qualifier>-cfn-exec-role-…``)."""
    name = f"cdk-{security.cdk_bootstrap_qualifier}-cfn-exec-role-{account}-{region}"
    return iam_role_arn(partition, account, name)


def bootstrap_role_arns(security: SecuritySettings, partition: str, account: str, region: str) -> list[str]:
    """CloudFormation execution, deploy and file-publishing roles of the CDK bootstrap stack."""
    qualifier = security.cdk_bootstrap_qualifier
    return [
        iam_role_arn(partition, account, f"cdk-{qualifier}-{role}-role-{account}-{region}")
        for role in ("cfn-exec", "deploy", "file-publishing")
    ]


def key_admin_arns(security: SecuritySettings, partition: str, account: str, region: str) -> list[str]:
    """Key administrators: the CloudFormation execution role, always, plus the configured key admins.

    KMS's policy lockout safety check rejects a key policy that does not let the principal making the
    CreateKey/PutKeyPolicy request (CloudFormation, as the cfn-exec role) call PutKeyPolicy again.
    """
    admins = [cfn_exec_role_arn(security, partition, account, region), *security.key_admin_arns]
    return list(dict.fromkeys(admins))


def deploy_principal_arns(security: SecuritySettings, partition: str, account: str, region: str) -> list[str]:
    """Principals that may reach the buckets from outside the VPC endpoints to deploy and administer them."""
    if security.deploy_principal_arns:
        return list(security.deploy_principal_arns)
    return bootstrap_role_arns(security, partition, account, region)


def service_side_role_names(names: ResourceNames) -> list[str]:
    """Project roles that AWS uses outside the VPC, so their S3 requests carry no aws:SourceVpce."""
    return [
        names.pipeline_role,  # SageMaker Pipelines: the definition object and JsonGet property files
        names.code_deployment_role,  # CDK BucketDeployment Lambda (not attached to the VPC)
        names.mlflow_role,  # the MLflow tracking server runs in a SageMaker-managed VPC
        names.mirror_role,  # the model mirror function runs outside the VPC to reach the external store
    ]


def perimeter_exempt_arns(
    security: SecuritySettings, names: ResourceNames, partition: str, account: str, region: str
) -> list[str]:
    """Principals the perimeter lets in from anywhere: the deploy roles and the service-side roles."""
    service_side = [iam_role_arn(partition, account, name) for name in service_side_role_names(names)]
    return [*deploy_principal_arns(security, partition, account, region), *service_side]


def bucket_perimeter_statement(
    bucket_arn: str, vpc_endpoint_ids: Sequence[str], exempt_principal_arns: Sequence[str]
) -> iam.PolicyStatement:
    """Deny requests to the bucket that come neither through the endpoints nor from an exempt principal."""
    return iam.PolicyStatement(
        sid=DENY_OUTSIDE_PERIMETER_SID,
        effect=iam.Effect.DENY,
        principals=[iam.AnyPrincipal()],
        actions=PERIMETER_ACTIONS,
        resources=[bucket_arn, f"{bucket_arn}/*"],
        conditions={
            # A request through a public S3 endpoint has no aws:SourceVpce: IfExists makes that a match.
            "StringNotEqualsIfExists": {"aws:SourceVpce": list(vpc_endpoint_ids)},
            "ArnNotEquals": {"aws:PrincipalArn": list(exempt_principal_arns)},
            "BoolIfExists": {"aws:ViaAWSService": "false", "aws:PrincipalIsAWSService": "false"},
        },
    )


def s3_endpoint_statements(
    bucket_names: Sequence[str], partition: str, account: str, region: str
) -> list[iam.PolicyStatement]:
    """Statements of the S3 gateway endpoint policy (what the VPC may reach in S3)."""
    buckets = [f"arn:{partition}:s3:::{name}" for name in bucket_names]
    return [
        iam.PolicyStatement(
            sid="ProjectPrincipalsToProjectBuckets",
            principals=[iam.AnyPrincipal()],
            actions=["s3:*"],
            resources=[*buckets, *(f"{bucket}/*" for bucket in buckets)],
            conditions={"StringEquals": {"aws:PrincipalAccount": account}},
        ),
        iam.PolicyStatement(
            sid="EcrImageLayers",  # ECR serves layers from this AWS-owned bucket via presigned URLs
            principals=[iam.AnyPrincipal()],
            actions=["s3:GetObject"],
            resources=[f"arn:{partition}:s3:::prod-{region}-starport-layer-bucket/*"],
        ),
    ]


def interface_endpoint_statements(account: str, *, ecr: bool = False) -> list[iam.PolicyStatement]:
    """Statements of an interface endpoint policy: project principals on project resources."""
    statements = [
        iam.PolicyStatement(
            sid="ProjectPrincipalsToProjectResources",
            principals=[iam.AnyPrincipal()],
            actions=["*"],
            resources=["*"],
            conditions={"StringEquals": {"aws:PrincipalAccount": account, "aws:ResourceAccount": account}},
        )
    ]
    if ecr:
        statements.append(
            iam.PolicyStatement(
                sid="ProjectPrincipalsPullAwsOwnedImages",  # e.g. the Model Monitor analyzer image
                principals=[iam.AnyPrincipal()],
                actions=ECR_PULL_ACTIONS,
                resources=["*"],
                conditions={"StringEquals": {"aws:PrincipalAccount": account}},
            )
        )
    return statements
