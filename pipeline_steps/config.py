"""Everything the pipeline rendering needs, passed in explicitly as one frozen, validated object.

`PipelineConfig` holds the names, URIs, image, role, encryption and network settings and the defaults of
the pipeline parameters; nothing here reads the environment or calls AWS. `__post_init__` checks the
obvious (S3 URIs, ARNs, non-empty names, region format, positive budgets) and raises `ValueError` naming
the field and the value. `local_config()` builds a fake-but-well-formed config (account 000000000000,
us-east-1) for the local runner and the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from pipeline_steps import names

LOCAL_ACCOUNT = "000000000000"
LOCAL_REGION = "us-east-1"
LOCAL_CODE_VERSION = "000000000000"

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
_S3_FIELDS = ("data_uri", "code_uri")
_NAME_FIELDS = ("pipeline_name", "model_package_group_name", "model_family", "image_uri")
# A deploy-time value of the CDK app (e.g. the key ARN), resolved by CloudFormation: `${Token[...]}`.
_CDK_TOKEN = re.compile(r"^\$\{Token\[[A-Za-z0-9_.-]+\]\}$")
# SageMaker's bounds of MaxRuntimeInSeconds: a processing job at most 7 days, a training job 28 days.
MAX_JOB_RUNTIME_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class PipelineConfig:
    """Inputs of the pipeline definition; the `default_*` fields are the pipeline parameters' defaults."""

    pipeline_name: str
    region: str
    role_arn: str
    artifact_bucket: str
    data_uri: str
    code_uri: str
    image_uri: str
    model_package_group_name: str
    kms_key_arn: str | None = None
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    enable_network_isolation: bool = True
    processing_instance_type: str = "ml.m5.large"
    processing_instance_count: int = 1
    training_instance_type: str = "ml.m5.xlarge"
    training_instance_count: int = 1
    inference_instance_types: tuple[str, ...] = ("ml.m5.large",)
    transform_instance_types: tuple[str, ...] = ("ml.m5.large",)
    max_tuning_jobs: int = 6
    max_parallel_tuning_jobs: int = 2
    rmse_threshold: float = 20.0
    score_threshold: float = 500.0
    champion_tolerance: float = 1.0
    approval_status: str = "PendingManualApproval"
    cache_expiry: str = "P30D"
    model_family: str = "gbm"
    subset: str = "FD001"
    seed: int = 0
    # Stopping condition of every job (each processing job and tuning trial); the tuning job as a whole
    # gets this times its number of rounds of the default budget (a fixed cap however a run sets it).
    max_runtime_minutes: int = 60
    # False (the deployed pipeline): thresholds, champion URI and approval status are literals fixed at
    # deploy time, so a StartPipelineExecution caller cannot loosen the gate or auto-approve. True: they are
    # pipeline parameters (the local runner).
    gate_overridable: bool = False
    # True: the data-quality baseline runs the Model Monitor analyzer (QualityCheckStep); False: the
    # project's own baseline job (containers/baseline.py), which needs no Model Monitor access.
    use_model_monitor: bool = False
    # Default of the DataVersion parameter (the data's content hash is set per run by the starters).
    data_version: str = names.DEFAULT_DATA_VERSION
    # Extra static hyperparameters of every tuning trial, e.g. (("epochs", "2"),) for a tiny local run.
    static_hyperparameters: tuple[tuple[str, str], ...] = ()
    # Managed spot training for the tuning trials and the refit: each job may wait for Spot capacity and
    # be interrupted and restarted from its checkpoints, within spot_max_wait_minutes (>= the runtime cap).
    spot_training: bool = False
    spot_max_wait_minutes: int | None = None

    def __post_init__(self):
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
        self._check_budgets()
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

    def _check_budgets(self) -> None:
        counts = ("processing_instance_count", "training_instance_count", "max_tuning_jobs")
        for name in (*counts, "max_parallel_tuning_jobs", "max_runtime_minutes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                _fail(name, value, "must be a positive integer")
        if self.max_parallel_tuning_jobs > self.max_tuning_jobs:
            _fail(
                "max_parallel_tuning_jobs", self.max_parallel_tuning_jobs, "must not exceed max_tuning_jobs"
            )
        for name in ("rmse_threshold", "score_threshold"):
            if not getattr(self, name) > 0:
                _fail(name, getattr(self, name), "must be positive")
        if self.champion_tolerance < 0:
            _fail("champion_tolerance", self.champion_tolerance, "must not be negative")
        if self.training_instance_count != 1:
            # SageMaker's SKLearn script mode refuses more (no distributed training); train.py is single-node.
            _fail(
                "training_instance_count", self.training_instance_count, "must be 1 (train.py is single-node)"
            )
        if self.max_runtime_minutes > MAX_JOB_RUNTIME_MINUTES:
            _fail(
                "max_runtime_minutes", self.max_runtime_minutes, f"must not exceed {MAX_JOB_RUNTIME_MINUTES}"
            )
        self._check_spot()

    def _check_spot(self) -> None:
        wait = self.spot_max_wait_minutes
        if not self.spot_training:
            return  # the wait is not rendered
        if wait is None:
            _fail("spot_max_wait_minutes", wait, "must be set when spot_training is on")
        if not isinstance(wait, int) or wait < self.max_runtime_minutes:
            _fail(
                "spot_max_wait_minutes",
                wait,
                f"must be an integer >= max_runtime_minutes ({self.max_runtime_minutes}): SageMaker needs "
                "MaxWaitTimeInSeconds >= MaxRuntimeInSeconds",
            )

    def _check_choices(self) -> None:
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
        if self.model_family not in names.MODEL_FAMILIES:
            _fail("model_family", self.model_family, f"must be one of {names.MODEL_FAMILIES}")
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
        return bool(self.subnet_ids)

    @property
    def max_runtime_seconds(self) -> int:
        return self.max_runtime_minutes * 60

    @property
    def spot_max_wait_seconds(self) -> int | None:
        """MaxWaitTimeInSeconds of the training jobs: None unless managed spot training is on."""
        return self.spot_max_wait_minutes * 60 if self.spot_training and self.spot_max_wait_minutes else None

    @property
    def tuning_max_runtime_seconds(self) -> int:
        """The tuning job's cap: one job's runtime per round of the default budget's parallel trials."""
        rounds = -(-self.max_tuning_jobs // self.max_parallel_tuning_jobs)
        # A Spot trial may wait for capacity and restart: its bound is the wait, not the runtime.
        return max(self.max_runtime_seconds, self.spot_max_wait_seconds or 0) * rounds

    @property
    def champion_uri(self) -> str:
        """Prefix that holds the approved model in service (kept up to date by deploy-on-approval)."""
        return f"s3://{self.artifact_bucket}/champion/"


def _fail(field: str, value: object, problem: str) -> None:
    raise ValueError(f"PipelineConfig.{field}={value!r} {problem}")


def local_config(work_bucket: str = "local-artifacts", **overrides: object) -> PipelineConfig:
    """A well-formed config with fake account and region values, for the local runner and the tests."""
    values: dict[str, object] = {
        "pipeline_name": "turbofan-rul",
        "region": LOCAL_REGION,
        "role_arn": f"arn:aws:iam::{LOCAL_ACCOUNT}:role/turbofan-rul-pipeline",
        "artifact_bucket": work_bucket,
        "data_uri": "s3://local-data/raw/",
        "code_uri": f"s3://{work_bucket}/code/{LOCAL_CODE_VERSION}/",
        "image_uri": f"{LOCAL_ACCOUNT}.dkr.ecr.{LOCAL_REGION}.amazonaws.com/turbofan-rul:local",
        "model_package_group_name": "turbofan-rul",
        # Locally the gate stays overridable (`--param RmseThreshold=...`); the deployed pipeline fixes it.
        "gate_overridable": True,
    }
    known = {item.name for item in fields(PipelineConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"local_config: unknown field(s) {', '.join(unknown)}")
    values.update(overrides)
    return PipelineConfig(**values)  # type: ignore[arg-type]
