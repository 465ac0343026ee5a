"""Backups of the registry and the endpoint configuration: the ``backup_registry`` function and its rules.

``BackupOnDeploymentRule`` sends "SageMaker Endpoint State Change" events of the project endpoint with
``EndpointStatus`` ``IN_SERVICE`` to the function: every finished deployment (the deploy function's
create/update, a blue/green shift, an automatic rollback) is followed by a backup without the deploy
function knowing. The deployment-specific "SageMaker Endpoint Deployment State Change" events report the
steps of a blue/green update while the endpoint is still UPDATING, so the state change is the one to use.
``BackupScheduleRule`` (``backup.schedule_cron``) backs up approval changes that deployed nothing.

The function writes ``<backup.prefix><time>-<event id>/backup.json`` and ``<backup.prefix>latest.json`` in
the artifacts bucket (encrypted by the bucket's default, the project key) and records the S3 version id of
every artifact the model packages point at (see ``lambdas/backup_registry/collect.py`` for why ids and not
copies). The role allows exactly what the handler calls: Describe* on the endpoint, its configs, the
group's models and packages, HeadObject under models/ and registry/, PutObject under the backup prefix.
A dead-letter alarm tells the alerts topic about a backup that failed after its retries.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.backup_registry import config as backup_config
from lambdas.backup_registry.handler import ENDPOINT_EVENT, IN_SERVICE, LATEST_FILE
from settings import MonitoringSettings, ResourceNames
from settings.backup import BackupSettings
from stacks.ops_common import EVENTS, FunctionSpec, LambdaNetwork, OpsFunction, add_rule
from stacks.platform import Platform
from stacks.queue_alarm import queue_alarm

ENDPOINT_STATE_CHANGE = ENDPOINT_EVENT[1]  # the rule matches what the handler accepts


class RegistryBackup(Construct):
    """``function`` (an :class:`OpsFunction`), ``deployment_rule``, ``schedule_rule`` and ``alarm``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        backup: BackupSettings,
        monitoring: MonitoringSettings,
        key: kms.IKey,
        network: LambdaNetwork,
        dead_letter_queue: sqs.IQueue,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stack = cdk.Stack.of(self)
        self.names = names
        self.backup = backup
        self.artifact_prefixes = (names.models_prefix, names.registry_prefix)
        self.function = OpsFunction(
            self,
            "BackupRegistry",
            spec=FunctionSpec(
                name="backup-registry",
                role_name=names.backup_role,
                handler="lambdas.backup_registry.handler.handler",
                description="Backs up the model registry and the endpoint configuration",
                environment=self._environment(),
                timeout=cdk.Duration.seconds(120),
            ),
            names=names,
            key=key,
            network=network,
            log_retention_days=monitoring.log_retention_days,
        )
        self._allow_describe()
        self._allow_bucket(key)
        self.function.role.acknowledge_wildcards()
        self.deployment_rule = self._create_rule("BackupOnDeploymentRule", dead_letter_queue, deployment=True)
        self.schedule_rule = self._create_rule("BackupScheduleRule", dead_letter_queue, deployment=False)
        self.alarm = queue_alarm(
            self,
            "DeadLetters",
            queue=self.function.failures,
            name=f"{names.prefix}-backup-registry-dead-letters",
            topic=topic,
        )

    def _environment(self) -> dict[str, str]:
        names = self.names
        return {
            backup_config.ENV_GROUP: names.model_package_group,
            backup_config.ENV_ENDPOINTS: names.endpoint,
            backup_config.ENV_BUCKET: names.artifacts_bucket,
            backup_config.ENV_PREFIX: self.backup.prefix,
            backup_config.ENV_ARTIFACT_PREFIXES: ",".join(self.artifact_prefixes),
        }

    def _sagemaker_arn(self, resource: str, name: str) -> str:
        return self.stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

    def _allow_describe(self) -> None:
        role, names = self.function.role, self.names
        group, endpoint = names.model_package_group, names.endpoint
        role.allow(
            "DescribeEndpoint", ["sagemaker:DescribeEndpoint"], [self._sagemaker_arn("endpoint", endpoint)]
        )
        role.allow(
            "DescribeEndpointConfigs",
            ["sagemaker:DescribeEndpointConfig"],
            [self._sagemaker_arn("endpoint-config", f"{endpoint}-*")],
            wildcard_reason="the deploy function names one config per version <endpoint>-v<N>-<digest>",
        )
        role.allow(
            "DescribeModels",
            ["sagemaker:DescribeModel"],
            [self._sagemaker_arn("model", f"{group}-*")],
            wildcard_reason="the deploy function names one model per version <group>-v<N>-<digest>",
        )
        role.allow(
            "DescribeModelGroup",
            ["sagemaker:DescribeModelPackageGroup"],
            [self._sagemaker_arn("model-package-group", group)],
        )
        role.allow(
            "DescribeModelVersions",
            ["sagemaker:DescribeModelPackage"],
            [self._sagemaker_arn("model-package", f"{group}/*")],
            wildcard_reason="model package versions are numbered by the registry inside the project's group",
        )
        role.allow(
            "ListModelVersions",
            ["sagemaker:ListModelPackages"],
            ["*"],
            wildcard_reason="sagemaker:ListModelPackages supports no resource-level permissions",
        )

    def _allow_bucket(self, key: kms.IKey) -> None:
        role = self.function.role
        bucket = f"arn:{self.stack.partition}:s3:::{self.names.artifacts_bucket}"
        role.allow(
            "HeadRegisteredArtifacts",
            ["s3:GetObject"],  # HeadObject is authorized as s3:GetObject; the body is never read
            [f"{bucket}/{prefix}*" for prefix in self.artifact_prefixes],
            wildcard_reason="model artifacts and registry reports are keyed by pipeline execution",
        )
        role.allow(
            "WriteBackups",
            ["s3:PutObject"],
            [f"{bucket}/{self.backup.prefix}*"],
            wildcard_reason="one backup.json per run under <prefix><time>-<event id>/, plus latest.json",
        )
        role.allow(
            "HeadLatestPointer",
            ["s3:GetObject"],  # HeadObject after a lost conditional write: is the pointed backup newer?
            [f"{bucket}/{self.backup.prefix}{LATEST_FILE}"],
        )
        # PutObject into the SSE-KMS bucket: S3 asks KMS for a data key on the caller's behalf.
        role.allow("EncryptBackups", ["kms:GenerateDataKey"], [key.key_arn])

    def _create_rule(
        self, construct_id: str, dead_letter_queue: sqs.IQueue, *, deployment: bool
    ) -> events.CfnRule:
        # The id also names the rule's statement in the shared dead-letter queue policy: unique per stack.
        function = self.function.function
        prefix = self.names.prefix
        pattern = {
            "source": ["aws.sagemaker"],
            "detail-type": [ENDPOINT_STATE_CHANGE],
            "detail": {"EndpointName": [self.names.endpoint], "EndpointStatus": [IN_SERVICE]},
        }
        rule = add_rule(
            self,
            construct_id,
            rule_name=f"{prefix}-backup-{'on-deployment' if deployment else 'schedule'}",
            description=(
                f"Back up the registry and endpoint {self.names.endpoint} when a deployment finishes"
                if deployment
                else "Back up the registry and the endpoint configuration on a schedule"
            ),
            event_pattern=pattern if deployment else None,
            schedule_expression=None if deployment else self.backup.schedule_cron,
            target={"id": "BackupRegistryFunction", "arn": function.function_arn},
            dead_letter_queue=dead_letter_queue,
        )
        function.add_permission(f"InvokedBy{construct_id}", principal=EVENTS, source_arn=rule.attr_arn)
        return rule


def add_registry_backup(
    scope: Construct, platform: Platform, network: LambdaNetwork, dead_letter_queue: sqs.IQueue
) -> RegistryBackup | None:
    """The ``Backup`` construct of the Ops stack, or None when ``backup.enabled`` is off."""
    settings = platform.settings
    if not settings.backup.enabled:
        return None
    return RegistryBackup(
        scope,
        "Backup",
        names=platform.names,
        backup=settings.backup,
        monitoring=settings.monitoring,
        key=platform.key,
        network=network,
        dead_letter_queue=dead_letter_queue,
        topic=platform.alerts_topic,
    )
