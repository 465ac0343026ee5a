"""Security promises of the IAM stack: least privilege, named wildcards only, cost and network guardrails."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template
from cdk_helpers import (
    as_list,
    cdk_json_context,
    platform_app,
    policy_statements,
    synth_with_report,
    template_of,
)

from settings import Settings, load_settings
from stacks.iam_conditions import EC2_DESCRIBE_ACTIONS, ECR_TOKEN_ACTIONS, STUDIO_LIST_ACTIONS
from stacks.nag import add_nag_checks
from stacks.platform import build_platform
from stacks.roles import LeastPrivilegeRole, WildcardWithoutReasonError

pytestmark = pytest.mark.slow

SETTINGS = Settings()
NAMES = SETTINGS.names
# Actions with no resource-level permissions: the only ones allowed on Resource "*".
STAR_RESOURCE_ALLOW_LIST = {
    *ECR_TOKEN_ACTIONS,
    *EC2_DESCRIBE_ACTIONS,
    *STUDIO_LIST_ACTIONS,
    "cloudwatch:GetMetricData",
    "cloudwatch:ListMetrics",
}
GUARDED_ACTIONS = {
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateHyperParameterTuningJob",
    "sagemaker:CreateEndpointConfig",
}
SAGEMAKER_ROLES = (
    NAMES.pipeline_role,
    NAMES.job_role,
    NAMES.experiment_job_role,
    NAMES.model_role,
    NAMES.studio_role,
)
PIPELINES = [
    f"arn:aws:sagemaker:eu-west-1:111111111111:pipeline/{NAMES.pipeline}",
    f"arn:aws:sagemaker:eu-west-1:111111111111:pipeline/{NAMES.monitoring_pipeline}",
    f"arn:aws:sagemaker:eu-west-1:111111111111:pipeline/{NAMES.batch_pipeline}",
]


@pytest.fixture(scope="module")
def template() -> Template:
    return template_of("Iam")


@pytest.fixture(scope="module")
def all_statements() -> list[dict]:
    """Statements of every platform stack's IAM policies (IAM, network flow logs, ...)."""
    app, platform = platform_app()
    del app
    return [s for stack in platform.stacks.values() for s in policy_statements(Template.from_stack(stack))]


def _role_statements(template: Template, role_name: str) -> list[dict]:
    roles = template.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": role_name}})
    ((role_id, role),) = roles.items()
    (policy_ref,) = role["Properties"]["ManagedPolicyArns"]
    policy = template.find_resources("AWS::IAM::ManagedPolicy")[policy_ref["Ref"]]
    assert role_id
    return policy["Properties"]["PolicyDocument"]["Statement"]


def test_one_named_role_per_duty(template: Template) -> None:
    names = {r["Properties"]["RoleName"] for r in template.find_resources("AWS::IAM::Role").values()}
    assert names == {*SAGEMAKER_ROLES, NAMES.approver_role, NAMES.operator_role, NAMES.scheduler_role}
    assert all(name.endswith("-eu-west-1") for name in names)


