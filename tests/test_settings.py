"""Settings model: defaults load, bad values stop with an error naming the field and the value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from settings import PLACEHOLDER_ACCOUNT, PLACEHOLDER_REGION, Settings, SettingsError, load_settings


def test_defaults_load_without_context() -> None:
    settings = load_settings()
    assert settings == Settings()
    assert (settings.aws.account, settings.aws.region) == (PLACEHOLDER_ACCOUNT, PLACEHOLDER_REGION)
    assert settings.network.mode == "create"
    assert settings.studio.user_profiles
    assert settings.serving.latency_alarm_threshold_ms == 200


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError):
        settings.project.name = "other"  # type: ignore[misc]


def test_bucket_names_are_deterministic_from_project_account_region() -> None:
    settings = load_settings(
        {"project": {"name": "rul", "environment": "prod"}, "aws": {"account": "123456789012"}}
    )
    assert settings.names.data_bucket == "rul-prod-data-123456789012-eu-west-1"
    assert settings.names.artifacts_bucket == "rul-prod-artifacts-123456789012-eu-west-1"
    assert load_settings(settings.model_dump()).names.artifacts_bucket == settings.names.artifacts_bucket


def test_allowed_instance_types_cover_pipeline_and_serving() -> None:
    settings = load_settings({"pipeline": {"training_instance_type": "ml.c5.2xlarge"}})
    assert settings.allowed_instance_types == ("ml.c5.2xlarge", "ml.m5.large", "ml.m5.xlarge")


# (override, the field the message names, the value or words it shows)
BAD_VALUES = [
    ({"network": {"cidr": "10.0.0.0/33"}}, "network.cidr", "10.0.0.0/33"),
    ({"network": {"cidr": "not-a-cidr"}}, "network.cidr", "not-a-cidr"),
    ({"network": {"cidr": "8.8.0.0/16"}}, "network.cidr", "8.8.0.0/16"),
    ({"pipeline": {"training_instance_type": "m5.large"}}, "pipeline.training_instance_type", "m5.large"),
    ({"pipeline": {"processing_instance_type": "ml.m5"}}, "pipeline.processing_instance_type", "ml.m5"),
    ({"serving": {"instance_type": "ml.m5.huge"}}, "serving.instance_type", "ml.m5.huge"),
    ({"studio": {"user_profiles": []}}, "studio.user_profiles", "[]"),
    ({"studio": {"user_profiles": ["bad name!"]}}, "studio.user_profiles.0", "bad name!"),
    ({"studio": {"idle_shutdown_minutes": 5}}, "studio.idle_shutdown_minutes", "5"),
    ({"pipeline": {"rmse_threshold": 0}}, "pipeline.rmse_threshold", "0"),
    ({"pipeline": {"rmse_threshold": 500}}, "pipeline.rmse_threshold", "500"),
    ({"pipeline": {"score_threshold": -1}}, "pipeline.score_threshold", "-1"),
    ({"pipeline": {"tuning_max_jobs": 0}}, "pipeline.tuning_max_jobs", "0"),
    (
        {"pipeline": {"schedule_expression": "every monday"}},
        "pipeline.schedule_expression",
        "every monday",
    ),
    ({"aws": {"account": "12345"}}, "aws.account", "12345"),
    ({"aws": {"account": "abcdefghijkl"}}, "aws.account", "abcdefghijkl"),
    ({"aws": {"region": "Europe"}}, "aws.region", "Europe"),
    ({"serving": {"data_capture_percent": 101}}, "serving.data_capture_percent", "101"),
    ({"serving": {"data_capture_percent": -1}}, "serving.data_capture_percent", "-1"),
    ({"serving": {"deployment": {"type": "all-at-once"}}}, "serving.deployment.type", "all-at-once"),
    ({"serving": {"deployment": {"traffic_percent": 0}}}, "serving.deployment.traffic_percent", "0"),
    ({"serving": {"latency_alarm_threshold_ms": 0}}, "serving.latency_alarm_threshold_ms", "0"),
    ({"serving": {"data_capture_percent": 0}}, "serving.data_capture_percent", "0"),
    ({"serving": {"instance_count": 1}}, "instance_count", "got 1"),
    (
        {"serving": {"deployment": {"type": "linear", "traffic_percent": 5}}},
        "serving.deployment",
        "got 5",
    ),
    ({"serving": {"deployment": {"wait_minutes": 61}}}, "serving.deployment.wait_minutes", "61"),
    ({"monitoring": {"drift_metric": "psi"}}, "monitoring.drift_metric", "psi"),
    ({"monitoring": {"schedule_cron": "rate(1 hour)"}}, "monitoring.schedule_cron", "rate(1 hour)"),
    ({"monitoring": {"new_data_debounce_seconds": 10}}, "monitoring.new_data_debounce_seconds", "10"),
    ({"monitoring": {"raw_data_suffixes": ["txt"]}}, "monitoring.raw_data_suffixes.0", "txt"),
    ({"monitoring": {"log_retention_days": 10}}, "monitoring.log_retention_days", "10"),
    ({"alerts": {"emails": ["not-an-email"]}}, "alerts.emails.0", "not-an-email"),
    ({"cost": {"monthly_budget_usd": 0}}, "cost.monthly_budget_usd", "0"),
    ({"project": {"name": "Bad_Name"}}, "project.name", "Bad_Name"),
    (
        {"pipeline": {"job_image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/jobs:latest"}},
        "pipeline.job_image_uri",
        "'latest' is not a pinned image",
    ),
    (
        {"pipeline": {"job_image_uri": "docker.io/library/python:3.11"}},
        "pipeline.job_image_uri",
        "docker.io/library/python:3.11",
    ),
    ({"security": {"approver_arns": ["alice"]}}, "security.approver_arns.0", "alice"),
    (
        {"security": {"key_admin_arns": ["arn:aws:iam::12345:role/admin"]}},
        "security.key_admin_arns.0",
        "arn:aws:iam::12345:role/admin",
    ),
    ({"security": {"cdk_bootstrap_qualifier": "Bad-Q"}}, "security.cdk_bootstrap_qualifier", "Bad-Q"),
]


@pytest.mark.parametrize(("override", "field", "value"), BAD_VALUES)
def test_bad_value_names_field_and_value(override: dict, field: str, value: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(override)
    message = str(error.value)
    assert field in message, message
    assert value in message, message


def test_serving_defaults_allow_blue_green_traffic_shifting() -> None:
    """The deploy-on-approval function needs >= 2 instances, capture >= 1 %, and seconds for the waits."""
    serving = load_settings().serving
    assert serving.instance_count == 2
    assert serving.data_capture_percent >= 1
    assert (serving.deployment.wait_seconds, serving.deployment.termination_wait_seconds) == (600, 300)
    linear = load_settings({"serving": {"deployment": {"type": "linear", "traffic_percent": 10}}})
    assert linear.serving.deployment.traffic_percent == 10
    canary = load_settings({"serving": {"deployment": {"type": "canary", "traffic_percent": 5}}})
    assert canary.serving.deployment.traffic_percent == 5


def test_monitoring_defaults_are_hourly_with_a_psi_drift_alarm() -> None:
    monitoring = load_settings().monitoring
    assert monitoring.schedule_cron == "cron(0 * ? * * *)"
    assert (monitoring.drift_metric, monitoring.drift_threshold) == ("MaxPSI", 0.2)
    assert monitoring.raw_data_suffixes == (".txt",)


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(SettingsError, match=r"pipeline\.instance_typo"):
        load_settings({"pipeline": {"instance_typo": "ml.m5.large"}})


def test_tuning_parallelism_within_budget() -> None:
    with pytest.raises(SettingsError, match="tuning_max_parallel_jobs"):
        load_settings({"pipeline": {"tuning_max_jobs": 2, "tuning_max_parallel_jobs": 3}})


def test_duplicate_user_profiles_rejected() -> None:
    with pytest.raises(SettingsError, match=r"studio\.user_profiles"):
        load_settings({"studio": {"user_profiles": ["alice", "alice"]}})


IMPORTED = {
    "mode": "import",
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "availability_zones": ["eu-west-1a", "eu-west-1b"],
}


def test_import_vpc_mode_accepts_ids() -> None:
    settings = load_settings({"network": IMPORTED})
    assert settings.network.vpc_id == IMPORTED["vpc_id"]


@pytest.mark.parametrize(
    ("missing", "match"),
    [
        ("vpc_id", "requires vpc_id"),
        ("subnet_ids", "subnet_ids"),
        ("availability_zones", "availability_zones"),
    ],
)
def test_import_vpc_mode_requires_ids(missing: str, match: str) -> None:
    network = {key: value for key, value in IMPORTED.items() if key != missing}
    with pytest.raises(SettingsError, match=match):
        load_settings({"network": network})


def test_import_vpc_mode_rejects_bad_ids() -> None:
    with pytest.raises(SettingsError, match=r"network\.subnet_ids\.0.*subnet-XYZ"):
        load_settings({"network": {**IMPORTED, "subnet_ids": ["subnet-XYZ", "subnet-0123456789abcdef1"]}})


def test_create_mode_rejects_import_ids() -> None:
    with pytest.raises(SettingsError, match="only allowed with mode 'import'"):
        load_settings({"network": {"vpc_id": "vpc-0123456789abcdef0"}})


def test_context_json_string_is_parsed() -> None:
    assert load_settings('{"cost": {"monthly_budget_usd": 42}}').cost.monthly_budget_usd == 42


def test_context_invalid_json_is_reported() -> None:
    with pytest.raises(SettingsError, match="not valid JSON"):
        load_settings("{not json")


def test_settings_file_json_and_yaml_with_context_override(tmp_path: Path) -> None:
    json_file = tmp_path / "settings.json"
    json_file.write_text(json.dumps({"cost": {"monthly_budget_usd": 10}, "project": {"environment": "test"}}))
    yaml_file = tmp_path / "settings.yaml"
    yaml_file.write_text("cost:\n  monthly_budget_usd: 20\nstudio:\n  user_profiles: [alice, bob]\n")

    from_json = load_settings({"cost": {"monthly_budget_usd": 30}}, json_file)
    assert from_json.cost.monthly_budget_usd == 30  # context wins over the file
    assert from_json.project.environment == "test"  # the rest of the file is kept
    from_yaml = load_settings(None, yaml_file)
    assert from_yaml.studio.user_profiles == ("alice", "bob")


def test_missing_settings_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="settings_file"):
        load_settings(None, tmp_path / "absent.json")


def test_longest_allowed_names_still_fit_bucket_and_role_limits() -> None:
    settings = load_settings(
        {
            "project": {"name": "abcdefghijklmnop", "environment": "abcdef"},
            "aws": {"region": "ap-southeast-2"},
        }
    )
    assert max(len(name) for name in settings.names.buckets()) <= 63
    assert max(len(name) for name in settings.names.roles()) <= 64
    with pytest.raises(SettingsError, match=r"project\.name"):
        load_settings({"project": {"name": "abcdefghijklmnopq"}})


@pytest.mark.parametrize(
    "uri",
    [
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/rul-jobs@sha256:" + "0" * 64,
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/rul-jobs:2026-12-03.1",
    ],
)
def test_a_pinned_job_image_is_accepted(uri: str) -> None:
    assert load_settings({"pipeline": {"job_image_uri": uri}}).pipeline.job_image_uri == uri


def test_role_names_carry_the_region_so_two_regions_do_not_collide() -> None:
    ireland = load_settings({"aws": {"region": "eu-west-1"}}).names
    virginia = load_settings({"aws": {"region": "us-east-1"}}).names
    assert set(ireland.roles()).isdisjoint(virginia.roles())
    assert all(name.endswith("-eu-west-1") for name in ireland.roles())


def test_persona_principals_accept_role_user_and_root_arns() -> None:
    security = load_settings(
        {
            "security": {
                "approver_arns": ["arn:aws:iam::123456789012:role/ml-approvers"],
                "operator_arns": ["arn:aws:iam::123456789012:user/ops/sam", "arn:aws:iam::123456789012:root"],
            }
        }
    ).security
    assert security.approver_arns == ("arn:aws:iam::123456789012:role/ml-approvers",)
    assert len(security.operator_arns) == 2
