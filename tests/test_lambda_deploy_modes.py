"""The deploy-on-approval Lambda's optional paths: the Model Monitor schedule, and capture by the container.

With `USE_MODEL_MONITOR=true` the function keeps a Model Monitor schedule on the in-service version's
baselines (the calls moto lacks go to a Stubber that checks each request); with
`DATA_CAPTURE_MODE=container` the endpoint config has no DataCaptureConfig and the model, not isolated,
tells the serving container where to upload. The names the function shares with code it cannot import
(the container's variables, the monitoring pipeline's baseline files) are checked against their sources.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from deploy_world import (
    ARTIFACTS,
    AWS_TEST_CREDENTIALS,
    ENDPOINT,
    ENVIRONMENT,
    KMS,
    MODEL_MONITOR_ENVIRONMENT,
    MODEL_ROLE,
    World,
    event_for,
)
from moto import mock_aws

import serve
from lambdas.deploy_on_approval import champion, endpoint
from pipeline_steps import monitoring_names
from rul import capture_upload


@pytest.fixture
def aws(monkeypatch):
    for name, value in AWS_TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def test_model_monitor_schedule_follows_the_version_in_service(aws):
    world = World(MODEL_MONITOR_ENVIRONMENT)
    v1, v2 = world.register(1), world.register(2)

    world.expect_schedule(None, world.definition(v1), "create_monitoring_schedule")
    result = world.run(world.set_status(v1, "Approved"))
    assert (result["action"], result["monitoring"]) == ("deployed", "created")
    (created,) = world.params("CreateMonitoringSchedule")
    definition = created["MonitoringScheduleConfig"]["MonitoringJobDefinition"]
    assert definition["RoleArn"] == MODEL_ROLE
    assert definition["BaselineConfig"]["StatisticsResource"]["S3Uri"] == (
        f"s3://{ARTIFACTS}/registry/pipeline/exec-1/DataQualityBaseline/statistics.json"
    )
    assert definition["MonitoringInputs"][0]["EndpointInput"]["EndpointName"] == ENDPOINT
    assert definition["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert definition["MonitoringOutputConfig"]["KmsKeyId"] == KMS
    assert definition["MonitoringAppSpecification"]["ContainerArguments"] == ["--contract", "model-monitor"]

    world.expect_update()
    world.expect_schedule(world.definition(v1), world.definition(v2), "update_monitoring_schedule")
    assert world.run(world.set_status(v2, "Approved"))["monitoring"] == "updated"

    world.expect_schedule(world.definition(v2), None, None)
    result = world.run(event_for(v2, "Approved"))
    assert (result["action"], result["monitoring"]) == ("no_change", "unchanged")
    assert world.mutations() == []


def test_model_monitor_schedule_is_deleted_for_a_version_without_baselines(aws):
    world = World(MODEL_MONITOR_ENVIRONMENT)
    v1, v2 = world.register(1), world.register(2, with_baselines=False)
    world.expect_schedule(None, world.definition(v1), "create_monitoring_schedule")
    world.run(world.set_status(v1, "Approved"))

    world.expect_update()
    world.expect_schedule(world.definition(v1), None, "delete_monitoring_schedule")
    result = world.run(world.set_status(v2, "Approved"))

    assert result["monitoring"].startswith("deleted: v2 has no DriftCheckBaselines")
    assert "DeleteMonitoringSchedule" in world.mutations()


def test_container_capture_mode_configures_the_container_instead_of_sagemaker(aws):
    world = World({**ENVIRONMENT, "DATA_CAPTURE_MODE": "container"})
    v1 = world.register(1)

    result = world.run(world.set_status(v1, "Approved"))

    assert result["action"] == "deployed"
    model = world.params("CreateModel")[0]
    # Network isolation blocks every outbound call of the container, S3 included: the uploader needs it off.
    assert model["EnableNetworkIsolation"] is False
    assert model["VpcConfig"]["Subnets"] == ["subnet-0a1b2c3d", "subnet-0e1f2a3b"]
    assert model["PrimaryContainer"]["Environment"] == {
        serve.CAPTURE_DIR_VARIABLE: endpoint.CONTAINER_CAPTURE_DIR,
        serve.CAPTURE_PERCENTAGE_VARIABLE: "20",
        serve.ENDPOINT_NAME_VARIABLE: ENDPOINT,
        serve.VARIANT_VARIABLE: endpoint.VARIANT_NAME,
        capture_upload.S3_URI_VARIABLE: f"s3://{ARTIFACTS}/datacapture/{ENDPOINT}/",
        capture_upload.KMS_KEY_VARIABLE: KMS,
    }
    (endpoint_config,) = world.params("CreateEndpointConfig")
    assert "DataCaptureConfig" not in endpoint_config  # (moto echoes an empty one back)
    assert endpoint_config["KmsKeyId"] == KMS
    # The uploader accepts the URI; keys continue with SageMaker's <variant>/yyyy/mm/dd/hh/ layout.
    uri = model["PrimaryContainer"]["Environment"][capture_upload.S3_URI_VARIABLE]
    upload = capture_upload.UploadConfig(endpoint_dir=Path("unused"), s3_uri=uri)
    assert (upload.bucket, upload.prefix) == (ARTIFACTS, f"datacapture/{ENDPOINT}/")


def test_switching_capture_mode_deploys_a_new_model_and_config(aws):
    world = World(ENVIRONMENT)
    v1 = world.register(1)
    world.run(world.set_status(v1, "Approved"))
    first = world.serving_config()["EndpointConfigName"]

    world.config = replace(world.config, capture_mode="container")  # the setting changed, then redeployed
    world.expect_update()
    result = world.run(event_for(v1, "Approved"))

    assert (result["action"], result["endpoint"]) == ("deployed", "updated")
    assert world.serving_config()["EndpointConfigName"] != first
    assert world.mutations() == ["CreateModel", "CreateEndpointConfig", "UpdateEndpoint"]


def test_names_shared_with_code_the_function_cannot_import():
    assert set(endpoint.CAPTURE_ENVIRONMENT.values()) == {
        serve.CAPTURE_DIR_VARIABLE,
        serve.CAPTURE_PERCENTAGE_VARIABLE,
        serve.ENDPOINT_NAME_VARIABLE,
        serve.VARIANT_VARIABLE,
        capture_upload.S3_URI_VARIABLE,
        capture_upload.KMS_KEY_VARIABLE,
    }
    assert champion.BASELINES_FOLDER == monitoring_names.BASELINES_FOLDER
    assert champion.STATISTICS_FILE == monitoring_names.STATISTICS_FILE
    assert champion.CONSTRAINTS_FILE == monitoring_names.CONSTRAINTS_FILE
