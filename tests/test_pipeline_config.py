"""The pipeline configurations: resources plus the settings models, each setting spelled once.

`PipelineConfig` (and the batch and monitoring configurations) hold deploy-time resources and the
settings models they render from, never copies of their fields: these tests check the resource checks,
that setting overrides go through pydantic, that every field has a reader in the builders, and that a
renamed parameter is refused with its new name.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from local_runner.params_check import UsageError, check_parameters, declared_parameters
from pipeline_steps import names
from pipeline_steps.batch_config import BatchPipelineConfig, local_batch_config
from pipeline_steps.config import PipelineConfig, local_config
from pipeline_steps.monitoring_config import MonitoringPipelineConfig, local_monitoring_config
from pipeline_steps.parameters import declared_requests
from settings import (
    BatchSettings,
    MonitoringSettings,
    PipelineSettings,
    ServingSettings,
    SettingsError,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[1]
BUILDERS = ROOT / "pipeline_steps"
CONFIG_MODULES = {"config.py", "batch_config.py", "monitoring_config.py"}


def test_local_config_is_well_formed():
    config = local_config()
    assert config.account == "000000000000" and config.region == "us-east-1"
    assert config.network_isolation is True and not config.uses_vpc
    assert config.pipeline == PipelineSettings() and config.serving == ServingSettings()  # the defaults


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pipeline_name", ""),
        ("pipeline_name", "has space"),
        ("region", "useast1"),
        ("role_arn", "my-role"),
        ("artifact_bucket", "s3://bucket"),
        ("data_uri", "/local/raw/"),
        ("code_uri", "s3://bucket/code"),
        ("image_uri", ""),
        ("model_package_group_name", ""),
        ("kms_key_arn", "alias/key"),
        ("subnet_ids", ("subnet-1",)),
        ("champion_tolerance", -1.0),
        ("approval_status", "Maybe"),
        ("cache_expiry", "30 days"),
        ("subset", "FD009"),
        ("data_version", "has space"),
        ("pipeline", {"model_family": "gbm"}),  # the settings model, not a dict of its values
    ],
)
def test_config_validation_names_the_field_and_value(field, value):
    with pytest.raises(ValueError, match=rf"PipelineConfig\.{field}=") as error:
        local_config(**{field: value})
    assert repr(value) in str(error.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tuning_max_jobs", 0),
        ("tuning_max_parallel_jobs", 7),
        ("rmse_threshold", -1.0),
        ("model_family", "xgboost"),
        ("max_runtime_minutes", 0),
        ("max_runtime_minutes", 20_000),
        ("training_instance_count", 2),
        ("spot_max_wait_minutes", 1),
    ],
)
def test_settings_overrides_are_checked_by_the_settings_model(field, value):
    """local_config's PipelineSettings fields build a PipelineSettings: pydantic's bounds, not copies."""
    with pytest.raises(ValidationError, match=field):
        local_config(**{field: value})


def test_local_config_takes_a_settings_model_or_its_fields_not_both():
    settings = PipelineSettings(tuning_max_jobs=3, model_family="cnn")
    assert local_config(pipeline=settings).pipeline is settings
    assert local_config(tuning_max_jobs=3, model_family="cnn").pipeline == settings
    with pytest.raises(ValueError, match="not both"):
        local_config(pipeline=settings, model_family="lstm")


def test_local_config_rejects_unknown_fields():
    with pytest.raises(ValueError, match="no_such_field"):
        local_config(no_such_field=1)


# --- one reader per field -------------------------------------------------------------------------------


def _builder_sources() -> str:
    """The pipeline builders' code (not the configuration modules that declare the fields)."""
    return "\n".join(
        path.read_text() for path in sorted(BUILDERS.glob("*.py")) if path.name not in CONFIG_MODULES
    )


