"""The KMS key works and is narrow: every principal that uses it in the templates is admitted, nothing more.

Per-statement promises are checked on the Key stack; the "every user admitted" promise is checked on the
synthesized templates of the whole app (every stack), by collecting each role whose IAM policies grant
``kms:`` actions or S3 access to the KMS-encrypted buckets and looking it up in the key policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template
from cdk_helpers import as_list, cdk_json_context, synth_with_report, template_of

from app import build_app
from settings import Settings
from stacks.key_stack import KEY_ADMIN_ACTIONS, KEY_GRANT_ACTIONS, KEY_USE_ACTIONS

pytestmark = pytest.mark.slow

NAMES = Settings().names
ACCOUNT = "111111111111"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
CFN_EXEC = f"arn:aws:iam::{ACCOUNT}:role/cdk-hnb659fds-cfn-exec-role-{ACCOUNT}-eu-west-1"
DATA_ACTIONS = {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext"}
KMS_BUCKETS = (NAMES.data_bucket, NAMES.artifacts_bucket)


def _role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def _key_statements(template: Template) -> dict[str, dict]:
    (key,) = template.find_resources("AWS::KMS::Key").values()
    return {s["Sid"]: s for s in key["Properties"]["KeyPolicy"]["Statement"]}


@pytest.fixture(scope="module")
def statements() -> dict[str, dict]:
    return _key_statements(template_of("Key"))


def test_key_rotates_and_is_retained() -> None:
    template = template_of("Key")
    template.resource_count_is("AWS::KMS::Key", 1)
    template.has_resource(
        "AWS::KMS::Key",
        {"Properties": Match.object_like({"EnableKeyRotation": True}), "DeletionPolicy": "Retain"},
    )
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": NAMES.key_alias})


def test_administration_only_for_the_cfn_exec_role_by_default(statements: dict[str, dict]) -> None:
    admin = statements["KeyAdministration"]
    assert as_list(admin["Principal"]["AWS"]) == [CFN_EXEC]
    assert "kms:PutKeyPolicy" in admin["Action"]  # KMS lockout safety check: the deployer keeps it
    assert sorted(admin["Action"]) == sorted(KEY_ADMIN_ACTIONS)
    assert not DATA_ACTIONS & set(admin["Action"]), "administrators cannot read or write data"
    assert all("*" not in action for action in admin["Action"])


def test_configured_key_admins_are_added_to_the_deployer() -> None:
    admin_arn = f"arn:aws:iam::{ACCOUNT}:role/security-admin"
    settings = json.dumps({"security": {"key_admin_arns": [admin_arn]}})
    admin = _key_statements(template_of("Key", settings))["KeyAdministration"]
    assert as_list(admin["Principal"]["AWS"]) == [CFN_EXEC, admin_arn]


def test_use_only_by_the_project_roles_with_only_the_used_actions(statements: dict[str, dict]) -> None:
    use = statements["UseByProjectRoles"]
    assert use["Principal"] == {"AWS": ROOT}
    assert use["Condition"] == {
        "ArnEquals": {"aws:PrincipalArn": [_role_arn(name) for name in NAMES.key_user_roles()]}
    }
    assert sorted(as_list(use["Action"])) == sorted(KEY_USE_ACTIONS)
    assert not any(action.startswith("kms:ReEncrypt") for action in KEY_USE_ACTIONS)


def test_grants_only_for_aws_resources(statements: dict[str, dict]) -> None:
    granting = [s for s in statements.values() if {"kms:CreateGrant", "kms:*"} & set(as_list(s["Action"]))]
    assert {s["Sid"] for s in granting} == {
        "GrantsForAwsResourcesOfProjectRoles",
        "GrantsForAwsResourcesAtDeployTime",
    }
    for statement in granting:
        assert statement["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}
    assert sorted(statements["GrantsForAwsResourcesOfProjectRoles"]["Action"]) == sorted(KEY_GRANT_ACTIONS)


def test_no_statement_trusts_the_account_unconditionally(statements: dict[str, dict]) -> None:
    for statement in statements.values():
        principals = as_list(statement["Principal"].get("AWS", []))
        if ROOT in principals:
            assert statement["Condition"]["ArnEquals"]["aws:PrincipalArn"], statement["Sid"]
            actions = as_list(statement["Action"])
            assert not any(a == "kms:*" or a.startswith(("kms:Create*", "kms:Put")) for a in actions)
            assert "kms:PutKeyPolicy" not in actions


def test_services_are_scoped(statements: dict[str, dict]) -> None:
    logs = statements["CloudWatchLogsOfProjectLogGroups"]
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"].endswith(
        f"log-group:{NAMES.log_group_prefix}*"
    )
    publishers = statements["PublishToEncryptedAlertsTopic"]
    assert set(publishers["Principal"]["Service"]) == {
        "budgets.amazonaws.com",
        "cloudwatch.amazonaws.com",
        "events.amazonaws.com",
    }
    assert publishers["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert set(publishers["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


# The whole app: every role that touches the key or the KMS-encrypted buckets is admitted -----------------


@pytest.fixture(scope="module")
def app_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every stack template of the app (read from disk: a nag finding elsewhere must not hide them)."""
    outcome = synth_with_report(build_app(context=cdk_json_context()))
    files = sorted(Path(outcome.outdir).glob("*.template.json"))
    assert files, outcome.error
    return {f.name.removesuffix(".template.json"): json.loads(f.read_text()) for f in files}


