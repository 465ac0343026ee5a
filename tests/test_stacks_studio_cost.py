"""Security and cost promises of the Studio, alerts and cost stacks, and the seam for the ML stack."""

from __future__ import annotations

import json

import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from cdk_helpers import as_list, platform_app, policy_statements, template_of

from settings import Settings

pytestmark = pytest.mark.slow

SETTINGS = Settings()


@pytest.fixture(scope="module")
def studio() -> Template:
    return template_of(
        "Studio", '{"studio": {"user_profiles": ["alice", "bob-smith"], "idle_shutdown_minutes": 90}}'
    )


def test_studio_domain_is_vpc_only_with_iam_auth_and_kms(studio: Template) -> None:
    (domain,) = studio.find_resources("AWS::SageMaker::Domain").values()
    props = domain["Properties"]
    assert props["AppNetworkAccessType"] == "VpcOnly"
    assert props["AuthMode"] == "IAM"
    assert "DataKey" in str(props["KmsKeyId"])
    assert len(props["SubnetIds"]) == 2
    assert "StudioSecurityGroup" in str(props["DefaultUserSettings"]["SecurityGroups"])
    assert "StudioRole" in str(props["DefaultUserSettings"]["ExecutionRole"])


def test_studio_sharing_goes_to_artifacts_bucket_with_the_key(studio: Template) -> None:
    (domain,) = studio.find_resources("AWS::SageMaker::Domain").values()
    sharing = domain["Properties"]["DefaultUserSettings"]["SharingSettings"]
    assert "ArtifactsBucket" in str(sharing["S3OutputPath"]) and "/studio/" in str(sharing["S3OutputPath"])
    assert "DataKey" in str(sharing["S3KmsKeyId"])


def test_jupyterlab_idle_shutdown_from_settings(studio: Template) -> None:
    idle = {
        "LifecycleManagement": "ENABLED",
        "IdleTimeoutInMinutes": 90,
        "MaxIdleTimeoutInMinutes": 90,
        "MinIdleTimeoutInMinutes": 60,
    }
    for settings_key in ("DefaultUserSettings", "DefaultSpaceSettings"):
        studio.has_resource_properties(
            "AWS::SageMaker::Domain",
            {
                settings_key: Match.object_like(
                    {"JupyterLabAppSettings": {"AppLifecycleManagement": {"IdleSettings": idle}}}
                )
            },
        )


def test_user_profiles_from_settings(studio: Template) -> None:
    profiles = studio.find_resources("AWS::SageMaker::UserProfile")
    assert {p["Properties"]["UserProfileName"] for p in profiles.values()} == {"alice", "bob-smith"}


