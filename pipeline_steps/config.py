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
        if self.kms_key_arn is not None and not self.kms_key_arn.startswith("arn:aws"):
            _fail("kms_key_arn", self.kms_key_arn, "must be a KMS key ARN")
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
        for name in ("processing_instance_count", "max_tuning_jobs", "max_parallel_tuning_jobs"):
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

    def _check_choices(self) -> None:
        if self.approval_status not in names.APPROVAL_STATUSES:
            _fail("approval_status", self.approval_status, f"must be one of {names.APPROVAL_STATUSES}")
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
        "image_uri": f"{LOCAL_ACCOUNT}.dkr.ecr.{LOCAL_REGION}.amazonaws.com/turbofan-rul:latest",
        "model_package_group_name": "turbofan-rul",
    }
    known = {item.name for item in fields(PipelineConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"local_config: unknown field(s) {', '.join(unknown)}")
    values.update(overrides)
    return PipelineConfig(**values)  # type: ignore[arg-type]