def _exports(templates: dict[str, dict]) -> dict[str, tuple[str, object]]:
    """Export name -> (stack, exported value)."""
    return {
        output["Export"]["Name"]: (stack, output["Value"])
        for stack, template in templates.items()
        for output in template.get("Outputs", {}).values()
        if "Export" in output
    }


def _role_name(ref: object, stack: str, templates: dict[str, dict], exports: dict) -> str | None:
    """The RoleName a policy's role reference points at (Ref, ImportValue or a literal name)."""
    if isinstance(ref, str):
        return ref
    if "Fn::ImportValue" in ref:
        stack, ref = exports[ref["Fn::ImportValue"]]
        return _role_name(ref, stack, templates, exports)
    if "Ref" in ref:
        resource = templates[stack]["Resources"][ref["Ref"]]
        return resource["Properties"].get("RoleName") if resource["Type"] == "AWS::IAM::Role" else None
    if "Fn::GetAtt" in ref:  # an Arn attribute of a role
        resource = templates[stack]["Resources"][ref["Fn::GetAtt"][0]]
        return resource["Properties"].get("RoleName")
    return None


def _attached_statements(templates: dict[str, dict]) -> list[tuple[str | None, str, dict]]:
    """(role name, where, statement) for every statement attached to a role in any template."""
    exports, found = _exports(templates), []
    for stack, template in templates.items():
        resources = template["Resources"]
        for logical_id, resource in resources.items():
            props = resource.get("Properties", {})
            if resource["Type"] in {"AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"}:
                roles = [_role_name(ref, stack, templates, exports) for ref in props.get("Roles", [])]
                attached_by_role = [
                    (r["Properties"].get("RoleName"), rid)
                    for rid, r in resources.items()
                    if r["Type"] == "AWS::IAM::Role"
                    and {"Ref": logical_id} in r["Properties"].get("ManagedPolicyArns", [])
                ]
                for role, rid in [(name, logical_id) for name in roles] + attached_by_role:
                    for statement in props["PolicyDocument"]["Statement"]:
                        found.append((role, f"{stack}/{rid}", statement))
            elif resource["Type"] == "AWS::IAM::Role":
                for policy in props.get("Policies", []):
                    for statement in policy["PolicyDocument"]["Statement"]:
                        found.append((props.get("RoleName"), f"{stack}/{logical_id}", statement))
    return found


def _uses_key_or_kms_buckets(statement: dict) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    actions = as_list(statement.get("Action", []))
    resources = json.dumps(statement.get("Resource", ""))
    if any(a in {"*", "kms:*"} or a.startswith("kms:") for a in actions):
        return True
    touches_bucket = any(bucket in resources for bucket in KMS_BUCKETS) or resources == '"*"'
    return touches_bucket and any(a == "*" or a.startswith("s3:") for a in actions)


def _key_users(templates: dict[str, dict]) -> dict[str | None, set[str]]:
    users: dict[str | None, set[str]] = {}
    for role, where, statement in _attached_statements(templates):
        if _uses_key_or_kms_buckets(statement):
            users.setdefault(role, set()).add(where)
    return users


def test_every_key_user_in_the_app_is_admitted_by_the_key_policy(app_templates: dict[str, dict]) -> None:
    users = _key_users(app_templates)
    assert None not in users, f"roles without a deterministic name use the key: {users.get(None)}"
    admitted = set(NAMES.key_user_roles())
    (key_template,) = [t for t in app_templates.values() if "AWS::KMS::Key" in json.dumps(t)]
    statements = _key_statements(Template.from_json(key_template))
    assert statements["UseByProjectRoles"]["Condition"]["ArnEquals"]["aws:PrincipalArn"] == [
        _role_arn(name) for name in NAMES.key_user_roles()
    ]
    missing = {role: sorted(where) for role, where in users.items() if role not in admitted}
    assert not missing, f"roles use the key or its buckets but the key policy does not admit them: {missing}"
    # The collection is not vacuous: the roles of the pipeline, jobs, Studio and the functions are found.
    assert {NAMES.pipeline_role, NAMES.job_role, NAMES.studio_role, NAMES.deploy_role} <= set(users)


def test_the_bucket_deployment_role_is_admitted(app_templates: dict[str, dict]) -> None:
    """Issue 12 finding 2: the code upload got AccessDenied because its role was not in the key policy."""
    users = _key_users(app_templates)
    assert NAMES.code_deployment_role in users, "the BucketDeployment handler runs as the named role"
    assert NAMES.code_deployment_role in NAMES.key_user_roles()
