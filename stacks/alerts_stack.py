"""Alerts stack: the KMS-encrypted SNS topic that budget notifications (and, later, alarms) go to.

E-mail subscribers come from the settings. The topic accepts only TLS publishers, and only the AWS
Budgets and CloudWatch services of this account may publish to it besides the account's own
principals. Later issues (alarms, dashboards) extend this stack and reuse ``topic``.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from settings import AlertsSettings, ResourceNames
from stacks.key_stack import TOPIC_PUBLISHER_SERVICES


class AlertsStack(cdk.Stack):
    """The alerts ``topic`` and its e-mail subscriptions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alerts: AlertsSettings,
        names: ResourceNames,
        key: kms.IKey,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.alerts = alerts
        self.topic = self._create_topic(names, key)
        for address in alerts.emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(address))

    def _create_topic(self, names: ResourceNames, key: kms.IKey) -> sns.Topic:
        topic = sns.Topic(
            self,
            "AlertsTopic",
            topic_name=f"{names.prefix}-alerts",
            display_name=f"{names.prefix} alerts",
            master_key=key,
            enforce_ssl=True,
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AwsServicesOfThisAccountPublish",
                principals=[iam.ServicePrincipal(service) for service in TOPIC_PUBLISHER_SERVICES],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        return topic
