"""Typed, validated settings of the CDK app, loaded once at the edge (``app.py``).

One frozen pydantic model, nested per concern (project, target account, network, storage, studio,
pipeline, alerts, serving, monitoring, batch, cost). Values come from the ``settings`` key of the CDK
context (cdk.json or ``cdk synth -c settings='{...}'``) and, optionally, a JSON or YAML file named by the
``settings_file`` context key; the context wins over the file. Every field has a type and bounds,
unknown keys are rejected, and a bad value raises :class:`SettingsError` whose message names the field
and the value.

Resource names that other code must know before deployment (bucket, role, pipeline and model package
group names) are derived here, deterministically, in :class:`ResourceNames`: the pipeline definition is
rendered at synth time and refers to the buckets by name, and the KMS key policy refers to the roles by
ARN before they exist.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError, model_validator

from settings.ab_testing import AbTestSettings
from settings.backup import BackupSettings, ReplicationSettings
from settings.mirror import ModelMirrorSettings
from settings.ml import (
    MIN_LINEAR_STEP_PERCENT,
    MIN_SHIFTING_INSTANCES,
    BatchSettings,
    DeploymentStrategy,
    MonitoringSettings,
    PipelineSettings,
    ServingSettings,
)
from settings.names import ResourceNames
from settings.platform import (
    AlertsSettings,
    AwsTarget,
    CostSettings,
    NetworkSettings,
    ProjectSettings,
    SecuritySettings,
    StorageSettings,
    StudioSettings,
    TrackingSettings,
)
from settings.types import (
    MAX_BUCKET_NAME,
    MAX_ROLE_NAME,
    PLACEHOLDER_ACCOUNT,
    PLACEHOLDER_REGION,
    EcrImageUri,
    EmailAddress,
    FrozenModel,
    IamPrincipalArn,
    InstanceCount,
    InstanceType,
    LogRetentionDays,
    ProfileName,
    SettingsError,
    SubnetId,
    VpcEndpointId,
    VpcId,
)


class Settings(FrozenModel):
    """All settings of the app; each stack receives only the sub-model it needs."""

    project: ProjectSettings = ProjectSettings()
    aws: AwsTarget = AwsTarget()
    network: NetworkSettings = NetworkSettings()
    storage: StorageSettings = StorageSettings()
    studio: StudioSettings = StudioSettings()
    pipeline: PipelineSettings = PipelineSettings()
    security: SecuritySettings = SecuritySettings()
    alerts: AlertsSettings = AlertsSettings()
    serving: ServingSettings = ServingSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    batch: BatchSettings = BatchSettings()
    cost: CostSettings = CostSettings()
    tracking: TrackingSettings = TrackingSettings()
    mirror: ModelMirrorSettings = ModelMirrorSettings()
    backup: BackupSettings = BackupSettings()

    @property
    def names(self) -> ResourceNames:
        """The physical resource names derived from the project and the AWS target."""
        return ResourceNames(self.project, self.aws)

    @property
    def allowed_instance_types(self) -> tuple[str, ...]:
        """Instance types the IAM policies let SageMaker jobs and endpoints use (cost guardrail)."""
        types = {
            self.pipeline.processing_instance_type,
            self.pipeline.training_instance_type,
            self.serving.instance_type,
            self.batch.instance_type,
        }
        return tuple(sorted(types))

    @model_validator(mode="after")
    def _serverless_fits(self) -> Settings:
        if self.serving.mode != "serverless":
            return self
        problems = []
        if self.serving.capture_mode != "container":
            problems.append(
                "serving.capture_mode must be 'container': serverless endpoints have no data capture"
            )
        if self.security.data_perimeter:
            problems.append(
                "security.data_perimeter must be false: a serverless endpoint has no VPC configuration, so "
                "it fetches its model and uploads captures outside the S3 endpoint the perimeter requires"
            )
        if self.monitoring.use_model_monitor:
            problems.append("monitoring.use_model_monitor must be false: Model Monitor needs data capture")
        if self.serving.ab_test.enabled:
            problems.append(
                "serving.ab_test.enabled must be false: a serverless endpoint config holds one production "
                "variant, so there is no second variant to send the challenger's share to"
            )
        if problems:
            raise ValueError("serving.mode 'serverless' cannot run as configured: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _names_fit(self) -> Settings:
        names = ResourceNames(self.project, self.aws)
        for bucket in names.buckets():
            if len(bucket) > MAX_BUCKET_NAME:
                raise ValueError(
                    f"bucket name {bucket!r} is longer than {MAX_BUCKET_NAME} characters: "
                    "shorten project.name or project.environment"
                )
        for role in names.roles():
            if len(role) > MAX_ROLE_NAME:
                raise ValueError(f"role name {role!r} is longer than {MAX_ROLE_NAME} characters")
        return self


def _format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "settings"
        lines.append(f"  {field}: {item['msg']} (got {item['input']!r})")
    return "invalid settings:\n" + "\n".join(lines)


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _as_mapping(raw: object, source: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, str):  # `cdk synth -c settings='{...}'` passes a string
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{source}: not valid JSON ({exc})") from exc
    if not isinstance(raw, Mapping):
        raise SettingsError(f"{source}: expected an object, got {raw!r}")
    return dict(raw)


def read_settings_file(path: Path) -> dict[str, Any]:
    """Read a JSON (``.json``) or YAML (``.yaml``/``.yml``) settings file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SettingsError(f"settings_file: cannot read {str(path)!r} ({exc})") from exc
    if path.suffix in {".yaml", ".yml"}:
        import yaml  # only needed for YAML files

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SettingsError(f"settings_file: {str(path)!r} is not valid YAML ({exc})") from exc
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"settings_file: {str(path)!r} is not valid JSON ({exc})") from exc
    return _as_mapping(data, f"settings_file {str(path)!r}")


def load_settings(raw: object = None, settings_file: str | Path | None = None) -> Settings:
    """Validate settings from a context value (dict or JSON string) over an optional settings file."""
    values = read_settings_file(Path(settings_file)) if settings_file else {}
    values = _deep_merge(values, _as_mapping(raw, "settings"))
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(_format_errors(exc)) from exc


__all__ = [
    "MAX_BUCKET_NAME",
    "MAX_ROLE_NAME",
    "MIN_LINEAR_STEP_PERCENT",
    "MIN_SHIFTING_INSTANCES",
    "PLACEHOLDER_ACCOUNT",
    "PLACEHOLDER_REGION",
    "AbTestSettings",
    "AlertsSettings",
    "AwsTarget",
    "BackupSettings",
    "BatchSettings",
    "CostSettings",
    "DeploymentStrategy",
    "EcrImageUri",
    "EmailAddress",
    "FrozenModel",
    "IamPrincipalArn",
    "InstanceCount",
    "InstanceType",
    "LogRetentionDays",
    "ModelMirrorSettings",
    "MonitoringSettings",
    "NetworkSettings",
    "PipelineSettings",
    "ProfileName",
    "ProjectSettings",
    "ReplicationSettings",
    "ResourceNames",
    "SecuritySettings",
    "ServingSettings",
    "Settings",
    "SettingsError",
    "StorageSettings",
    "StudioSettings",
    "SubnetId",
    "TrackingSettings",
    "VpcEndpointId",
    "VpcId",
    "load_settings",
    "read_settings_file",
]