def test_alerts_topic_is_encrypted_tls_only_with_email_subscribers() -> None:
    template = template_of("Alerts", '{"alerts": {"emails": ["ops@example.com", "ml@example.org"]}}')
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    subscriptions = template.find_resources("AWS::SNS::Subscription")
    assert {s["Properties"]["Endpoint"] for s in subscriptions.values()} == {
        "ops@example.com",
        "ml@example.org",
    }
    (policy,) = template.find_resources("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    (publish,) = [s for s in statements if s.get("Sid") == "AwsServicesOfThisAccountPublish"]
    assert "budgets.amazonaws.com" in publish["Principal"]["Service"]
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": "111111111111"}}


def test_monthly_budget_notifies_the_alerts_topic() -> None:
    template = template_of("Cost")
    (budget,) = template.find_resources("AWS::Budgets::Budget").values()
    data = budget["Properties"]["Budget"]
    assert data["BudgetLimit"] == {"Amount": SETTINGS.cost.monthly_budget_usd, "Unit": "USD"}
    assert (data["BudgetType"], data["TimeUnit"]) == ("COST", "MONTHLY")
    notifications = budget["Properties"]["NotificationsWithSubscribers"]
    assert {n["Notification"]["NotificationType"] for n in notifications} == {"ACTUAL", "FORECASTED"}
    for notification in notifications:
        (subscriber,) = notification["Subscribers"]
        assert subscriber["SubscriptionType"] == "SNS"
        assert "AlertsTopic" in str(subscriber["Address"])


def test_platform_seam_exposes_typed_objects() -> None:
    """What the ML stack receives: typed constructs, not name strings."""
    _, platform = platform_app()
    # jsii interfaces are protocols: check the concrete classes the stacks create.
    assert isinstance(platform.key, kms.Key)
    assert isinstance(platform.data_bucket, s3.Bucket) and isinstance(platform.artifacts_bucket, s3.Bucket)
    assert isinstance(platform.pipeline_role, iam.Role) and isinstance(platform.job_role, iam.Role)
    assert isinstance(platform.model_role, iam.Role) and platform.model_role is not platform.job_role
    assert isinstance(platform.job_network.security_group, ec2.SecurityGroup)
    assert len(platform.job_network.subnet_ids) == 2
    assert platform.names.pipeline == SETTINGS.names.pipeline


# Per-user attribution and owner-scoped spaces and apps


def _domain_policy(studio: Template) -> list[dict]:
    (policy,) = studio.find_resources("AWS::IAM::ManagedPolicy").values()
    assert "StudioRole" in json.dumps(policy["Properties"]["Roles"])
    return policy["Properties"]["PolicyDocument"]["Statement"]


def test_domain_attributes_sessions_to_the_user_profile(studio: Template) -> None:
    studio.has_resource_properties(
        "AWS::SageMaker::Domain", {"DomainSettings": {"ExecutionRoleIdentityConfig": "USER_PROFILE_NAME"}}
    )


def test_domain_default_app_instance_type_is_the_first_allowed_one() -> None:
    template = template_of("Studio", '{"studio": {"app_instance_types": ["ml.t3.large", "ml.m5.large"]}}')
    (domain,) = template.find_resources("AWS::SageMaker::Domain").values()
    for settings_key in ("DefaultUserSettings", "DefaultSpaceSettings"):
        spec = domain["Properties"][settings_key]["JupyterLabAppSettings"]["DefaultResourceSpec"]
        assert spec == {"InstanceType": "ml.t3.large"}
    statements = _domain_policy(template)
    creates = [
        s for s in statements if {"sagemaker:CreateApp", "sagemaker:CreateSpace"} & set(as_list(s["Action"]))
    ]
    for statement in creates:
        types = statement["Condition"]["ForAllValues:StringEquals"]["sagemaker:InstanceTypes"]
        assert types == ["ml.t3.large", "ml.m5.large"]


def test_space_and_app_changes_are_owner_scoped_with_instance_types(studio: Template) -> None:
    statements = _domain_policy(studio)
    changes = {"CreateSpace", "UpdateSpace", "DeleteSpace", "CreateApp", "DeleteApp"}
    scoped = [s for s in statements if {f"sagemaker:{a}" for a in changes} & set(as_list(s["Action"]))]
    assert {a.removeprefix("sagemaker:") for s in scoped for a in as_list(s["Action"])} == changes
    for statement in scoped:
        condition, resource = statement["Condition"], json.dumps(statement["Resource"])
        if "ArnLike" in condition:
            owner = json.dumps(condition["ArnLike"]["sagemaker:OwnerUserProfileArn"])
            assert "user-profile/" in owner and "/${sagemaker:UserProfileName}" in owner
        else:  # apps outside spaces: no owner key, the caller's profile is in the app ARN
            assert condition["Null"] == {"sagemaker:OwnerUserProfileArn": "true"}
            assert "/${sagemaker:UserProfileName}/*" in resource
        if {"sagemaker:CreateApp", "sagemaker:CreateSpace"} & set(as_list(statement["Action"])):
            assert condition["ForAllValues:StringEquals"]["sagemaker:InstanceTypes"] == ["ml.t3.medium"]


def test_studio_grants_name_the_domain_id_not_a_wildcard(studio: Template) -> None:
    statements = _domain_policy(studio)
    resources = [r for s in statements for r in as_list(s["Resource"])]
    assert resources
    for resource in resources:
        assert {"Fn::GetAtt": ["Domain", "DomainId"]} in resource["Fn::Join"][1], resource
    iam_statements = policy_statements(template_of("Iam"))
    for kind in ("domain", "user-profile", "space", "app"):
        assert f":{kind}/" not in json.dumps(iam_statements)


def test_studio_tags_only_on_creation(studio: Template) -> None:
    (tag,) = [s for s in _domain_policy(studio) if "sagemaker:AddTags" in as_list(s["Action"])]
    assert tag["Condition"] == {"Null": {"sagemaker:TaggingAction": "false"}}
