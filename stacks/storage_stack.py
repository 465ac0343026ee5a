"""Storage stack: the customer-managed KMS key and the data, artifacts and access-log buckets.

The key policy is scoped without naming role objects: the roles live in a later stack (which depends
on this one for the key and buckets), and KMS rejects a key policy whose principals do not exist yet.
So the usage statements trust the account and require ``aws:PrincipalArn`` to be one of the project's
role ARNs, which are deterministic from the settings. Services get only what they need: CloudWatch
Logs for the project's log groups, Budgets and CloudWatch to publish to the encrypted alerts topic.

The access-log bucket uses S3-managed keys (SSE-S3) because S3 server access logging cannot deliver
to a bucket whose default encryption is SSE-KMS. All buckets keep their objects on stack deletion.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from settings import ResourceNames, StorageSettings
from stacks.nag import acknowledge, skip_checkov

# Administrative key actions for the account (so the key can never become unmanageable); they do not
# include Encrypt/Decrypt/GenerateDataKey, which only the project's roles and named services get.
KEY_ADMIN_ACTIONS = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
]
KEY_USE_ACTIONS = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:DescribeKey",
]
KEY_GRANT_ACTIONS = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]
# Services that publish to the KMS-encrypted alerts topic (budget notifications, alarms, EventBridge rules);
# EventBridge also sends undeliverable events to the KMS-encrypted dead-letter queues of the Ops stack.
TOPIC_PUBLISHER_SERVICES = ["budgets.amazonaws.com", "cloudwatch.amazonaws.com", "events.amazonaws.com"]

REPLICATION_REASON = (
    "Single-region reference deployment: objects are protected by versioning, noncurrent-version "
    "retention and RETAIN policies; cross-region replication would double storage cost."
)


class StorageStack(cdk.Stack):
    """KMS key (``key``) and buckets (``data_bucket``, ``artifacts_bucket``, ``access_logs_bucket``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        storage: StorageSettings,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.names = names
        self.storage = storage

        self.key = self._create_key()
        self.access_logs_bucket = self._create_access_logs_bucket()
        self.data_bucket = self._create_data_bucket()
        self.artifacts_bucket = self._create_artifacts_bucket()

    def _role_arn(self, role_name: str) -> str:
        return self.format_arn(service="iam", region="", resource="role", resource_name=role_name)

    def _create_key(self) -> kms.Key:
        account_root = iam.AccountRootPrincipal()
        role_arns = [self._role_arn(name) for name in self.names.key_user_roles()]
        log_groups = self.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{self.names.log_group_prefix}*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        policy = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="KeyAdministration",
                    principals=[account_root],
                    actions=KEY_ADMIN_ACTIONS,
                    resources=["*"],  # in a key policy "*" means this key
                ),
                iam.PolicyStatement(
                    sid="UseByProjectRoles",
                    principals=[account_root],
                    actions=KEY_USE_ACTIONS,
                    resources=["*"],
                    conditions={"ArnEquals": {"aws:PrincipalArn": role_arns}},
                ),
                iam.PolicyStatement(
                    sid="GrantsForAwsResourcesOfProjectRoles",  # SageMaker job volumes, Studio EFS
                    principals=[account_root],
                    actions=KEY_GRANT_ACTIONS,
                    resources=["*"],
                    conditions={
                        "ArnEquals": {"aws:PrincipalArn": role_arns},
                        "Bool": {"kms:GrantIsForAWSResource": "true"},
                    },
                ),
                iam.PolicyStatement(
                    sid="CloudWatchLogsOfProjectLogGroups",
                    principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                    actions=[
                        "kms:Encrypt*",
                        "kms:Decrypt*",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:Describe*",
                    ],
                    resources=["*"],
                    conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
                ),
                iam.PolicyStatement(
                    sid="PublishToEncryptedAlertsTopic",
                    principals=[iam.ServicePrincipal(service) for service in TOPIC_PUBLISHER_SERVICES],
                    actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:SourceAccount": self.account}},
                ),
            ]
        )
        return kms.Key(
            self,
            "DataKey",
            alias=self.names.key_alias,
            description=f"{self.names.prefix}: data, models, SageMaker volumes, Studio, logs and alerts",
            enable_key_rotation=True,
            policy=policy,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

    def _create_access_logs_bucket(self) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            bucket_name=self.names.access_logs_bucket,
            # S3 server access logging does not support SSE-KMS target buckets: SSE-S3 is the only option.
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs",
                    expiration=cdk.Duration.days(self.storage.access_log_expiry_days),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "This is the terminal server-access-log bucket; logging it into itself would loop.",
        )
        acknowledge(
            bucket,
            "NIST.800.53.R5-S3BucketLoggingEnabled",
            "This is the terminal server-access-log bucket; logging it into itself would loop.",
        )
        acknowledge(
            bucket,
            "NIST.800.53.R5-S3DefaultEncryptionKMS",
            "S3 server access logging only delivers to SSE-S3 buckets (SSE-KMS targets are unsupported).",
        )
        acknowledge(bucket, "NIST.800.53.R5-S3BucketReplicationEnabled", REPLICATION_REASON)
        skip_checkov(
            bucket.node.default_child,
            "CKV_AWS_18",
            "Terminal server-access-log bucket; logging it into itself would loop.",
        )
        return bucket

    def _kms_bucket(self, construct_id: str, *, bucket_name: str, log_prefix: str, **kwargs) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            construct_id,
            bucket_name=bucket_name,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,  # fewer KMS requests, lower cost
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix=log_prefix,
            removal_policy=cdk.RemovalPolicy.RETAIN,
            **kwargs,
        )
        acknowledge(bucket, "NIST.800.53.R5-S3BucketReplicationEnabled", REPLICATION_REASON)
        return bucket

    def _version_rules(self) -> list[s3.LifecycleRule]:
        return [
            s3.LifecycleRule(
                id="ExpireNoncurrentVersions",
                noncurrent_version_expiration=cdk.Duration.days(self.storage.noncurrent_version_expiry_days),
                abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
            )
        ]

    def _create_data_bucket(self) -> s3.Bucket:
        bucket = self._kms_bucket(
            "DataBucket",
            bucket_name=self.names.data_bucket,
            log_prefix="data/",
            lifecycle_rules=self._version_rules(),
        )
        # EventBridge notifications let new data trigger the pipeline. Set on the L1 resource: the L2
        # `event_bridge_enabled=True` would deploy a Lambda-backed custom resource to do the same.
        cfn_bucket: s3.CfnBucket = bucket.node.default_child
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(
                event_bridge_enabled=True
            )
        )
        return bucket

    def _create_artifacts_bucket(self) -> s3.Bucket:
        rules = [
            s3.LifecycleRule(
                id="ExpirePipelineIntermediates",
                prefix=self.names.intermediates_prefix,
                expiration=cdk.Duration.days(self.storage.intermediates_expiry_days),
            ),
            *self._version_rules(),
        ]
        return self._kms_bucket(
            "ArtifactsBucket",
            bucket_name=self.names.artifacts_bucket,
            log_prefix="artifacts/",
            lifecycle_rules=rules,
        )
