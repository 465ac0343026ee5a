"""The pipeline starter (`lambdas/start_pipeline`): debounce, filtering, data versions, configuration.

moto (`mock_aws`) serves S3, create_pipeline, start_pipeline_execution, list_pipeline_executions,
list_pipeline_parameters_for_execution and the model registry. moto ignores `ClientRequestToken` (no
idempotency), so the race of two concurrent invocations is checked with `botocore.stub.Stubber`: both
must send the identical request with the same token, which SageMaker turns into one execution.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from lambdas.start_pipeline import events, registry
from lambdas.start_pipeline import handler as trigger
from lambdas.start_pipeline.data_version import list_data_objects, listing_version
from pipeline_steps import names

REGION = "eu-west-1"
PIPELINE = "turbofan-rul-test-training"
BUCKET = "turbofan-rul-test-data-111111111111-eu-west-1"
GROUP = "turbofan-rul-test-models"
ENVIRONMENT = {
    "PIPELINE_NAME": PIPELINE,
    "DATA_BUCKET": BUCKET,
    "RAW_PREFIX": "raw/",
    "ALLOWED_SUFFIXES": ".txt",
    "DEBOUNCE_SECONDS": "300",
    "MODEL_PACKAGE_GROUP_NAME": GROUP,
}
ALL_RAW = f"s3://{BUCKET}/raw/"


def s3_event(key: str, bucket: str = BUCKET) -> dict:
    return {
        "version": "0",
        "id": "c9888434-815d-c6f4-9fc2-4dd7bdeccaaf",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "111111111111",
        "time": "2026-11-02T13:09:50Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": 1024,
                "etag": "4af981f98d22a0b9",
                "sequencer": "0064D3901D00059242",
            },
            "request-id": "XRRTKJXSZQCWNQR1",
            "requester": "111111111111",
            "reason": "PutObject",
        },
    }


@pytest.fixture
def aws_env(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def clients(aws_env):
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        sagemaker.create_pipeline(
            PipelineName=PIPELINE,
            PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
            RoleArn="arn:aws:iam::111111111111:role/pipeline",
        )
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield trigger.Clients(sagemaker=sagemaker, s3=s3)


@pytest.fixture
def config():
    return trigger.load_config(ENVIRONMENT)


def put(clients, *keys: str, body: bytes = b"1 1 0.1\n") -> None:
    for key in keys:
        clients.s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def register(clients, data_version: str | None) -> None:
    """A package in the group, as the pipeline's register step leaves it (with or without the key)."""
    metadata = {registry.DATA_VERSION_METADATA_KEY: data_version} if data_version else {}
    clients.sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        InferenceSpecification={
            "Containers": [
                {"Image": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/rul:1", "ModelDataUrl": "s3://a/m"}
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties=metadata,
    )


def executions(clients) -> list[dict]:
    return clients.sagemaker.list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"]


def parameters_of(clients, arn: str) -> dict[str, str]:
    listed = clients.sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)
    return {item["Name"]: item["Value"] for item in listed["PipelineParameters"]}


def current_version(clients, prefix: str) -> str:
    return listing_version(list_data_objects(clients.s3, BUCKET, prefix, (".txt",)))


def test_burst_of_five_files_starts_exactly_one_execution_keyed_by_their_data_version(clients, config):
    now = datetime.now(UTC)
    keys = [f"raw/batch-7/{name}_FD001.txt" for name in ("train", "test", "RUL")]
    keys += ["raw/batch-7/train_FD001_part2.txt", "raw/batch-7/test_FD001_part2.txt"]
    put(clients, *keys)
    results = [trigger.run(s3_event(key), config, clients, lambda: now) for key in keys]

    assert [result["action"] for result in results] == ["started"] + ["debounced"] * 4
    (execution,) = executions(clients)
    assert all(result["execution_arn"] == execution["PipelineExecutionArn"] for result in results)
    version = current_version(clients, "raw/batch-7/")
    assert parameters_of(clients, execution["PipelineExecutionArn"]) == {
        names.INPUT_DATA_URI: f"s3://{BUCKET}/raw/batch-7/",
        names.DATA_VERSION: version,
        names.REGISTERED_DATA_VERSION: "",
    }
    assert execution["PipelineExecutionDisplayName"].startswith("newdata-")
    assert version in execution["PipelineExecutionDisplayName"]
    assert "within the last 300 s" in results[1]["reason"]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (s3_event("processed/batch-7/train_FD001.txt"), "is not a file under 'raw/'"),
        (s3_event("raw/batch-7/"), "is not a file under 'raw/'"),
        (s3_event("raw/batch-7/notes.md"), "does not end with one of .txt"),
        (s3_event("raw/batch-7/train_FD001.txt", bucket="someone-elses-bucket"), "not the data bucket"),
        (
            {**s3_event("raw/a/train_FD001.txt"), "detail-type": "Object Deleted"},
            "unexpected source/detail-type",
        ),
        (
            {"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {}}},
            "lacks bucket.name",
        ),
        ({"source": "aws.s3", "detail-type": "Object Created"}, "lacks bucket.name"),
        ("not an event", "not an object"),
        ({"reason": "whim", "InputDataUri": ALL_RAW}, "'whim' is not one of schedule, drift"),
        ({"reason": "drift", "InputDataUri": "s3://someone-elses-bucket/raw/"}, "is not a folder of"),
        ({"reason": "drift", "InputDataUri": f"s3://{BUCKET}/raw/train_FD001.txt"}, "is not a folder of"),
        ({"reason": "schedule", "InputDataUri": f"s3://{BUCKET}/processed/"}, "is not under"),
        ({"reason": "schedule"}, "None is not a folder"),
    ],
)
def test_events_outside_the_raw_prefix_or_malformed_start_nothing(clients, config, event, reason, caplog):
    put(clients, "raw/a/train_FD001.txt", "raw/batch-7/train_FD001.txt")
    caplog.set_level("INFO", logger="start_pipeline")
    result = trigger.run(event, config, clients, lambda: datetime.now(UTC))

    assert result["action"] == "ignored"
    assert reason in result["reason"]
    assert executions(clients) == []
    logged = json.loads(caplog.records[-1].getMessage())  # one JSON line per decision
    assert logged["action"] == "ignored" and logged["function"] == "start_pipeline"


