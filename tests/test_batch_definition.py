"""The batch-scoring pipeline's definition rendered offline, its config and its settings."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from pipeline_steps import batch_names as bnames
from pipeline_steps.batch_config import BatchPipelineConfig, local_batch_config
from pipeline_steps.batch_pipeline import render_batch_definition
from pipeline_steps.names import CODE_INPUT, PROCESSING_INSTANCE_TYPE
from settings import BatchSettings, Settings, SettingsError, load_settings

SUBNETS = ("subnet-0123456789abcdef0", "subnet-0123456789abcdef1")
GROUPS = ("sg-0123456789abcdef0",)
KEY = "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture(scope="module")
def definition() -> dict:
    config = local_batch_config(
        subnet_ids=SUBNETS, security_group_ids=GROUPS, kms_key_arn=KEY, max_runtime_minutes=40
    )
    return json.loads(render_batch_definition(config))


@pytest.fixture(scope="module")
def step(definition) -> dict:
    (only,) = definition["Steps"]
    return only


def test_one_uncached_processing_step(step):
    assert step["Name"] == bnames.SCORE_STEP and step["Type"] == "Processing"
    assert "DependsOn" not in step and "CacheConfig" not in step  # the fleet changes under the same prefix


def test_parameters_are_declared_once_with_their_defaults_and_all_used(definition):
    declared = {item["Name"]: item for item in definition["Parameters"]}
    assert tuple(declared) == bnames.PARAMETER_NAMES
    assert declared[bnames.FLEET_DATA_URI]["DefaultValue"] == "s3://local-data/fleet/"
    assert declared[bnames.CHAMPION_URI]["DefaultValue"] == "s3://local-artifacts/champion/"
    threshold = declared[bnames.MAINTENANCE_THRESHOLD_CYCLES]
    assert (
        threshold["Type"] == "Integer"
        and threshold["DefaultValue"] == BatchSettings().maintenance_threshold_cycles
    )
    assert declared[PROCESSING_INSTANCE_TYPE]["DefaultValue"] == "ml.m5.large"
    text = json.dumps(definition["Steps"])
    for name in declared:
        assert f'"Parameters.{name}"' in text, name


def test_the_job_reads_the_fleet_and_the_champion_and_writes_per_execution(step):
    arguments = step["Arguments"]
    inputs = {item["InputName"]: item["S3Input"] for item in arguments["ProcessingInputs"]}
    assert tuple(inputs) == bnames.INPUT_NAMES
    assert inputs[bnames.FLEET_INPUT]["S3Uri"] == {"Get": f"Parameters.{bnames.FLEET_DATA_URI}"}
    assert inputs[bnames.FLEET_INPUT]["LocalPath"] == bnames.FLEET_PATH
    assert inputs[bnames.CHAMPION_INPUT]["S3Uri"] == {"Get": f"Parameters.{bnames.CHAMPION_URI}"}
    assert inputs[bnames.CHAMPION_INPUT]["LocalPath"] == bnames.CHAMPION_PATH
    assert inputs[CODE_INPUT]["S3Uri"].endswith(f"src/{bnames.BATCH_SCRIPT}")
    (output,) = arguments["ProcessingOutputConfig"]["Outputs"]
    assert output["OutputName"] == bnames.SCORES_OUTPUT
    assert output["S3Output"]["LocalPath"] == bnames.SCORES_PATH
    assert output["S3Output"]["S3Uri"]["Std:Join"]["Values"] == [
        "s3:/",
        "local-artifacts",
        "batch",
        {"Get": "Execution.PipelineExecutionId"},
    ]
    args = arguments["AppSpecification"]["ContainerArguments"]
    threshold = args[args.index("--threshold-cycles") + 1]
    assert threshold["Std:Join"]["Values"] == [{"Get": f"Parameters.{bnames.MAINTENANCE_THRESHOLD_CYCLES}"}]
    assert args[args.index("--execution-id") + 1] == {"Get": "Execution.PipelineExecutionId"}


def test_the_job_is_isolated_encrypted_in_the_vpc_and_bounded_in_time(step):
    arguments = step["Arguments"]
    network = arguments["NetworkConfig"]
    assert network["EnableNetworkIsolation"] is True
    assert network["EnableInterContainerTrafficEncryption"] is True
    assert network["VpcConfig"] == {"Subnets": list(SUBNETS), "SecurityGroupIds": list(GROUPS)}
    assert arguments["StoppingCondition"] == {"MaxRuntimeInSeconds": 2400}
    cluster = arguments["ProcessingResources"]["ClusterConfig"]
    assert cluster["VolumeKmsKeyId"] == KEY and cluster["InstanceCount"] == 1
    assert cluster["InstanceType"] == {"Get": f"Parameters.{PROCESSING_INSTANCE_TYPE}"}
    assert arguments["ProcessingOutputConfig"]["KmsKeyId"] == KEY
    assert arguments["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        f"/opt/ml/processing/input/code/{bnames.BATCH_SCRIPT}",
    ]


def test_rendering_is_deterministic():
    config = local_batch_config()
    assert render_batch_definition(config) == render_batch_definition(config)


@pytest.mark.parametrize(
    ("field", "value"),
    [("fleet_uri", "s3://bucket/no-slash"), ("role_arn", "role"), ("subnet_ids", SUBNETS),
     ("output_prefix", "/x/")],
)  # fmt: skip
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=f"BatchPipelineConfig.{field}="):
        local_batch_config(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("maintenance_threshold_cycles", -1), ("maintenance_threshold_cycles", 1001),
     ("max_runtime_minutes", 1)],
)  # fmt: skip
def test_settings_overrides_are_checked_by_the_batch_settings(field, value):
    with pytest.raises(ValidationError, match=field):
        local_batch_config(**{field: value})


def test_config_type_and_unknown_overrides():
    assert isinstance(local_batch_config(), BatchPipelineConfig)
    with pytest.raises(ValueError, match="unknown field"):
        local_batch_config(fleet="s3://x/")


def test_batch_settings_defaults_and_bounds():
    settings = Settings()
    assert settings.batch.enabled is True and settings.batch.schedule_cron == "cron(0 4 * * ? *)"
    assert settings.batch.instance_type in settings.allowed_instance_types  # the IAM cost guardrail
    assert settings.names.batch_pipeline.endswith("-batch")
    assert BatchSettings(schedule_cron="cron(30 23 * * ? *)").schedule_cron.startswith("cron(30")


@pytest.mark.parametrize(
    ("values", "field"),
    [({"schedule_cron": "cron(0 * ? * * *)"}, "batch.schedule_cron"),  # hourly is not daily
     ({"instance_type": "m5.large"}, "batch.instance_type"),
     ({"max_runtime_minutes": 2}, "batch.max_runtime_minutes"),
     ({"maintenance_threshold_cycles": 5000}, "batch.maintenance_threshold_cycles")],
)  # fmt: skip
def test_batch_settings_reject_bad_values_naming_the_field(values, field):
    with pytest.raises(SettingsError, match=field):
        load_settings({"batch": values})
