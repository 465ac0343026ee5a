"""Storage stack: the data, artifacts and access-log buckets, encrypted with the Key stack's key.

The data and artifacts buckets carry the data perimeter (``stacks.data_perimeter``): unless the
``security.data_perimeter`` setting is off, their policies deny requests that do not come through the
project's S3 gateway endpoint, except for the named deploy principals, AWS services and the two roles
AWS uses outside the VPC. The endpoint ids come from the Network stack, which is why this stack comes
after it (and the key has a stack of its own, before both).

The access-log bucket uses S3-managed keys (SSE-S3) because S3 server access logging cannot deliver
to a bucket whose default encryption is SSE-KMS. All buckets keep their objects on stack deletion.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from settings import ResourceNames, SecuritySettings, StorageSettings
from stacks.data_perimeter import bucket_perimeter_statement, perimeter_exempt_arns

# Imported from here by other stacks before the key had its own stack; the names live in key_stack.
from stacks.key_stack import KEY_GRANT_ACTIONS, KEY_USE_ACTIONS, TOPIC_PUBLISHER_SERVICES
from stacks.nag import acknowledge, skip_checkov

__all__ = ["KEY_GRANT_ACTIONS", "KEY_USE_ACTIONS", "TOPIC_PUBLISHER_SERVICES", "StorageStack"]

REPLICATION_REASON = (
    "Single-region reference deployment: objects are protected by versioning, noncurrent-version "
    "retention and RETAIN policies; cross-region replication would double storage cost."
)


class StorageStack(cdk.Stack):
    """Buckets (``data_bucket``, ``artifacts_bucket``, ``access_logs_bucket``) and the key they use (``key``).

    ``perimeter_endpoint_ids`` are the VPC endpoints inside the data perimeter; None when the perimeter is
    off (``security.data_perimeter``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        storage: StorageSettings,
        security: SecuritySettings,
        key: kms.IKey,
        perimeter_endpoint_ids: Sequence[str] | None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.names = names
        self.storage = storage
        self.security = security
        self.key = key
        self.perimeter_endpoint_ids = perimeter_endpoint_ids

        self.access_logs_bucket = self._create_access_logs_bucket()
        self.data_bucket = self._create_data_bucket()
        self.artifacts_bucket = self._create_artifacts_bucket()

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
        self._add_perimeter(bucket)
        return bucket

    def _add_perimeter(self, bucket: s3.Bucket) -> None:
        if self.perimeter_endpoint_ids is None:
            return
        exempt = perimeter_exempt_arns(self.security, self.names, self.partition, self.account, self.region)
        bucket.add_to_resource_policy(
            bucket_perimeter_statement(bucket.bucket_arn, self.perimeter_endpoint_ids, exempt)
        )

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
