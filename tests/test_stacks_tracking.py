"""The managed MLflow tracking server (`tracking.mlflow_server`): the resource, its role, who may use it.

The whole app is synthesized once with the server on, through cdk-nag; the promises checked: the server's
artifact store is the project bucket's `mlflow/` prefix under the project key; its role may touch nothing
else; the key policy and the data perimeter admit that role; Studio reaches it through a VPC endpoint and
may use this server only; the publish function logs to it with exactly the calls `mlflow_log` makes; and
with the setting off (the default) nothing of it exists.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from cdk_helpers import as_list, cdk_json_context, synth_with_report

from settings import load_settings

pytestmark = pytest.mark.slow
SETTINGS = load_settings({"tracking": {"mlflow_server": True}})
NAMES = SETTINGS.names
MLFLOW_LOG = Path(__file__).resolve().parent.parent / "lambdas" / "publish_model_metrics" / "mlflow_log.py"


@pytest.fixture(scope="module")
def tracking_templates() -> dict[str, dict]:
    from app import build_app

    context = {**cdk_json_context(), "settings": {"tracking": {"mlflow_server": True}}}
    outcome = synth_with_report(build_app(context=context))
    assert outcome.assembly is not None, outcome.error
    assert outcome.blocking() == [], outcome.blocking()
    return {stack.stack_name: stack.template for stack in outcome.assembly.stacks}


def _resources(template: dict, kind: str) -> list[dict]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def _statements(template: dict, role_name: str | None = None) -> list[dict]:
    statements = []
    for resource in template["Resources"].values():
        if resource["Type"] not in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            continue
        statements += as_list(resource["Properties"]["PolicyDocument"]["Statement"])
    return statements


def test_server_stores_artifacts_under_the_mlflow_prefix(tracking_templates):
    template = tracking_templates[f"{NAMES.prefix}-tracking"]
    (server,) = _resources(template, "AWS::SageMaker::MlflowTrackingServer")
    props = server["Properties"]
    assert props["TrackingServerName"] == NAMES.mlflow_tracking_server
    assert props["ArtifactStoreUri"] == f"s3://{NAMES.artifacts_bucket}/{NAMES.mlflow_prefix}"
    assert props["TrackingServerSize"] == "Small"
    assert props["AutomaticModelRegistration"] is False


def test_server_role_reaches_only_its_prefix_and_the_key(tracking_templates):
    template = tracking_templates[f"{NAMES.prefix}-tracking"]
    roles = [
        r for r in _resources(template, "AWS::IAM::Role") if r["Properties"]["RoleName"] == NAMES.mlflow_role
    ]
    assert len(roles) == 1
    trust = roles[0]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]
    policies = _resources(template, "AWS::IAM::ManagedPolicy")
    role_policy = next(p for p in policies if "ArtifactStore" in str(p["Properties"]["PolicyDocument"]))
    for statement in as_list(role_policy["Properties"]["PolicyDocument"]["Statement"]):
        actions = as_list(statement["Action"])
        assert all(a.startswith(("s3:", "kms:")) for a in actions), statement
        if statement["Sid"] == "ArtifactStore":
            assert statement["Resource"] == f"arn:aws:s3:::{NAMES.artifacts_bucket}/{NAMES.mlflow_prefix}*"


def test_key_policy_and_perimeter_admit_the_server_role():
    from stacks.data_perimeter import service_side_role_names

    assert NAMES.mlflow_role in NAMES.key_user_roles()
    assert NAMES.mlflow_role in service_side_role_names(NAMES)


def test_studio_uses_this_server_only_through_a_vpc_endpoint(tracking_templates):
    template = tracking_templates[f"{NAMES.prefix}-tracking"]
    (endpoint,) = _resources(template, "AWS::EC2::VPCEndpoint")
    assert endpoint["Properties"]["ServiceName"] == f"aws.sagemaker.{SETTINGS.aws.region}.experiments"
    assert endpoint["Properties"]["PrivateDnsEnabled"] is True
    studio = next(
        p
        for p in _resources(template, "AWS::IAM::ManagedPolicy")
        if "TrackExperiments" in str(p["Properties"])
    )
    assert studio["Properties"]["Roles"] == [NAMES.studio_role]
    for statement in as_list(studio["Properties"]["PolicyDocument"]["Statement"]):
        assert statement["Resource"] == {"Fn::GetAtt": ["Server", "TrackingServerArn"]}
        assert not any(a.startswith("sagemaker-mlflow:Delete") for a in as_list(statement["Action"]))


def test_publish_function_may_make_exactly_the_logging_calls(tracking_templates):
    from lambdas.publish_model_metrics.mlflow_log import ENV_EXPERIMENT, ENV_TRACKING_SERVER_ARN
    from stacks.tracking_stack import MLFLOW_LOG_ACTIONS

    ops = tracking_templates[f"{NAMES.prefix}-ops"]
    functions = [
        f
        for f in _resources(ops, "AWS::Lambda::Function")
        if "publish_model_metrics" in f["Properties"]["Handler"]
    ]
    environment = functions[0]["Properties"]["Environment"]["Variables"]
    assert environment[ENV_EXPERIMENT] == NAMES.pipeline
    assert "Fn::ImportValue" in environment[ENV_TRACKING_SERVER_ARN]
    statement = next(s for s in _statements(ops) if s.get("Sid") == "LogExecutionsToMlflow")
    assert sorted(as_list(statement["Action"])) == sorted(MLFLOW_LOG_ACTIONS)
    # Every REST path mlflow_log calls maps to one of those actions.
    called = {
        node.args[1].value
        for node in ast.walk(ast.parse(MLFLOW_LOG.read_text()))
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", "") == "call"
        and len(node.args) > 1
        and isinstance(node.args[1], ast.Constant)
    }
    action_of = {
        "experiments/get-by-name": "GetExperimentByName",
        "experiments/create": "CreateExperiment",
        "runs/search": "SearchRuns",
        "runs/create": "CreateRun",
        "runs/log-batch": "LogBatch",
        "runs/update": "UpdateRun",
    }
    assert called == set(action_of)
    assert {f"sagemaker-mlflow:{action_of[path]}" for path in called} == set(MLFLOW_LOG_ACTIONS)


def test_nothing_of_it_exists_by_default(templates):
    assert f"{NAMES.prefix}-tracking" not in templates
    ops = templates[f"{NAMES.prefix}-ops"]
    assert "MLFLOW" not in str(
        [f["Properties"].get("Environment") for f in _resources(ops, "AWS::Lambda::Function")]
    )
