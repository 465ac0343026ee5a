"""Everything the pipeline rendering needs, passed in explicitly as one frozen, validated object.

`PipelineConfig` holds what is not a user setting (names, URIs, image, role, key, job network, the
local runner's knobs) plus the settings models it renders from, as they are: `pipeline`
(`settings.PipelineSettings`: job sizes, tuning budget, quality gate, spot, model family, isolation),
`serving` (the instance type the registered package lists) and `monitoring` (which baseline step). The
builders read `config.pipeline.tuning_max_jobs` and the like; pydantic validated those once, so
`__post_init__` checks only the resources (S3 URIs, ARNs, non-empty names, region format, network pairs,
choices) and raises `ValueError` naming the field and the value. Nothing here reads the environment or
calls AWS. `local_config()` builds a fake-but-well-formed config (account 000000000000, us-east-1) from
the settings' defaults for the local runner and the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from pipeline_steps import names
from settings.ml import MonitoringSettings, PipelineSettings, ServingSettings

LOCAL_ACCOUNT = "000000000000"
LOCAL_REGION = "us-east-1"
LOCAL_CODE_VERSION = "000000000000"
LOCAL_NAME = "turbofan-rul"  # the local pipeline and model package group

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
_S3_FIELDS = ("data_uri", "code_uri")
_NAME_FIELDS = ("pipeline_name", "model_package_group_name", "image_uri")
_SETTINGS_FIELDS = {
    "pipeline": PipelineSettings,
    "serving": ServingSettings,
    "monitoring": MonitoringSettings,
}
# A deploy-time value of the CDK app (e.g. the key ARN), resolved by CloudFormation: `${Token[...]}`.
_CDK_TOKEN = re.compile(r"^\$\{Token\[[A-Za-z0-9_.-]+\]\}$")


@dataclass(frozen=True)
class PipelineConfig:
    """Inputs of the pipeline definition: deploy-time resources and the settings models, not copies."""

    pipeline_name: str
    region: str
    role_arn: str
    artifact_bucket: str
    data_uri: str
    code_uri: str
    image_uri: str
    model_package_group_name: str
    pipeline: PipelineSettings
    serving: ServingSettings
    monitoring: MonitoringSettings
    kms_key_arn: str | None = None
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    champion_tolerance: float = 1.0
    approval_status: str = "PendingManualApproval"
    cache_expiry: str = "P30D"
    subset: str = "FD001"
    seed: int = 0
    # False (the deployed pipeline): thresholds, champion URI and approval status are literals fixed at
    # deploy time, so a StartPipelineExecution caller cannot loosen the gate or auto-approve. True: they are
    # pipeline parameters (the local runner).
    gate_overridable: bool = False
    # Default of the DataVersion parameter (the data's content hash is set per run by the starters).
    data_version: str = names.DEFAULT_DATA_VERSION
    # Extra static hyperparameters of every tuning trial, e.g. (("epochs", "2"),) for a tiny local run.
    static_hyperparameters: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        for name, kind in _SETTINGS_FIELDS.items():
            if not isinstance(getattr(self, name), kind):
                _fail(name, getattr(self, name), f"must be a {kind.__name__}")
        for name in _NAME_FIELDS:
            if not getattr(self, name):
                _fail(name, getattr(self, name), "must not be empty")
        if not _NAME.match(self.pipeline_name):
            _fail("pipeline_name", self.pipeline_name, "must be alphanumeric with hyphens, up to 256 chars")
        if not _REGION.match(self.region):
            _fail("region", self.region, "must look like us-east-1")
        if not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$", self.role_arn):
            _fail("role_arn", self.role_arn, "must be an IAM role ARN")
        if not _BUCKET.match(self.artifact_bucket):
            _fail("artifact_bucket", self.artifact_bucket, "must be a bucket name (no s3:// prefix)")
        for name in _S3_FIELDS:
            self._check_s3_prefix(name)
        if self.kms_key_arn is not None and not (
            self.kms_key_arn.startswith("arn:aws") or _CDK_TOKEN.match(self.kms_key_arn)
        ):
            _fail("kms_key_arn", self.kms_key_arn, "must be a KMS key ARN (or a CDK token resolving to one)")
        self._check_network()
        self._check_choices()

    def _check_s3_prefix(self, name: str) -> None:
        value = getattr(self, name)
        if not (isinstance(value, str) and value.startswith("s3://") and len(value) > 5):
            _fail(name, value, "must be an s3:// URI")
        if not value.endswith("/"):
            _fail(name, value, "must be a prefix ending in '/'")

    def _check_network(self) -> None:
        for name in ("subnet_ids", "security_group_ids"):
            if not isinstance(getattr(self, name), tuple):
                _fail(name, getattr(self, name), "must be a tuple")
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            _fail("subnet_ids", self.subnet_ids, "and security_group_ids must be given together")

    def _check_choices(self) -> None:
        if self.champion_tolerance < 0:
            _fail("champion_tolerance", self.champion_tolerance, "must not be negative")
        if self.approval_status not in names.APPROVAL_STATUSES:
            _fail("approval_status", self.approval_status, f"must be one of {names.APPROVAL_STATUSES}")
        if not self.gate_overridable and self.approval_status != names.PENDING_APPROVAL:
            _fail(
                "approval_status",
                self.approval_status,
                f"must be {names.PENDING_APPROVAL} when the gate is fixed (gate_overridable False)",
            )
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", self.data_version):
            _fail("data_version", self.data_version, "must be 1-128 letters, digits, '.', '_' or '-'")
        for pair in self.static_hyperparameters:
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(v, str) for v in pair)):
                _fail(
                    "static_hyperparameters", self.static_hyperparameters, "must hold (name, value) strings"
                )
        if self.subset not in names.SUBSETS:
            _fail("subset", self.subset, f"must be one of {names.SUBSETS}")
        if not re.fullmatch(r"P(\d+[DWMY])+|PT(\d+[HMS])+|P(\d+[DWMY])+T(\d+[HMS])+", self.cache_expiry):
            _fail("cache_expiry", self.cache_expiry, "must be an ISO 8601 duration such as P30D")

    @property
    def account(self) -> str:
        """The account id, from the role ARN."""
        return self.role_arn.split(":")[4]

    @property
    def uses_vpc(self) -> bool:
        """Whether the jobs run in the VPC (subnets were given)."""
        return bool(self.subnet_ids)

    @property
    def network_isolation(self) -> bool:
        """`pipeline.network_isolation`, under the name every job configuration's network has."""
        return self.pipeline.network_isolation

    @property
    def max_runtime_seconds(self) -> int:
        """Stopping condition of every job (each processing job and tuning trial)."""
        return self.pipeline.max_runtime_minutes * 60

    @property
    def spot_max_wait_seconds(self) -> int | None:
        """MaxWaitTimeInSeconds of the training jobs: None unless managed spot training is on."""
        return self.pipeline.spot_max_wait_minutes * 60 if self.pipeline.spot_training else None

    @property
    def tuning_max_runtime_seconds(self) -> int:
        """The tuning job's cap: one job's runtime per round of the default budget's parallel trials."""
        rounds = -(-self.pipeline.tuning_max_jobs // self.pipeline.tuning_max_parallel_jobs)
        # A Spot trial may wait for capacity and restart: its bound is the wait, not the runtime.
        return max(self.max_runtime_seconds, self.spot_max_wait_seconds or 0) * rounds

    @property
    def champion_uri(self) -> str:
        """Prefix that holds the approved model in service (kept up to date by deploy-on-approval)."""
        return f"s3://{self.artifact_bucket}/champion/"


def _fail(field: str, value: object, problem: str) -> None:
    raise ValueError(f"PipelineConfig.{field}={value!r} {problem}")


def local_config(
    work_bucket: str = "local-artifacts",
    *,
    serving: ServingSettings | None = None,
    monitoring: MonitoringSettings | None = None,
    **overrides: object,
) -> PipelineConfig:
    """A well-formed config with fake account and region values, for the local runner and the tests.

    `overrides` names PipelineConfig fields (`pipeline=` a whole PipelineSettings) or PipelineSettings
    fields, which build a PipelineSettings (so pydantic checks them); the rest are the settings' defaults.
    """
    known = {item.name for item in fields(PipelineConfig)} - {"serving", "monitoring"}
    settings_fields = set(PipelineSettings.model_fields)
    unknown = sorted(set(overrides) - known - settings_fields)
    if unknown:
        raise ValueError(f"local_config: unknown field(s) {', '.join(unknown)}")
    pipeline_values = {key: value for key, value in overrides.items() if key in settings_fields}
    if pipeline_values and "pipeline" in overrides:
        raise ValueError("local_config: give either pipeline= or PipelineSettings fields, not both")
    values: dict[str, object] = {
        "pipeline_name": LOCAL_NAME,
        "region": LOCAL_REGION,
        "role_arn": f"arn:aws:iam::{LOCAL_ACCOUNT}:role/{LOCAL_NAME}-pipeline",
        "artifact_bucket": work_bucket,
        "data_uri": "s3://local-data/raw/",
        "code_uri": f"s3://{work_bucket}/code/{LOCAL_CODE_VERSION}/",
        "image_uri": f"{LOCAL_ACCOUNT}.dkr.ecr.{LOCAL_REGION}.amazonaws.com/{LOCAL_NAME}:local",
        "model_package_group_name": LOCAL_NAME,
        "pipeline": PipelineSettings(**pipeline_values),  # type: ignore[arg-type]
        "serving": serving or ServingSettings(),
        "monitoring": monitoring or MonitoringSettings(),
        # Locally the gate stays overridable (`--param RmseThreshold=...`); the deployed pipeline fixes it.
        "gate_overridable": True,
    }
    values.update({key: value for key, value in overrides.items() if key in known})
    return PipelineConfig(**values)  # type: ignore[arg-type]
