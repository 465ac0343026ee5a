"""Deploy on approval: the ``deploy_on_approval`` function, the rule that calls it, and its role.

``ModelPackageStateRule`` sends "SageMaker Model Package State Change" events of the project's model
package group with status Approved or Rejected to the function (retry policy, EventBridge dead-letter
queue). The function (two asynchronous retries, then its own encrypted failure queue) converges the
endpoint ``<prefix>-rul`` (blue/green, auto-rollback on the 5xx and latency alarms) and the champion prefix
(model, pointer, drift baselines) on the newest approved version, plus, with
``monitoring.use_model_monitor`` only, a Model Monitor schedule of the project's drift job. It has no
reserved concurrency (a new account's quota is 10, all of it unreservable), so two approvals may run at
once: that is safe because each run converges on the registry's newest approved version, idempotently,
and SageMaker refuses a second UpdateEndpoint while one is running; that run fails and its asynchronous
retry converges later. The endpoint model and the optional schedule run as the model role (the only role
this function may pass), in the job network, with the project key; ``serving.capture_mode`` chooses who
writes the captures (SageMaker's DataCaptureConfig, or the serving container itself).

The role allows exactly the calls the handler makes, on the project's names: ``ListModelPackages`` is the
only SageMaker action on ``*`` (it has no resource-level permissions); the Model Monitor actions are
granted only when the setting is on, and so are the A/B actions with ``serving.ab_test.enabled``
(UpdateEndpointWeightsAndCapacities on the endpoint; UpdateModelPackage on the group's versions, for the
audit notes and the rejection of a losing challenger). An operator starts an A/B action by invoking the
function directly (``python -m pipeline_steps ab-shift`` / ``ab-promote``), so it runs with this role
and logs its decision like every other.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.deploy_on_approval import config as deploy_env
from settings import MonitoringSettings, ResourceNames, ServingSettings
from settings.names import DEPLOY_FUNCTION
from stacks.iam_conditions import instance_type_guardrail, sets_approval
from stacks.network_stack import JobNetwork
from stacks.ops_common import EVENTS, FunctionSpec, LambdaNetwork, OpsFunction, add_rule
from stacks.roles import LeastPrivilegeRole

SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
APPROVAL_STATES = ("Approved", "Rejected")


class DeployOnApproval(Construct):
    """``function`` (an :class:`OpsFunction`) and ``rule``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        serving: ServingSettings,
        monitoring: MonitoringSettings,
        key: kms.IKey,
        network: LambdaNetwork,
        job_network: JobNetwork,
        rollback_alarm_names: Sequence[str],
        dead_letter_queue: sqs.IQueue,
        drift_image_uri: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.drift_image_uri = drift_image_uri
        self.stack = cdk.Stack.of(self)
        self.names = names
        self.use_model_monitor = monitoring.use_model_monitor
        self.rollback_alarm_names = tuple(rollback_alarm_names)
        # The endpoint model (and optional schedule) run as the model role; its name is deterministic
        # (stacks.iam_job_roles), so no cross-stack export is needed.
        self.model_role_arn = self.stack.format_arn(
            service="iam", region="", resource="role", resource_name=names.model_role
        )
        self.environment = self._environment(serving, monitoring, key, job_network)
        self.function = OpsFunction(
            self,
            "DeployOnApproval",
            spec=FunctionSpec(
                name=DEPLOY_FUNCTION,
                role_name=names.deploy_role,
                handler="lambdas.deploy_on_approval.handler.handler",
                description="Deploys the newest approved model version: endpoint, monitoring, champion",
                environment=self.environment,
                timeout=cdk.Duration.minutes(5),
                retry_attempts=2,
            ),
            names=names,
            key=key,
            network=network,
            log_retention_days=monitoring.log_retention_days,
        )
        self._allow_deployment(self.function.role, key, serving)
        self.function.role.acknowledge_wildcards()
        self.rule = self._create_rule(dead_letter_queue)

    def _environment(
        self, serving: ServingSettings, monitoring: MonitoringSettings, key: kms.IKey, job_network: JobNetwork
    ) -> dict[str, str]:
        names, strategy = self.names, serving.deployment
        artifacts = f"s3://{names.artifacts_bucket}/"
        environment = {
            deploy_env.ENV_GROUP: names.model_package_group,
            deploy_env.ENV_ENDPOINT: names.endpoint,
            deploy_env.ENV_MODEL_ROLE: self.model_role_arn,
            deploy_env.ENV_SUBNETS: ",".join(job_network.subnet_ids),
            deploy_env.ENV_SECURITY_GROUPS: ",".join(job_network.security_group_ids),
            deploy_env.ENV_KMS_KEY: key.key_arn,
            deploy_env.ENV_CAPTURE_URI: artifacts + names.data_capture_prefix,
            deploy_env.ENV_CAPTURE_PERCENT: str(serving.data_capture_percent),
            deploy_env.ENV_CAPTURE_MODE: serving.capture_mode,
            deploy_env.ENV_SERVING_MODE: serving.mode,
            deploy_env.ENV_SERVERLESS_MEMORY: str(serving.serverless_memory_mb),
            deploy_env.ENV_SERVERLESS_CONCURRENCY: str(serving.serverless_max_concurrency),
            deploy_env.ENV_INSTANCE_TYPE: serving.instance_type,
            deploy_env.ENV_INSTANCE_COUNT: str(serving.instance_count),
            deploy_env.ENV_STRATEGY: strategy.type,
            deploy_env.ENV_TRAFFIC_PERCENT: str(strategy.traffic_percent),
            deploy_env.ENV_TRAFFIC_WAIT: str(strategy.wait_seconds),
            deploy_env.ENV_TERMINATION_WAIT: str(strategy.termination_wait_seconds),
            deploy_env.ENV_ALARMS: ",".join(self.rollback_alarm_names),
            deploy_env.ENV_ARTIFACTS_BUCKET: names.artifacts_bucket,
            deploy_env.ENV_CHAMPION_PREFIX: names.champion_prefix,
            deploy_env.ENV_USE_MODEL_MONITOR: "true" if self.use_model_monitor else "false",
            deploy_env.ENV_AB_ENABLED: "true" if serving.ab_test.enabled else "false",
            deploy_env.ENV_AB_CHALLENGER_PERCENT: str(serving.ab_test.challenger_weight_percent),
            deploy_env.ENV_AB_CHALLENGER_INSTANCES: str(serving.ab_test.challenger_instance_count),
        }
        if not self.use_model_monitor:
            return environment
        return {
            **environment,
            deploy_env.ENV_SCHEDULE: names.monitoring_schedule,
            deploy_env.ENV_SCHEDULE_CRON: monitoring.schedule_cron,
            deploy_env.ENV_MONITOR_IMAGE: self.drift_image_uri,
            deploy_env.ENV_MONITOR_ROLE: self.model_role_arn,
            deploy_env.ENV_MONITOR_OUTPUT: artifacts + names.monitoring_prefix,
            deploy_env.ENV_MONITOR_INSTANCE_TYPE: monitoring.instance_type,
            deploy_env.ENV_MONITOR_VOLUME_GB: str(monitoring.volume_gb),
            deploy_env.ENV_MONITOR_MAX_RUNTIME: str(monitoring.max_runtime_minutes * 60),
        }

    def _sagemaker_arn(self, resource: str, name: str) -> str:
        return self.stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

    def _objects(self, prefix: str) -> str:
        return f"arn:{self.stack.partition}:s3:::{self.names.artifacts_bucket}/{prefix}*"

    def _allow_deployment(self, role: LeastPrivilegeRole, key: kms.IKey, serving: ServingSettings) -> None:
        self._allow_sagemaker(role, serving)
        role.allow(
            "DescribeRollbackAlarms",
            ["cloudwatch:DescribeAlarms"],
            [
                self.stack.format_arn(
                    service="cloudwatch",
                    resource="alarm",
                    resource_name=name,
                    arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                )
                for name in self.rollback_alarm_names
            ],
        )
        role.allow(
            "PassModelRole",
            ["iam:PassRole"],
            [self.model_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}},
        )
        self._allow_artifacts(role)
        role.allow("UseProjectKey", ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], [key.key_arn])
        role.allow(
            "GrantKeyToEndpointAndMonitor",  # SageMaker encrypts the endpoint's volumes through grants
            ["kms:CreateGrant"],
            [key.key_arn],
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        )

    def _allow_artifacts(self, role: LeastPrivilegeRole) -> None:
        names = self.names
        role.allow(
            "ReadRegisteredModels",
            ["s3:GetObject"],
            [self._objects(names.models_prefix)],
            wildcard_reason="registered model artifacts are keyed by execution; copied to the champion",
        )
        role.allow(
            "ReadRegisteredBaselines",
            ["s3:GetObject"],
            [self._objects(names.registry_prefix)],
            wildcard_reason="drift baselines are registered under keys per execution; copied to the champion",
        )
        role.allow(
            "PublishChampion",
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            [self._objects(names.champion_prefix)],
            wildcard_reason="the champion prefix holds model.tar.gz, champion.json, the placeholder and "
            "baselines/statistics.json and constraints.json",
        )
        role.allow(
            "ListChampion",
            ["s3:ListBucket"],
            [f"arn:{self.stack.partition}:s3:::{names.artifacts_bucket}"],
            conditions={"StringLike": {"s3:prefix": [f"{names.champion_prefix}*"]}},
        )

    def _allow_sagemaker(self, role: LeastPrivilegeRole, serving: ServingSettings) -> None:
        group = self.names.model_package_group
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
        role.allow(
            "CreateVersionModels",
            ["sagemaker:DescribeModel", "sagemaker:CreateModel", "sagemaker:AddTags"],
            [self._sagemaker_arn("model", f"{group}-*")],
            wildcard_reason="one model per version, named <group>-v<N>-<digest>",
        )
        self._allow_endpoint(role, serving)
        if serving.ab_test.enabled:
            self._allow_ab_test(role)
        if not self.use_model_monitor:
            return
        role.allow(  # the drift job's definition is inline: no job-definition resource to create
            "ManageMonitoringSchedule",
            [
                "sagemaker:DescribeMonitoringSchedule",
                "sagemaker:CreateMonitoringSchedule",
                "sagemaker:UpdateMonitoringSchedule",
                "sagemaker:DeleteMonitoringSchedule",
                "sagemaker:AddTags",
            ],
            [self._sagemaker_arn("monitoring-schedule", self.names.monitoring_schedule)],
        )

    def _allow_endpoint(self, role: LeastPrivilegeRole, serving: ServingSettings) -> None:
        endpoint = self.names.endpoint
        endpoint_configs = self._sagemaker_arn("endpoint-config", f"{endpoint}-*")
        config_reason = "one endpoint config per version, named <endpoint>-v<N>-<digest>"
        role.allow(
            "CreateEndpointConfigs",
            ["sagemaker:CreateEndpointConfig"],
            [endpoint_configs],
            # A serverless config names no instance type; an instance-based one must name the serving type.
            conditions=instance_type_guardrail([serving.instance_type], required=serving.mode == "instances"),
            wildcard_reason=config_reason + "; only the serving instance type",
        )
        role.allow(
            "ReadAndTagEndpointConfigs",
            ["sagemaker:DescribeEndpointConfig", "sagemaker:ListTags", "sagemaker:AddTags"],
            [endpoint_configs],
            wildcard_reason=config_reason,
        )
        role.allow(
            "CreateAndUpdateEndpoint",
            [
                "sagemaker:DescribeEndpoint",
                "sagemaker:CreateEndpoint",
                "sagemaker:UpdateEndpoint",
                "sagemaker:AddTags",
            ],
            [self._sagemaker_arn("endpoint", endpoint), endpoint_configs],
            wildcard_reason="Create/UpdateEndpoint are also authorized on the config they point to; "
            + config_reason,
        )

    def _allow_ab_test(self, role: LeastPrivilegeRole) -> None:
        group = self.names.model_package_group
        role.allow(
            "ShiftVariantWeights",
            ["sagemaker:UpdateEndpointWeightsAndCapacities"],
            [self._sagemaker_arn("endpoint", self.names.endpoint)],
        )
        role.allow(
            "NoteAndRetireVersions",
            ["sagemaker:UpdateModelPackage"],
            [self._sagemaker_arn("model-package", f"{group}/*")],
            wildcard_reason="A/B notes go on the champion's and the challenger's versions, numbered by the "
            "registry inside the project's group",
        )
        # It may note and reject versions, never approve one: only the approver persona sets Approved (the
        # IAM stack's deny covers that stack's roles, not this function's).
        role.deny(
            "NeverApproveModels",
            ["sagemaker:UpdateModelPackage"],
            [self._sagemaker_arn("model-package", f"{group}/*")],
            conditions=sets_approval(),
        )

    def _create_rule(self, dead_letter_queue: sqs.IQueue) -> events.CfnRule:
        function = self.function.function
        rule = add_rule(
            self,
            "ModelPackageStateRule",
            rule_name=f"{self.names.prefix}-model-approval",
            description=f"Approved or rejected versions of {self.names.model_package_group}",
            event_pattern={
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Package State Change"],
                "detail": {
                    "ModelPackageGroupName": [self.names.model_package_group],
                    "ModelApprovalStatus": list(APPROVAL_STATES),
                },
            },
            target={"id": "DeployOnApprovalFunction", "arn": function.function_arn},
            dead_letter_queue=dead_letter_queue,
        )
        function.add_permission("InvokedByModelPackageStateRule", principal=EVENTS, source_arn=rule.attr_arn)
        return rule
