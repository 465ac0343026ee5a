"""The backup function and the re-creation of a group against moto's SageMaker and a versioned S3 bucket:
the round trip a real recovery makes (back up, lose the group, re-create it from backup.json)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from lambdas.backup_registry import config as backup_config
from lambdas.backup_registry import handler as backup
from lambdas.backup_registry import restore

REGION, BUCKET, GROUP, ENDPOINT = (
    "eu-west-1",
    "artifacts",
    "turbofan-rul-test-models",
    "turbofan-rul-test-rul",
)
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/rul:1"
CONFIG = backup_config.load_config(
    {
        backup_config.ENV_GROUP: GROUP,
        backup_config.ENV_ENDPOINTS: ENDPOINT,
        backup_config.ENV_BUCKET: BUCKET,
        backup_config.ENV_PREFIX: "backups/",
        backup_config.ENV_ARTIFACT_PREFIXES: "models/,registry/",
    }
)
SCHEDULE = {"id": "evt-1", "source": "aws.events", "detail-type": "Scheduled Event"}


def spec(key: str) -> dict:
    return {
        "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/{key}"}],
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["application/json"],
    }


@pytest.fixture()
def aws(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        sm, s3 = boto3.client("sagemaker", region_name=REGION), boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        sm.create_model_package_group(ModelPackageGroupName=GROUP)
        for version, status in ((1, "Rejected"), (2, "Approved")):
            key = f"models/v{version}/model.tar.gz"
            s3.put_object(Bucket=BUCKET, Key=key, Body=f"model {version}".encode())
            sm.create_model_package(
                ModelPackageGroupName=GROUP,
                ModelApprovalStatus=status,
                InferenceSpecification=spec(key),
                CustomerMetadataProperties={"DataVersion": f"d{version}"},
            )
        container = spec("models/v2/model.tar.gz")["Containers"][0]
        role = "arn:aws:iam::123456789012:role/model"
        sm.create_model(ModelName=f"{GROUP}-v2", ExecutionRoleArn=role, PrimaryContainer=container)
        variant = {"VariantName": "AllTraffic", "ModelName": f"{GROUP}-v2", "InitialInstanceCount": 1}
        sm.create_endpoint_config(
            EndpointConfigName=f"{ENDPOINT}-v2",
            ProductionVariants=[{**variant, "InstanceType": "ml.m5.large"}],
        )
        sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=f"{ENDPOINT}-v2")
        yield sm, s3


def read(s3, key: str, version_id: str | None = None) -> bytes:
    extra = {"VersionId": version_id} if version_id else {}
    return s3.get_object(Bucket=BUCKET, Key=key, **extra)["Body"].read()


def test_backup_pins_artifact_versions_and_points_latest_at_it(aws):
    sm, s3 = aws
    result = backup.run(SCHEDULE, CONFIG, sm, s3, lambda: datetime(2026, 12, 3, 20, 0, tzinfo=UTC))
    assert result["action"] == "written" and result["packages"] == 2 and result["missing_artifacts"] == []
    pointer = json.loads(read(s3, "backups/latest.json"))
    body = read(s3, pointer["Key"], pointer["VersionId"])
    assert hashlib.sha256(body).hexdigest() == pointer["Sha256"] == result["sha256"]
    document = json.loads(body)
    assert (
        document["Endpoints"][0]["EndpointConfigs"][0]["ProductionVariants"][0]["ModelName"] == f"{GROUP}-v2"
    )
    # Overwrite an artifact: the recorded version id still reads the bytes the registry pointed at.
    s3.put_object(Bucket=BUCKET, Key="models/v2/model.tar.gz", Body=b"overwritten")
    (pinned,) = [a for a in document["Artifacts"] if a["Uri"].endswith("v2/model.tar.gz")]
    assert read(s3, "models/v2/model.tar.gz", pinned["VersionId"]) == b"model 2"


def test_the_group_comes_back_from_the_backup_in_the_recovery_region(aws):
    sm, s3 = aws
    backup.run(SCHEDULE, CONFIG, sm, s3, lambda: datetime(2026, 12, 3, 20, 0, tzinfo=UTC))
    document = json.loads(read(s3, json.loads(read(s3, "backups/latest.json"))["Key"]))
    recovery = boto3.client("sagemaker", region_name="eu-central-1")  # the group does not exist there
    created = restore.register(recovery, restore.register_requests(document))  # as the operator
    assert [arn.rsplit("/", 1)[1] for arn in created] == ["1", "2"]
    described = [recovery.describe_model_package(ModelPackageName=arn) for arn in created]
    assert [p["CustomerMetadataProperties"]["DataVersion"] for p in described] == ["d1", "d2"]
    assert {p["ModelApprovalStatus"] for p in described} == {"PendingManualApproval"}
    restored = restore.restored_versions(recovery, GROUP)  # as the approver, who then decides
    restore.decide(recovery, restore.decision_requests(document, restored))
    # (moto 5.2.5 drops the metadata on an UpdateModelPackage that does not repeat it; AWS keeps it.)
    statuses = [
        recovery.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] for arn in created
    ]
    assert statuses == ["Rejected", "Approved"]
    assert described[1]["InferenceSpecification"] == spec("models/v2/model.tar.gz")
    assert restore.redeploy_event(document)["detail"]["ModelPackageVersion"] == 2