def test_no_star_resource_outside_allow_list(all_statements: list[dict]) -> None:
    for statement in all_statements:
        if statement["Effect"] == "Allow" and "*" in as_list(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= STAR_RESOURCE_ALLOW_LIST, statement


def test_no_wildcard_actions(all_statements: list[dict]) -> None:
    for statement in all_statements:
        assert not [a for a in as_list(statement["Action"]) if "*" in a], statement


# CDK's own custom-resource provider (closing the VPC default security group) logs with this policy.
CDK_PROVIDER_ROLE_PREFIX = "CustomVpcRestrictDefaultSGCustomResourceProviderRole"


def test_no_aws_managed_or_full_access_policies() -> None:
    _, platform = platform_app()
    for stack_id, stack in platform.stacks.items():
        for role_id, role in Template.from_stack(stack).find_resources("AWS::IAM::Role").items():
            arns = str(role["Properties"].get("ManagedPolicyArns", []))
            assert "FullAccess" not in arns, (stack_id, role_id, arns)
            if "iam::aws:policy" in arns:
                assert role_id.startswith(CDK_PROVIDER_ROLE_PREFIX), (stack_id, role_id, arns)
                assert arns.count("iam::aws:policy") == 1 and "AWSLambdaBasicExecutionRole" in arns


def test_no_inline_role_policies(template: Template) -> None:
    template.resource_count_is("AWS::IAM::Policy", 0)
    for role in template.find_resources("AWS::IAM::Role").values():
        assert "Policies" not in role["Properties"]


def test_every_job_or_endpoint_creation_is_limited_to_settings_instance_types(
    all_statements: list[dict],
) -> None:
    guarded = [
        s for s in all_statements if s["Effect"] == "Allow" and GUARDED_ACTIONS & set(as_list(s["Action"]))
    ]
    assert len(guarded) >= 2  # pipeline jobs, Studio experiment jobs
    for statement in guarded:
        condition = statement["Condition"]
        assert set(condition["ForAllValues:StringEquals"]["sagemaker:InstanceTypes"]) == set(
            SETTINGS.allowed_instance_types
        )
        assert condition["Null"]["sagemaker:InstanceTypes"] == "false"


def test_job_creation_is_limited_to_project_subnets_and_security_group(all_statements: list[dict]) -> None:
    job_statements = [s for s in all_statements if "sagemaker:CreateTrainingJob" in as_list(s["Action"])]
    assert len(job_statements) == 2
    for statement in job_statements:
        condition = statement["Condition"]
        assert len(condition["ForAllValues:StringEquals"]["sagemaker:VpcSubnets"]) == 2
        assert len(condition["ForAllValues:StringEquals"]["sagemaker:VpcSecurityGroupIds"]) == 1
        assert condition["Null"]["sagemaker:VpcSubnets"] == "false"


def test_network_isolation_condition_when_enabled() -> None:
    _, platform = platform_app('{"pipeline": {"network_isolation": true}}')
    statements = policy_statements(Template.from_stack(platform.stacks["Iam"]))
    job_statements = [s for s in statements if "sagemaker:CreateTrainingJob" in as_list(s["Action"])]
    assert job_statements
    assert all(s["Condition"]["Bool"] == {"sagemaker:NetworkIsolation": "true"} for s in job_statements)


def test_pass_role_only_to_sagemaker(all_statements: list[dict]) -> None:
    pass_role = [
        s for s in all_statements if s["Effect"] == "Allow" and "iam:PassRole" in as_list(s["Action"])
    ]
    assert len(pass_role) >= 2  # pipeline role -> job role, Studio -> experiment job role
    for statement in pass_role:
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_pipeline_role_registers_only_in_the_project_group(template: Template) -> None:
    statements = _role_statements(template, NAMES.pipeline_role)
    (register,) = [
        s
        for s in statements
        if s["Effect"] == "Allow" and "sagemaker:CreateModelPackage" in as_list(s["Action"])
    ]
    group = NAMES.model_package_group
    assert as_list(register["Resource"]) == [
        f"arn:aws:sagemaker:eu-west-1:111111111111:model-package-group/{group}",
        f"arn:aws:sagemaker:eu-west-1:111111111111:model-package/{group}/*",
    ]


def test_job_role_s3_access_is_prefix_scoped(template: Template) -> None:
    statements = _role_statements(template, NAMES.job_role)
    objects = [
        r
        for s in statements
        if s["Effect"] == "Allow" and s["Action"] != "s3:ListBucket"
        for r in as_list(s["Resource"])
    ]
    s3_objects = [r for r in objects if isinstance(r, str) and r.startswith("arn:aws:s3:::")]
    assert s3_objects
    for arn in s3_objects:
        bucket, _, key = arn.removeprefix("arn:aws:s3:::").partition("/")
        assert bucket in (NAMES.data_bucket, NAMES.artifacts_bucket)
        assert key not in ("", "*"), f"{arn} is not scoped to a prefix"


def test_trigger_role_only_starts_the_project_pipelines(template: Template) -> None:
    allows = [s for s in _role_statements(template, NAMES.scheduler_role) if s["Effect"] == "Allow"]
    (statement,) = allows
    assert statement["Action"] == "sagemaker:StartPipelineExecution"
    assert sorted(as_list(statement["Resource"])) == sorted(PIPELINES)


def _trust(template: Template, role_name: str) -> list[dict]:
    roles = template.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": role_name}})
    ((_, role),) = roles.items()
    return role["Properties"]["AssumeRolePolicyDocument"]["Statement"]


@pytest.mark.parametrize("role_name", SAGEMAKER_ROLES)
def test_sagemaker_roles_trust_sagemaker_for_this_account_with_source_identity(
    template: Template, role_name: str
) -> None:
    statements = _trust(template, role_name)
    assert {a for s in statements for a in as_list(s["Action"])} == {
        "sts:AssumeRole",
        "sts:SetSourceIdentity",
    }
    for statement in statements:
        assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "111111111111"}}