@pytest.mark.parametrize("reason", events.RULE_REASONS)
def test_schedule_and_drift_start_on_all_raw_data_with_its_version(clients, config, reason):
    put(clients, "raw/train_FD001.txt", "raw/site-b/train_FD002.txt", "raw/README.md")
    event = events.rule_input(reason, ALL_RAW)

    result = trigger.run(event, config, clients, lambda: datetime.now(UTC))

    assert result["action"] == "started" and result["trigger"] == reason
    assert result["objects"] == 2  # README.md is not data
    (execution,) = executions(clients)
    assert execution["PipelineExecutionDisplayName"].startswith(f"{reason}-")
    assert parameters_of(clients, execution["PipelineExecutionArn"])[names.DATA_VERSION] == current_version(
        clients, "raw/"
    )


def test_unchanged_data_starts_nothing_and_changed_data_passes_the_registered_version(clients, config):
    put(clients, "raw/train_FD001.txt")
    trained_on = current_version(clients, "raw/")
    register(clients, trained_on)
    first = datetime.now(UTC)

    unchanged = trigger.run(events.rule_input(events.DRIFT, ALL_RAW), config, clients, lambda: first)
    assert unchanged["action"] == "unchanged"
    assert unchanged["data_version"] == unchanged["registered_data_version"] == trained_on
    assert executions(clients) == []

    put(clients, "raw/train_FD001.txt", body=b"1 1 0.2\n")  # the same file, rewritten
    later = first + timedelta(seconds=1)
    changed = trigger.run(events.rule_input(events.SCHEDULE, ALL_RAW), config, clients, lambda: later)
    assert changed["action"] == "started"
    (execution,) = executions(clients)
    parameters = parameters_of(clients, execution["PipelineExecutionArn"])
    assert parameters[names.REGISTERED_DATA_VERSION] == trained_on
    assert parameters[names.DATA_VERSION] not in ("", trained_on)


