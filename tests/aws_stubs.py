"""Shared by the AWS verb tests: a deployment's settings and names, a fake clock, Stubber and moto clients.

The settings name a test account and region; every name is read from `settings.ResourceNames`. `run`
parses a command line as `python -m pipeline_steps` does and runs it on the given client with captured
streams and the fake clock. The `stubbed` fixture yields a real `boto3.client("sagemaker")` under botocore's
`Stubber` (requests and responses validated against the service model, unstubbed calls fail) and checks
that every stubbed response was used.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from pipeline_steps import aws_target, aws_verbs, names
from pipeline_steps.__main__ import parse_args
from settings import load_settings

REGION = "eu-west-1"
ACCOUNT = "123456789012"
SETTINGS = json.dumps({"project": {"environment": "test"}, "aws": {"account": ACCOUNT, "region": REGION}})
NAMES = load_settings(SETTINGS).names
PIPELINE = NAMES.pipeline
GROUP = NAMES.model_package_group
EXECUTION_ID = "a1b2c3d4e5f6"
EXECUTION_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}/execution/{EXECUTION_ID}"
CREATED = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
DECLARED = [
    {"Name": names.INPUT_DATA_URI, "Type": "String", "DefaultValue": "s3://data/raw/"},
    {"Name": names.SUBSET, "Type": "String", "DefaultValue": "FD001", "EnumValues": list(names.SUBSETS)},
    {"Name": names.DATA_VERSION, "Type": "String", "DefaultValue": names.DEFAULT_DATA_VERSION},
    {"Name": names.PROCESSING_INSTANCE_COUNT, "Type": "Integer", "DefaultValue": 1},
    {"Name": names.RMSE_THRESHOLD, "Type": "Float", "DefaultValue": 20.0},
    {"Name": "UseSpot", "Type": "Boolean", "DefaultValue": False},
]
DEFINITION = json.dumps({"Version": "2020-12-01", "Parameters": DECLARED, "Steps": []})


class FakeClock:
    """`now` returns the fake time; `sleep` records the delay and advances the fake time by it."""

    def __init__(self, start: datetime) -> None:
        self.time, self.sleeps = start, []

    def now(self) -> datetime:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += timedelta(seconds=seconds)


def isolate_from_cdk_json(monkeypatch, tmp_path) -> None:
    """The verbs then read settings from --settings only, never from the repository's cdk.json."""
    monkeypatch.setattr(aws_target, "CDK_JSON", tmp_path / "absent-cdk.json")


# Fixtures, registered by name so that a test module imports the function without its parameters
# shadowing the import (which needs a noqa for F401 only).
@pytest.fixture(autouse=True, name="no_cdk_context")
def no_cdk_context_fixture(monkeypatch, tmp_path) -> None:
    """`isolate_from_cdk_json` for every test of a module that imports this fixture."""
    isolate_from_cdk_json(monkeypatch, tmp_path)


@pytest.fixture(name="stubbed")
def stubbed_fixture() -> Iterator[tuple[object, Stubber]]:
    """A SageMaker client under `Stubber`, and the stubber; every stubbed response must be used."""
    client = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture(name="moto")
def moto_fixture(monkeypatch) -> Iterator[object]:
    """A SageMaker client of moto's mocked account."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("sagemaker", region_name=REGION)


def run(client, *argv: str, clock: FakeClock | None = None) -> tuple[int, str, str]:
    clock = clock or FakeClock(CREATED)
    out, err = io.StringIO(), io.StringIO()
    args = parse_args([*argv, "--settings", SETTINGS])
    code = aws_verbs.run(args, client=client, io=aws_verbs.Io(out, err, clock.sleep, clock.now))
    return code, out.getvalue(), err.getvalue()


def stub_describe_pipeline(stubber: Stubber) -> None:
    stubber.add_response(
        "describe_pipeline",
        {"PipelineName": PIPELINE, "PipelineDefinition": DEFINITION},
        {"PipelineName": PIPELINE},
    )
