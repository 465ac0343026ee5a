"""Backups in the templates: the backup function, its rules and role (Ops stack), and the optional
cross-region replication of the artifacts bucket (Storage stack), each synthesized once through cdk-nag.

The platform stacks and the Ops stack are built without the ML stack (the Ops stack needs only the
platform and an image URI); the nag report must hold no finding on them.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from cdk_helpers import cdk_json_context, synth_with_report

from lambdas.backup_registry import config as backup_config
from settings import SettingsError, load_settings
from stacks.nag import add_nag_checks
from stacks.ops_stack import OpsStack
from stacks.platform import build_platform, stack_props

pytestmark = pytest.mark.slow

DESTINATION_BUCKET = "arn:aws:s3:::turbofan-dr-copy"
DESTINATION_KEY = "arn:aws:kms:eu-central-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
REPLICATED = {
    "backup": {
        "replication": {"destination_bucket_arn": DESTINATION_BUCKET, "destination_key_arn": DESTINATION_KEY}
    }
}
IMAGE = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/turbofan-rul:1"


def synth(raw_settings: dict) -> tuple[dict[str, dict], object]:
    """Templates of the platform and Ops stacks under `raw_settings`, and the synth outcome (nag report)."""
    app = cdk.App(context=cdk_json_context())
    add_nag_checks(app)
    settings = load_settings(raw_settings)
    platform = build_platform(app, settings)
    ops = OpsStack(app, "Ops", platform=platform, image_uri=IMAGE, **stack_props(settings, "Ops"))
    outcome = synth_with_report(app)
    assert outcome.error is None, outcome.error
    stacks = {**platform.stacks, "Ops": ops}
    return {name: Template.from_stack(stack).to_json() for name, stack in stacks.items()}, outcome


@pytest.fixture(scope="module")
def default_synth():
    return synth({})


@pytest.fixture(scope="module")
def replicated_synth():
    return synth(REPLICATED)


def of_type(template: dict, kind: str) -> dict[str, dict]:
    return {key: r for key, r in template["Resources"].items() if r["Type"] == kind}


def statements_of(template: dict, role_name: str) -> dict[str, dict]:
    """The statements (by Sid) of the managed policy attached to the role named `role_name`."""
    (role_id,) = [
        k for k, r in of_type(template, "AWS::IAM::Role").items() if r["Properties"]["RoleName"] == role_name
    ]
    (policy_ref,) = template["Resources"][role_id]["Properties"]["ManagedPolicyArns"]
    policy = template["Resources"][policy_ref["Ref"]]["Properties"]["PolicyDocument"]
    return {s["Sid"]: s for s in policy["Statement"]}


# --- settings ------------------------------------------------------------------------------------------


def test_backup_is_on_and_replication_off_by_default():
    settings = load_settings({})
    assert settings.backup.enabled and settings.backup.replication is None
    assert settings.names.backup_role in settings.names.key_user_roles()


@pytest.mark.parametrize(
    "backup, field",
    [
        ({"schedule_cron": "rate(1 day)"}, "backup.schedule_cron"),
        ({"prefix": "no-slash"}, "backup.prefix"),
        ({"replication": {"destination_bucket_arn": DESTINATION_BUCKET}}, "destination_key_arn"),
        (
            {"replication": {"destination_bucket_arn": "bucket", "destination_key_arn": DESTINATION_KEY}},
            "bucket_arn",
        ),
    ],
)
def test_bad_backup_settings_name_the_field(backup, field):
    with pytest.raises(SettingsError, match=field):
        load_settings({"backup": backup})


def test_replication_into_the_same_region_is_refused():
    same_region = DESTINATION_KEY.replace("eu-central-1", "eu-west-1")
    settings = {
        "backup": {
            "replication": {"destination_bucket_arn": DESTINATION_BUCKET, "destination_key_arn": same_region}
        }
    }
    with pytest.raises(ValueError, match="another region"):
        build_platform(cdk.App(context=cdk_json_context()), load_settings(settings))


# --- the backup function ----------------------------------------------------------------------------------


def test_no_nag_findings(default_synth, replicated_synth):
    for _, outcome in (default_synth, replicated_synth):
        assert outcome.blocking() == []


def test_function_environment_is_what_the_handler_accepts(default_synth):
    templates, _ = default_synth
    names = load_settings({}).names
    (function,) = [
        f["Properties"]
        for f in of_type(templates["Ops"], "AWS::Lambda::Function").values()
        if f["Properties"].get("FunctionName") == f"{names.prefix}-backup-registry"
    ]
    environ = function["Environment"]["Variables"]
    config = backup_config.load_config(environ)
    assert config.bucket == names.artifacts_bucket and config.endpoint_names == (names.endpoint,)
    assert config.group_name == names.model_package_group and config.prefix == "backups/"
    assert function["VpcConfig"]["SubnetIds"]


def test_rules_fire_on_a_finished_deployment_and_on_the_schedule(default_synth):
    templates, _ = default_synth
    names = load_settings({}).names
    rules = {
        r["Properties"]["Name"]: r["Properties"]
        for r in of_type(templates["Ops"], "AWS::Events::Rule").values()
    }
    deployment = rules[f"{names.prefix}-backup-on-deployment"]
    assert deployment["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Endpoint State Change"],
        "detail": {"EndpointName": [names.endpoint], "EndpointStatus": ["IN_SERVICE"]},
    }
    assert rules[f"{names.prefix}-backup-schedule"]["ScheduleExpression"] == "cron(30 2 * * ? *)"
    for rule in (deployment, rules[f"{names.prefix}-backup-schedule"]):
        (target,) = rule["Targets"]
        assert target["RetryPolicy"] and target["DeadLetterConfig"]
    # Each rule adds a statement to the shared dead-letter queue's policy: their Sids must stay unique.
    for policy in of_type(templates["Ops"], "AWS::SQS::QueuePolicy").values():
        sids = [s.get("Sid") for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid")]
        assert len(sids) == len(set(sids)), sids


def test_role_allows_only_what_the_handler_calls(default_synth):
    templates, _ = default_synth
    names = load_settings({}).names
    statements = statements_of(templates["Ops"], names.backup_role)
    sagemaker = sorted(
        a
        for s in statements.values()
        for a in json.dumps(s["Action"]).split('"')
        if a.startswith("sagemaker:")
    )
    assert sagemaker == [
        "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:DescribeModel",
        "sagemaker:DescribeModelPackage",
        "sagemaker:DescribeModelPackageGroup",
        "sagemaker:ListModelPackages",
    ]
    assert statements["WriteBackups"]["Action"] == "s3:PutObject"
    assert statements["WriteBackups"]["Resource"] == f"arn:aws:s3:::{names.artifacts_bucket}/backups/*"
    heads = json.dumps(statements["HeadRegisteredArtifacts"]["Resource"])
    assert "models/*" in heads and "registry/*" in heads
    # the pointer is read back after a lost conditional write, and nothing else under the backups prefix
    pointer = statements["HeadLatestPointer"]
    assert pointer["Action"] == "s3:GetObject"
    assert pointer["Resource"] == f"arn:aws:s3:::{names.artifacts_bucket}/backups/latest.json"
    assert not any("s3:DeleteObject" in json.dumps(s["Action"]) for s in statements.values())


def test_backup_off_removes_the_function():
    templates, _ = synth({"backup": {"enabled": False}})
    names = [
        f["Properties"].get("FunctionName", "")
        for f in of_type(templates["Ops"], "AWS::Lambda::Function").values()
    ]
    assert not any(name.endswith("backup-registry") for name in names)


# --- replication --------------------------------------------------------------------------------------


def _artifacts_bucket(template: dict) -> dict:
    names = load_settings({}).names
    (bucket,) = [
        b["Properties"]
        for b in of_type(template, "AWS::S3::Bucket").values()
        if b["Properties"]["BucketName"] == names.artifacts_bucket
    ]
    return bucket


def test_no_replication_by_default(default_synth):
    templates, _ = default_synth
    assert "ReplicationConfiguration" not in _artifacts_bucket(templates["Storage"])


def test_replication_includes_kms_encrypted_objects(replicated_synth):
    templates, _ = replicated_synth
    (rule,) = _artifacts_bucket(templates["Storage"])["ReplicationConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["SourceSelectionCriteria"] == {"SseKmsEncryptedObjects": {"Status": "Enabled"}}
    assert rule["DeleteMarkerReplication"] == {"Status": "Disabled"}
    assert rule["Destination"]["Bucket"] == DESTINATION_BUCKET
    assert rule["Destination"]["EncryptionConfiguration"] == {"ReplicaKmsKeyID": DESTINATION_KEY}


def test_replication_role_is_least_privilege(replicated_synth):
    templates, _ = replicated_synth
    names = load_settings(REPLICATED).names
    storage = templates["Storage"]
    statements = statements_of(storage, names.replication_role)
    assert set(statements) == {
        "ReadReplicationConfiguration",
        "ReadVersionsForReplication",
        "WriteReplicas",
        "DecryptSourceObjects",
        "EncryptReplicas",
    }
    assert statements["WriteReplicas"]["Resource"] == f"{DESTINATION_BUCKET}/*"
    encrypt = statements["EncryptReplicas"]
    assert encrypt["Resource"] == DESTINATION_KEY
    assert encrypt["Condition"]["StringEquals"] == {"kms:ViaService": "s3.eu-central-1.amazonaws.com"}
    assert encrypt["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"] == [
        DESTINATION_BUCKET,
        f"{DESTINATION_BUCKET}/*",
    ]
    decrypt = statements["DecryptSourceObjects"]
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Condition"]["StringEquals"] == {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
    (role,) = [
        r
        for r in of_type(storage, "AWS::IAM::Role").values()
        if r["Properties"]["RoleName"] == names.replication_role
    ]
    principals = [s["Principal"] for s in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]]
    assert principals == [{"Service": "s3.amazonaws.com"}]


def test_replication_role_passes_the_perimeter_and_the_key_policy(replicated_synth, default_synth):
    names = load_settings(REPLICATED).names
    role_arn = f":role/{names.replication_role}"
    templates, _ = replicated_synth
    policies = json.dumps(of_type(templates["Storage"], "AWS::S3::BucketPolicy"))
    assert role_arn in policies
    assert role_arn in json.dumps(templates["Key"])
    default_policies = json.dumps(of_type(default_synth[0]["Storage"], "AWS::S3::BucketPolicy"))
    assert role_arn not in default_policies
