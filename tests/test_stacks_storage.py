"""Security promises of the storage stack: the key and the buckets (CDK assertions on the template)."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template
from cdk_helpers import platform_app, template_of

from settings import Settings, load_settings

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
    (key_id,) = template_of("Key").find_resources("AWS::KMS::Key")
    default = _bucket_named(template, name)["Properties"]["BucketEncryption"][
        "ServerSideEncryptionConfiguration"
    ][0]["ServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "aws:kms"
    # The key lives in the Key stack: the bucket imports its ARN from that stack's export.
    assert key_id in default["KMSMasterKeyID"]["Fn::ImportValue"]
    template.resource_count_is("AWS::KMS::Key", 0)


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


# Prefixes of the artifacts bucket that nothing may expire: registered model data, what model packages
# refer to, the model in service and the job code a registered version was built from.
KEPT_ARTIFACT_PREFIXES = (
    NAMES.registry_prefix,
    NAMES.models_prefix,
    NAMES.champion_prefix,
    NAMES.code_prefix,
)


def _overlap(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


@pytest.mark.parametrize("kept", KEPT_ARTIFACT_PREFIXES)
def test_no_lifecycle_rule_expires_a_kept_prefix(template: Template, kept: str) -> None:
    rules = _bucket_named(template, NAMES.artifacts_bucket)["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = [rule for rule in rules if "ExpirationInDays" in rule or "ExpirationDate" in rule]
    assert expiring, "the intermediates rule exists"
    for rule in expiring:
        prefix = rule.get("Prefix", rule.get("Filter", {}).get("Prefix", ""))
        assert prefix, f"rule {rule['Id']} expires current objects of the whole bucket"
        assert not _overlap(prefix, kept), f"rule {rule['Id']} ({prefix}) expires {kept}"


def test_kept_prefixes_are_distinct_from_the_intermediates() -> None:
    assert all(not _overlap(NAMES.intermediates_prefix, kept) for kept in KEPT_ARTIFACT_PREFIXES)
    assert len(set(KEPT_ARTIFACT_PREFIXES)) == 4


def test_pipeline_intermediates_and_old_versions_expire(template: Template) -> None:
    rules = _bucket_named(template, NAMES.artifacts_bucket)["Properties"]["LifecycleConfiguration"]["Rules"]
    by_id = {rule["Id"]: rule for rule in rules}
    intermediates = by_id["ExpirePipelineIntermediates"]
    assert intermediates["Prefix"] == NAMES.intermediates_prefix
    assert intermediates["ExpirationInDays"] == Settings().storage.intermediates_expiry_days
    assert by_id["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] > 0
    data_rules = _bucket_named(template, NAMES.data_bucket)["Properties"]["LifecycleConfiguration"]["Rules"]
    assert all("ExpirationInDays" not in rule for rule in data_rules)  # raw data is never expired


def test_storage_stack_is_the_seam_source() -> None:
    _, platform = platform_app()
    assert platform.data_bucket is platform.stacks["Storage"].data_bucket
    assert platform.artifacts_bucket is platform.stacks["Storage"].artifacts_bucket
    assert platform.key is platform.stacks["Key"].key is platform.stacks["Storage"].key


DR_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
REPLICATED = {
    "backup": {
        "replication": {
            "destination_bucket_arn": "arn:aws:s3:::turbofan-dr-copy",
            "destination_key_arn": f"arn:aws:kms:eu-central-1:111111111111:key/{DR_KEY_ID}",
        }
    }
}


def test_only_s3_acting_for_this_account_may_assume_the_replication_role() -> None:
    settings = load_settings(REPLICATED)
    template = template_of("Storage", json.dumps(REPLICATED))
    (role,) = [
        r
        for r in template.find_resources("AWS::IAM::Role").values()
        if r["Properties"]["RoleName"] == settings.names.replication_role
    ]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert (trust["Principal"], trust["Action"]) == ({"Service": "s3.amazonaws.com"}, "sts:AssumeRole")
    # The confused-deputy guard: S3 acting for another account's bucket cannot use this role.
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": settings.aws.account}}