def test_a_newest_package_without_a_data_version_does_not_block_a_run(clients, config):
    put(clients, "raw/train_FD001.txt")
    register(clients, current_version(clients, "raw/"))
    register(clients, None)  # newer, registered before the pipeline wrote the key

    result = trigger.run(
        events.rule_input(events.SCHEDULE, ALL_RAW), config, clients, lambda: datetime.now(UTC)
    )

    assert result["action"] == "started" and result["registered_data_version"] == ""


def test_an_empty_prefix_starts_nothing(clients, config, caplog):
    put(clients, "raw/notes.md")
    caplog.set_level("INFO", logger="start_pipeline")

    result = trigger.run(
        events.rule_input(events.SCHEDULE, ALL_RAW), config, clients, lambda: datetime.now(UTC)
    )

    assert result["action"] == "no-data" and "no .txt file under" in result["reason"]
    assert caplog.records[-1].levelname == "WARNING"
    assert executions(clients) == []


def test_an_event_after_the_window_starts_another_execution(clients, config):
    first = datetime.now(UTC)
    later = first + timedelta(seconds=config.debounce_seconds + 5)
    key = "raw/batch-8/train_FD002.txt"
    put(clients, key)

    assert trigger.run(s3_event(key), config, clients, lambda: first)["action"] == "started"
    assert trigger.run(s3_event(key), config, clients, lambda: later)["action"] == "started"
    assert len({summary["PipelineExecutionDisplayName"] for summary in executions(clients)}) == 2


def test_a_drift_alarm_right_after_a_scheduled_run_is_debounced(clients, config):
    put(clients, "raw/train_FD001.txt")
    now = datetime.now(UTC)

    scheduled = trigger.run(events.rule_input(events.SCHEDULE, ALL_RAW), config, clients, lambda: now)
    drift = trigger.run(events.rule_input(events.DRIFT, ALL_RAW), config, clients, lambda: now)

    assert (scheduled["action"], drift["action"]) == ("started", "debounced")
    assert drift["execution_arn"] == scheduled["execution_arn"]


def test_another_prefix_in_the_same_window_gets_its_own_execution(clients, config):
    now = datetime.now(UTC)
    put(clients, "raw/site-a/train_FD001.txt", "raw/site-b/train_FD001.txt")
    first = trigger.run(s3_event("raw/site-a/train_FD001.txt"), config, clients, lambda: now)
    second = trigger.run(s3_event("raw/site-b/train_FD001.txt"), config, clients, lambda: now)

    assert (first["action"], second["action"]) == ("started", "started")
    assert len(executions(clients)) == 2


def _stub_calls(stubber: Stubber, expected_start: dict, arn: str) -> None:
    stubber.add_response("list_pipeline_executions", {"PipelineExecutionSummaries": []})
    listing = {
        "ModelPackageGroupName": GROUP,
        "ModelPackageType": "Versioned",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 1,
    }
    stubber.add_response("list_model_packages", {"ModelPackageSummaryList": []}, listing)
    stubber.add_response("start_pipeline_execution", {"PipelineExecutionArn": arn}, expected_start)


