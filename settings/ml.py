"""Settings of the ML lifecycle: pipeline, deployment, serving, monitoring, batch scoring."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from lambdas.deploy_on_approval.config import MIN_SHIFTING_INSTANCES
from settings.ab_testing import AbTestSettings
from settings.types import (
    EcrImageUri,
    FrozenModel,
    InstanceCount,
    InstanceType,
    LogRetentionDays,
)

# Former PipelineSettings keys -> current ones, named in the error a settings file with an old key gets.
RENAMED_PIPELINE_SETTINGS = {"max_rmse": "rmse_threshold", "max_score": "score_threshold"}


class PipelineSettings(FrozenModel):
    """Job sizes, schedule, quality gate and tuning budget of the training pipeline."""

    processing_instance_type: InstanceType = "ml.m5.xlarge"
    processing_instance_count: InstanceCount = 1
    training_instance_type: InstanceType = "ml.m5.xlarge"
    # train.py fits on one node (the SDK's SKLearn estimator refuses more); kept as a setting so the cost
    # guardrail is explicit and the definition reads it.
    training_instance_count: int = Field(default=1, ge=1, le=1)
    schedule_expression: str | None = Field(
        default="cron(0 3 ? * MON *)",
        pattern=r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))$",
    )
    # The quality gate: test RMSE and PHM08 score per 100 units a model must not exceed to be registered.
    rmse_threshold: float = Field(default=20.0, gt=0, le=200)
    score_threshold: float = Field(default=500.0, gt=0, le=1_000_000)
    tuning_max_jobs: int = Field(default=6, ge=1, le=50)
    tuning_max_parallel_jobs: int = Field(default=2, ge=1, le=10)
    max_runtime_minutes: int = Field(default=60, ge=5, le=1440)
    # Model family the deployed pipeline tunes; each family has its own search space in the definition.
    model_family: Literal["gbm", "cnn", "lstm"] = "gbm"
    network_isolation: bool = True  # jobs get no network besides their S3 channels (pipeline default)
    # Bring your own job image instead of the one `cdk deploy` builds from containers/Dockerfile: it must be
    # pinned, by digest (`...@sha256:<64 hex>`) or by a tag other than `latest` in a repository whose tags
    # are immutable. None: the CDK Docker image asset (content-addressed tag) is used everywhere.
    job_image_uri: EcrImageUri | None = None
    # Managed spot training for the tuning trials and the refit (docs/spot-training.md): jobs checkpoint and
    # resume after an interruption; the wait (queueing for capacity plus running) must cover the runtime.
    spot_training: bool = False
    spot_max_wait_minutes: int = Field(default=120, ge=5, le=10_080)

    @model_validator(mode="before")
    @classmethod
    def _no_renamed_keys(cls, values: object) -> object:
        if isinstance(values, dict):
            for old, new in RENAMED_PIPELINE_SETTINGS.items():
                if old in values:
                    raise ValueError(f"{old} was renamed to {new}")
        return values

    @field_validator("job_image_uri")
    @classmethod
    def _image_is_pinned(cls, value: str | None) -> str | None:
        if value is not None and value.endswith(":latest"):
            raise ValueError(
                "the mutable tag 'latest' is not a pinned image: use a digest or an immutable tag"
            )
        return value

    @model_validator(mode="after")
    def _spot_wait_covers_runtime(self) -> PipelineSettings:
        if self.spot_training and self.spot_max_wait_minutes < self.max_runtime_minutes:
            raise ValueError(
                f"spot_max_wait_minutes ({self.spot_max_wait_minutes}) is less than max_runtime_minutes "
                f"({self.max_runtime_minutes}): SageMaker needs MaxWaitTimeInSeconds >= MaxRuntimeInSeconds"
            )
        return self

    @model_validator(mode="after")
    def _parallel_within_budget(self) -> PipelineSettings:
        if self.tuning_max_parallel_jobs > self.tuning_max_jobs:
            raise ValueError(
                f"tuning_max_parallel_jobs ({self.tuning_max_parallel_jobs}) exceeds "
                f"tuning_max_jobs ({self.tuning_max_jobs})"
            )
        return self


MIN_LINEAR_STEP_PERCENT = 10


class DeploymentStrategy(FrozenModel):
    """Blue/green traffic shifting of the serving endpoint (the deploy-on-approval function applies it)."""

    type: Literal["canary", "linear"] = "canary"
    traffic_percent: int = Field(default=10, ge=1, le=50)
    wait_minutes: int = Field(default=10, ge=1, le=60)
    termination_wait_minutes: int = Field(default=5, ge=0, le=60)

    @model_validator(mode="after")
    def _linear_step_is_large_enough(self) -> DeploymentStrategy:
        if self.type == "linear" and self.traffic_percent < MIN_LINEAR_STEP_PERCENT:
            raise ValueError(
                f"traffic_percent of a linear shift must be at least {MIN_LINEAR_STEP_PERCENT} "
                f"(got {self.traffic_percent})"
            )
        return self

    @property
    def wait_seconds(self) -> int:
        """`wait_minutes` in seconds: how long each traffic step is watched before the next."""
        return self.wait_minutes * 60

    @property
    def termination_wait_seconds(self) -> int:
        """`termination_wait_minutes` in seconds: how long the old fleet is kept after the full shift."""
        return self.termination_wait_minutes * 60


class ServingSettings(FrozenModel):
    """Real-time endpoint sizing, data capture and its alarms (latency, 5xx errors)."""

    # "serverless": memory and concurrency instead of instances. AWS's serverless exclusions apply: no VPC
    # configuration, network isolation, DataCaptureConfig or second variant (Settings checks combinations).
    mode: Literal["instances", "serverless"] = "instances"
    serverless_memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = 2048
    serverless_max_concurrency: int = Field(default=5, ge=1, le=200)
    instance_type: InstanceType = "ml.m5.large"
    instance_count: InstanceCount = MIN_SHIFTING_INSTANCES
    data_capture_percent: int = Field(default=20, ge=1, le=100)
    # Who writes the captures: "container" (the serving container uploads them itself through the S3 gateway
    # endpoint, SageMaker's layout; works on any account) or "sagemaker" (the endpoint config's
    # DataCaptureConfig, documented among the Model Monitor pages that closed to new customers on 2026-07-30).
    capture_mode: Literal["sagemaker", "container"] = "container"
    deployment: DeploymentStrategy = DeploymentStrategy()
    latency_alarm_threshold_ms: float = Field(default=200.0, gt=0, le=60_000)
    # Invocation5XXErrors per minute that count as a breach; two breaching minutes raise the alarm.
    error_alarm_threshold: int = Field(default=1, ge=1, le=10_000)
    ab_test: AbTestSettings = AbTestSettings()  # champion/challenger variants (settings/ab_testing.py)

    @model_validator(mode="after")
    def _fleet_allows_traffic_shifting(self) -> ServingSettings:
        if self.mode == "instances" and self.instance_count < MIN_SHIFTING_INSTANCES:
            raise ValueError(
                f"instance_count must be at least {MIN_SHIFTING_INSTANCES} for {self.deployment.type} "
                "traffic shifting, whose first step holds at most 50 % of the fleet "
                f"(got {self.instance_count})"
            )
        return self


class MonitoringSettings(FrozenModel):
    """Data-quality monitoring of the endpoint, the drift alarm that retrains, and the ops functions."""

    # Model Monitor accepts hourly or daily schedules; hourly is cron(0 * ? * * *).
    schedule_cron: str = Field(default="cron(0 * ? * * *)", pattern=r"^cron\(.+\)$")
    instance_type: InstanceType = "ml.m5.large"
    volume_gb: int = Field(default=20, ge=1, le=16384)
    max_runtime_minutes: int = Field(default=30, ge=1, le=60)  # an hourly job must end within the hour
    drift_metric: Literal["MaxPSI", "DriftedFeatures"] = "MaxPSI"
    # PSI above 0.2 is the usual "significant shift" rule of thumb; for DriftedFeatures, a feature count.
    drift_threshold: float = Field(default=0.2, gt=0, le=1000)
    new_data_debounce_seconds: int = Field(default=300, ge=30, le=3600)
    raw_data_suffixes: tuple[Annotated[str, Field(pattern=r"^\.[a-z0-9]{1,10}$")], ...] = Field(
        default=(".txt",), min_length=1, max_length=10
    )
    log_retention_days: LogRetentionDays = 90
    # True only on accounts with Model Monitor access (closed to new customers): the pipeline's baseline
    # then runs the Model Monitor analyzer (QualityCheckStep) instead of the project's own baseline job.
    use_model_monitor: bool = False
    # The monitoring pipeline looks at the captures of the last window_hours before the hour it starts in.
    window_hours: int = Field(default=1, ge=1, le=168)
    # No drift metric for this many hours raises the "monitoring silent" alarm (missing data breaches).
    silent_alarm_hours: int = Field(default=3, ge=1, le=24)


class BatchSettings(FrozenModel):
    """The daily batch-scoring pipeline: every engine of the fleet scored by the champion and ranked."""

    enabled: bool = True  # False keeps the pipeline but disables its daily schedule
    # Daily, in UTC (EventBridge Scheduler cron: minutes hours day-of-month month day-of-week year).
    schedule_cron: str = Field(default="cron(0 4 * * ? *)", pattern=r"^cron\(\d{1,2} \d{1,2} \* \* \? \*\)$")
    instance_type: InstanceType = "ml.m5.large"
    volume_gb: int = Field(default=20, ge=1, le=16384)
    max_runtime_minutes: int = Field(default=60, ge=5, le=1440)
    # Engines whose ranking basis (lower bound, else predicted RUL) is at most this are flagged as due.
    maintenance_threshold_cycles: int = Field(default=30, ge=0, le=1000)
