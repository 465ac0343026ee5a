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

import ipaddress
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PLACEHOLDER_ACCOUNT = "111111111111"
PLACEHOLDER_REGION = "eu-west-1"

# ml.<family>.<size>, e.g. ml.m5.xlarge, ml.g4dn.2xlarge, ml.c6i.large, ml.t3.medium.
InstanceType = Annotated[
    str, Field(pattern=r"^ml\.[a-z][a-z0-9-]*\.(nano|micro|small|medium|large|\d{0,2}xlarge)$")
]
InstanceCount = Annotated[int, Field(ge=1, le=8)]
ProfileName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")]
EmailAddress = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
]
VpcId = Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")]
SubnetId = Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]
VpcEndpointId = Annotated[str, Field(pattern=r"^vpce-[0-9a-f]{8,17}$")]
# A pinned ECR image: <account>.dkr.ecr.<region>.amazonaws.com/<repository> then @sha256:<digest> or :<tag>.
EcrImageUri = Annotated[
    str,
    Field(
        pattern=r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9]+(?:[._/-][a-z0-9]+)*"
        r"(@sha256:[0-9a-f]{64}|:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$"
    ),
]
IamPrincipalArn = Annotated[
    str,
    Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:(root|role/[A-Za-z0-9+=,.@_/-]+|user/[A-Za-z0-9+=,.@_/-]+)$"),
]
# CloudWatch Logs accepts only these retention periods (days).
LogRetentionDays = Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 3653]

MAX_BUCKET_NAME = 63
MAX_ROLE_NAME = 64


class SettingsError(ValueError):
    """Invalid settings; the message lists every bad field with the value that was given."""


