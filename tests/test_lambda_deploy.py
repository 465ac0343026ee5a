"""The deploy-on-approval Lambda (`lambdas/deploy_on_approval`) on its default path: no Model Monitor.

The approval scenario end to end (endpoint, champion model and drift baselines; not one Model Monitor
call), then the edges and the configuration. The mocked account is `deploy_world`; the Model Monitor
path and the container capture mode are in `test_lambda_deploy_modes.py`.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from deploy_world import (
    ARTIFACTS,
    AWS_TEST_CREDENTIALS,
    ENVIRONMENT,
    GROUP,
    IMAGE,
    KMS,
    MODEL_MONITOR_ENVIRONMENT,
    MODEL_ROLE,
    World,
    event_for,
)
from moto import mock_aws

from lambdas.deploy_on_approval import config as deploy_config
from lambdas.deploy_on_approval import endpoint, handler

BASELINES = {"champion/baselines/statistics.json", "champion/baselines/constraints.json"}
# The mutating calls of the first approval, in order: the endpoint, then the champion prefix.
FIRST_DEPLOYMENT_CALLS = [
    "CreateModel",
    "CreateEndpointConfig",
    "CreateEndpoint",
    "CopyObject",
    "CopyObject",
    "CopyObject",
    "PutObject",
    "DeleteObject",
]


@pytest.fixture
def world(monkeypatch):
    for name, value in AWS_TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        w = World(ENVIRONMENT)
        yield w
        w.stubber.deactivate()


def params_of(world: World, operation: str) -> dict:
    return world.params(operation)[0]


def assert_no_model_monitor_call(world: World) -> None:
    assert not [name for name, _ in world.calls if "Monitoring" in name], world.calls


def assert_champion_baselines(world: World, version: int) -> None:
    for key in BASELINES:
        assert world.read_json(key) == {"file": key.rsplit("/", 1)[1], "version": version}
        head = world.s3.head_object(Bucket=ARTIFACTS, Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KMS)


def assert_isolated_model_with_encrypted_capture(world: World, model_data_url: str) -> None:
    """The created model is network-isolated in the VPC with the model role; the endpoint config captures
    inputs and outputs, KMS-encrypted, and encrypts its volume."""
    model = params_of(world, "CreateModel")
    assert model["EnableNetworkIsolation"] is True
    assert model["ExecutionRoleArn"] == MODEL_ROLE
    assert model["VpcConfig"] == {
        "Subnets": ["subnet-0a1b2c3d", "subnet-0e1f2a3b"],
        "SecurityGroupIds": ["sg-0123abcd"],
    }
    assert model["PrimaryContainer"] == {"Image": IMAGE, "ModelDataUrl": model_data_url}
    serving = world.serving_config()
    assert serving["DataCaptureConfig"]["InitialSamplingPercentage"] == 20
    assert serving["DataCaptureConfig"]["DestinationS3Uri"] == f"s3://{ARTIFACTS}/datacapture/"
    assert serving["DataCaptureConfig"]["KmsKeyId"] == KMS
    assert serving["DataCaptureConfig"]["CaptureOptions"] == [
        {"CaptureMode": "Input"},
        {"CaptureMode": "Output"},
    ]
    assert serving["KmsKeyId"] == KMS


def test_approve_reject_scenario(world):
    v1 = world.register(1)
    v2 = world.register(2)

    # 1. approve v1: endpoint created with capture, champion model and baselines published, no monitor.
    result = world.run(world.set_status(v1, "Approved"))
    assert result["action"] == "deployed" and result["endpoint"] == "created", result
    assert result["monitoring"].startswith("skipped: Model Monitor is off")
    assert result["baselines"] == "published"
    assert world.mutations() == FIRST_DEPLOYMENT_CALLS
    assert_no_model_monitor_call(world)
    assert_isolated_model_with_encrypted_capture(world, f"s3://{ARTIFACTS}/models/v1/model.tar.gz")
    assert world.champion() == {"version": 1, "model_package_arn": v1, "group": GROUP}
    assert world.keys("champion/") == {"champion/model.tar.gz", "champion/champion.json", *BASELINES}
    copied = world.s3.get_object(Bucket=ARTIFACTS, Key="champion/model.tar.gz")
    assert copied["Body"].read() == b"model-1" and copied["ServerSideEncryption"] == "aws:kms"
    assert all(copy["SSEKMSKeyId"] == KMS for copy in world.params("CopyObject"))
    assert_champion_baselines(world, 1)

    # 2. approve v2: blue/green canary update with the rollback alarms; the champion's baselines are v2's.
    world.expect_update()
    result = world.run(world.set_status(v2, "Approved"))
    assert (result["action"], result["endpoint"], result["target_version"]) == ("deployed", "updated", 2)
    assert "CreateEndpoint" not in world.mutations() and "UpdateEndpoint" in world.mutations()
    assert world.serving_config()["ProductionVariants"][0]["ModelName"].startswith(f"{GROUP}-v2-")
    assert world.champion()["version"] == 2
    assert_champion_baselines(world, 2)
    assert_no_model_monitor_call(world)

    # 3. reject v2 (in service): back to v1 with the same safe update, reusing v1's model and config.
    world.expect_update()
    result = world.run(world.set_status(v2, "Rejected"))
    assert (result["action"], result["target_version"], result["in_service_version"]) == ("rolled_back", 1, 2)
    assert not {"CreateModel", "CreateEndpointConfig"} & set(world.mutations())
    assert world.serving_config()["ProductionVariants"][0]["ModelName"].startswith(f"{GROUP}-v1-")
    assert world.champion() == {"version": 1, "model_package_arn": v1, "group": GROUP}
    copied = world.s3.get_object(Bucket=ARTIFACTS, Key="champion/model.tar.gz")["Body"].read()
    assert copied == b"model-1"
    assert_champion_baselines(world, 1)

    # 4. the v1 approval event again (EventBridge may deliver twice): nothing changes.
    result = world.run(event_for(v1, "Approved"))
    assert result["action"] == "no_change", result
    assert world.mutations() == []
    assert_no_model_monitor_call(world)


def test_a_version_without_baselines_leaves_the_champion_baselines_absent_and_says_so(world, caplog):
    caplog.set_level("INFO", logger="deploy_on_approval")
    v1, v2 = world.register(1), world.register(2, with_baselines=False)
    world.run(world.set_status(v1, "Approved"))
    assert world.keys("champion/baselines/") == BASELINES

    world.expect_update()
    result = world.run(world.set_status(v2, "Approved"))

    assert result["action"] == "deployed" and result["target_version"] == 2
    assert result["baselines"].startswith("deleted: v2 registered no DriftCheckBaselines.ModelDataQuality")
    assert world.keys("champion/baselines/") == set()  # never v1's baselines against v2's model
    assert world.champion()["version"] == 2
    warnings = [json.loads(r.getMessage()) for r in caplog.records if r.levelname == "WARNING"]
    assert any(w["action"] == "warning" and "drift step fails" in w["reason"] for w in warnings)
    # The same event again: still absent, logged again, nothing to delete.
    again = world.run(event_for(v2, "Approved"))
    assert again["action"] == "no_change" and again["baselines"].startswith("skipped: v2 registered no")
    assert world.mutations() == []


def test_missing_champion_baselines_are_restored_without_a_redeploy(world):
    """A champion published before baselines were copied gets them on the next event for it."""
    v1 = world.register(1)
    world.run(world.set_status(v1, "Approved"))
    for key in BASELINES:
        world.s3.delete_object(Bucket=ARTIFACTS, Key=key)

    result = world.run(event_for(v1, "Approved"))

    assert (result["action"], result["champion"], result["baselines"]) == (
        "deployed",
        "unchanged",
        "published",
    )
    assert world.mutations() == ["CopyObject", "CopyObject"]
    assert_champion_baselines(world, 1)


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
    world.run(world.set_status(v1, "Approved"))
    v2 = world.register(2)

    result = world.run(world.set_status(v2, "Rejected"))

    assert (result["action"], result["in_service_version"]) == ("no_change", 1)
    assert world.mutations() == []


def test_rejecting_the_only_approved_version_leaves_the_endpoint_and_resets_the_champion(world):
    v1 = world.register(1)
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
    assert world.run(world.set_status(v2, "Approved"))["target_version"] == 2

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
        ({"DATA_CAPTURE_MODE": "kinesis"}, "DATA_CAPTURE_MODE: must be one of sagemaker, container"),
        ({"USE_MODEL_MONITOR": "yes"}, "USE_MODEL_MONITOR: must be true or false (got 'yes')"),
        # With Model Monitor on, the schedule's variables become required and checked.
        ({"USE_MODEL_MONITOR": "true"}, "MONITORING_SCHEDULE_NAME: required"),
        (
            {**MODEL_MONITOR_ENVIRONMENT, "MONITORING_SCHEDULE_CRON": "rate(1 hour)"},
            "MONITORING_SCHEDULE_CRON",
        ),
    ],
)
def test_bad_configuration_names_the_variable_and_value(overrides, named):
    with pytest.raises(deploy_config.ConfigError, match=None) as error:
        deploy_config.load_config({**ENVIRONMENT, **overrides})
    assert named in str(error.value)


def test_configuration_defaults_and_frozen():
    config = deploy_config.load_config(ENVIRONMENT)
    assert config.champion_prefix == "champion/" and config.capture_mode == "sagemaker"
    assert config.monitoring is None  # Model Monitor off unless asked for
    monitored = deploy_config.load_config(MODEL_MONITOR_ENVIRONMENT)
    assert monitored.monitoring is not None and monitored.monitoring.instance_type == "ml.m5.large"
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
