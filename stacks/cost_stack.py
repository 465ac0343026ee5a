"""Cost stack: a monthly AWS Budget that notifies the alerts topic.

Two notifications: actual spend above ``actual_threshold_percent`` of the budget, and forecast spend
above ``forecast_threshold_percent``. The other cost guardrails live where they act: bucket lifecycle
rules (storage), Studio idle shutdown (studio) and instance-type conditions (IAM).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_sns as sns
from constructs import Construct

from settings import CostSettings, ResourceNames


class CostStack(cdk.Stack):
    """The monthly ``budget``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cost: CostSettings,
        names: ResourceNames,
        alerts_topic: sns.ITopic,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.cost = cost
        self.budget = self._create_budget(names, alerts_topic)

    def _notification(
        self, kind: str, threshold: float, topic: sns.ITopic
    ) -> budgets.CfnBudget.NotificationWithSubscribersProperty:
        return budgets.CfnBudget.NotificationWithSubscribersProperty(
            notification=budgets.CfnBudget.NotificationProperty(
                notification_type=kind,
                comparison_operator="GREATER_THAN",
                threshold=threshold,
                threshold_type="PERCENTAGE",
            ),
            subscribers=[
                budgets.CfnBudget.SubscriberProperty(subscription_type="SNS", address=topic.topic_arn)
            ],
        )

    def _create_budget(self, names: ResourceNames, topic: sns.ITopic) -> budgets.CfnBudget:
        return budgets.CfnBudget(
            self,
            "MonthlyBudget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=f"{names.prefix}-monthly",
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=self.cost.monthly_budget_usd, unit="USD"),
            ),
            notifications_with_subscribers=[
                self._notification("ACTUAL", self.cost.actual_threshold_percent, topic),
                self._notification("FORECASTED", self.cost.forecast_threshold_percent, topic),
            ],
        )
