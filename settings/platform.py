"""Settings of the platform: project, account, network, storage, studio, security, alerts, cost, tracking."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from settings.types import (
    PLACEHOLDER_ACCOUNT,
    PLACEHOLDER_REGION,
    EmailAddress,
    FrozenModel,
    IamPrincipalArn,
    InstanceType,
    LogRetentionDays,
    ProfileName,
    SubnetId,
    VpcEndpointId,
    VpcId,
)


class ProjectSettings(FrozenModel):
    """Names every resource is prefixed with."""

    name: str = Field(default="turbofan-rul", pattern=r"^[a-z][a-z0-9-]{1,14}[a-z0-9]$")
    environment: str = Field(default="dev", pattern=r"^[a-z][a-z0-9]{0,5}$")

    @property
    def prefix(self) -> str:
        """`<name>-<environment>`, the start of every resource name."""
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
