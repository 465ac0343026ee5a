"""Key stack: the project's customer-managed KMS key and its key policy, deployed before everything else.

The key comes first so that the Network stack (flow-log group) and the Storage stack (buckets, whose
policies need the Network stack's endpoint ids) can both use it without a dependency cycle.

The key policy names who may do what, and nothing is delegated to the account as a whole:

* administration (no Encrypt/Decrypt) for the key administrators only: the CDK ``cfn-exec`` role that
  CloudFormation deploys as (KMS's lockout safety check requires it) and ``security.key_admin_arns``;
* use, with only the actions the project calls, for the project roles of ``ResourceNames.key_user_roles``.
  The roles live in later stacks and KMS rejects principals that do not exist yet, so the statement trusts
  the account and requires ``aws:PrincipalArn`` to be one of their deterministic ARNs;
* grants only for AWS resources (``kms:GrantIsForAWSResource``): SageMaker job and Studio volumes;
* services: CloudWatch Logs for the project's log groups; Budgets, CloudWatch and EventBridge (with
  ``aws:SourceAccount``) to publish to the encrypted alerts topic and send to the encrypted dead-letter
  queues.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from settings import ResourceNames, SecuritySettings
from stacks.data_perimeter import cfn_exec_role_arn, iam_role_arn, key_admin_arns

# Administration of this key, spelled out (no kms:Create*/kms:Put* wildcards): aliases, policy, rotation,
# description, tags, enable/disable and deletion scheduling. No data-plane action.
KEY_ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
]
# What the project's roles call: S3 SSE-KMS, SQS/SNS senders and readers (GenerateDataKey, Decrypt),
# SageMaker output encryption with a key ARN (Encrypt), EBS-backed job volumes (GenerateDataKeyWithout-
# Plaintext) and key validation (DescribeKey). No ReEncrypt: nothing re-encrypts under another key.
KEY_USE_ACTIONS = [
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
]
KEY_GRANT_ACTIONS = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]
# Services that publish to the KMS-encrypted alerts topic (budget notifications, alarms, EventBridge rules);
# EventBridge also sends undeliverable events to the KMS-encrypted dead-letter queues of the Ops stack.
TOPIC_PUBLISHER_SERVICES = ["budgets.amazonaws.com", "cloudwatch.amazonaws.com", "events.amazonaws.com"]
LOGS_KEY_ACTIONS = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
GRANT_FOR_AWS_RESOURCE = {"Bool": {"kms:GrantIsForAWSResource": "true"}}


class KeyStack(cdk.Stack):
    """The project key (``key``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        security: SecuritySettings,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.names = names
        self.security = security
        self.key = kms.Key(
            self,
            "DataKey",
            alias=names.key_alias,
            description=f"{names.prefix}: data, models, SageMaker volumes, Studio, logs and alerts",
            enable_key_rotation=True,
            policy=iam.PolicyDocument(statements=self._key_policy_statements()),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

    @property
    def key_user_arns(self) -> list[str]:
        """The ARNs of the roles the key policy lets use the key."""
        return [iam_role_arn(self.partition, self.account, name) for name in self.names.key_user_roles()]

    def _key_policy_statements(self) -> list[iam.PolicyStatement]:
        return [
            self._administration(),
            *self._use_by_project_roles(),
            self._deploy_time_grants(),
            self._cloudwatch_logs(),
            self._publishers(),
        ]

    def _administration(self) -> iam.PolicyStatement:
        admins = key_admin_arns(self.security, self.partition, self.account, self.region)
        return iam.PolicyStatement(
            sid="KeyAdministration",
            principals=[iam.ArnPrincipal(arn) for arn in admins],
            actions=KEY_ADMIN_ACTIONS,
            resources=["*"],  # in a key policy "*" means this key
        )

    def _use_by_project_roles(self) -> list[iam.PolicyStatement]:
        account, roles = iam.AccountRootPrincipal(), {"ArnEquals": {"aws:PrincipalArn": self.key_user_arns}}
        return [
            iam.PolicyStatement(
                sid="UseByProjectRoles",
                principals=[account],
                actions=KEY_USE_ACTIONS,
                resources=["*"],
                conditions=roles,
            ),
            iam.PolicyStatement(
                sid="GrantsForAwsResourcesOfProjectRoles",  # SageMaker job volumes, Studio spaces
                principals=[account],
                actions=KEY_GRANT_ACTIONS,
                resources=["*"],
                conditions={**roles, **GRANT_FOR_AWS_RESOURCE},
            ),
        ]

    def _deploy_time_grants(self) -> iam.PolicyStatement:
        # CloudFormation creates the Studio domain (its EFS home volume is encrypted with this key) as the
        # cfn-exec role; SageMaker creates that volume's grant with the caller's permissions.
        deployer = cfn_exec_role_arn(self.security, self.partition, self.account, self.region)
        return iam.PolicyStatement(
            sid="GrantsForAwsResourcesAtDeployTime",
            principals=[iam.ArnPrincipal(deployer)],
            actions=["kms:CreateGrant"],
            resources=["*"],
            conditions=GRANT_FOR_AWS_RESOURCE,
        )

    def _cloudwatch_logs(self) -> iam.PolicyStatement:
        log_groups = self.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{self.names.log_group_prefix}*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        return iam.PolicyStatement(
            sid="CloudWatchLogsOfProjectLogGroups",
            principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
            actions=LOGS_KEY_ACTIONS,
            resources=["*"],
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
        )

    def _publishers(self) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            sid="PublishToEncryptedAlertsTopic",
            principals=[iam.ServicePrincipal(service) for service in TOPIC_PUBLISHER_SERVICES],
            actions=["kms:GenerateDataKey*", "kms:Decrypt"],
            resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": self.account}},
        )
