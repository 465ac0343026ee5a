"""The deploy-on-approval Lambda (`lambdas/deploy_on_approval`): the approval scenario end to end, then edges.

moto (`mock_aws`) serves the model registry (group, packages, approval updates, list/describe), create/
describe model, endpoint config and endpoint, list_tags and all of S3. moto 5.2.5 lacks `update_endpoint`
and the monitoring-schedule calls (`describe/create/update_monitoring_schedule`, which carry the drift
job's definition inline), so `RoutedSageMaker` sends exactly those to a client under
`botocore.stub.Stubber` (parameters validated against the service model and compared with the expected
request) and emulates update_endpoint's end state in moto (the endpoint now serves the new config).
Every call is recorded so each step can assert which mutating APIs it made, or that it made none.
"""

from __future__ import annotations

import json
from dataclasses import replace

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from lambdas.deploy_on_approval import config as deploy_config
from lambdas.deploy_on_approval import endpoint, handler, monitoring
from lambdas.deploy_on_approval.registry import describe_version

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
GROUP = "turbofan-rul-test-models"
ENDPOINT = "turbofan-rul-test-serving"
ARTIFACTS = "turbofan-rul-test-artifacts"
SCHEDULE = "turbofan-rul-test-data-quality"
KMS = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/turbofan-rul-jobs:serve"
ENVIRONMENT = {
    "MODEL_PACKAGE_GROUP_NAME": GROUP,
    "ENDPOINT_NAME": ENDPOINT,
    "MODEL_EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/turbofan-rul-test-model",
    "SUBNET_IDS": "subnet-0a1b2c3d,subnet-0e1f2a3b",
    "SECURITY_GROUP_IDS": "sg-0123abcd",
    "KMS_KEY_ARN": KMS,
    "DATA_CAPTURE_S3_URI": f"s3://{ARTIFACTS}/datacapture/",
    "DATA_CAPTURE_PERCENT": "20",
    "INSTANCE_TYPE": "ml.m5.large",
    "INSTANCE_COUNT": "2",
    "DEPLOYMENT_STRATEGY": "canary",
    "TRAFFIC_PERCENT": "10",
    "TRAFFIC_WAIT_SECONDS": "600",
    "TERMINATION_WAIT_SECONDS": "300",
    "ROLLBACK_ALARM_NAMES": "turbofan-rul-test-5xx,turbofan-rul-test-p99-latency",
    "MONITORING_SCHEDULE_NAME": SCHEDULE,
    "MONITORING_SCHEDULE_CRON": "cron(0 * ? * * *)",
    "DRIFT_IMAGE_URI": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/turbofan-rul-jobs:latest",
    "MONITORING_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/turbofan-rul-test-job",
    "MONITORING_OUTPUT_S3_URI": f"s3://{ARTIFACTS}/monitoring/data-quality/",
    "ARTIFACTS_BUCKET": ARTIFACTS,
}
STUBBED = {
    "update_endpoint",
    "describe_monitoring_schedule",
    "create_monitoring_schedule",
    "update_monitoring_schedule",
}
MUTATING = ("Create", "Update", "Delete", "Put", "Copy", "Start", "Add")


class RoutedSageMaker:
    """moto where moto implements the call, a Stubber client elsewhere; update_endpoint replayed in moto."""

    def __init__(self, moto_client, stubbed_client) -> None:
        self.moto = moto_client
        self.stubbed = stubbed_client
        self.effects = boto3.client("sagemaker", region_name=REGION)  # unrecorded: not the function's calls

    def __getattr__(self, name):
        if name == "update_endpoint":
            return self._update_endpoint
        return getattr(self.stubbed if name in STUBBED else self.moto, name)

    def _update_endpoint(self, **params):
        response = self.stubbed.update_endpoint(**params)
        self.effects.delete_endpoint(EndpointName=params["EndpointName"])
        self.effects.create_endpoint(
            EndpointName=params["EndpointName"], EndpointConfigName=params["EndpointConfigName"]
        )
        return response


