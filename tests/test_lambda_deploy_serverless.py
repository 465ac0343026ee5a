"""Serverless serving (`serving.mode: serverless`): what the deploy function asks SageMaker for, and what
the settings and the function refuse.

AWS's serverless exclusions (no VPC configuration, network isolation, data capture, or second variant)
shape the requests: a model without VpcConfig, a variant with ServerlessConfig and no instance fields, no
volume key, no DataCaptureConfig; an update is blue/green all at once under the rollback alarms. The
combinations that cannot work are refused before any call, naming the setting.
"""

from __future__ import annotations

import pytest
from botocore.stub import ANY
from deploy_world import ACCOUNT, AWS_TEST_CREDENTIALS, ENDPOINT, ENVIRONMENT, REGION, World
from moto import mock_aws

from lambdas.deploy_on_approval import endpoint
from lambdas.deploy_on_approval.config import ConfigError, load_config
from settings import SettingsError, load_settings

SERVERLESS = {
    **ENVIRONMENT,
    "SERVING_MODE": "serverless",
    "SERVERLESS_MEMORY_MB": "3072",
    "SERVERLESS_MAX_CONCURRENCY": "8",
    "DATA_CAPTURE_MODE": "container",
    "INSTANCE_COUNT": "1",  # ignored: a serverless fleet has no instances
}


@pytest.fixture
def aws(monkeypatch):
    for name, value in AWS_TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def test_a_serverless_endpoint_has_no_vpc_no_instances_and_no_volume_key(aws):
    world = World(SERVERLESS)
    v1 = world.register(1)

    result = world.run(world.set_status(v1, "Approved"))

    assert result["action"] == "deployed", result
    (model,) = world.params("CreateModel")
    assert "VpcConfig" not in model and "EnableNetworkIsolation" not in model
    (config,) = world.params("CreateEndpointConfig")
    (variant,) = config["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 8}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    assert "KmsKeyId" not in config and "DataCaptureConfig" not in config


def test_a_serverless_update_shifts_all_at_once_under_the_rollback_alarms(aws):
    world = World(SERVERLESS)
    v1, v2 = world.register(1), world.register(2)
    world.run(world.set_status(v1, "Approved"))
    world.stubber.add_response(
        "update_endpoint",
        {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"},
        {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": ANY,
            "RetainAllVariantProperties": False,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 600},
                    "TerminationWaitInSeconds": 300,
                },
                "AutoRollbackConfiguration": {
                    "Alarms": [
                        {"AlarmName": "turbofan-rul-test-5xx"},
                        {"AlarmName": "turbofan-rul-test-p99-latency"},
                    ]
                },
            },
        },
    )

    result = world.run(world.set_status(v2, "Approved"))

    assert (result["action"], result["endpoint"]) == ("deployed", "updated"), result


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"DATA_CAPTURE_MODE": "sagemaker"}, "DATA_CAPTURE_MODE"),
        ({"SERVERLESS_MEMORY_MB": "1500"}, "SERVERLESS_MEMORY_MB"),
        ({"SERVERLESS_MAX_CONCURRENCY": "500"}, "SERVERLESS_MAX_CONCURRENCY"),
        ({"SERVING_MODE": "lambda"}, "SERVING_MODE"),
    ],
)
def test_the_function_refuses_what_serverless_cannot_do(change, named):
    with pytest.raises(ConfigError, match=named):
        load_config({**SERVERLESS, **change})


def test_instances_stay_the_default_with_capacity_shifting():
    config = load_config(ENVIRONMENT)
    assert config.serverless is None
    routing = endpoint.deployment_config(config)["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "CANARY"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"serving": {"mode": "serverless", "capture_mode": "sagemaker"}}, "serving.capture_mode"),
        ({"serving": {"mode": "serverless"}}, "security.data_perimeter"),
        (
            {
                "serving": {"mode": "serverless"},
                "security": {"data_perimeter": False},
                "monitoring": {"use_model_monitor": True},
            },
            "monitoring.use_model_monitor",
        ),
        ({"serving": {"mode": "serverless", "serverless_memory_mb": 1000}}, "serverless_memory_mb"),
    ],
)
def test_settings_refuse_combinations_serverless_cannot_run(settings, named):
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        load_settings(settings)


def test_a_serverless_setting_with_the_perimeter_off_is_accepted_without_instances():
    settings = load_settings(
        {"serving": {"mode": "serverless", "instance_count": 1}, "security": {"data_perimeter": False}}
    )
    assert (settings.serving.serverless_memory_mb, settings.serving.serverless_max_concurrency) == (2048, 5)
