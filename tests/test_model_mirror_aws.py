"""The AWS side of the model mirror: its settings and the Lambda handler.

The handler runs against moto in server mode on the loopback for the destination store, the artifacts
bucket (the source) and Secrets Manager, and a botocore Stubber for DescribeModelPackage (its request and
response validated against the service model). Ignored events call nothing; a bad secret is a clear error
that names fields, never values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber
from pydantic import ValidationError
from test_model_mirror import server_url  # noqa: F401 - the loopback S3-compatible server fixture

from lambdas.mirror_model import handler as mirror_handler
from lambdas.mirror_model import store
from lambdas.mirror_model.config import ConfigError, load_config
from lambdas.mirror_model.store import MirrorError, make_client, open_destination
from settings import SettingsError, load_settings
from settings.mirror import LocalMirrorSettings, ModelMirrorSettings

GROUP = "turbofan-rul-dev-models"
ARN = f"arn:aws:sagemaker:eu-west-1:111111111111:model-package/{GROUP}/3"
SOURCE, DESTINATION = "artifacts-bucket", "supabase-models"
KEYS = {"access_key_id": "AKIASTORE00000000001", "secret_access_key": "store-secret-never-logged"}
REGISTERED = "s3://artifacts-bucket/registry/exec-1"


# --- settings ----------------------------------------------------------------------------------------------


def test_mirror_is_off_by_default_and_a_supabase_destination_validates():
    assert load_settings({}).mirror.enabled is False
    mirror = load_settings(
        {
            "mirror": {
                "enabled": True,
                "endpoint_url": "https://abcd.supabase.co/storage/v1/s3/",
                "bucket": "models",
                "region": "eu-central-1",
                "secret_arn": "arn:aws:secretsmanager:eu-west-1:111111111111:secret:rul-mirror-AbCdEf",
            }
        }
    ).mirror
    assert mirror.endpoint_url == "https://abcd.supabase.co/storage/v1/s3" and mirror.path_style


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"enabled": True, "bucket": "models"}, "enabled needs endpoint_url and bucket"),
        ({"endpoint_url": "http://store.example.com"}, "must use https"),
        ({"endpoint_url": "https://user:pw@store.example.com"}, "user info"),
        ({"bucket": "Bad_Bucket"}, "bucket"),
        ({"prefix": "no-trailing-slash"}, "prefix"),
        ({"secret_arn": "arn:aws:s3:::bucket"}, "secret_arn"),
        ({"credentials_file": "keys.json"}, "Extra inputs are not permitted"),  # local key sources only
        (
            {"secret_kms_key_arn": "arn:aws:kms:eu-west-1:111111111111:key/abc-1"},
            "only allowed with secret_arn",
        ),
        ({"checksum": "crc32"}, "checksum"),
    ],
)
def test_bad_mirror_settings_name_the_field(values, problem):
    with pytest.raises(SettingsError, match=problem):
        load_settings({"mirror": values})


def test_local_key_sources_are_validated():
    assert LocalMirrorSettings().access_key_id_env == "MODEL_MIRROR_ACCESS_KEY_ID"
    with pytest.raises(ValidationError, match="access_key_id_env"):
        LocalMirrorSettings(access_key_id_env="lower-case")


def test_loopback_http_is_allowed_for_a_local_test_server():
    assert ModelMirrorSettings(endpoint_url="http://127.0.0.1:9000").endpoint_url == "http://127.0.0.1:9000"
    with pytest.raises(ValidationError):
        ModelMirrorSettings(endpoint_url="ftp://127.0.0.1")


def test_deploying_the_mirror_needs_the_secret():
    with pytest.raises(ValueError, match=r"mirror\.secret_arn is required"):
        ModelMirrorSettings(
            enabled=True, endpoint_url="https://x.supabase.co/storage/v1/s3", bucket="models"
        ).deployed_secret_arn()


# --- the handler -------------------------------------------------------------------------------------------


def event(status: str = "Approved", group: str = GROUP, arn: str = ARN) -> dict:
    return {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Model Package State Change",
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": 3,
            "ModelPackageArn": arn,
            "ModelApprovalStatus": status,
        },
    }


def description(status: str = "Approved") -> dict:
    return {
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": 3,
        "ModelPackageArn": ARN,
        "ModelPackageName": GROUP,
        "CreationTime": datetime(2026, 12, 3, 10, tzinfo=UTC),
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "ModelApprovalStatus": status,
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/rul:1",
                    "ModelDataUrl": "s3://artifacts-bucket/models/exec-1/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": f"{REGISTERED}/evaluation.json"}
            }
        },
        "CustomerMetadataProperties": {"DataManifestUri": f"{REGISTERED}/manifest"},
    }


@pytest.fixture
def aws(server_url):  # noqa: F811
    """Source bucket with a version's artifacts, destination bucket and the keys' secret, on the server."""
    s3 = make_client(server_url, "eu-west-1", "testing", "testing")
    for bucket in (SOURCE, DESTINATION):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=SOURCE, Key="models/exec-1/model.tar.gz", Body=b"\x1f\x8b model bytes")
    s3.put_object(Bucket=SOURCE, Key="registry/exec-1/evaluation.json", Body=b'{"rmse": 13.9}')
    s3.put_object(Bucket=SOURCE, Key="registry/exec-1/manifest/manifest-algo-1.json", Body=b"{}")
    s3.put_object(Bucket=SOURCE, Key="registry/exec-1/manifest/manifest-algo-2.json", Body=b"[]")
    secrets = boto3.client(
        "secretsmanager",
        endpoint_url=server_url,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    secret_arn = secrets.create_secret(Name=f"mirror-{id(s3)}", SecretString=json.dumps(KEYS))["ARN"]
    sagemaker = boto3.client(
        "sagemaker", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    environ = {
        "MODEL_PACKAGE_GROUP_NAME": GROUP,
        "MIRROR_ENDPOINT_URL": STORE_URL,
        "MIRROR_BUCKET": DESTINATION,
        "MIRROR_REGION": "eu-west-1",
        "MIRROR_PREFIX": "rul/",
        "MIRROR_PATH_STYLE": "true",
        "MIRROR_CHECKSUM": "md5",
        "MIRROR_TIMEOUT_SECONDS": "5",
        "MIRROR_SECRET_ARN": secret_arn,
    }
    with Stubber(sagemaker) as stubber:
        clients = mirror_handler.Clients(sagemaker=sagemaker, s3=s3, secrets=secrets)
        yield Invoker(clients, environ, server_url), stubber, environ, s3
        stubber.assert_no_pending_responses()
    for bucket in (SOURCE, DESTINATION):
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)


STORE_URL = "https://store.example.com/storage/v1/s3"  # the function accepts https endpoints only


class Invoker:
    """Calls the handler with the test's clients and environment; the store's client it opens from the
    validated config goes to the loopback server instead of `STORE_URL` (all else from the config)."""

    def __init__(self, clients, environ: dict, store_url: str) -> None:
        self.clients, self.environ, self.store_url = clients, environ, store_url

    def open_store(self, config, access_key_id: str, secret_access_key: str):
        assert config.endpoint_url == STORE_URL
        local = dataclasses.replace(config, endpoint_url=self.store_url)
        return open_destination(local, access_key_id, secret_access_key)

    def handler(self, incoming):
        return mirror_handler.handler(incoming, None, self.clients, self.environ, self.open_store)


def expect_describe(stubber: Stubber, status: str = "Approved") -> None:
    stubber.add_response("describe_model_package", description(status), {"ModelPackageName": ARN})


def test_an_approval_is_mirrored_and_verifiable_then_skipped(aws, caplog):
    clients, stubber, _environ, s3 = aws
    expect_describe(stubber)
    result = clients.handler(event())
    assert result["action"] == "mirrored" and result["folder"] == f"rul/{GROUP}/v3/"
    index = json.loads(s3.get_object(Bucket=DESTINATION, Key=f"rul/{GROUP}/v3/mirror.json")["Body"].read())
    assert len(index["files"]) == 4
    for entry in index["files"]:
        stored = s3.get_object(Bucket=DESTINATION, Key=entry["key"])
        body = stored["Body"].read()
        source = s3.get_object(Bucket=SOURCE, Key=entry["source"].split("/", 3)[3])["Body"].read()
        assert body == source and hashlib.sha256(body).hexdigest() == stored["Metadata"]["sha256"]
        assert stored["Metadata"]["model-package-arn"] == ARN
    expect_describe(stubber)
    again = clients.handler(event())
    assert set(again["objects"].values()) == {"skipped"}
    assert '"action": "mirrored"' in caplog.text
    assert KEYS["secret_access_key"] not in caplog.text


@pytest.mark.parametrize(
    "incoming",
    [event(status="Rejected"), event(group="someone-elses-models"), {"source": "aws.s3"}, "not an event"],
)
def test_other_events_are_ignored_without_any_call(aws, incoming):
    clients, _stubber, _environ, _s3 = aws
    assert clients.handler(incoming)["action"] == "ignored"


def test_a_version_no_longer_approved_is_ignored(aws):
    clients, stubber, _environ, s3 = aws
    expect_describe(stubber, status="Rejected")
    assert clients.handler(event())["action"] == "ignored"
    assert "Contents" not in s3.list_objects_v2(Bucket=DESTINATION)


def test_a_secret_without_keys_is_a_clear_error(aws):
    clients, stubber, environ, _s3 = aws
    clients.clients.secrets.put_secret_value(
        SecretId=environ["MIRROR_SECRET_ARN"], SecretString=json.dumps({"access_key_id": "only-this"})
    )
    expect_describe(stubber)
    with pytest.raises(MirrorError, match="lacks secret_access_key") as raised:
        clients.handler(event())
    assert "only-this" not in str(raised.value)


def test_configuration_errors_name_every_variable():
    with pytest.raises(ConfigError) as raised:
        load_config({"MIRROR_ENDPOINT_URL": "not a url", "MIRROR_CHECKSUM": "crc32"})
    message = str(raised.value)
    for name in ("MODEL_PACKAGE_GROUP_NAME", "MIRROR_ENDPOINT_URL", "MIRROR_CHECKSUM", "MIRROR_SECRET_ARN"):
        assert name in message


@pytest.mark.parametrize(
    "url", ["http://store.example.com/s3", "http://127.0.0.1:9000", "https://user:pw@store.example.com"]
)
def test_the_function_sends_keys_only_to_an_https_store(aws, url, caplog):
    clients, _stubber, environ, _s3 = aws
    clients.environ = {**environ, "MIRROR_ENDPOINT_URL": url}
    with pytest.raises(ConfigError, match=r"MIRROR_ENDPOINT_URL: must be an https:// URL"):
        clients.handler(event())
    # The shared wrapper logs the failure as the function's "error" decision before raising it.
    assert '"action": "error"' in caplog.text and "ConfigError" in caplog.text


def test_a_missing_source_artifact_is_named_and_nothing_is_indexed(aws):
    clients, stubber, _environ, s3 = aws
    s3.delete_object(Bucket=SOURCE, Key="registry/exec-1/evaluation.json")
    expect_describe(stubber)
    with pytest.raises(MirrorError, match=r"cannot read the registered artifact .*evaluation\.json"):
        clients.handler(event())
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=DESTINATION).get("Contents", [])]
    assert not any(key.endswith("mirror.json") for key in keys)


def test_checksum_options_follow_what_the_runtimes_botocore_knows(monkeypatch):
    from botocore.config import Config

    assert store.checksum_options(Config) == {
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
    }
    # A botocore before 1.36 (a Lambda runtime's may be one) has neither option and no default CRC trailers.
    older = {k: v for k, v in Config.OPTION_DEFAULTS.items() if not k.endswith("_checksum_calculation")}
    older.pop("response_checksum_validation")
    monkeypatch.setattr(Config, "OPTION_DEFAULTS", older)
    with pytest.raises(TypeError):
        Config(request_checksum_calculation="when_required")  # what passing them always would do there
    assert store.checksum_options(Config) == {}
