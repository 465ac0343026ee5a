"""The serving container's capture uploader (`rul.capture_upload`) against moto S3, and its hook in serve.py.

Records written by the serving capture writer (`rul.capture.DataCapture`) reach S3 under SageMaker's
layout with SSE-KMS, are read back by the one capture reader, and are deleted locally only once S3 took
them; a failed upload keeps the file for the next round; a write that raced a seal is not lost.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

import serve
from rul.capture import CaptureConfig, DataCapture, capture_record, read_captures
from rul.capture_upload import (
    KMS_KEY_VARIABLE,
    OUTBOX,
    S3_URI_VARIABLE,
    CaptureUploader,
    UploadConfig,
    uploader_from_environment,
)
from rul.errors import ConfigurationError

REGION = "eu-west-1"
BUCKET = "turbofan-rul-test-artifacts"
ENDPOINT = "turbofan-rul-test-serving"
S3_URI = f"s3://{BUCKET}/datacapture/{ENDPOINT}/"
KMS = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
MOMENT = datetime(2026, 11, 2, 17, 5, 9, 123000, tzinfo=UTC)


@pytest.fixture
def s3(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield client


def writer(root: Path) -> DataCapture:
    return DataCapture(CaptureConfig(root, ENDPOINT, "AllTraffic", 100.0, seed=1))


def record(n: int, moment: datetime = MOMENT) -> dict:
    return capture_record(f"1 {n} 0.5\n", "text/csv", '{"predictions": []}', "application/json", moment)


def uploader(root: Path, s3, log=None) -> CaptureUploader:
    config = UploadConfig(endpoint_dir=root / ENDPOINT, s3_uri=S3_URI, kms_key_id=KMS, interval_seconds=60)
    return CaptureUploader(config, s3, **({"log": log} if log else {}))


def uploaded(s3) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="datacapture/")
    return {
        o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        for o in listing.get("Contents", [])
    }


def local_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.jsonl"))


def test_written_records_reach_s3_in_sagemakers_layout_with_sse_kms(tmp_path, s3):
    capture, up = writer(tmp_path), uploader(tmp_path, s3)
    records = [record(n) for n in range(3)]
    (path,) = {capture.write(r) for r in records}
    original = path.name

    first = up.run_round()  # seals; uploads next round, after any in-flight write has landed
    assert first.uploaded == [] and len(first.sealed) == 1
    second = up.run_round()

    (key,) = second.uploaded
    assert key.startswith(f"datacapture/{ENDPOINT}/AllTraffic/2026/11/02/17/{original[:-6]}-")
    assert key.endswith(".jsonl")
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KMS)
    assert local_files(tmp_path) == []  # deleted once S3 accepted it
    download = tmp_path / "download"
    for name, body in uploaded(s3).items():
        (download / name).parent.mkdir(parents=True, exist_ok=True)
        (download / name).write_bytes(body)
    # The one capture reader reads the upload as it reads SageMaker's captures.
    assert list(read_captures(download / "datacapture" / ENDPOINT)) == records


def test_a_failed_upload_keeps_the_file_for_the_next_round(tmp_path, s3):
    messages: list[str] = []
    capture, up = writer(tmp_path), uploader(tmp_path, s3, log=messages.append)
    capture.write(record(1))
    up.run_round()
    s3.delete_bucket(Bucket=BUCKET)  # S3 refuses the upload (NoSuchBucket)

    failed = up.run_round()

    assert failed.uploaded == [] and len(failed.failed) == 1 and failed.failed[0].exists()
    assert "failed" in messages[0] and "NoSuchBucket" in messages[0]
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    retried = up.run_round()
    assert len(retried.uploaded) == 1 and not failed.failed[0].exists()
    assert uploaded(s3)[retried.uploaded[0]].count(b"\n") == 1


def test_writes_after_a_seal_start_a_new_file_and_a_write_racing_the_seal_is_kept(tmp_path, s3):
    capture, up = writer(tmp_path), uploader(tmp_path, s3)
    path = capture.write(record(1))
    # The writer opened its file by path just before the seal renamed it ...
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
    up.run_round()
    # ... so its write lands in the sealed file, which waits one round before it is uploaded.
    os.write(descriptor, b'{"late": true}\n')
    os.close(descriptor)
    assert capture.write(record(2)) == path  # same path, a new file
    up.run_round()
    up.run_round()

    bodies = list(uploaded(s3).values())
    assert len(bodies) == 2  # two keys, no overwrite
    assert sorted(body.count(b"\n") for body in bodies) == [1, 2]
    assert any(b'{"late": true}' in body for body in bodies)


def test_stop_uploads_everything_at_once(tmp_path, s3):
    capture, up = writer(tmp_path), uploader(tmp_path, s3)
    capture.write(record(1))
    capture.write(record(2, MOMENT.replace(hour=18)))  # a second hour folder
    up.start()

    final = up.stop()

    assert sorted(key.split("/")[6] for key in final.uploaded) == ["17", "18"]
    assert local_files(tmp_path) == [] and (tmp_path / OUTBOX).is_dir()  # outbox included, and empty


def test_uploader_from_environment(tmp_path):
    made = []
    assert uploader_from_environment({}, tmp_path, ENDPOINT, make_s3=made.append) is None
    assert made == []  # no client without an upload target
    environ = {S3_URI_VARIABLE: S3_URI, KMS_KEY_VARIABLE: KMS}
    up = uploader_from_environment(environ, tmp_path, ENDPOINT, make_s3=lambda: "client")
    assert up.s3 == "client" and up.config.endpoint_dir == tmp_path / ENDPOINT
    assert (up.config.bucket, up.config.prefix, up.config.kms_key_id) == (
        BUCKET,
        f"datacapture/{ENDPOINT}/",
        KMS,
    )
    with pytest.raises(ConfigurationError, match="RUL_CAPTURE_DIR is not"):
        uploader_from_environment(environ, None, ENDPOINT, make_s3=lambda: "client")
    with pytest.raises(ConfigurationError, match="not an s3://bucket/prefix/ URI"):
        uploader_from_environment({S3_URI_VARIABLE: "s3://b/no-slash"}, tmp_path, ENDPOINT, lambda: "c")
    with pytest.raises(ConfigurationError, match="RUL_CAPTURE_UPLOAD_SECONDS"):
        uploader_from_environment(
            {**environ, "RUL_CAPTURE_UPLOAD_SECONDS": "0"}, tmp_path, ENDPOINT, lambda: 1
        )


def test_the_server_uploads_what_its_workers_captured_when_gunicorn_exits(tmp_path, s3, monkeypatch):
    """serve.py's hook: the master runs the uploader and flushes it after gunicorn's SystemExit."""
    from gunicorn.app.base import BaseApplication

    monkeypatch.setenv(serve.CAPTURE_DIR_VARIABLE, str(tmp_path))
    monkeypatch.setenv(serve.ENDPOINT_NAME_VARIABLE, ENDPOINT)
    monkeypatch.setenv(S3_URI_VARIABLE, S3_URI)
    monkeypatch.setenv(KMS_KEY_VARIABLE, KMS)

    def run_and_exit(_self):  # stands in for gunicorn: a worker captured a request, then SIGTERM
        writer(tmp_path).write(record(1))
        raise SystemExit(0)

    monkeypatch.setattr(BaseApplication, "run", run_and_exit)
    with pytest.raises(SystemExit):
        serve.run_server(serve.ServerSettings.from_environment())

    (key,) = uploaded(s3)
    assert key.startswith(f"datacapture/{ENDPOINT}/AllTraffic/2026/11/02/17/")
    assert local_files(tmp_path) == []