def test_concurrent_invocations_in_one_window_send_one_idempotent_request(clients, config):
    """Stubber: both invocations saw no execution; SageMaker dedupes identical requests with one token."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    stubbed = trigger.Clients(sagemaker=sagemaker, s3=clients.s3)
    put(clients, "raw/batch-9/train_FD003.txt", "raw/batch-9/test_FD003.txt")
    now = datetime(2026, 11, 2, 13, 9, 50, tzinfo=UTC)
    request = events.StartRequest(events.NEW_DATA, BUCKET, "raw/batch-9/")
    version, uri = current_version(clients, "raw/batch-9/"), request.input_data_uri
    display_name, token = trigger.request_identity(config, request, version, now)
    arn = f"arn:aws:sagemaker:{REGION}:111111111111:pipeline/{PIPELINE}/execution/abc123"
    expected = {
        "PipelineName": PIPELINE,
        "PipelineExecutionDisplayName": display_name,
        "PipelineExecutionDescription": f"newdata: data version {version} under {uri} (KEY)",
        "PipelineParameters": [
            {"Name": names.INPUT_DATA_URI, "Value": request.input_data_uri},
            {"Name": names.DATA_VERSION, "Value": version},
            {"Name": names.REGISTERED_DATA_VERSION, "Value": ""},
        ],
        "ClientRequestToken": token,
    }
    keys = ("raw/batch-9/train_FD003.txt", "raw/batch-9/test_FD003.txt")
    with Stubber(sagemaker) as stubber:
        for key in keys:
            description = expected["PipelineExecutionDescription"].replace("KEY", key)
            _stub_calls(stubber, {**expected, "PipelineExecutionDescription": description}, arn)
        for key in keys:
            assert trigger.run(s3_event(key), config, stubbed, lambda: now)["execution_arn"] == arn
        stubber.assert_no_pending_responses()
    assert 32 <= len(token) <= 128


def test_token_changes_with_the_window_and_the_prefix_but_not_the_data_version(config):
    now = datetime(2026, 11, 2, 13, 0, 0, tzinfo=UTC)
    same_window = now + timedelta(seconds=10)
    next_window = now + timedelta(seconds=config.debounce_seconds)
    request = events.StartRequest(events.NEW_DATA, BUCKET, "raw/a/")
    other = events.StartRequest(events.NEW_DATA, BUCKET, "raw/a/b/")

    def identity(req=request, version="s3-0000000000000001", at=now):
        return trigger.request_identity(config, req, version, at)

    assert identity() == identity(at=same_window)
    assert identity()[1] != identity(at=next_window)[1]
    assert identity()[1] != identity(req=other)[1]
    # A burst's later listing must not start a second run: same token, another display name.
    assert identity()[1] == identity(version="s3-0000000000000002")[1]
    assert identity()[0] != identity(version="s3-0000000000000002")[0]
    assert trigger.is_execution_for(identity()[0], request.input_data_uri)
    assert not trigger.is_execution_for(identity(req=other)[0], request.input_data_uri)


def test_display_names_fit_sagemakers_pattern(config):
    request = events.StartRequest(events.SCHEDULE, BUCKET, "raw/")
    name, _ = trigger.request_identity(config, request, "s3-0123456789abcdef", datetime.now(UTC))
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,81}", name)  # StartPipelineExecution's limit


def test_handler_reads_its_environment_per_invocation(clients, monkeypatch):
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    put(clients, "raw/batch-10/train_FD004.txt")

    result = trigger.handler(s3_event("raw/batch-10/train_FD004.txt"), None)

    assert result["action"] == "started"
    assert len(executions(clients)) == 1


def test_bad_configuration_names_every_variable():
    with pytest.raises(trigger.ConfigError) as error:
        trigger.load_config(
            {
                "PIPELINE_NAME": "",
                "DATA_BUCKET": "Bad_Bucket",
                "RAW_PREFIX": "raw",
                "ALLOWED_SUFFIXES": "txt",
                "DEBOUNCE_SECONDS": "5",
                "MODEL_PACKAGE_GROUP_NAME": "bad group",
            }
        )
    message = str(error.value)
    for name in ENVIRONMENT:
        assert name in message
    assert "'5'" in message