@pytest.mark.parametrize("kind", [PipelineConfig, BatchPipelineConfig, MonitoringPipelineConfig])
def test_every_config_field_is_read_by_a_builder(kind):
    sources = _builder_sources()
    unread = [
        field.name
        for field in dataclasses.fields(kind)
        if not re.search(rf"\bconfig\.{field.name}\b", sources)
    ]
    assert unread == []


def test_no_config_field_copies_a_setting():
    """A field named like a settings field would be a second copy of that setting."""
    settings = {
        name
        for model in (PipelineSettings, ServingSettings, MonitoringSettings, BatchSettings)
        for name in model.model_fields
    }
    for kind in (PipelineConfig, BatchPipelineConfig, MonitoringPipelineConfig):
        copies = {field.name for field in dataclasses.fields(kind)} & settings
        # The job network's isolation is the training pipeline's setting, handed to the other two.
        assert copies <= ({"network_isolation"} if kind is not PipelineConfig else set()), kind


def test_parameters_are_spelled_as_the_settings_fields_they_default_to():
    spelled = {
        re.sub(r"_(\w)", lambda m: m.group(1).upper(), f"_{name}") for name in PipelineSettings.model_fields
    }
    defaults = {item["Name"] for item in declared_requests(local_config())}
    assert {names.TUNING_MAX_JOBS, names.TUNING_MAX_PARALLEL_JOBS, names.RMSE_THRESHOLD} <= spelled
    settings_backed = defaults - {
        names.INPUT_DATA_URI,
        names.SUBSET,
        names.DATA_VERSION,
        names.REGISTERED_DATA_VERSION,
        names.CHAMPION_TOLERANCE,
        names.CHAMPION_MODEL_URI,
        names.MODEL_APPROVAL_STATUS,
    }
    assert settings_backed <= spelled


def test_the_parameter_defaults_are_the_settings_values():
    settings = PipelineSettings(tuning_max_jobs=9, tuning_max_parallel_jobs=3, rmse_threshold=17.5)
    declared = {
        item["Name"]: item["DefaultValue"] for item in declared_requests(local_config(pipeline=settings))
    }
    assert declared[names.TUNING_MAX_JOBS] == 9 and declared[names.TUNING_MAX_PARALLEL_JOBS] == 3
    assert declared[names.RMSE_THRESHOLD] == 17.5
    assert declared[names.PROCESSING_INSTANCE_TYPE] == settings.processing_instance_type


def test_batch_and_monitoring_configs_take_their_settings_models():
    batch = local_batch_config(maintenance_threshold_cycles=12, max_runtime_minutes=40)
    assert batch.batch == BatchSettings(maintenance_threshold_cycles=12, max_runtime_minutes=40)
    assert batch.max_runtime_seconds == 2400
    monitoring = local_monitoring_config(window_hours=3)
    assert monitoring.monitoring.window_hours == 3 and monitoring.max_runtime_seconds == 30 * 60
    with pytest.raises(ValidationError, match="maintenance_threshold_cycles"):
        local_batch_config(maintenance_threshold_cycles=-1)
    with pytest.raises(ValueError, match=r"BatchPipelineConfig\.batch="):
        local_batch_config(batch={"volume_gb": 5})


# --- renamed names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new"), sorted(names.RENAMED_PARAMETERS.items()))
def test_the_local_runner_refuses_a_renamed_parameter_naming_the_new_one(old, new):
    declared, bounds = declared_parameters()
    assert new in {spec["Name"] for spec in declared} and old not in {spec["Name"] for spec in declared}
    with pytest.raises(UsageError, match=f"parameter '{old}' was renamed: use {new}"):
        check_parameters([(old, "2")], declared, bounds)


@pytest.mark.parametrize(("old", "new"), [("max_rmse", "rmse_threshold"), ("max_score", "score_threshold")])
def test_a_renamed_settings_key_is_refused_naming_the_new_one(old, new):
    with pytest.raises(SettingsError, match=f"{old} was renamed to {new}"):
        load_settings({"pipeline": {old: 10.0}})
