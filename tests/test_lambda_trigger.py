"""The new-data trigger Lambda (`lambdas/start_pipeline`): debounce, filtering, configuration.

moto (`mock_aws`) serves create_pipeline, start_pipeline_execution, list_pipeline_executions and
list_pipeline_parameters_for_execution. moto ignores `ClientRequestToken` (no idempotency), so the race
of two concurrent invocations is checked with `botocore.stub.Stubber`: both must send the identical
request with the same token, which SageMaker turns into one execution.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from lambdas.start_pipeline import handler as trigger
from pipeline_steps import names

REGION = "eu-west-1"
PIPELINE = "turbofan-rul-test-training"
BUCKET = "turbofan-rul-test-data-111111111111-eu-west-1"
ENVIRONMENT = {
    "PIPELINE_NAME": PIPELINE,
    "DATA_BUCKET": BUCKET,
    "RAW_PREFIX": "raw/",
    "ALLOWED_SUFFIXES": ".txt",
    "DEBOUNCE_SECONDS": "300",
}


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
def sagemaker(aws_env):
    with mock_aws():
        client = boto3.client("sagemaker", region_name=REGION)
        client.create_pipeline(
            PipelineName=PIPELINE,
            PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
            RoleArn="arn:aws:iam::111111111111:role/pipeline",
        )
        yield client


@pytest.fixture
def config():
    return trigger.load_config(ENVIRONMENT)


def executions(client) -> list[dict]:
    return client.list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"]


def test_burst_of_five_files_starts_exactly_one_execution(sagemaker, config):
    now = datetime.now(UTC)
    keys = [f"raw/batch-7/{name}_FD001.txt" for name in ("train", "test", "RUL")]
    keys += ["raw/batch-7/train_FD001_part2.txt", "raw/batch-7/test_FD001_part2.txt"]
    results = [trigger.run(s3_event(key), config, sagemaker, lambda: now) for key in keys]

    assert [result["action"] for result in results] == ["started"] + ["debounced"] * 4
    (execution,) = executions(sagemaker)
    assert all(result["execution_arn"] == execution["PipelineExecutionArn"] for result in results)
    parameters = sagemaker.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=execution["PipelineExecutionArn"]
    )["PipelineParameters"]
    assert parameters == [{"Name": names.INPUT_DATA_URI, "Value": f"s3://{BUCKET}/raw/batch-7/"}]
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
    ],
)
def test_events_outside_the_raw_prefix_or_malformed_start_nothing(sagemaker, config, event, reason, caplog):
    caplog.set_level("INFO", logger="start_pipeline")
    result = trigger.run(event, config, sagemaker, lambda: datetime.now(UTC))

    assert result["action"] == "ignored"
    assert reason in result["reason"]
    assert executions(sagemaker) == []
    logged = json.loads(caplog.records[-1].getMessage())  # one JSON line per decision
    assert logged["action"] == "ignored" and logged["function"] == "start_pipeline"


def test_an_event_after_the_window_starts_another_execution(sagemaker, config):
    first = datetime.now(UTC)
    later = first + timedelta(seconds=config.debounce_seconds + 5)
    key = "raw/batch-8/train_FD002.txt"

    assert trigger.run(s3_event(key), config, sagemaker, lambda: first)["action"] == "started"
    assert trigger.run(s3_event(key), config, sagemaker, lambda: later)["action"] == "started"
    names_started = {summary["PipelineExecutionDisplayName"] for summary in executions(sagemaker)}
    assert len(names_started) == 2


def test_another_prefix_in_the_same_window_gets_its_own_execution(sagemaker, config):
    now = datetime.now(UTC)
    first = trigger.run(s3_event("raw/site-a/train_FD001.txt"), config, sagemaker, lambda: now)
    second = trigger.run(s3_event("raw/site-b/train_FD001.txt"), config, sagemaker, lambda: now)

    assert (first["action"], second["action"]) == ("started", "started")
    assert len(executions(sagemaker)) == 2


def test_concurrent_invocations_in_one_window_send_one_idempotent_request(aws_env, config):
    """Stubber: both invocations saw no execution; SageMaker dedupes identical requests with one token."""
    client = boto3.client("sagemaker", region_name=REGION)
    now = datetime(2026, 11, 2, 13, 9, 50, tzinfo=UTC)
    prefix = f"s3://{BUCKET}/raw/batch-9/"
    display_name, token = trigger.request_identity(config, prefix, now)
    arn = f"arn:aws:sagemaker:{REGION}:111111111111:pipeline/{PIPELINE}/execution/abc123"
    expected = {
        "PipelineName": PIPELINE,
        "PipelineExecutionDisplayName": display_name,
        "PipelineExecutionDescription": f"New data under {prefix}",
        "PipelineParameters": [{"Name": names.INPUT_DATA_URI, "Value": prefix}],
        "ClientRequestToken": token,
    }
    with Stubber(client) as stubber:
        for _ in range(2):
            stubber.add_response("list_pipeline_executions", {"PipelineExecutionSummaries": []})
            stubber.add_response("start_pipeline_execution", {"PipelineExecutionArn": arn}, expected)
        for key in ("raw/batch-9/train_FD003.txt", "raw/batch-9/test_FD003.txt"):
            assert trigger.run(s3_event(key), config, client, lambda: now)["execution_arn"] == arn
        stubber.assert_no_pending_responses()
    assert 32 <= len(token) <= 128


def test_token_changes_with_the_window_and_the_prefix(config):
    now = datetime(2026, 11, 2, 13, 0, 0, tzinfo=UTC)
    same_window = now + timedelta(seconds=10)
    next_window = now + timedelta(seconds=config.debounce_seconds)
    prefix = f"s3://{BUCKET}/raw/a/"

    assert trigger.request_identity(config, prefix, now) == trigger.request_identity(
        config, prefix, same_window
    )
    assert trigger.request_identity(config, prefix, now) != trigger.request_identity(
        config, prefix, next_window
    )
    assert trigger.request_identity(config, prefix, now) != trigger.request_identity(
        config, prefix + "b/", now
    )


def test_handler_reads_its_environment_per_invocation(sagemaker, monkeypatch):
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)

    result = trigger.handler(s3_event("raw/batch-10/train_FD004.txt"), None)

    assert result["action"] == "started"
    assert len(executions(sagemaker)) == 1


def test_bad_configuration_names_every_variable():
    with pytest.raises(trigger.ConfigError) as error:
        trigger.load_config(
            {
                "PIPELINE_NAME": "",
                "DATA_BUCKET": "Bad_Bucket",
                "RAW_PREFIX": "raw",
                "ALLOWED_SUFFIXES": "txt",
                "DEBOUNCE_SECONDS": "5",
            }
        )
    message = str(error.value)
    for name in ("PIPELINE_NAME", "DATA_BUCKET", "RAW_PREFIX", "ALLOWED_SUFFIXES", "DEBOUNCE_SECONDS"):
        assert name in message
    assert "'5'" in message


def test_parameter_name_matches_the_pipeline():
    assert trigger.INPUT_DATA_URI == names.INPUT_DATA_URI
