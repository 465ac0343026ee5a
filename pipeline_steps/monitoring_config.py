"""Everything the monitoring pipeline's definition needs, as one frozen, validated object.

`MonitoringPipelineConfig` holds the names, URIs (captures root, the in-service model's baselines, the
late failure labels, the report prefix), image, role, key and network, plus `monitoring`, the
`settings.MonitoringSettings` it renders from as it is (job size, runtime, the default window: validated
once, by pydantic). Nothing here reads the environment or calls AWS, so rendering stays offline and
deterministic. Each bad resource field raises `ValueError` naming the field and the value.
`local_monitoring_config()` derives a fake-but-well-formed config from the training pipeline's
`local_config()` for the runner and the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from pipeline_steps import monitoring_names as mnames
from pipeline_steps.config import PipelineConfig, local_config
from settings.ml import MonitoringSettings

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
_S3_PREFIX_FIELDS = ("code_uri", "capture_uri", "baseline_uri", "ground_truth_uri")
_KEY_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/-]+/$")


@dataclass(frozen=True)
class MonitoringPipelineConfig:
    """Inputs of the monitoring definition; the URIs and `monitoring`'s values are the parameter defaults."""

    pipeline_name: str
    region: str
    role_arn: str
    artifact_bucket: str
    code_uri: str
    image_uri: str
    endpoint_name: str
    capture_uri: str  # the endpoint's DestinationS3Uri; captures lie under <endpoint>/<variant>/yyyy/...
    baseline_uri: str  # statistics.json and constraints.json of the model in service
    ground_truth_uri: str  # late failure labels (unit, failure_cycle[, event_time])
    monitoring: MonitoringSettings
    output_prefix: str = "monitoring/"  # artifacts-bucket key prefix of the reports
    kms_key_arn: str | None = None
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    network_isolation: bool = True  # the training pipeline's setting: one job network for every pipeline

    def __post_init__(self) -> None:
        if not isinstance(self.monitoring, MonitoringSettings):
            _fail("monitoring", self.monitoring, "must be a MonitoringSettings")
        for name in ("pipeline_name", "endpoint_name"):
            if not _NAME.match(getattr(self, name) or ""):
                _fail(name, getattr(self, name), "must be alphanumeric with hyphens")
        if not self.image_uri:
            _fail("image_uri", self.image_uri, "must not be empty")
        if not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$", self.role_arn):
            _fail("role_arn", self.role_arn, "must be an IAM role ARN")
        for name in _S3_PREFIX_FIELDS:
            value = getattr(self, name)
            if not (isinstance(value, str) and value.startswith("s3://") and value.endswith("/")):
                _fail(name, value, "must be an s3:// prefix ending in '/'")
        if not _KEY_PREFIX.match(self.output_prefix) or self.output_prefix.startswith("/"):
            _fail("output_prefix", self.output_prefix, "must be a key prefix like 'monitoring/'")
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            _fail("subnet_ids", self.subnet_ids, "and security_group_ids must be given together")

    @property
    def max_runtime_seconds(self) -> int:
        """Each window job's stopping condition, from `monitoring.max_runtime_minutes`."""
        return self.monitoring.max_runtime_minutes * 60

    @property
    def report_prefix_uri(self) -> str:
        """The S3 prefix the reports are written under, in the artifacts bucket."""
        return f"s3://{self.artifact_bucket}/{self.output_prefix}"


def _fail(field: str, value: object, problem: str) -> None:
    raise ValueError(f"MonitoringPipelineConfig.{field}={value!r} {problem}")


def champion_baselines_uri(champion_uri: str) -> str:
    """Where deploy-on-approval (and `registry approve` locally) copies the in-service baselines."""
    return f"{champion_uri.rstrip('/')}/{mnames.BASELINES_FOLDER}"


def from_training_config(
    training: PipelineConfig,
    *,
    pipeline_name: str,
    endpoint_name: str,
    capture_uri: str,
    ground_truth_uri: str,
) -> dict[str, Any]:
    """The fields the monitoring pipeline shares with the training pipeline (role, image, code, network)."""
    return {
        "pipeline_name": pipeline_name,
        "region": training.region,
        "role_arn": training.role_arn,
        "artifact_bucket": training.artifact_bucket,
        "code_uri": training.code_uri,
        "image_uri": training.image_uri,
        "endpoint_name": endpoint_name,
        "capture_uri": capture_uri,
        "baseline_uri": champion_baselines_uri(training.champion_uri),
        "ground_truth_uri": ground_truth_uri,
        "kms_key_arn": training.kms_key_arn,
        "subnet_ids": training.subnet_ids,
        "security_group_ids": training.security_group_ids,
        "network_isolation": training.network_isolation,
    }


def local_monitoring_config(
    training: PipelineConfig | None = None, **overrides: object
) -> MonitoringPipelineConfig:
    """A well-formed config beside the local training config: same bucket, role, image and code.

    `overrides` names MonitoringPipelineConfig fields or MonitoringSettings fields (which build a
    MonitoringSettings, so pydantic checks them); the rest are the settings' defaults.
    """
    training = training or local_config()
    bucket = training.artifact_bucket
    values = from_training_config(
        training,
        pipeline_name=f"{training.pipeline_name}-monitoring",
        endpoint_name="turbofan-rul-local",
        capture_uri=f"s3://{bucket}/datacapture/",
        ground_truth_uri=f"s3://{bucket}/ground-truth/",
    )
    known = {item.name for item in fields(MonitoringPipelineConfig)}
    settings_fields = set(MonitoringSettings.model_fields)
    unknown = sorted(set(overrides) - known - settings_fields)
    if unknown:
        raise ValueError(f"local_monitoring_config: unknown field(s) {', '.join(unknown)}")
    monitoring_values = {key: value for key, value in overrides.items() if key in settings_fields}
    values["monitoring"] = MonitoringSettings(**monitoring_values)  # type: ignore[arg-type]
    values.update({key: value for key, value in overrides.items() if key in known})
    return MonitoringPipelineConfig(**values)
