"""Who can re-create a deleted model package group from a backup (lambdas/backup_registry/restore.py),
evaluated with the project's IAM evaluator on the synthesized IAM and Studio templates.

The operator registers the group and its versions, pending only; the approver alone decides them; the data
scientist (Studio role) can do neither.
"""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template
from cdk_helpers import platform_app

from settings import Settings
from tools.iam_eval import Request, allows, read_roles

pytestmark = pytest.mark.slow

SETTINGS = Settings()
NAMES = SETTINGS.names
PACKAGES = f"arn:aws:sagemaker:{SETTINGS.aws.region}:{SETTINGS.aws.account}"
VERSION = f"{PACKAGES}:model-package/{NAMES.model_package_group}/1"
GROUP = f"{PACKAGES}:model-package-group/{NAMES.model_package_group}"


@pytest.fixture(scope="module")
def roles():
    _, platform = platform_app()  # every platform stack: the roles' policies import the key's ARN
    return read_roles({name: Template.from_stack(stack).to_json() for name, stack in platform.stacks.items()})


def registers(role, status: str) -> bool:
    request = Request("sagemaker:CreateModelPackage", VERSION, {"sagemaker:ModelApprovalStatus": status})
    return allows(role.statements, request)


def decides(role, status: str) -> bool:
    request = Request("sagemaker:UpdateModelPackage", VERSION, {"sagemaker:ModelApprovalStatus": status})
    return allows(role.statements, request)


def test_the_operator_registers_the_restored_versions_as_pending_only(roles):
    operator = roles[NAMES.operator_role]
    assert allows(operator.statements, Request("sagemaker:CreateModelPackageGroup", GROUP))
    assert registers(operator, "PendingManualApproval")
    assert not registers(operator, "Approved") and not registers(operator, "Rejected")
    assert not decides(operator, "Approved")


def test_only_the_approver_decides_them(roles):
    approver = roles[NAMES.approver_role]
    assert decides(approver, "Approved") and decides(approver, "Rejected")
    assert not registers(approver, "PendingManualApproval")  # registering and approving stay apart


def test_the_data_scientist_can_neither_register_nor_decide(roles):
    studio = roles[NAMES.studio_role]
    for status in ("PendingManualApproval", "Approved"):
        assert not registers(studio, status) and not decides(studio, status)
    assert not allows(studio.statements, Request("sagemaker:CreateModelPackageGroup", GROUP))