class FrozenModel(BaseModel):
    """Base of every settings model: immutable, strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class ProjectSettings(FrozenModel):
    """Names every resource is prefixed with."""

    name: str = Field(default="turbofan-rul", pattern=r"^[a-z][a-z0-9-]{1,14}[a-z0-9]$")
    environment: str = Field(default="dev", pattern=r"^[a-z][a-z0-9]{0,5}$")

    @property
    def prefix(self) -> str:
        return f"{self.name}-{self.environment}"


class AwsTarget(FrozenModel):
    """Account and region the stacks deploy to (placeholders synthesize offline; set real ones to deploy)."""

    account: str = Field(default=PLACEHOLDER_ACCOUNT, pattern=r"^\d{12}$")
    region: str = Field(default=PLACEHOLDER_REGION, pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")


class NetworkSettings(FrozenModel):
    """Create a private, endpoint-only VPC (``mode="create"``) or use an existing one (``"import"``)."""

    mode: Literal["create", "import"] = "create"
    cidr: str = "10.40.0.0/16"
    max_azs: int = Field(default=2, ge=2, le=3)
    vpc_id: VpcId | None = None
    subnet_ids: tuple[SubnetId, ...] = ()
    availability_zones: tuple[Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")], ...] = ()
    route_table_ids: tuple[Annotated[str, Field(pattern=r"^rtb-[0-9a-f]{8,17}$")], ...] = ()
    flow_log_retention_days: LogRetentionDays = 90

    @field_validator("cidr")
    @classmethod
    def _cidr_is_private_ipv4_block(cls, value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"not an IPv4 CIDR block ({exc})") from exc
        if not 16 <= network.prefixlen <= 24:
            raise ValueError("prefix length must be between /16 and /24")
        if not network.is_private:
            raise ValueError("must be a private (RFC 1918) range")
        return value

    @model_validator(mode="after")
    def _import_needs_ids(self) -> NetworkSettings:
        if self.mode == "import":
            if self.vpc_id is None:
                raise ValueError("mode 'import' requires vpc_id")
            if len(self.subnet_ids) < 2:
                raise ValueError(f"mode 'import' requires at least 2 subnet_ids, got {list(self.subnet_ids)}")
            if len(self.availability_zones) != len(self.subnet_ids):
                raise ValueError("mode 'import' requires one availability_zones entry per subnet id")
        elif self.vpc_id is not None or self.subnet_ids or self.route_table_ids or self.availability_zones:
            raise ValueError(
                "vpc_id, subnet_ids, availability_zones and route_table_ids "
                "are only allowed with mode 'import'"
            )
        return self


class StorageSettings(FrozenModel):
    """Lifecycle of the buckets: pipeline intermediates and old object versions expire."""

    intermediates_expiry_days: int = Field(default=30, ge=1, le=3650)
    noncurrent_version_expiry_days: int = Field(default=90, ge=1, le=3650)
    access_log_expiry_days: int = Field(default=365, ge=30, le=3650)


class StudioSettings(FrozenModel):
    """SageMaker Studio users and the JupyterLab idle shutdown (a cost guardrail)."""

    user_profiles: tuple[ProfileName, ...] = Field(default=("data-scientist",), min_length=1, max_length=20)
    idle_shutdown_minutes: int = Field(default=60, ge=60, le=525600)
    # Instance types Studio users may run apps and spaces on (IAM condition); the first is the domain default.
    app_instance_types: tuple[InstanceType, ...] = Field(
        default=("ml.t3.medium",), min_length=1, max_length=10
    )

    @field_validator("user_profiles")
    @classmethod
    def _unique_profiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"user profile names must be unique, got {list(value)}")
        return value


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
    max_rmse: float = Field(default=20.0, gt=0, le=200)
    max_score: float = Field(default=500.0, gt=0, le=1_000_000)
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

    @field_validator("job_image_uri")
    @classmethod
    def _image_is_pinned(cls, value: str | None) -> str | None:
        if value is not None and value.endswith(":latest"):
            raise ValueError(
                "the mutable tag 'latest' is not a pinned image: use a digest or an immutable tag"
            )
        return value

    @model_validator(mode="after")
    def _parallel_within_budget(self) -> PipelineSettings:
        if self.tuning_max_parallel_jobs > self.tuning_max_jobs:
            raise ValueError(
                f"tuning_max_parallel_jobs ({self.tuning_max_parallel_jobs}) exceeds "
                f"tuning_max_jobs ({self.tuning_max_jobs})"
            )
        return self


class SecuritySettings(FrozenModel):
    """Separation of duties: who administers the key, who may approve models, who operates the platform.

    Each persona is an IAM role of the project; these are the principals allowed to assume it. An empty
    ``key_admin_arns`` means the CDK bootstrap roles that deploy the stacks (they must be able to update
    the key policy); empty ``approver_arns``/``operator_arns`` make the persona trust the account itself,
    so no one can assume it until an account administrator grants ``sts:AssumeRole`` on it in an IAM
    policy (safe default). ``require_mfa`` makes assuming a human persona require an MFA-authenticated
    session (``aws:MultiFactorAuthPresent``); turn it off only when sessions come from a federated identity
    provider that enforces MFA itself, whose sessions may not carry that key.
    ``deploy_principal_arns`` may reach the buckets from outside the VPC endpoints (data perimeter);
    empty means the CDK bootstrap roles.
    """

    key_admin_arns: tuple[IamPrincipalArn, ...] = ()
    approver_arns: tuple[IamPrincipalArn, ...] = ()
    operator_arns: tuple[IamPrincipalArn, ...] = ()
    require_mfa: bool = True
    deploy_principal_arns: tuple[IamPrincipalArn, ...] = ()
    cdk_bootstrap_qualifier: str = Field(default="hnb659fds", pattern=r"^[a-z0-9]{1,10}$")
    # Data perimeter: the data and artifacts buckets deny requests that do not come through the project's
    # S3 gateway endpoint (exceptions: see stacks/data_perimeter.py). ``perimeter_vpc_endpoint_ids`` adds
    # endpoints that count as inside, e.g. the S3 gateway endpoint an imported VPC brings itself.
    data_perimeter: bool = True
    perimeter_vpc_endpoint_ids: tuple[VpcEndpointId, ...] = ()


class AlertsSettings(FrozenModel):
    """Who is told about budget alerts (and, later, alarms): e-mail subscribers of the alerts topic."""

    emails: tuple[EmailAddress, ...] = ()


# SageMaker blue/green traffic shifting: a linear step is 10-50 % of the green fleet, a canary 1-50 %.
MIN_LINEAR_STEP_PERCENT = 10
# A canary or linear first step may hold at most 50 % of the green fleet, so the fleet needs 2 instances.
MIN_SHIFTING_INSTANCES = 2


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
        return self.wait_minutes * 60

    @property
    def termination_wait_seconds(self) -> int:
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


class CostSettings(FrozenModel):
    """Monthly AWS Budget with notifications to the alerts topic."""

    monthly_budget_usd: float = Field(default=250.0, gt=0, le=1_000_000)
    actual_threshold_percent: float = Field(default=80.0, gt=0, le=1000)
    forecast_threshold_percent: float = Field(default=100.0, gt=0, le=1000)


class TrackingSettings(FrozenModel):
    """Managed MLflow on AWS: a SageMaker MLflow tracking server the finished executions are logged to.

    Off by default: a tracking server is billed per hour while it exists (check the SageMaker pricing
    page for the size); local runs always track in SQLite under the work folder.
    """

    mlflow_server: bool = False
    server_size: Literal["Small", "Medium", "Large"] = "Small"
    # SageMaker picks its latest supported MLflow version when None.
    mlflow_version: str | None = Field(default=None, pattern=r"^\d+\.\d+\.\d+$")
    weekly_maintenance_window_start: str = Field(
        default="Sun:03:30", pattern=r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun):([01]\d|2[0-3]):[0-5]\d$"
    )


class ResourceNames:
    """Deterministic physical names shared by the stacks and the pipeline definition."""

    def __init__(self, project: ProjectSettings, aws: AwsTarget) -> None:
        self.prefix = project.prefix
        self._region = aws.region
        self._suffix = f"{aws.account}-{aws.region}"

    @property
    def data_bucket(self) -> str:
        return f"{self.prefix}-data-{self._suffix}"

    @property
    def artifacts_bucket(self) -> str:
        return f"{self.prefix}-artifacts-{self._suffix}"

    @property
    def access_logs_bucket(self) -> str:
        return f"{self.prefix}-logs-{self._suffix}"

    @property
    def pipeline(self) -> str:
        return f"{self.prefix}-training"

    @property
    def monitoring_pipeline(self) -> str:
        """The second pipeline: drift and late-label quality jobs over the last window of captures."""
        return f"{self.prefix}-monitoring"

    @property
    def batch_pipeline(self) -> str:
        """The third pipeline: every engine of the fleet scored daily by the model in service, ranked."""
        return f"{self.prefix}-batch"

    @property
    def intermediates_prefix(self) -> str:
        """Artifacts-bucket prefix of everything a pipeline execution writes; expires after N days."""
        return f"{self.pipeline}/"

    @property
    def model_package_group(self) -> str:
        return f"{self.prefix}-models"

    def _role(self, concern: str) -> str:
        """Role names carry the region: IAM is global, so two regional deployments must not collide."""
        return f"{self.prefix}-{concern}-{self._region}"

    @property
    def pipeline_role(self) -> str:
        return self._role("pipeline")

    @property
    def job_role(self) -> str:
        return self._role("job")

    @property
    def studio_role(self) -> str:
        """Data-scientist persona: the Studio execution role."""
        return self._role("studio")

    @property
    def experiment_job_role(self) -> str:
        """Role of the jobs data scientists start from Studio: writes only the Studio prefix."""
        return self._role("experiment")

    @property
    def approver_role(self) -> str:
        """Approver persona: the only role that may set a model package to Approved."""
        return self._role("approver")

    @property
    def operator_role(self) -> str:
        """Operator persona: runs and watches the platform (start/stop executions, alarms), never approves."""
        return self._role("operator")

    @property
    def model_role(self) -> str:
        """Execution role of the endpoint's model: reads models/, writes data capture; passed by deploy-fn."""
        return self._role("model")

    @property
    def scheduler_role(self) -> str:
        return self._role("trigger")

    @property
    def flow_logs_role(self) -> str:
        return self._role("flow-logs")

    @property
    def code_deployment_role(self) -> str:
        """Role of CDK's BucketDeployment handler that uploads the code bundle and the definition."""
        return self._role("code-deploy")

    @property
    def start_pipeline_role(self) -> str:
        return self._role("start-pipeline-fn")

    @property
    def deploy_role(self) -> str:
        return self._role("deploy-fn")

    @property
    def publish_metrics_role(self) -> str:
        return self._role("metrics-fn")

    @property
    def mlflow_role(self) -> str:
        """Role the MLflow tracking server assumes to read and write its artifact store."""
        return self._role("mlflow")

    @property
    def mlflow_tracking_server(self) -> str:
        return f"{self.prefix}-mlflow"

    @property
    def endpoint(self) -> str:
        return f"{self.prefix}-rul"

    @property
    def monitoring_schedule(self) -> str:
        return f"{self.prefix}-rul-data-quality"

    @property
    def studio_domain(self) -> str:
        return f"{self.prefix}-studio"

    @property
    def key_alias(self) -> str:
        return f"alias/{self.prefix}-data"

    @property
    def log_group_prefix(self) -> str:
        """Log groups the project creates (and encrypts with its key) live under this path."""
        return f"/{self.prefix}/"

    # Key prefixes inside the buckets, shared by the IAM policies and the pipeline definition.
    raw_data_prefix = "raw/"  # data bucket: C-MAPSS input files (read-only for jobs)
    models_prefix = "models/"  # artifacts bucket: model artifacts of registered models (kept)
    # artifacts bucket: what a registered model package refers to besides its model data (evaluation report,
    # drift baselines, data manifest), per pipeline execution; kept, unlike the intermediates
    registry_prefix = "registry/"
    code_prefix = "code/"  # artifacts bucket: job source bundles
    champion_prefix = "champion/"  # artifacts bucket: the approved model in service (read by evaluation)
    studio_prefix = "studio/"  # artifacts bucket: Studio users' scratch space and shared notebooks
    data_capture_prefix = "datacapture/"  # artifacts bucket: endpoint requests and responses (data capture)
    ground_truth_prefix = "ground-truth/"  # artifacts bucket: late failure labels read by the quality job
    monitoring_prefix = "monitoring/"  # artifacts bucket: Model Monitor reports
    fleet_prefix = "fleet/"  # data bucket: every engine's recent cycles, scored daily by the batch pipeline
    batch_prefix = "batch/"  # artifacts bucket: fleet predictions and maintenance lists, per execution
    mlflow_prefix = "mlflow/"  # artifacts bucket: the managed MLflow tracking server's artifact store

    def buckets(self) -> tuple[str, ...]:
        return (self.data_bucket, self.artifacts_bucket, self.access_logs_bucket)

    def key_user_roles(self) -> tuple[str, ...]:
        """Roles the key policy lets use the key (data, model artifacts, job volumes, dead-letter queues)."""
        return (
            self.pipeline_role,
            self.job_role,
            self.studio_role,
            self.experiment_job_role,
            self.approver_role,
            self.operator_role,
            self.model_role,
            self.code_deployment_role,
            self.start_pipeline_role,
            self.deploy_role,
            self.publish_metrics_role,
            self.mlflow_role,
        )

    def roles(self) -> tuple[str, ...]:
        return (*self.key_user_roles(), self.scheduler_role, self.flow_logs_role)


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

    @property
    def names(self) -> ResourceNames:
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
