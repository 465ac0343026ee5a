"""Security promises of the storage stack: the key and the buckets (CDK assertions on the template)."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template
from cdk_helpers import platform_app, template_of

from settings import Settings

pytestmark = pytest.mark.slow
NAMES = Settings().names


@pytest.fixture(scope="module")
def template() -> Template:
    return template_of("Storage")


def _buckets(template: Template) -> dict[str, dict]:
    return template.find_resources("AWS::S3::Bucket")


def _bucket_named(template: Template, name: str) -> dict:
    matches = [b for b in _buckets(template).values() if b["Properties"].get("BucketName") == name]
    assert len(matches) == 1, name
    return matches[0]


def test_three_retained_buckets_with_deterministic_names(template: Template) -> None:
    buckets = _buckets(template)
    assert {b["Properties"]["BucketName"] for b in buckets.values()} == set(NAMES.buckets())
    for bucket in buckets.values():
        assert bucket["DeletionPolicy"] == "Retain"
        assert bucket["UpdateReplacePolicy"] == "Retain"


def test_every_bucket_is_encrypted(template: Template) -> None:
    for bucket in _buckets(template).values():
        rules = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rules and all("ServerSideEncryptionByDefault" in rule for rule in rules)


@pytest.mark.parametrize("name", [NAMES.data_bucket, NAMES.artifacts_bucket])
def test_data_and_artifacts_use_the_project_key(template: Template, name: str) -> None:
    (key_id,) = template.find_resources("AWS::KMS::Key")
    default = _bucket_named(template, name)["Properties"]["BucketEncryption"][
        "ServerSideEncryptionConfiguration"
    ][0]["ServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "aws:kms"
    assert default["KMSMasterKeyID"] == {"Fn::GetAtt": [key_id, "Arn"]}


def test_access_log_bucket_uses_s3_managed_keys(template: Template) -> None:
    # S3 server access logging cannot deliver to an SSE-KMS bucket.
    bucket = _bucket_named(template, NAMES.access_logs_bucket)
    rule = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_public_access_blocked_and_versioning_on_every_bucket(template: Template) -> None:
    for bucket in _buckets(template).values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}


def test_every_bucket_is_tls_only(template: Template) -> None:
    buckets = _buckets(template)
    policies = template.find_resources("AWS::S3::BucketPolicy")
    protected = set()
    for policy in policies.values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                protected.add(policy["Properties"]["Bucket"]["Ref"])
    assert protected == set(buckets)


def test_data_and_artifacts_log_to_the_access_log_bucket(template: Template) -> None:
    log_bucket_id = next(
        key
        for key, b in _buckets(template).items()
        if b["Properties"]["BucketName"] == NAMES.access_logs_bucket
    )
    for name in (NAMES.data_bucket, NAMES.artifacts_bucket):
        logging = _bucket_named(template, name)["Properties"]["LoggingConfiguration"]
        assert logging["DestinationBucketName"] == {"Ref": log_bucket_id}


def test_data_bucket_sends_events_to_eventbridge(template: Template) -> None:
    bucket = _bucket_named(template, NAMES.data_bucket)
    assert bucket["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    template.resource_count_is("AWS::Lambda::Function", 0)  # no notification custom resource


def test_pipeline_intermediates_and_old_versions_expire(template: Template) -> None:
    rules = _bucket_named(template, NAMES.artifacts_bucket)["Properties"]["LifecycleConfiguration"]["Rules"]
    by_id = {rule["Id"]: rule for rule in rules}
    intermediates = by_id["ExpirePipelineIntermediates"]
    assert intermediates["Prefix"] == NAMES.intermediates_prefix
    assert intermediates["ExpirationInDays"] == Settings().storage.intermediates_expiry_days
    assert by_id["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] > 0
    data_rules = _bucket_named(template, NAMES.data_bucket)["Properties"]["LifecycleConfiguration"]["Rules"]
    assert all("ExpirationInDays" not in rule for rule in data_rules)  # raw data is never expired


def test_key_rotates_and_is_retained(template: Template) -> None:
    template.resource_count_is("AWS::KMS::Key", 1)
    template.has_resource(
        "AWS::KMS::Key",
        {"Properties": Match.object_like({"EnableKeyRotation": True}), "DeletionPolicy": "Retain"},
    )
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": NAMES.key_alias})


def test_key_policy_scopes_data_use_to_project_roles(template: Template) -> None:
    (key,) = template.find_resources("AWS::KMS::Key").values()
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert all(s["Action"] != "kms:*" for s in statements), "no blanket kms:* in the key policy"
    role_arns = {f"arn:aws:iam::111111111111:role/{name}" for name in NAMES.key_user_roles()}
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if "kms:Decrypt" in actions and "AWS" in statement["Principal"]:
            assert set(statement["Condition"]["ArnEquals"]["aws:PrincipalArn"]) == role_arns
    services = {s["Sid"]: s for s in statements if "Service" in s["Principal"]}
    logs = services["CloudWatchLogsOfProjectLogGroups"]
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"].endswith(
        f"log-group:{NAMES.log_group_prefix}*"
    )


def test_storage_stack_is_the_seam_source() -> None:
    _, platform = platform_app()
    assert platform.data_bucket is platform.stacks["Storage"].data_bucket
    assert platform.key is platform.stacks["Storage"].key
