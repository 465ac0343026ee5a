"""The authorization matrix: the evaluator's IAM semantics, and the README table regenerated from the app.

The evaluator is checked on small hand-written templates (deny wins, conditions the caller chooses,
cross-stack imports); the matrix on the whole synthesized app (the session ``templates`` fixture):
only the approver approves, the data scientist writes no model, only the pipeline passes the job role,
and the README shows exactly what the code grants.
"""

from __future__ import annotations

import pytest

from settings import load_settings
from tools.authz_matrix import (
    README,
    matrix_markdown,
    matrix_rows,
    readme_matrix,
    readme_with_matrix,
)
from tools.iam_eval import Request, allows, read_roles, wildcard_match

APPROVE = Request(
    "sagemaker:UpdateModelPackage",
    "arn:aws:sagemaker:eu-west-1:111111111111:model-package/g/1",
    {"sagemaker:ModelApprovalStatus": "Approved"},
)
ALLOW_UPDATE = {
    "Effect": "Allow",
    "Action": "sagemaker:UpdateModelPackage",
    "Resource": "arn:aws:sagemaker:eu-west-1:111111111111:model-package/g/*",
}
DENY_APPROVE = {
    "Effect": "Deny",
    "Action": "sagemaker:UpdateModelPackage",
    "Resource": "*",
    "Condition": {"StringEquals": {"sagemaker:ModelApprovalStatus": "Approved"}},
}


def test_wildcards_follow_iam() -> None:
    assert wildcard_match("arn:aws:s3:::b/models/*", "arn:aws:s3:::b/models/x/m.tar.gz")
    assert not wildcard_match("arn:aws:s3:::b/models/*", "arn:aws:s3:::b/champion/m.tar.gz")
    assert wildcard_match("s3:Get*", "s3:getobject", case_sensitive=False)
    assert wildcard_match("a?c", "abc") and not wildcard_match("a?c", "abbc")


def test_explicit_deny_wins_over_allow() -> None:
    assert allows([ALLOW_UPDATE], APPROVE)
    assert not allows([ALLOW_UPDATE, DENY_APPROVE], APPROVE)
    reject = Request(APPROVE.action, APPROVE.resource, {"sagemaker:ModelApprovalStatus": "Rejected"})
    assert allows([ALLOW_UPDATE, DENY_APPROVE], reject)


def test_conditions_on_keys_the_request_lacks_are_the_callers_choice() -> None:
    guarded = {**ALLOW_UPDATE, "Condition": {"StringEquals": {"sagemaker:InstanceTypes": "ml.m5.large"}}}
    assert allows([guarded], APPROVE)  # the caller can send the allowed instance type
    no_status = Request(APPROVE.action, APPROVE.resource)
    assert allows([ALLOW_UPDATE, DENY_APPROVE], no_status)  # and can avoid a denied value
    assert not allows([], APPROVE)


def test_roles_collect_policies_across_stacks_through_imports() -> None:
    iam = {
        "Resources": {
            "RoleA1": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": "p-job-eu-west-1",
                    "AssumeRolePolicyDocument": {
                        "Statement": [{"Principal": {"Service": "sagemaker.amazonaws.com"}}]
                    },
                    "ManagedPolicyArns": [{"Ref": "PolicyB2"}],
                },
            },
            "PolicyB2": {
                "Type": "AWS::IAM::ManagedPolicy",
                "Properties": {"PolicyDocument": {"Statement": [ALLOW_UPDATE]}},
            },
        },
        "Outputs": {"Out": {"Value": {"Ref": "RoleA1"}, "Export": {"Name": "iam:RoleA1"}}},
    }
    ml = {
        "Resources": {
            "Later": {
                "Type": "AWS::IAM::ManagedPolicy",
                "Properties": {
                    "PolicyDocument": {"Statement": [DENY_APPROVE]},
                    "Roles": [{"Fn::ImportValue": "iam:RoleA1"}],
                },
            }
        }
    }
    roles = read_roles({"Iam": iam, "Ml": ml})
    role = roles["p-job-eu-west-1"]
    assert role.trusted == ["Service:sagemaker.amazonaws.com"]
    assert len(role.statements) == 2
    assert not allows(role.statements, APPROVE)


def test_readme_matrix_is_replaced_between_markers() -> None:
    text = "a\n<!-- authz-matrix:start -->\nold\n<!-- authz-matrix:end -->\nb\n"
    updated = readme_with_matrix(text, "| new |")
    assert readme_matrix(updated) == "| new |" and updated.startswith("a\n") and updated.endswith("b\n")


@pytest.mark.slow
def test_only_the_approver_can_approve(templates: dict[str, dict]) -> None:
    rows = {row[0]: row for row in matrix_rows(templates, load_settings())}
    approvers = [role for role, row in rows.items() if row[1] == "yes"]
    assert approvers == ["approver"]


@pytest.mark.slow
def test_data_scientist_cannot_write_models_or_pass_the_job_role(templates: dict[str, dict]) -> None:
    rows = {row[0]: row for row in matrix_rows(templates, load_settings())}
    studio = rows["studio"]
    assert studio[3] == "-" and studio[4] == "-"  # models/ or champion/, registry/
    assert "job" not in studio[-1].split(", ")
    passers = [role for role, row in rows.items() if "job" in row[-1].split(", ")]
    assert passers == ["pipeline"]


@pytest.mark.slow
def test_readme_shows_the_matrix_of_the_code(templates: dict[str, dict]) -> None:
    generated = matrix_markdown(templates, load_settings())
    assert readme_matrix(README.read_text()) == generated, (
        "README authorization matrix is stale: run `python -m tools.authz_matrix --write-readme`"
    )