class World:
    """The mocked account: clients, the recorded calls, and helpers to make events and read state."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        moto_sm = boto3.client("sagemaker", region_name=REGION)
        stub_sm = boto3.client("sagemaker", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        for client in (moto_sm, stub_sm, self.s3):
            client.meta.events.register("provide-client-params.*.*", self._record)
        self.stubber = Stubber(stub_sm)
        self.stubber.activate()
        self.moto = moto_sm
        self.clients = handler.Clients(sagemaker=RoutedSageMaker(moto_sm, stub_sm), s3=self.s3)
        self.config = deploy_config.load_config(ENVIRONMENT)

    def _record(self, params, model, **_):
        self.calls.append((model.name, dict(params)))

    def mutations(self) -> list[str]:
        return [name for name, _ in self.calls if name.startswith(MUTATING)]

    def run(self, event) -> dict:
        self.calls.clear()
        result = handler.run(event, self.config, self.clients)
        self.stubber.assert_no_pending_responses()
        return result

    def register(self, version: int, with_artifacts: bool = True) -> str:
        container = {"Image": IMAGE}
        if with_artifacts:
            key = f"models/v{version}/model.tar.gz"
            self.s3.put_object(Bucket=ARTIFACTS, Key=key, Body=f"model-{version}".encode())
            container["ModelDataUrl"] = f"s3://{ARTIFACTS}/{key}"
        baseline = f"s3://{ARTIFACTS}/{GROUP}/baseline-v{version}"
        return self.moto.create_model_package(
            ModelPackageGroupName=GROUP,
            InferenceSpecification={
                "Containers": [container],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            ModelApprovalStatus="PendingManualApproval",
            DriftCheckBaselines={
                "ModelDataQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": f"{baseline}/statistics.json"},
                    "Constraints": {
                        "ContentType": "application/json",
                        "S3Uri": f"{baseline}/constraints.json",
                    },
                }
            },
        )["ModelPackageArn"]

    def set_status(self, arn: str, status: str) -> dict:
        self.moto.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
        return event_for(arn, status)

    def champion(self) -> dict | None:
        try:
            body = self.s3.get_object(Bucket=ARTIFACTS, Key="champion/champion.json")["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def keys(self, prefix: str) -> set[str]:
        listing = self.s3.list_objects_v2(Bucket=ARTIFACTS, Prefix=prefix)
        return {item["Key"] for item in listing.get("Contents", [])}

    def serving_config(self) -> dict:
        name = self.moto.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
        return self.moto.describe_endpoint_config(EndpointConfigName=name)

    def definition(self, arn: str) -> dict:
        """The inline drift-job definition the schedule should hold for the version `arn`."""
        return monitoring.job_definition(self.config, describe_version(self.moto, arn))

    def expect_schedule(self, current: dict | None, wanted: dict | None, operation: str | None) -> None:
        if current is None:
            self.stubber.add_client_error(
                "describe_monitoring_schedule", "ResourceNotFound", "Monitoring schedule not found", 404
            )
        else:
            self.stubber.add_response("describe_monitoring_schedule", schedule(current))
        if operation is not None:
            config = {
                "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
                "MonitoringJobDefinition": wanted,
            }
            expected = {"MonitoringScheduleName": SCHEDULE, "MonitoringScheduleConfig": config}
            if operation == "create_monitoring_schedule":
                expected["Tags"] = ANY
            self.stubber.add_response(
                operation,
                {"MonitoringScheduleArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:monitoring-schedule/x"},
                expected,
            )

    def expect_update(self) -> None:
        expected = {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": ANY,
            "RetainAllVariantProperties": False,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY",
                        "WaitIntervalInSeconds": 600,
                        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                    },
                    "TerminationWaitInSeconds": 300,
                },
                "AutoRollbackConfiguration": {
                    "Alarms": [
                        {"AlarmName": "turbofan-rul-test-5xx"},
                        {"AlarmName": "turbofan-rul-test-p99-latency"},
                    ]
                },
            },
        }
        arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"
        self.stubber.add_response("update_endpoint", {"EndpointArn": arn}, expected)


def schedule(definition: dict) -> dict:
    from datetime import UTC, datetime

    return {
        "MonitoringScheduleArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:monitoring-schedule/{SCHEDULE}",
        "MonitoringScheduleName": SCHEDULE,
        "MonitoringScheduleStatus": "Scheduled",
        "CreationTime": datetime(2026, 11, 1, tzinfo=UTC),
        "LastModifiedTime": datetime(2026, 11, 1, tzinfo=UTC),
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
            "MonitoringJobDefinition": definition,
        },
    }


def event_for(arn: str, status: str, group: str = GROUP) -> dict:
    version = int(arn.rsplit("/", 1)[1])
    return {
        "version": "0",
        "id": "844e2571-85d4-695f-b930-0153b71dcb42",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": "2026-11-02T17:00:14Z",
        "region": REGION,
        "resources": [arn],
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": version,
            "ModelPackageArn": arn,
            "ModelApprovalStatus": status,
            "ModelPackageStatus": "Completed",
            "InferenceSpecification": {"Containers": [{"Image": IMAGE}]},
        },
    }


@pytest.fixture
def world(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        w = World()
        w.s3.create_bucket(Bucket=ARTIFACTS, CreateBucketConfiguration={"LocationConstraint": REGION})
        w.s3.put_object(Bucket=ARTIFACTS, Key="champion/NO_CHAMPION_YET.txt", Body=b"No model yet.\n")
        w.moto.create_model_package_group(ModelPackageGroupName=GROUP)
        yield w
        w.stubber.deactivate()


def params_of(world: World, operation: str) -> dict:
    return next(params for name, params in world.calls if name == operation)


def test_approve_reject_scenario(world):
    v1 = world.register(1)
    v2 = world.register(2)

    # 1. approve v1: endpoint created with capture, monitoring schedule created, champion published.
    world.expect_schedule(None, world.definition(v1), "create_monitoring_schedule")
    result = world.run(world.set_status(v1, "Approved"))
    assert result["action"] == "deployed" and result["endpoint"] == "created", result
    assert world.mutations() == [
        "CreateModel",
        "CreateEndpointConfig",
        "CreateEndpoint",
        "CreateMonitoringSchedule",
        "CopyObject",
        "PutObject",
        "DeleteObject",
    ]
    model = params_of(world, "CreateModel")
    assert model["EnableNetworkIsolation"] is True
    assert model["VpcConfig"] == {
        "Subnets": ["subnet-0a1b2c3d", "subnet-0e1f2a3b"],
        "SecurityGroupIds": ["sg-0123abcd"],
    }
    assert model["PrimaryContainer"] == {
        "Image": IMAGE,
        "ModelDataUrl": f"s3://{ARTIFACTS}/models/v1/model.tar.gz",
    }
    serving = world.serving_config()
    assert serving["DataCaptureConfig"]["InitialSamplingPercentage"] == 20
    assert serving["DataCaptureConfig"]["KmsKeyId"] == KMS
    assert serving["DataCaptureConfig"]["CaptureOptions"] == [
        {"CaptureMode": "Input"},
        {"CaptureMode": "Output"},
    ]
    assert serving["KmsKeyId"] == KMS
    definition = params_of(world, "CreateMonitoringSchedule")["MonitoringScheduleConfig"][
        "MonitoringJobDefinition"
    ]
    assert definition["BaselineConfig"]["StatisticsResource"]["S3Uri"].endswith("baseline-v1/statistics.json")
    assert definition["BaselineConfig"]["ConstraintsResource"]["S3Uri"].endswith(
        "baseline-v1/constraints.json"
    )
    assert definition["MonitoringAppSpecification"] == {
        "ImageUri": ENVIRONMENT["DRIFT_IMAGE_URI"],
        "ContainerEntrypoint": ["python3", "/opt/program/drift.py"],
        "ContainerArguments": ["--contract", "model-monitor"],
    }
    assert definition["MonitoringInputs"] == [
        {
            "EndpointInput": {
                "EndpointName": ENDPOINT,
                "LocalPath": "/opt/ml/processing/input/endpoint",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
            }
        }
    ]
    assert definition["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert definition["MonitoringOutputConfig"]["KmsKeyId"] == KMS
    assert definition["MonitoringResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KMS
    assert world.champion() == {"version": 1, "model_package_arn": v1, "group": GROUP}
    assert world.keys("champion/") == {"champion/model.tar.gz", "champion/champion.json"}
    copied = world.s3.get_object(Bucket=ARTIFACTS, Key="champion/model.tar.gz")
    assert copied["Body"].read() == b"model-1" and copied["ServerSideEncryption"] == "aws:kms"
    assert params_of(world, "CopyObject")["SSEKMSKeyId"] == KMS

    # 2. approve v2: blue/green canary update with the rollback alarms; schedule moved to v2's baselines.
    world.expect_update()
    world.expect_schedule(world.definition(v1), world.definition(v2), "update_monitoring_schedule")
    result = world.run(world.set_status(v2, "Approved"))
    assert (result["action"], result["endpoint"], result["target_version"]) == ("deployed", "updated", 2)
    assert "CreateEndpoint" not in world.mutations() and "UpdateEndpoint" in world.mutations()
    assert world.serving_config()["ProductionVariants"][0]["ModelName"].startswith(f"{GROUP}-v2-")
    assert world.champion()["version"] == 2

    # 3. reject v2 (in service): back to v1 with the same safe update, reusing v1's model and config.
    world.expect_update()
    world.expect_schedule(world.definition(v2), world.definition(v1), "update_monitoring_schedule")
    result = world.run(world.set_status(v2, "Rejected"))
    assert (result["action"], result["target_version"], result["in_service_version"]) == ("rolled_back", 1, 2)
    assert not {"CreateModel", "CreateEndpointConfig", "CreateMonitoringSchedule"} & set(world.mutations())
    assert world.serving_config()["ProductionVariants"][0]["ModelName"].startswith(f"{GROUP}-v1-")
    assert world.champion() == {"version": 1, "model_package_arn": v1, "group": GROUP}
    copied = world.s3.get_object(Bucket=ARTIFACTS, Key="champion/model.tar.gz")["Body"].read()
    assert copied == b"model-1"

    # 4. the v1 approval event again (EventBridge may deliver twice): nothing changes.
    world.expect_schedule(world.definition(v1), None, None)
    result = world.run(event_for(v1, "Approved"))
    assert result["action"] == "no_change", result
    assert world.mutations() == []


def test_malformed_foreign_and_artifactless_events_change_nothing(world, caplog):
    caplog.set_level("INFO", logger="deploy_on_approval")
    v1 = world.register(1, with_artifacts=False)
    world.set_status(v1, "Approved")
    other = {**event_for(v1, "Approved"), "detail": {**event_for(v1, "Approved")["detail"]}}
    other["detail"]["ModelPackageGroupName"] = "someone-elses-models"
    missing = event_for(v1, "Approved")
    del missing["detail"]["ModelPackageArn"]
    cases = [
        (
            {"source": "aws.sagemaker", "detail-type": "SageMaker Endpoint State Change", "detail": {}},
            "detail-type",
        ),
        ({"source": "aws.sagemaker", "detail-type": "SageMaker Model Package State Change"}, "no detail"),
        (missing, "lacks ModelPackageArn"),
        (other, "someone-elses-models"),
        (["not", "an", "event"], "not an object"),
        (event_for(v1, "Approved"), "no servable artifacts"),
    ]
    for event, reason in cases:
        result = world.run(event)
        assert result["action"] == "ignored" and reason in result["reason"], result
        assert world.mutations() == []
        assert json.loads(caplog.records[-1].getMessage())["action"] == "ignored"
    assert not world.moto.list_endpoints()["Endpoints"]
    assert world.keys("champion/") == {"champion/NO_CHAMPION_YET.txt"}


def test_pending_and_stale_events_are_ignored(world):
    v1 = world.register(1)
    assert "PendingManualApproval" in world.run(event_for(v1, "PendingManualApproval"))["reason"]
    stale = world.run(event_for(v1, "Approved"))  # the registry still says pending
    assert stale["action"] == "ignored" and "stale event" in stale["reason"]
    assert world.mutations() == []


def test_rejecting_a_version_not_in_service_changes_nothing(world):
    v1 = world.register(1)
    world.expect_schedule(None, world.definition(v1), "create_monitoring_schedule")
    world.run(world.set_status(v1, "Approved"))
    v2 = world.register(2)

    result = world.run(world.set_status(v2, "Rejected"))

    assert (result["action"], result["in_service_version"]) == ("no_change", 1)
    assert world.mutations() == []


def test_rejecting_the_only_approved_version_leaves_the_endpoint_and_resets_the_champion(world):
    v1 = world.register(1)
    world.expect_schedule(None, world.definition(v1), "create_monitoring_schedule")
    world.run(world.set_status(v1, "Approved"))
    serving = world.serving_config()["EndpointConfigName"]

    result = world.run(world.set_status(v1, "Rejected"))

    assert result["action"] == "no_fallback" and "left unchanged" in result["reason"]
    assert world.serving_config()["EndpointConfigName"] == serving
    assert world.keys("champion/") == {"champion/NO_CHAMPION_YET.txt"}
    assert "UpdateEndpoint" not in world.mutations()


def test_an_older_approval_does_not_replace_a_newer_version_in_service(world):
    v1, v2 = world.register(1), world.register(2)
    world.set_status(v1, "Approved")
    world.expect_schedule(None, world.definition(v2), "create_monitoring_schedule")
    assert world.run(world.set_status(v2, "Approved"))["target_version"] == 2

    world.expect_schedule(world.definition(v2), None, None)
    result = world.run(event_for(v1, "Approved"))  # late delivery of v1's approval

    assert (result["action"], result["target_version"]) == ("no_change", 2)


def test_a_busy_endpoint_raises_for_retry_unless_already_moving_to_the_target():
    config = deploy_config.load_config(ENVIRONMENT)
    updating = endpoint.EndpointState(exists=True, status="Updating", config_name="cfg-v1", version=1)

    with pytest.raises(endpoint.EndpointBusy, match="Updating"):
        endpoint.create_or_update(object(), config, updating, "cfg-v2")
    assert endpoint.create_or_update(object(), config, updating, "cfg-v1") == "unchanged"


def test_linear_deployment_config():
    config = deploy_config.load_config(
        {**ENVIRONMENT, "DEPLOYMENT_STRATEGY": "linear", "TRAFFIC_PERCENT": "25"}
    )
    routing = endpoint.deployment_config(config)["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {
        "Type": "LINEAR",
        "WaitIntervalInSeconds": 600,
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
    }


def test_names_fit_sagemaker_limits():
    name = endpoint.bounded_name("x" * 80, "v12-0123abcd")
    assert len(name) == 63 and name.endswith("-v12-0123abcd")
    assert deploy_config.NAME_PATTERN.match(name)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"ENDPOINT_NAME": ""}, "ENDPOINT_NAME: required"),
        ({"DATA_CAPTURE_PERCENT": "150"}, "DATA_CAPTURE_PERCENT: must be in [1, 100] (got 150)"),
        ({"INSTANCE_COUNT": "1"}, "canary shifting needs at least 2 instances"),
        ({"DEPLOYMENT_STRATEGY": "linear", "TRAFFIC_PERCENT": "5"}, "TRAFFIC_PERCENT: must be in [10, 50]"),
        ({"ROLLBACK_ALARM_NAMES": ""}, "ROLLBACK_ALARM_NAMES: needs 1 to 10"),
        ({"SUBNET_IDS": "subnet-0a1b,vpc-1"}, "'vpc-1' does not match"),
        ({"KMS_KEY_ARN": "alias/data"}, "KMS_KEY_ARN"),
        ({"MONITORING_SCHEDULE_CRON": "rate(1 hour)"}, "MONITORING_SCHEDULE_CRON"),
    ],
)
def test_bad_configuration_names_the_variable_and_value(overrides, named):
    with pytest.raises(deploy_config.ConfigError, match=None) as error:
        deploy_config.load_config({**ENVIRONMENT, **overrides})
    assert named in str(error.value)


def test_configuration_defaults_and_frozen():
    config = deploy_config.load_config(ENVIRONMENT)
    assert config.champion_prefix == "champion/" and config.monitoring.instance_type == "ml.m5.large"
    with pytest.raises(AttributeError):
        config.endpoint_name = "other"  # type: ignore[misc]
    assert replace(config, capture_percent=50).capture_percent == 50


def test_handler_reads_the_environment_at_call_time(world, monkeypatch):
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    result = handler.handler({"source": "aws.s3", "detail-type": "Object Created"}, None)
    assert result["action"] == "ignored"
    monkeypatch.setenv("ENDPOINT_NAME", "")
    with pytest.raises(deploy_config.ConfigError):
        handler.handler({}, None)
