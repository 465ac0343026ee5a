"""Separation of duties, asserted on the synthesized IAM and Studio templates.

Only the approver can approve; the Studio (data scientist) and experiment roles cannot pass the job role
or write what is served, registered or evaluated; only the pipeline role passes the job role; the human
personas are assumed with MFA by the principals named in the settings.
"""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template
from cdk_helpers import as_list, platform_app, policy_statements, template_of

from settings import Settings
from stacks.iam_conditions import APPROVAL_STATUS_KEY, REGISTRY_WRITE_ACTIONS

pytestmark = pytest.mark.slow

NAMES = Settings().names
ARTIFACTS = f"arn:aws:s3:::{NAMES.artifacts_bucket}/"
PROTECTED_PREFIXES = (
    NAMES.models_prefix,
    NAMES.champion_prefix,
    NAMES.registry_prefix,
    NAMES.intermediates_prefix,
)
NON_APPROVERS = (
    NAMES.pipeline_role,
    NAMES.job_role,
    NAMES.experiment_job_role,
    NAMES.model_role,
    NAMES.studio_role,
    NAMES.operator_role,
    NAMES.scheduler_role,
)
APPROVE_DENY = {"StringEquals": {APPROVAL_STATUS_KEY: "Approved"}}


@pytest.fixture(scope="module")
def iam_template() -> Template:
    return template_of("Iam")


@pytest.fixture(scope="module")
def studio_template() -> Template:
    return template_of("Studio")


def role_statements(template: Template, role_name: str) -> list[dict]:
    """Statements of the role's own managed policy in the IAM stack."""
    roles = template.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": role_name}})
    ((_, role),) = roles.items()
    policies = template.find_resources("AWS::IAM::ManagedPolicy")
    return [s for ref in role["Properties"]["ManagedPolicyArns"] for s in _document(policies[ref["Ref"]])]


def _document(policy: dict) -> list[dict]:
    return policy["Properties"]["PolicyDocument"]["Statement"]


def studio_statements(iam_template: Template, studio_template: Template) -> list[dict]:
    """The Studio role's statements: its own policy plus the domain-scoped policy of the Studio stack."""
    domain_policies = studio_template.find_resources("AWS::IAM::ManagedPolicy")
    attached = [
        p for p in domain_policies.values() if "StudioRole" in json.dumps(p["Properties"].get("Roles"))
    ]
    assert len(attached) == 1
    return role_statements(iam_template, NAMES.studio_role) + _document(attached[0])


def allows(statements: list[dict], action: str) -> list[dict]:
    return [s for s in statements if s["Effect"] == "Allow" and action in as_list(s["Action"])]


def denies(statements: list[dict], action: str) -> list[dict]:
    return [s for s in statements if s["Effect"] == "Deny" and action in as_list(s["Action"])]


# Approval


@pytest.mark.parametrize("role_name", NON_APPROVERS)
def test_every_other_role_is_denied_approving(iam_template: Template, role_name: str) -> None:
    statements = role_statements(iam_template, role_name)
    for action in REGISTRY_WRITE_ACTIONS:
        (deny,) = [s for s in denies(statements, action) if s["Condition"] == APPROVE_DENY]
        assert deny["Resource"] == "*"
        for allow in allows(statements, action):
            assert allow.get("Condition", {}).get("StringEquals", {}).get(APPROVAL_STATUS_KEY) != "Approved"


def test_only_the_approver_may_set_approved(iam_template: Template) -> None:
    statements = role_statements(iam_template, NAMES.approver_role)
    assert not [s for s in statements if s["Effect"] == "Deny"]
    (update,) = allows(statements, "sagemaker:UpdateModelPackage")
    assert update["Condition"] == {"StringEquals": {APPROVAL_STATUS_KEY: ["Approved", "Rejected"]}}
    group = NAMES.model_package_group
    assert update["Resource"] == f"arn:aws:sagemaker:eu-west-1:111111111111:model-package/{group}/*"
    assert not allows(statements, "sagemaker:CreateModelPackage")


def test_no_platform_role_outside_iam_can_update_model_packages() -> None:
    _, platform = platform_app()
    for stack_id, stack in platform.stacks.items():
        if stack_id == "Iam":
            continue
        for action in REGISTRY_WRITE_ACTIONS:
            assert not allows(policy_statements(Template.from_stack(stack)), action), (stack_id, action)


def test_pipeline_registers_only_pending_versions(iam_template: Template) -> None:
    statements = role_statements(iam_template, NAMES.pipeline_role)
    assert not allows(statements, "sagemaker:UpdateModelPackage")
    pending = [
        s for s in denies(statements, "sagemaker:CreateModelPackage") if s["Condition"] != APPROVE_DENY
    ]
    assert pending[0]["Condition"] == {"StringNotEquals": {APPROVAL_STATUS_KEY: "PendingManualApproval"}}


def test_studio_and_operator_cannot_update_model_packages(iam_template, studio_template) -> None:
    assert not allows(studio_statements(iam_template, studio_template), "sagemaker:UpdateModelPackage")
    assert not allows(role_statements(iam_template, NAMES.operator_role), "sagemaker:UpdateModelPackage")


# Passing roles


def _passed_roles(statements: list[dict]) -> set[str]:
    return {json.dumps(r) for s in allows(statements, "iam:PassRole") for r in as_list(s["Resource"])}


