"""Model mirror on AWS: the ``mirror_model`` function, the approval rule that calls it, and its role.

``ModelApprovedMirrorRule`` sends "SageMaker Model Package State Change" events of the project's model
package group with status Approved to the function (retry policy, EventBridge dead-letter queue); the
function (two asynchronous retries, then its own encrypted failure queue) copies the version's model
archive, evaluation report and data manifest from the artifacts bucket to the S3-compatible store of
``settings.mirror`` (see ``lambdas/mirror_model``). Built only when ``mirror.enabled``.

Network: unlike the other ops functions this one runs outside the VPC. The store is on the internet
(Supabase, a MinIO host) and the project VPC has no route there by design (no NAT or internet gateway);
adding one for a single copy per approval would give every subnet sharing the route table a path out, and
Secrets Manager has no endpoint in the VPC either. The price is the data perimeter: the artifacts bucket
denies requests that do not come through the S3 gateway endpoint, so the function's role must be one of
the perimeter's exempt roles and one of the key's user roles (``mirror_role_name``). The role reads only
the registered artifacts (``models/``, ``registry/``), describes only the group's versions, and reads only
the one secret (and its key, through Secrets Manager only).
"""

from __future__ import annotations

from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.mirror_model import config as mirror_env
from settings import ResourceNames
from settings.mirror import ModelMirrorSettings
from stacks.nag import NIST_R5, acknowledge, skip_checkov
from stacks.ops_common import (
    EVENTS,
    QUEUE_KEY_ACTIONS,
    RUNTIME,
    RUNTIME_REASON,
    add_rule,
    checked_handler,
    encrypted_queue,
    lambda_code,
)
from stacks.platform import Platform
from stacks.queue_alarm import queue_alarm
from stacks.roles import LeastPrivilegeRole

FUNCTION_NAME = "mirror-model"
OUTSIDE_VPC_REASON = (
    "The function copies approved models to an external S3-compatible store on the internet; the project VPC "
    "has no internet route by design, so the function runs outside it (see stacks/model_mirror.py)"
)


def mirror_role_name(names: ResourceNames) -> str:
    """The function's role; its name must be among the key's user roles and the perimeter's exempt roles."""
    # ResourceNames builds every role name this way (prefix, concern, region); see docs/model-mirror.md.
    return names.mirror_role