def test_trigger_role_trusts_eventbridge_and_scheduler_of_this_account(template: Template) -> None:
    (statement,) = _trust(template, NAMES.scheduler_role)
    assert sorted(as_list(statement["Principal"]["Service"])) == [
        "events.amazonaws.com",
        "scheduler.amazonaws.com",
    ]
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "111111111111"}}


def test_every_service_trust_in_the_platform_names_the_source_account() -> None:
    _, platform = platform_app()
    for stack_id in ("Iam", "Studio"):
        for role in Template.from_stack(platform.stacks[stack_id]).find_resources("AWS::IAM::Role").values():
            for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
                if "Service" in statement["Principal"]:
                    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == "111111111111"


KMS_ALLOWED = {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:CreateGrant", "kms:DescribeKey"}


def test_roles_get_only_the_kms_actions_they_use(template: Template) -> None:
    kms_actions = {
        a for s in policy_statements(template) for a in as_list(s["Action"]) if a.startswith("kms:")
    }
    assert kms_actions <= KMS_ALLOWED
    for statement in policy_statements(template):
        if "kms:CreateGrant" in as_list(statement["Action"]):
            assert statement["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    approver_kms = {
        a
        for s in _role_statements(template, NAMES.approver_role)
        for a in as_list(s["Action"])
        if a.startswith("kms:")
    }
    assert approver_kms == {"kms:Decrypt"}


def test_wildcard_without_reason_is_refused() -> None:
    stack = cdk.Stack(cdk.App(), "Probe", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    role = LeastPrivilegeRole(
        stack,
        "Probe",
        role_name="probe",
        assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
        description="x",
    )
    with pytest.raises(WildcardWithoutReasonError, match="Resource::\\*"):
        role.allow("Everything", ["s3:GetObject"], ["*"])
    role.allow("Scoped", ["s3:GetObject"], ["arn:aws:s3:::bucket/key.json"])  # no wildcard: no reason needed


def test_iam_and_studio_stacks_are_nag_clean() -> None:
    """Both cdk-nag packs over the platform: no unacknowledged finding in the Iam or Studio stack."""
    app = cdk.App(context=cdk_json_context())
    build_platform(app, load_settings({}))
    add_nag_checks(app)
    outcome = synth_with_report(app)
    mine = [line for line in outcome.blocking() if " at Iam/" in line or " at Studio/" in line]
    assert not mine, "\n".join(mine)


def test_job_role_reads_the_fleet_and_writes_only_batch_scores_for_the_batch_pipeline(
    template: Template,
) -> None:
    statements = {s.get("Sid"): s for s in _role_statements(template, NAMES.job_role)}
    assert (
        statements["ReadFleetData"]["Resource"] == f"arn:aws:s3:::{NAMES.data_bucket}/{NAMES.fleet_prefix}*"
    )
    assert statements["ListFleetData"]["Condition"] == {
        "StringLike": {"s3:prefix": [f"{NAMES.fleet_prefix}*"]}
    }
    assert statements["WriteBatchScores"]["Resource"] == (
        f"arn:aws:s3:::{NAMES.artifacts_bucket}/{NAMES.batch_prefix}*"
    )
