"""Wiring of the platform stacks, and the typed seam later stacks (the ML stack) build on.

:func:`build_platform` creates one stack per concern, in dependency order, passing each the settings
sub-model and the typed resources it needs, and returns a :class:`Platform` holding every object a
later stack uses. Construct ids are stable PascalCase (``Key``, ``Network``, ``Storage``, ...);
CloudFormation stack names carry the project prefix so that two environments can share an account.
The key comes first (network and buckets use it), then the network, then the buckets, whose
data-perimeter policies name the network's S3 gateway endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from settings import ResourceNames, Settings, SettingsError
from stacks.alerts_stack import AlertsStack
from stacks.cost_stack import CostStack
from stacks.iam_stack import IamStack
from stacks.job_image import job_image_repository_arn
from stacks.key_stack import KeyStack
from stacks.network_stack import JobNetwork, NetworkStack
from stacks.storage_stack import StorageStack
from stacks.studio_stack import StudioStack

STACK_IDS = ("Key", "Network", "Storage", "Iam", "Studio", "Alerts", "Cost")


@dataclass(frozen=True)
class Platform:
    """Everything the ML stack needs, as typed objects (no name strings to re-derive)."""

    settings: Settings
    names: ResourceNames
    env: cdk.Environment
    key: kms.IKey
    data_bucket: s3.IBucket
    artifacts_bucket: s3.IBucket
    pipeline_role: iam.IRole
    job_role: iam.IRole
    trigger_role: iam.IRole
    model_role: iam.IRole  # the endpoint model's execution role, passed by the deploy function
    job_network: JobNetwork
    alerts_topic: sns.ITopic
    stacks: dict[str, cdk.Stack]


def stack_props(settings: Settings, concern: str) -> dict:
    """Common stack keyword arguments: environment, synthesizer, prefixed stack name, description."""
    return {
        "env": cdk.Environment(account=settings.aws.account, region=settings.aws.region),
        # The bootstrap qualifier names the asset repository the job image is pushed to and pulled from.
        "synthesizer": cdk.DefaultStackSynthesizer(qualifier=settings.security.cdk_bootstrap_qualifier),
        "stack_name": f"{settings.project.prefix}-{concern.lower()}",
        "description": f"{settings.project.prefix}: {concern} of the turbofan RUL MLOps platform",
    }


def perimeter_endpoint_ids(settings: Settings, network: NetworkStack) -> list[str] | None:
    """VPC endpoints inside the data perimeter, or None when ``security.data_perimeter`` is off."""
    security = settings.security
    if not security.data_perimeter:
        return None
    ids = [i for i in (network.s3_endpoint_id,) if i is not None] + list(security.perimeter_vpc_endpoint_ids)
    if not ids:
        raise SettingsError(
            "security.data_perimeter is on but no S3 gateway endpoint is known: the imported VPC has no "
            "network.route_table_ids (got ()) and security.perimeter_vpc_endpoint_ids is empty (got ())"
        )
    return ids


def build_platform(scope: Construct, settings: Settings) -> Platform:
    """Create the platform stacks under ``scope`` (the app) and return the typed seam."""
    key, network, storage = _create_data_stacks(scope, settings)
    iam_stack = _create_iam_stack(scope, settings, network, storage)
    studio = StudioStack(
        scope,
        "Studio",
        studio=settings.studio,
        names=settings.names,
        vpc=network.vpc,
        subnets=network.subnets,
        security_group=network.studio_security_group,
        execution_role=iam_stack.studio_role,
        key=storage.key,
        artifacts_bucket=storage.artifacts_bucket,
        **stack_props(settings, "Studio"),
    )
    alerts, cost = _create_alert_stacks(scope, settings, storage)
    return Platform(
        settings=settings,
        names=settings.names,
        env=cdk.Environment(account=settings.aws.account, region=settings.aws.region),
        key=storage.key,
        data_bucket=storage.data_bucket,
        artifacts_bucket=storage.artifacts_bucket,
        pipeline_role=iam_stack.pipeline_role,
        job_role=iam_stack.job_role,
        trigger_role=iam_stack.trigger_role,
        model_role=iam_stack.model_role,
        job_network=network.job_network,
        alerts_topic=alerts.topic,
        stacks={
            "Key": key,
            "Network": network,
            "Storage": storage,
            "Iam": iam_stack,
            "Studio": studio,
            "Alerts": alerts,
            "Cost": cost,
        },
    )


def _create_data_stacks(scope: Construct, settings: Settings) -> tuple[KeyStack, NetworkStack, StorageStack]:
    names = settings.names
    key = KeyStack(scope, "Key", names=names, security=settings.security, **stack_props(settings, "Key"))
    network = NetworkStack(
        scope,
        "Network",
        network=settings.network,
        names=names,
        key=key.key,
        **stack_props(settings, "Network"),
    )
    storage = StorageStack(
        scope,
        "Storage",
        names=names,
        storage=settings.storage,
        security=settings.security,
        key=key.key,
        perimeter_endpoint_ids=perimeter_endpoint_ids(settings, network),
        replication=settings.backup.replication,
        **stack_props(settings, "Storage"),
    )
    return key, network, storage


def _create_iam_stack(
    scope: Construct, settings: Settings, network: NetworkStack, storage: StorageStack
) -> IamStack:
    iam_stack = IamStack(
        scope,
        "Iam",
        names=settings.names,
        pipeline=settings.pipeline,
        security=settings.security,
        instance_types=settings.allowed_instance_types,
        key=storage.key,
        job_network=network.job_network,
        image_repository_arn=job_image_repository_arn(settings),
        **stack_props(settings, "Iam"),
    )
    iam_stack.add_stack_dependency(storage, "roles refer to the buckets by their deterministic names")
    return iam_stack


def _create_alert_stacks(
    scope: Construct, settings: Settings, storage: StorageStack
) -> tuple[AlertsStack, CostStack]:
    alerts = AlertsStack(
        scope,
        "Alerts",
        alerts=settings.alerts,
        names=settings.names,
        key=storage.key,
        **stack_props(settings, "Alerts"),
    )
    cost = CostStack(
        scope,
        "Cost",
        cost=settings.cost,
        names=settings.names,
        alerts_topic=alerts.topic,
        **stack_props(settings, "Cost"),
    )
    return alerts, cost