def test_only_the_pipeline_role_passes_the_job_role(iam_template: Template) -> None:
    job_role_ref = "JobRoleA8EE24A2"
    names = {r["Properties"]["RoleName"] for r in iam_template.find_resources("AWS::IAM::Role").values()}
    for role_name in names - {NAMES.pipeline_role}:
        for passed in _passed_roles(role_statements(iam_template, role_name)):
            assert job_role_ref not in passed, role_name
    _, platform = platform_app()
    for stack_id, stack in platform.stacks.items():
        if stack_id != "Iam":
            passed = _passed_roles(policy_statements(Template.from_stack(stack)))
            assert not [p for p in passed if NAMES.job_role in p or "JobRole" in p], stack_id
    (passed,) = _passed_roles(role_statements(iam_template, NAMES.pipeline_role))
    assert job_role_ref in passed


def test_studio_passes_only_the_experiment_job_role(iam_template, studio_template) -> None:
    statements = studio_statements(iam_template, studio_template)
    (passed,) = _passed_roles(statements)
    assert "ExperimentJobRole" in passed
    (deny,) = denies(statements, "iam:PassRole")
    refs = json.dumps(deny["Resource"])
    assert all(role in refs for role in ("JobRoleA8EE24A2", "PipelineRole", "ModelRole"))


# Writing artifacts


def _written_objects(statements: list[dict]) -> list[str]:
    return [r for s in allows(statements, "s3:PutObject") for r in as_list(s["Resource"])]


@pytest.mark.parametrize("role_name", [NAMES.studio_role, NAMES.experiment_job_role])
def test_studio_roles_write_only_the_studio_prefix(iam_template, studio_template, role_name) -> None:
    statements = (
        studio_statements(iam_template, studio_template)
        if role_name == NAMES.studio_role
        else role_statements(iam_template, role_name)
    )
    assert _written_objects(statements) == [f"{ARTIFACTS}{NAMES.studio_prefix}*"]
    (deny,) = denies(statements, "s3:PutObject")
    denied = as_list(deny["Resource"])
    for prefix in PROTECTED_PREFIXES:
        assert f"{ARTIFACTS}{prefix}*" in denied


def test_job_role_writes_pipeline_outputs_and_registry(iam_template: Template) -> None:
    written = _written_objects(role_statements(iam_template, NAMES.job_role))
    for prefix in (NAMES.intermediates_prefix, NAMES.models_prefix, NAMES.registry_prefix):
        assert f"{ARTIFACTS}{prefix}*" in written
    assert f"{ARTIFACTS}{NAMES.champion_prefix}*" not in written


def test_model_role_reads_models_and_writes_only_capture_and_monitoring(iam_template: Template) -> None:
    statements = role_statements(iam_template, NAMES.model_role)
    written = _written_objects(statements)
    assert sorted(written) == sorted(
        [f"{ARTIFACTS}{NAMES.data_capture_prefix}*", f"{ARTIFACTS}{NAMES.monitoring_prefix}*"]
    )
    read = [r for s in allows(statements, "s3:GetObject") for r in as_list(s["Resource"])]
    assert f"{ARTIFACTS}{NAMES.models_prefix}*" in read and f"{ARTIFACTS}{NAMES.champion_prefix}*" in read


def test_approver_and_operator_write_no_objects(iam_template: Template) -> None:
    for role_name in (NAMES.approver_role, NAMES.operator_role):
        assert not _written_objects(role_statements(iam_template, role_name))


# Operator


def test_operator_runs_both_pipelines(iam_template: Template) -> None:
    statements = role_statements(iam_template, NAMES.operator_role)
    for action in ("StartPipelineExecution", "StopPipelineExecution", "RetryPipelineExecution"):
        (allow,) = allows(statements, f"sagemaker:{action}")
        resources = " ".join(as_list(allow["Resource"]))
        assert (
            f"pipeline/{NAMES.pipeline}" in resources and f"pipeline/{NAMES.monitoring_pipeline}" in resources
        )


def test_only_the_operator_may_invoke_the_deploy_function_for_ab_actions(iam_template, studio_template):
    (allow,) = allows(role_statements(iam_template, NAMES.operator_role), "lambda:InvokeFunction")
    (resource,) = as_list(allow["Resource"])
    assert resource == f"arn:aws:lambda:eu-west-1:111111111111:function:{NAMES.deploy_function}"
    for role_name in (NAMES.approver_role, NAMES.job_role, NAMES.pipeline_role, NAMES.model_role):
        assert not allows(role_statements(iam_template, role_name), "lambda:InvokeFunction")
    assert not allows(studio_statements(iam_template, studio_template), "lambda:InvokeFunction")


# Human trust


def _trust(template: Template, role_name: str) -> list[dict]:
    roles = template.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": role_name}})
    ((_, role),) = roles.items()
    return role["Properties"]["AssumeRolePolicyDocument"]["Statement"]


@pytest.mark.parametrize("role_name", [NAMES.approver_role, NAMES.operator_role])
def test_personas_default_to_account_delegation_with_mfa(iam_template: Template, role_name: str) -> None:
    (statement,) = _trust(iam_template, role_name)
    assert statement["Principal"] == {"AWS": "arn:aws:iam::111111111111:root"}
    assert statement["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}


def test_personas_trust_the_named_principals() -> None:
    approvers = ["arn:aws:iam::111111111111:role/release-managers", "arn:aws:iam::111111111111:user/carol"]
    settings = {
        "security": {"approver_arns": approvers, "operator_arns": [approvers[0]], "require_mfa": False}
    }
    template = template_of("Iam", json.dumps(settings))
    principals = [a for s in _trust(template, NAMES.approver_role) for a in as_list(s["Principal"]["AWS"])]
    assert sorted(principals) == sorted(approvers)
    assert all("Condition" not in s for s in _trust(template, NAMES.approver_role))
    (operator,) = _trust(template, NAMES.operator_role)
    assert operator["Principal"] == {"AWS": approvers[0]}
