"""A/B testing in the stacks, each construct built alone: the deploy function's environment and permissions
(`stacks.deployment`), the serving alarms and the dashboard (`stacks.monitoring_dashboard`)."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from cdk_helpers import as_list
from test_stacks_deployment import ACCOUNT, REGION, actions, concrete
from test_stacks_deployment import build as build_deployment

from lambdas.deploy_on_approval import config as deploy_config
from settings import load_settings
from stacks.monitoring_dashboard import OpsDashboard, ServingAlarms

pytestmark = pytest.mark.slow


def build(overrides: dict) -> dict:
    settings = load_settings(overrides)
    stack = cdk.Stack(cdk.App(), "Alarms", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    alarms = ServingAlarms(
        stack,
        "Alarms",
        names=settings.names,
        serving=settings.serving,
        monitoring=settings.monitoring,
        topic=sns.Topic(stack, "Topic"),
    )
    OpsDashboard(stack, "Dashboard", names=settings.names, alarms=alarms, other_alarms=[])
    return Template.from_stack(stack).to_json()["Resources"]


def alarm(resources: dict, suffix: str) -> dict:
    (found,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["AlarmName"].endswith(suffix)
    ]
    return found


def variants_of(properties: dict) -> set[str]:
    return {
        dimension["Value"]
        for query in properties.get("Metrics", [])
        for dimension in query.get("MetricStat", {}).get("Metric", {}).get("Dimensions", [])
        if dimension["Name"] == "VariantName"
    }


def dashboard_body(resources: dict) -> str:
    (body,) = [
        r["Properties"]["DashboardBody"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Dashboard"
    ]
    return json.dumps(body)


def test_with_ab_on_the_rollback_alarms_watch_every_variant_and_the_dashboard_has_a_variant_row():
    resources = build({"serving": {"ab_test": {"enabled": True}}})

    errors, latency = alarm(resources, "endpoint-5xx-errors"), alarm(resources, "endpoint-latency-p99")

    assert variants_of(errors) == variants_of(latency) == {"AllTraffic", "Champion", "Challenger"}
    expressions = [q["Expression"] for p in (errors, latency) for q in p["Metrics"] if "Expression" in q]
    assert any("+" in e for e in expressions) and any(e.startswith("MAX([") for e in expressions)
    body = dashboard_body(resources)
    assert "A/B invocations" in body and "A/B realised RMSE" in body and "Challenger" in body


def test_with_ab_off_the_alarms_watch_all_traffic_only():
    resources = build({})
    errors = alarm(resources, "endpoint-5xx-errors")
    assert "Metrics" not in errors and errors["Dimensions"][1] == {
        "Name": "VariantName",
        "Value": "AllTraffic",
    }
    assert "A/B" not in dashboard_body(resources)


def test_ab_settings_reach_the_function_with_only_the_ab_permissions():
    environment, statements, settings = build_deployment(
        {
            "serving": {
                "ab_test": {"enabled": True, "challenger_weight_percent": 10, "challenger_instance_count": 3}
            }
        }
    )
    names = settings.names

    config = deploy_config.load_config(concrete(environment))

    assert config.ab_test == deploy_config.AbTestConfig(challenger_percent=10, challenger_instance_count=3)
    (shift,) = [
        s for s in statements if "sagemaker:UpdateEndpointWeightsAndCapacities" in as_list(s["Action"])
    ]
    assert shift["Resource"] == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{names.endpoint}"
    updates = [s for s in statements if "sagemaker:UpdateModelPackage" in as_list(s["Action"])]
    (note,) = [s for s in updates if s["Effect"] == "Allow"]
    (never_approve,) = [s for s in updates if s["Effect"] == "Deny"]
    assert never_approve["Condition"] == {"StringEquals": {"sagemaker:ModelApprovalStatus": "Approved"}}
    assert never_approve["Resource"] == note["Resource"]
    assert (
        note["Resource"]
        == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{names.model_package_group}/*"
    )
    _, default_statements, _ = build_deployment({})
    assert not {"sagemaker:UpdateModelPackage", "sagemaker:UpdateEndpointWeightsAndCapacities"} & actions(
        default_statements
    )
