"""Storage stack: the data, artifacts and access-log buckets, encrypted with the Key stack's key.

The data and artifacts buckets carry the data perimeter (``stacks.data_perimeter``): unless the
``security.data_perimeter`` setting is off, their policies deny requests that do not come through the
project's S3 gateway endpoint, except for the named deploy principals, AWS services and the two roles
AWS uses outside the VPC. The endpoint ids come from the Network stack, which is why this stack comes
after it (and the key has a stack of its own, before both).

The access-log bucket uses S3-managed keys (SSE-S3) because S3 server access logging cannot deliver
to a bucket whose default encryption is SSE-KMS. All buckets keep their objects on stack deletion.

With ``backup.replication`` set, S3 replicates every new object version of the artifacts bucket, SSE-KMS
encrypted ones included (``SourceSelectionCriteria.SseKmsEncryptedObjects``), to a versioned bucket in
another region, re-encrypted there with that region's key; deletions (delete markers) are not replicated,
so the copy survives a deletion here. ``ArtifactsReplicationRole`` (assumed by S3) may read object versions
for replication here, replicate into the destination, decrypt with the project key and encrypt with the
destination key, both only through S3 in their region and for their bucket (``kms:EncryptionContext``: the
bucket ARN, which S3 Bucket Keys use, or an object ARN). S3 replicates outside the VPC, so the role is
exempt from the data perimeter of the artifacts bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from settings import ReplicationSettings, ResourceNames, SecuritySettings, StorageSettings
from stacks.data_perimeter import bucket_perimeter_statement, iam_role_arn, perimeter_exempt_arns
from stacks.iam_conditions import service_principal

# Imported from here by other stacks before the key had its own stack; the names live in key_stack.
from stacks.key_stack import KEY_GRANT_ACTIONS, KEY_USE_ACTIONS, TOPIC_PUBLISHER_SERVICES
from stacks.nag import acknowledge, skip_checkov
from stacks.roles import LeastPrivilegeRole

__all__ = ["KEY_GRANT_ACTIONS", "KEY_USE_ACTIONS", "TOPIC_PUBLISHER_SERVICES", "StorageStack"]

REPLICATION_REASON = (
    "Single-region reference deployment: objects are protected by versioning, noncurrent-version "
    "retention and RETAIN policies; cross-region replication would double storage cost."
)


class StorageStack(cdk.Stack):
    """Buckets (``data_bucket``, ``artifacts_bucket``, ``access_logs_bucket``) and the key they use (``key``).

    ``perimeter_endpoint_ids`` are the VPC endpoints inside the data perimeter; None when the perimeter is
    off (``security.data_perimeter``). ``replication`` (``backup.replication``) adds ``replication_role``.
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
        replication: ReplicationSettings | None = None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.names = names
        self.storage = storage
        self.security = security
        self.key = key
        self.perimeter_endpoint_ids = perimeter_endpoint_ids
        self.replication = replication
        self.replication_role: LeastPrivilegeRole | None = None

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
            cast(cdk.CfnResource, bucket.node.default_child),
            "CKV_AWS_18",
            "Terminal server-access-log bucket; logging it into itself would loop.",
        )
        return bucket

    def _kms_bucket(
        self,
        construct_id: str,
        *,
        bucket_name: str,
        log_prefix: str,
        replicated: bool = False,
        **kwargs,
    ) -> s3.Bucket:
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
        if not replicated:
            acknowledge(bucket, "NIST.800.53.R5-S3BucketReplicationEnabled", REPLICATION_REASON)
        self._add_perimeter(bucket, replicated)
        return bucket

    def _add_perimeter(self, bucket: s3.Bucket, replicated: bool = False) -> None:
        if self.perimeter_endpoint_ids is None:
            return
        exempt = perimeter_exempt_arns(self.security, self.names, self.partition, self.account, self.region)
        if replicated:  # S3 replicates as this role from outside the VPC
            exempt.append(iam_role_arn(self.partition, self.account, self.names.replication_role))
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
        cfn_bucket = cast(s3.CfnBucket, bucket.node.default_child)
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
        bucket = self._kms_bucket(
            "ArtifactsBucket",
            bucket_name=self.names.artifacts_bucket,
            log_prefix="artifacts/",
            replicated=self.replication is not None,
            lifecycle_rules=rules,
        )
        if self.replication is not None:
            self.replication_role = self._replicate(bucket, self.replication)
        return bucket

    def _replicate(self, bucket: s3.Bucket, replication: ReplicationSettings) -> LeastPrivilegeRole:
        if not cdk.Token.is_unresolved(self.region) and replication.destination_region == self.region:
            raise ValueError(
                f"backup.replication: destination key {replication.destination_key_arn} is in {self.region}, "
                "the deployment's own region; cross-region replication needs another region"
            )
        role = self._replication_role(replication)
        cfn_bucket = cast(s3.CfnBucket, bucket.node.default_child)
        cfn_bucket.replication_configuration = s3.CfnBucket.ReplicationConfigurationProperty(
            role=role.role_arn,
            rules=[
                s3.CfnBucket.ReplicationRuleProperty(
                    id="ReplicateArtifactsToOtherRegion",
                    status="Enabled",
                    priority=1,
                    filter=s3.CfnBucket.ReplicationRuleFilterProperty(prefix=""),
                    # A deletion here must not delete the disaster-recovery copy.
                    delete_marker_replication=s3.CfnBucket.DeleteMarkerReplicationProperty(status="Disabled"),
                    source_selection_criteria=s3.CfnBucket.SourceSelectionCriteriaProperty(
                        sse_kms_encrypted_objects=s3.CfnBucket.SseKmsEncryptedObjectsProperty(
                            status="Enabled"
                        )
                    ),
                    destination=s3.CfnBucket.ReplicationDestinationProperty(
                        bucket=replication.destination_bucket_arn,
                        encryption_configuration=s3.CfnBucket.EncryptionConfigurationProperty(
                            replica_kms_key_id=replication.destination_key_arn
                        ),
                        storage_class=replication.storage_class,
                    ),
                )
            ],
        )
        return role

    def _replication_role(self, replication: ReplicationSettings) -> LeastPrivilegeRole:
        role = LeastPrivilegeRole(
            self,
            "ArtifactsReplicationRole",
            role_name=self.names.replication_role,
            # Confused deputy: S3 may assume it only while acting for a bucket of this account.
            assumed_by=service_principal("s3.amazonaws.com", self.account),
            description="S3 replicates the artifacts bucket to the disaster-recovery region",
        )
        # By name, not bucket.bucket_arn: the bucket refers to the role, whose policy would refer back to it.
        source = f"arn:{self.partition}:s3:::{self.names.artifacts_bucket}"
        target = replication.destination_bucket_arn
        role.allow(
            "ReadReplicationConfiguration", ["s3:GetReplicationConfiguration", "s3:ListBucket"], [source]
        )
        role.allow(
            "ReadVersionsForReplication",
            ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"],
            [f"{source}/*"],
            wildcard_reason="every object version of the artifacts bucket is replicated",
        )
        role.allow(
            "WriteReplicas",
            ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
            [f"{target}/*"],
            wildcard_reason="replicas keep their source keys in the destination bucket",
        )
        role.allow(
            "DecryptSourceObjects",
            ["kms:Decrypt"],
            [self.key.key_arn],
            conditions=_via_s3(self.region, source),
            wildcard_reason="the encryption context names the source bucket or one of its objects",
        )
        role.allow(
            "EncryptReplicas",
            ["kms:Encrypt", "kms:GenerateDataKey"],
            [replication.destination_key_arn],
            conditions=_via_s3(replication.destination_region, target),
            wildcard_reason="the encryption context names the destination bucket or one of its objects",
        )
        role.acknowledge_wildcards()
        return role


def _via_s3(region: str, bucket_arn: str) -> dict[str, dict[str, object]]:
    """KMS used by S3 in `region` for `bucket_arn`: the context is the bucket ARN with an S3 Bucket Key,
    else the object ARN."""
    return {
        "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
        "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket_arn, f"{bucket_arn}/*"]},
    }
