"""Security promises of the IAM stack: least privilege, named wildcards only, cost and network guardrails."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template
from cdk_helpers import as_list, platform_app, policy_statements, template_of

from settings import Settings
from stacks.iam_stack import EC2_DESCRIBE_ACTIONS, ECR_TOKEN_ACTIONS
from stacks.roles import LeastPrivilegeRole, WildcardWithoutReasonError

pytestmark = pytest.mark.slow

SETTINGS = Settings()
NAMES = SETTINGS.names
# Actions with no resource-level permissions: the only ones allowed on Resource "*".
STAR_RESOURCE_ALLOW_LIST = {
    *ECR_TOKEN_ACTIONS,
    *EC2_DESCRIBE_ACTIONS,
    "sagemaker:ListApps",
    "sagemaker:ListSpaces",
    "sagemaker:ListUserProfiles",
    "sagemaker:ListDomains",
}
GUARDED_ACTIONS = {
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateHyperParameterTuningJob",
    "sagemaker:CreateEndpointConfig",
}


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


def test_four_named_roles(template: Template) -> None:
    names = {r["Properties"]["RoleName"] for r in template.find_resources("AWS::IAM::Role").values()}
    assert names == {NAMES.pipeline_role, NAMES.job_role, NAMES.studio_role, NAMES.scheduler_role}


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
    guarded = [s for s in all_statements if GUARDED_ACTIONS & set(as_list(s["Action"]))]
    assert len(guarded) >= 3  # pipeline jobs, Studio experiment jobs, Studio endpoint configs
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


def test_pass_role_only_the_job_role_only_to_sagemaker(all_statements: list[dict]) -> None:
    pass_role = [s for s in all_statements if "iam:PassRole" in as_list(s["Action"])]
    assert pass_role
    for statement in pass_role:
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
        assert "JobRole" in str(statement["Resource"])


def test_pipeline_role_registers_only_in_the_project_group(template: Template) -> None:
    statements = _role_statements(template, NAMES.pipeline_role)
    (register,) = [s for s in statements if "sagemaker:CreateModelPackage" in as_list(s["Action"])]
    group = NAMES.model_package_group
    assert as_list(register["Resource"]) == [
        f"arn:aws:sagemaker:eu-west-1:111111111111:model-package-group/{group}",
        f"arn:aws:sagemaker:eu-west-1:111111111111:model-package/{group}/*",
    ]


def test_job_role_s3_access_is_prefix_scoped(template: Template) -> None:
    statements = _role_statements(template, NAMES.job_role)
    objects = [r for s in statements if s["Action"] != "s3:ListBucket" for r in as_list(s["Resource"])]
    s3_objects = [r for r in objects if isinstance(r, str) and r.startswith("arn:aws:s3:::")]
    assert s3_objects
    for arn in s3_objects:
        bucket, _, key = arn.removeprefix("arn:aws:s3:::").partition("/")
        assert bucket in (NAMES.data_bucket, NAMES.artifacts_bucket)
        assert key not in ("", "*"), f"{arn} is not scoped to a prefix"


def test_trigger_role_only_starts_the_pipeline(template: Template) -> None:
    (statement,) = _role_statements(template, NAMES.scheduler_role)
    assert statement["Action"] == "sagemaker:StartPipelineExecution"
    assert statement["Resource"] == f"arn:aws:sagemaker:eu-west-1:111111111111:pipeline/{NAMES.pipeline}"


def test_roles_trust_only_their_service(template: Template) -> None:
    expected = {
        NAMES.pipeline_role: "sagemaker.amazonaws.com",
        NAMES.job_role: "sagemaker.amazonaws.com",
        NAMES.studio_role: "sagemaker.amazonaws.com",
        NAMES.scheduler_role: "events.amazonaws.com",
    }
    for role in template.find_resources("AWS::IAM::Role").values():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": expected[role["Properties"]["RoleName"]]}


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
