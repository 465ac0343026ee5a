"""`latest.json` never moves backwards: two backup runs racing on it, against moto's S3 (which enforces
PutObject's `If-None-Match: *` and `If-Match: <ETag>` preconditions with 412 PreconditionFailed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from lambdas.backup_registry import config as backup_config
from lambdas.backup_registry import handler as backup

REGION, BUCKET = "eu-west-1", "artifacts"
LATEST = "backups/latest.json"
CONFIG = backup_config.load_config(
    {
        backup_config.ENV_GROUP: "turbofan-rul-test-models",
        backup_config.ENV_ENDPOINTS: "turbofan-rul-test-rul",
        backup_config.ENV_BUCKET: BUCKET,
        backup_config.ENV_PREFIX: "backups/",
        backup_config.ENV_ARTIFACT_PREFIXES: "models/",
    }
)
T0 = datetime(2026, 12, 3, 20, 0, 0, tzinfo=UTC)


def pointer(moment: datetime) -> dict:
    key = f"backups/{moment.strftime('%Y%m%dT%H%M%SZ')}-evt/backup.json"
    return {"Key": key, "VersionId": "v", "Sha256": "0" * 64, "CreatedAt": moment.isoformat()}


@pytest.fixture()
def s3(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def latest(s3) -> dict:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=LATEST)["Body"].read())


def test_the_first_pointer_is_created(s3):
    assert backup.move_latest(s3, CONFIG, pointer(T0)) == "now latest.json"
    assert latest(s3)["CreatedAt"] == T0.isoformat()
    head = s3.head_object(Bucket=BUCKET, Key=LATEST)
    assert head["Metadata"]["created-at"] == T0.isoformat()


def test_an_older_backup_finishing_last_does_not_move_the_pointer_back(s3):
    newer, older = pointer(T0 + timedelta(minutes=5)), pointer(T0)
    backup.move_latest(s3, CONFIG, newer)

    outcome = backup.move_latest(s3, CONFIG, older)

    assert "kept" in outcome and newer["CreatedAt"] in outcome
    assert latest(s3) == newer


def test_a_newer_backup_replaces_the_pointer(s3):
    backup.move_latest(s3, CONFIG, pointer(T0))
    newer = pointer(T0 + timedelta(hours=1))

    assert backup.move_latest(s3, CONFIG, newer) == "now latest.json"
    assert latest(s3) == newer


def test_a_pointer_replaced_between_read_and_write_is_read_again(s3):
    backup.move_latest(s3, CONFIG, pointer(T0))
    ours, theirs = pointer(T0 + timedelta(minutes=1)), pointer(T0 + timedelta(minutes=2))
    real_head = s3.head_object
    raced = []

    def head_then_lose_the_race(**kwargs):
        answer = real_head(**kwargs)  # the ETag of T0's pointer ...
        if not raced:  # ... which a concurrent run replaces now, as move_latest would
            raced.append(True)
            metadata = {"sha256": theirs["Sha256"], "created-at": theirs["CreatedAt"]}
            s3.put_object(Bucket=BUCKET, Key=LATEST, Body=json.dumps(theirs).encode(), Metadata=metadata)
        return answer

    s3.head_object = head_then_lose_the_race
    outcome = backup.move_latest(s3, CONFIG, ours)

    assert "kept" in outcome  # If-Match failed (412), the re-read found a newer backup
    assert latest(s3) == theirs


def test_endless_contention_is_raised_for_a_retry(s3, monkeypatch):
    backup.move_latest(s3, CONFIG, pointer(T0))
    real_head = s3.head_object
    writes = iter(range(100))

    def head_then_replace(**kwargs):
        answer = real_head(**kwargs)  # an older pointer's ETag, replaced by another run before the write
        body = json.dumps({"write": next(writes)}).encode()  # a new ETag each time
        s3.put_object(Bucket=BUCKET, Key=LATEST, Body=body, Metadata={"created-at": T0.isoformat()})
        return answer

    s3.head_object = head_then_replace
    with pytest.raises(backup.PointerContention, match="5 attempts"):
        backup.move_latest(s3, CONFIG, pointer(T0 + timedelta(days=1)))