class ModelMirror(Construct):
    """``function``, ``role``, ``log_group``, ``failures`` (queue, ``failures_alarm``) and ``rule``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        mirror: ModelMirrorSettings,
        key: kms.IKey,
        dead_letter_queue: sqs.IQueue,
        alerts_topic: sns.ITopic,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stack = cdk.Stack.of(self)
        self.names = names
        self.mirror = mirror
        self.secret_arn = mirror.deployed_secret_arn()
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"{names.log_group_prefix}lambda/{FUNCTION_NAME}",
            encryption_key=key,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        cast(logs.CfnLogGroup, self.log_group.node.default_child).retention_in_days = log_retention_days
        self.failures = encrypted_queue(
            self, "FailedInvocations", queue_name=f"{names.prefix}-{FUNCTION_NAME}-dlq", key=key
        )
        self.role = LeastPrivilegeRole(
            self,
            "Role",
            role_name=mirror_role_name(names),
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Mirrors approved model versions to the external S3-compatible store",
        )
        self._allow(key)
        self.role.acknowledge_wildcards()
        self.function = self._create_function()
        self.rule = self._create_rule(dead_letter_queue)
        self.failures_alarm = queue_alarm(
            self,
            "DeadLetters",
            queue=self.failures,
            name=f"{names.prefix}-{FUNCTION_NAME}-dead-letters",
            topic=alerts_topic,
        )

    def environment(self) -> dict[str, str]:
        """The function's variables (lambdas/mirror_model/config.py); no key or secret value."""
        mirror = self.mirror
        return {
            mirror_env.ENV_GROUP: self.names.model_package_group,
            mirror_env.ENV_ENDPOINT: str(mirror.endpoint_url),
            mirror_env.ENV_BUCKET: str(mirror.bucket),
            mirror_env.ENV_REGION: mirror.region,
            mirror_env.ENV_PREFIX: mirror.prefix,
            mirror_env.ENV_PATH_STYLE: "true" if mirror.path_style else "false",
            mirror_env.ENV_CHECKSUM: mirror.checksum,
            mirror_env.ENV_TIMEOUT: str(mirror.timeout_seconds),
            mirror_env.ENV_SECRET_ARN: self.secret_arn,
        }

    def _create_function(self) -> lambda_.Function:
        function = lambda_.Function(
            self,
            "Function",
            function_name=f"{self.names.prefix}-{FUNCTION_NAME}",
            description="Mirrors approved model versions to the external S3-compatible store",
            runtime=RUNTIME,
            handler=checked_handler("lambdas.mirror_model.handler.handler"),
            code=lambda_code(),
            role=iam.Role.from_role_arn(self, "RoleRef", self.role.role_arn, mutable=False),
            environment=self.environment(),
            timeout=cdk.Duration.minutes(5),
            memory_size=1024,  # the model archive is held in memory while it is hashed and uploaded
            retry_attempts=2,
            dead_letter_queue=self.failures,
            log_group=self.log_group,
        )
        function.node.add_dependency(self.role.policy)
        acknowledge(function, "AwsSolutions-L1", RUNTIME_REASON)
        acknowledge(function, f"{NIST_R5}-LambdaInsideVPC", OUTSIDE_VPC_REASON)
        no_reservation = (
            "No reserved concurrency: a new account's quota of 10 cannot be reserved from; the handler is "
            "idempotent (identical objects are skipped), so two runs of one approval write nothing twice"
        )
        acknowledge(function, f"{NIST_R5}-LambdaConcurrency", no_reservation)
        resource = cast(cdk.CfnResource, function.node.default_child)
        skip_checkov(resource, "CKV_AWS_115", no_reservation)
        skip_checkov(resource, "CKV_AWS_117", OUTSIDE_VPC_REASON)
        skip_checkov(
            resource,
            "CKV_AWS_173",
            "The environment holds the store's endpoint, bucket and the secret's ARN, never a key; Lambda "
            "encrypts it at rest with its AWS managed key.",
        )
        return function

    def _objects(self, prefix: str) -> str:
        return f"arn:{self.stack.partition}:s3:::{self.names.artifacts_bucket}/{prefix}*"

    def _allow(self, key: kms.IKey) -> None:
        role, names = self.role, self.names
        role.allow(
            "WriteOwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], [self.log_group.log_group_arn]
        )
        role.allow("SendFailedInvocations", ["sqs:SendMessage"], [self.failures.queue_arn])
        role.allow("EncryptFailedInvocations", QUEUE_KEY_ACTIONS, [key.key_arn])
        role.allow(
            "DescribeModelVersions",
            ["sagemaker:DescribeModelPackage"],
            [
                self.stack.format_arn(
                    service="sagemaker",
                    resource="model-package",
                    resource_name=f"{names.model_package_group}/*",
                )
            ],
            wildcard_reason="model package versions are numbered by the registry inside the project's group",
        )
        role.allow(
            "ReadRegisteredArtifacts",
            ["s3:GetObject"],
            [self._objects(names.models_prefix), self._objects(names.registry_prefix)],
            wildcard_reason="model archives, evaluation reports and data manifests are keyed by execution",
        )
        role.allow(
            "ListDataManifests",
            ["s3:ListBucket"],
            [f"arn:{self.stack.partition}:s3:::{names.artifacts_bucket}"],
            conditions={"StringLike": {"s3:prefix": [f"{names.registry_prefix}*"]}},
        )
        s3_service = f"s3.{self.stack.region}.amazonaws.com"
        role.allow(
            "DecryptArtifacts",
            ["kms:Decrypt"],
            [key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": s3_service}},
        )
        role.allow("ReadStoreKeys", ["secretsmanager:GetSecretValue"], [self.secret_arn])
        if self.mirror.secret_kms_key_arn is not None:
            role.allow(
                "DecryptStoreKeys",
                ["kms:Decrypt"],
                [self.mirror.secret_kms_key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"secretsmanager.{self.stack.region}.amazonaws.com"}
                },
            )

    def _create_rule(self, dead_letter_queue: sqs.IQueue) -> events.CfnRule:
        function = self.function
        rule = add_rule(
            self,
            "ModelApprovedMirrorRule",
            rule_name=f"{self.names.prefix}-model-mirror",
            description=f"Approved versions of {self.names.model_package_group}, to the external store",
            event_pattern={
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Package State Change"],
                "detail": {
                    "ModelPackageGroupName": [self.names.model_package_group],
                    "ModelApprovalStatus": ["Approved"],
                },
            },
            target={"id": "MirrorModelFunction", "arn": function.function_arn},
            dead_letter_queue=dead_letter_queue,
        )
        function.add_permission(
            "InvokedByModelApprovedMirrorRule", principal=EVENTS, source_arn=rule.attr_arn
        )
        return rule


def add_model_mirror(
    scope: Construct, platform: Platform, dead_letter_queue: sqs.IQueue
) -> ModelMirror | None:
    """The mirror of ``platform.settings.mirror`` in ``scope`` (the ops stack); None when it is off."""
    settings = platform.settings
    if not settings.mirror.enabled:
        return None
    return ModelMirror(
        scope,
        "ModelMirror",
        names=platform.names,
        mirror=settings.mirror,
        key=platform.key,
        dead_letter_queue=dead_letter_queue,
        alerts_topic=platform.alerts_topic,
        log_retention_days=settings.monitoring.log_retention_days,
    )
