"""Building blocks shared by the operations constructs: dead-letter queues, rules, functions, their roles.

* :func:`encrypted_queue` — an SQS queue encrypted with the project key, TLS only, 14-day retention:
  the dead-letter queue of EventBridge targets and of the functions' asynchronous invocations.
* :func:`add_rule` — an ``AWS::Events::Rule`` (L1: the SageMaker-pipeline target has no L2 class in
  aws-cdk-lib 2.275) with one target that always carries a retry policy and the dead-letter queue; the
  queue's policy admits EventBridge for exactly that rule (``aws:SourceArn``).
* :class:`OpsFunction` — a Python 3.12 function from the ``lambdas/`` folder in the Lambda subnets, with
  its own KMS-encrypted log group, reserved concurrency, asynchronous retries and on-failure queue, and a
  :class:`stacks.roles.LeastPrivilegeRole` holding only the logging, networking and queue grants; the
  caller adds what the handler itself calls.

The function gets an immutable reference to its role, so CDK cannot add an inline default policy; the
function also waits for the role's policy, because Lambda checks the ENI permissions at creation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from settings import ResourceNames
from stacks.nag import NIST_R5, acknowledge, skip_checkov
from stacks.roles import LeastPrivilegeRole

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS_DIR = REPO_ROOT / "lambdas"
# The functions' asset is the repository filtered down to lambdas/, so the bundle's root holds a `lambdas/`
# folder and the handlers import `lambdas.common` under the name they have in the repository. CDK applies the
# patterns in order, the last match winning (`!` re-includes); `*` matches no dot-files (minimatch), hence
# `.*`. An excluded folder is not even walked, so .venv and node_modules cost nothing.
LAMBDA_ASSET_EXCLUDE = ("*", ".*", "!lambdas", "!lambdas/**", "**/__pycache__", "*.pyc")
# Issue #7 pins Python 3.12; the handlers use only the standard library and boto3.
RUNTIME = lambda_.Runtime.PYTHON_3_12
RUNTIME_REASON = (
    "Issue #7 pins the ops functions to python3.12 (the handlers are tested here under CPython 3.11 only); "
    "move to the newest runtime once the handlers' tests run on it"
)
EVENTS = iam.ServicePrincipal("events.amazonaws.com")
# EventBridge keeps retrying a failed delivery (throttling, a missing target) for up to an hour.
TARGET_RETRY = events.CfnRule.RetryPolicyProperty(maximum_event_age_in_seconds=3600, maximum_retry_attempts=8)
# Lambda's network interfaces: Describe* have no resource-level permissions (AWSLambdaVPCAccessExecutionRole).
ENI_DESCRIBE_ACTIONS = ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"]
ENI_MANAGE_ACTIONS = [
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
]
QUEUE_KEY_ACTIONS = ["kms:GenerateDataKey", "kms:Decrypt"]  # SQS server-side encryption, for senders


@dataclass(frozen=True)
class LambdaNetwork:
    """Where the ops functions run: the job subnets, with their own security group (HTTPS out only)."""

    vpc: ec2.IVpc
    subnets: tuple[ec2.ISubnet, ...]
    security_group: ec2.ISecurityGroup


@dataclass(frozen=True)
class FunctionSpec:
    """What differs between the ops functions."""

    name: str  # function, role and log-group suffix, e.g. "start-pipeline"
    role_name: str
    handler: str  # "<module path>.<callable>" from the asset root: "lambdas.start_pipeline.handler.handler"
    description: str
    environment: Mapping[str, str]
    timeout: cdk.Duration
    # None: no reservation. A new account's concurrency quota is 10 and Lambda keeps 10 unreserved, so any
    # reservation fails its first deploy; the handlers are idempotent instead (see each handler's docstring).
    reserved_concurrency: int | None = None
    retry_attempts: int = 2


def lambda_code() -> lambda_.Code:
    """The code of every ops function: the ``lambdas/`` folder (no caches), under its own name."""
    return lambda_.Code.from_asset(str(REPO_ROOT), exclude=list(LAMBDA_ASSET_EXCLUDE))


def checked_handler(handler: str) -> str:
    """``handler`` if it names a module ``lambdas/<function>/<module>.py`` here; otherwise ValueError."""
    module, _, function = handler.rpartition(".")
    path = REPO_ROOT.joinpath(*module.split(".")).with_suffix(".py")
    if not module.startswith("lambdas.") or not function or not path.is_file():
        raise ValueError(
            f"handler {handler!r}: expected 'lambdas.<function>.<module>.<callable>' naming a file under "
            f"{LAMBDAS_DIR} ({path} does not exist)"
        )
    return handler


def encrypted_queue(scope: Construct, construct_id: str, *, queue_name: str, key: kms.IKey) -> sqs.Queue:
    """A dead-letter queue (of rule targets or a function): it needs no dead-letter queue of its own."""
    queue = sqs.Queue(
        scope,
        construct_id,
        queue_name=queue_name,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        data_key_reuse=cdk.Duration.hours(1),  # fewer KMS calls
        enforce_ssl=True,
        retention_period=cdk.Duration.days(14),
    )
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        "This queue is itself a dead-letter queue (of EventBridge targets or of a function's asynchronous "
        "invocations); its messages are kept 14 days and an alarm reports any of them",
    )
    return queue


def add_rule(
    scope: Construct,
    construct_id: str,
    *,
    rule_name: str,
    description: str,
    target: Mapping[str, Any],
    dead_letter_queue: sqs.IQueue,
    event_pattern: Mapping[str, object] | None = None,
    schedule_expression: str | None = None,
) -> events.CfnRule:
    """A rule with one target (``TargetProperty`` keywords: id, arn, ...), its retry policy and DLQ."""
    rule = events.CfnRule(
        scope,
        construct_id,
        name=rule_name,
        description=description,
        event_pattern=dict(event_pattern) if event_pattern else None,
        schedule_expression=schedule_expression,
        state="ENABLED",
        targets=[
            events.CfnRule.TargetProperty(
                **target,
                retry_policy=TARGET_RETRY,
                dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=dead_letter_queue.queue_arn),
            )
        ],
    )
    dead_letter_queue.add_to_resource_policy(
        iam.PolicyStatement(
            sid=f"EventBridgeDeadLetters{construct_id}",
            principals=[EVENTS],
            actions=["sqs:SendMessage"],
            resources=[dead_letter_queue.queue_arn],
            conditions={"ArnEquals": {"aws:SourceArn": rule.attr_arn}},
        )
    )
    return rule


class OpsFunction(Construct):
    """A function of ``lambdas/`` (``function``) with its role (``role``), log group and failure queue."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: FunctionSpec,
        names: ResourceNames,
        key: kms.IKey,
        network: LambdaNetwork,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = self._create_log_group(spec, names, key, log_retention_days)
        self.failures = encrypted_queue(
            self, "FailedInvocations", queue_name=f"{names.prefix}-{spec.name}-dlq", key=key
        )
        self.role = LeastPrivilegeRole(
            self,
            "Role",
            role_name=spec.role_name,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=spec.description,
        )
        self._allow_basics(cdk.Stack.of(self), key, network)
        self.function = self._create_function(spec, names, network)
        self.function.node.add_dependency(self.role.policy)
        acknowledge(self.function, "AwsSolutions-L1", RUNTIME_REASON)
        if spec.reserved_concurrency is None:
            self._acknowledge_no_reservation()
        skip_checkov(
            cast(cdk.CfnResource, self.function.node.default_child),
            "CKV_AWS_173",
            "The environment holds resource names and settings, no secrets; Lambda encrypts it at rest with "
            "its AWS managed key (a customer key would need kms:Encrypt for the deploying principal).",
        )

    def _create_log_group(
        self, spec: FunctionSpec, names: ResourceNames, key: kms.IKey, retention_days: int
    ) -> logs.LogGroup:
        log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"{names.log_group_prefix}lambda/{spec.name}",
            encryption_key=key,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        # The settings allow only the retention periods CloudWatch Logs accepts, as a number of days.
        cast(logs.CfnLogGroup, log_group.node.default_child).retention_in_days = retention_days
        return log_group

    def _create_function(
        self, spec: FunctionSpec, names: ResourceNames, network: LambdaNetwork
    ) -> lambda_.Function:
        return lambda_.Function(
            self,
            "Function",
            function_name=f"{names.prefix}-{spec.name}",
            description=spec.description,
            runtime=RUNTIME,
            handler=checked_handler(spec.handler),
            code=lambda_code(),
            role=iam.Role.from_role_arn(self, "RoleRef", self.role.role_arn, mutable=False),
            environment=dict(spec.environment),
            timeout=spec.timeout,
            memory_size=256,
            reserved_concurrent_executions=spec.reserved_concurrency,
            retry_attempts=spec.retry_attempts,
            dead_letter_queue=self.failures,
            log_group=self.log_group,
            vpc=network.vpc,
            vpc_subnets=ec2.SubnetSelection(subnets=list(network.subnets)),
            security_groups=[network.security_group],
        )

    def _acknowledge_no_reservation(self) -> None:
        reason = (
            "No reserved concurrency: new accounts have a concurrency quota of 10 and Lambda must keep 10 "
            "unreserved, so a reservation fails the first deployment; the handler is idempotent and "
            "EventBridge invokes it at most a few times an hour"
        )
        acknowledge(self.function, f"{NIST_R5}-LambdaConcurrency", reason)
        skip_checkov(cast(cdk.CfnResource, self.function.node.default_child), "CKV_AWS_115", reason)

    def _allow_basics(self, stack: cdk.Stack, key: kms.IKey, network: LambdaNetwork) -> None:
        role = self.role
        role.allow(
            "WriteOwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], [self.log_group.log_group_arn]
        )
        role.allow("SendFailedInvocations", ["sqs:SendMessage"], [self.failures.queue_arn])
        role.allow("EncryptFailedInvocations", QUEUE_KEY_ACTIONS, [key.key_arn])
        interfaces = stack.format_arn(service="ec2", resource="network-interface", resource_name="*")
        role.allow(
            "CreateFunctionNetworkInterfaces",
            ["ec2:CreateNetworkInterface"],
            [
                interfaces,
                *[
                    stack.format_arn(service="ec2", resource="subnet", resource_name=subnet.subnet_id)
                    for subnet in network.subnets
                ],
                stack.format_arn(
                    service="ec2",
                    resource="security-group",
                    resource_name=network.security_group.security_group_id,
                ),
            ],
            wildcard_reason="Lambda creates the function's interfaces (ids chosen by EC2) in fixed subnets",
        )
        role.allow(
            "ManageFunctionNetworkInterfaces",
            ENI_MANAGE_ACTIONS,
            [interfaces],
            conditions={
                "ArnEquals": {
                    "ec2:Vpc": stack.format_arn(
                        service="ec2", resource="vpc", resource_name=network.vpc.vpc_id
                    )
                }
            },
            wildcard_reason="interface ids are chosen by EC2; the ec2:Vpc condition keeps them in our VPC",
        )
        role.allow(
            "DescribeFunctionNetwork",
            ENI_DESCRIBE_ACTIONS,
            ["*"],
            wildcard_reason="EC2 Describe actions support no resource-level permissions",
        )
