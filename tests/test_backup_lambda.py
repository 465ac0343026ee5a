"""The backup_registry function against botocore Stubbers: request and response shapes are validated
against the service models, unstubbed calls fail, and every stubbed response must be used."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber

from lambdas.backup_registry import config as backup_config
from lambdas.backup_registry import handler as backup
from lambdas.backup_registry.collect import artifact_uris

REGION, ACCOUNT = "eu-west-1", "123456789012"
GROUP, ENDPOINT, BUCKET = "turbofan-rul-test-models", "turbofan-rul-test-rul", "artifacts-bucket"
NOW = datetime(2026, 12, 3, 20, 0, 5, tzinfo=UTC)
ENVIRON = {
    backup_config.ENV_GROUP: GROUP,
    backup_config.ENV_ENDPOINTS: ENDPOINT,
    backup_config.ENV_BUCKET: BUCKET,
    backup_config.ENV_PREFIX: "backups/",
    backup_config.ENV_ARTIFACT_PREFIXES: "models/,registry/",
}
CONFIG = backup_config.load_config(ENVIRON)
ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
MODEL_URL = f"s3://{BUCKET}/models/job-1/output/model.tar.gz"
METRICS_URL = f"s3://{BUCKET}/registry/turbofan/exec-1/evaluation/evaluation.json"
FOREIGN_URL = "s3://someone-elses-bucket/model.tar.gz"
IN_SERVICE_EVENT = {
    "id": "0bd4a141-0a02-9d8a",
    "source": "aws.sagemaker",
    "detail-type": "SageMaker Endpoint State Change",
    "detail": {"EndpointName": ENDPOINT, "EndpointStatus": "IN_SERVICE", "EndpointConfigName": "c-2"},
}
SCHEDULE = {"id": "sched-1", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def client(service: str):
    return boto3.client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def package(version: int, status: str, model_url: str) -> dict:
    return {
        "ModelPackageName": GROUP,
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": version,
        "ModelPackageArn": f"{ARN}:model-package/{GROUP}/{version}",
        "CreationTime": NOW,
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "ModelApprovalStatus": status,
        "ApprovalDescription": f"reviewed v{version}",
        "InferenceSpecification": {
            "Containers": [
                {"Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/rul:1", "ModelDataUrl": model_url}
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "ModelMetrics": {
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": METRICS_URL}}
        },
    }


def stub_endpoint(sm: Stubber) -> None:
    sm.add_response(
        "describe_endpoint",
        {
            "EndpointName": ENDPOINT,
            "EndpointArn": f"{ARN}:endpoint/{ENDPOINT}",
            "EndpointConfigName": "c-2",
            "EndpointStatus": "InService",
            "CreationTime": NOW,
            "LastModifiedTime": NOW,
        },
        {"EndpointName": ENDPOINT},
    )
    sm.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": "c-2",
            "EndpointConfigArn": f"{ARN}:endpoint-config/c-2",
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m-2"}],
            "CreationTime": NOW,
        },
        {"EndpointConfigName": "c-2"},
    )
    sm.add_response(
        "describe_model",
        {
            "ModelName": "m-2",
            "ModelArn": f"{ARN}:model/m-2",
            "CreationTime": NOW,
            "PrimaryContainer": {"Image": "image", "ModelDataUrl": MODEL_URL},
        },
        {"ModelName": "m-2"},
    )


def stub_registry(sm: Stubber, packages: list[dict]) -> None:
    sm.add_response(
        "describe_model_package_group",
        {
            "ModelPackageGroupName": GROUP,
            "ModelPackageGroupArn": f"{ARN}:model-package-group/{GROUP}",
            "CreationTime": NOW,
            "CreatedBy": {},
            "ModelPackageGroupStatus": "Completed",
        },
        {"ModelPackageGroupName": GROUP},
    )
    summaries = [
        {key: p[key] for key in ("ModelPackageArn", "CreationTime", "ModelPackageStatus", "ModelPackageName")}
        for p in packages
    ]
    sm.add_response(
        "list_model_packages",
        {"ModelPackageSummaryList": summaries},
        {"ModelPackageGroupName": GROUP, "SortBy": "CreationTime", "SortOrder": "Ascending"},
    )
    for p in packages:
        sm.add_response("describe_model_package", p, {"ModelPackageName": p["ModelPackageArn"]})


def test_config_names_every_bad_variable():
    with pytest.raises(backup_config.ConfigError) as caught:
        backup_config.load_config({backup_config.ENV_GROUP: "bad name", backup_config.ENV_PREFIX: "nope"})
    message = str(caught.value)
    for name in (*ENVIRON,):
        assert name in message
    assert "'bad name'" in message


@pytest.mark.parametrize(
    "event, why",
    [
        ("text", "not an object"),
        ({**IN_SERVICE_EVENT, "detail": {"EndpointName": "other", "EndpointStatus": "IN_SERVICE"}}, "other"),
        (
            {**IN_SERVICE_EVENT, "detail": {"EndpointName": ENDPOINT, "EndpointStatus": "UPDATING"}},
            "UPDATING",
        ),
        ({**IN_SERVICE_EVENT, "detail-type": "SageMaker Model State Change"}, "unexpected"),
    ],
)
def test_other_events_are_ignored_without_any_call(event, why):
    sm, s3 = client("sagemaker"), client("s3")
    with Stubber(sm), Stubber(s3):  # any call would fail: nothing is stubbed
        result = backup.run(event, CONFIG, sm, s3, lambda: NOW)
    assert result["action"] == "ignored" and why in result["reason"]


def stub_backup_writes(s3_stub: Stubber, key: str) -> None:
    """The backup document at `key`, then the `latest.json` pointer, created only if absent."""
    s3_stub.add_response(
        "put_object",
        {"VersionId": "v-backup"},
        {"Bucket": BUCKET, "Key": key, "Body": ANY, "ContentType": "application/json", "Metadata": ANY},
    )
    s3_stub.add_response(
        "put_object",
        {"VersionId": "v-latest"},
        {
            "Bucket": BUCKET,
            "Key": "backups/latest.json",
            "Body": ANY,
            "ContentType": ANY,
            "Metadata": {"sha256": ANY, "created-at": NOW.isoformat()},
            "IfNoneMatch": "*",  # created only if absent: a concurrent run's pointer is not overwritten
        },
    )


def record_puts(s3) -> dict[str, bytes]:
    """Key -> body of every `put_object` the (stubbed) client makes from now on."""
    written: dict[str, bytes] = {}
    original_put = s3.put_object

    def recording_put(**kwargs):
        written[kwargs["Key"]] = kwargs["Body"]
        return original_put(**kwargs)

    s3.put_object = recording_put
    return written


def test_deployment_backup_records_endpoint_registry_and_artifact_versions():
    sm, s3 = client("sagemaker"), client("s3")
    packages = [package(1, "Rejected", FOREIGN_URL), package(2, "Approved", MODEL_URL)]
    key = "backups/20261203T200005Z-0bd4a141-0a02-9d8a/backup.json"
    with Stubber(sm) as sm_stub, Stubber(s3) as s3_stub:
        stub_endpoint(sm_stub)
        stub_registry(sm_stub, packages)
        s3_stub.add_client_error("head_object", "404", "Not Found", 404)  # the evaluation report is gone
        s3_stub.add_response(
            "head_object",
            {"VersionId": "v-model", "ETag": '"e1"', "ContentLength": 10},
            {"Bucket": BUCKET, "Key": "models/job-1/output/model.tar.gz"},
        )
        stub_backup_writes(s3_stub, key)
        written = record_puts(s3)
        result = backup.run(IN_SERVICE_EVENT, CONFIG, sm, s3, lambda: NOW)
        sm_stub.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()
    assert result["action"] == "written" and result["packages"] == 2
    assert result["missing_artifacts"] == [METRICS_URL]
    document = json.loads(written[key])
    assert [p["ModelApprovalStatus"] for p in document["Registry"]["ModelPackages"]] == [
        "Rejected",
        "Approved",
    ]
    assert document["Endpoints"][0]["Models"][0]["ModelName"] == "m-2"
    by_uri = {a["Uri"]: a for a in document["Artifacts"]}
    assert by_uri[MODEL_URL]["VersionId"] == "v-model"
    assert by_uri[FOREIGN_URL]["Checked"] is False
    assert document["Trigger"] == {
        "kind": "deployment",
        "event_id": "0bd4a141-0a02-9d8a",
        "endpoint": ENDPOINT,
    }
    pointer = json.loads(written["backups/latest.json"])
    assert pointer == {
        "Key": key,
        "VersionId": "v-backup",
        "Sha256": result["sha256"],
        "CreatedAt": NOW.isoformat(),
    }


def test_deleted_group_and_endpoint_are_recorded_and_latest_is_kept():
    sm, s3 = client("sagemaker"), client("s3")
    with Stubber(sm) as sm_stub, Stubber(s3) as s3_stub:
        sm_stub.add_client_error(
            "describe_endpoint", "ValidationException", f'Could not find endpoint "{ENDPOINT}".'
        )
        sm_stub.add_client_error(
            "describe_model_package_group",
            "ValidationException",
            f"Model Package Group {GROUP} does not exist.",
        )
        s3_stub.add_response(
            "put_object", {}, {"Bucket": BUCKET, "Key": ANY, "Body": ANY, "ContentType": ANY, "Metadata": ANY}
        )
        result = backup.run(SCHEDULE, CONFIG, sm, s3, lambda: NOW)
        s3_stub.assert_no_pending_responses()
    assert result["action"] == "written" and "latest.json left as it was" in result["reason"]
    assert result["backup_uri"].endswith("-sched-1/backup.json")


def test_access_errors_are_raised_not_recorded_as_missing():
    sm, s3 = client("sagemaker"), client("s3")
    with Stubber(sm) as sm_stub, Stubber(s3) as s3_stub:
        stub_endpoint(sm_stub)
        stub_registry(sm_stub, [package(1, "Approved", MODEL_URL)])
        s3_stub.add_client_error("head_object", "403", "Forbidden", 403)
        with pytest.raises(Exception, match="403"):
            backup.run(SCHEDULE, CONFIG, sm, s3, lambda: NOW)


def test_artifact_uris_are_found_anywhere_once():
    document = {"a": [{"ModelDataUrl": MODEL_URL}, {"x": {"S3Uri": MODEL_URL}}], "S3Uri": "not-s3"}
    assert artifact_uris(document, {"S3Uri": METRICS_URL}) == [MODEL_URL, METRICS_URL]
