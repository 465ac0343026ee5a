"""Everything the batch-scoring pipeline's definition needs, as one frozen, validated object.

`BatchPipelineConfig` holds the names, URIs (the fleet's recent cycles, the champion prefix, the output
prefix), image, role, key, network, job size and the default maintenance threshold; nothing here reads the
environment or calls AWS, so rendering stays offline and deterministic. Each bad field raises `ValueError`
naming the field and the value. `from_training_config` takes what the batch pipeline shares with the
training pipeline (role, image, code, key, network), and `local_batch_config()` derives a
fake-but-well-formed config from the training pipeline's `local_config()` for the runner and the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from pipeline_steps import batch_names as bnames
from pipeline_steps.config import PipelineConfig, local_config

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
_S3_PREFIX_FIELDS = ("code_uri", "fleet_uri", "champion_uri")
_KEY_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/-]+/$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
MAX_RUNTIME_SECONDS = 5 * 24 * 3600  # SageMaker's limit for a processing job


@dataclass(frozen=True)
class BatchPipelineConfig:
    """Inputs of the batch definition; the URIs and the threshold are the parameters' defaults."""

    pipeline_name: str
    region: str
    role_arn: str
    artifact_bucket: str
    code_uri: str
    image_uri: str
    fleet_uri: str  # every engine's recent cycles: C-MAPSS rows, one or more files
    champion_uri: str  # model.tar.gz + champion.json of the model in service
    output_prefix: str = bnames.OUTPUT_PREFIX  # artifacts-bucket key prefix of the outputs
    kms_key_arn: str | None = None
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    enable_network_isolation: bool = True
    processing_instance_type: str = "ml.m5.large"
    volume_gb: int = 20
    max_runtime_seconds: int = 3600
    threshold_cycles: int = bnames.DEFAULT_THRESHOLD_CYCLES

    def __post_init__(self) -> None:
        if not _NAME.match(self.pipeline_name or ""):
            _fail("pipeline_name", self.pipeline_name, "must be alphanumeric with hyphens")
        if not self.image_uri:
            _fail("image_uri", self.image_uri, "must not be empty")
        if not _ROLE_ARN.match(self.role_arn):
            _fail("role_arn", self.role_arn, "must be an IAM role ARN")
        for name in _S3_PREFIX_FIELDS:
            value = getattr(self, name)
            if not (isinstance(value, str) and value.startswith("s3://") and value.endswith("/")):
                _fail(name, value, "must be an s3:// prefix ending in '/'")
        if not _KEY_PREFIX.match(self.output_prefix) or self.output_prefix.startswith("/"):
            _fail("output_prefix", self.output_prefix, "must be a key prefix like 'batch/'")
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            _fail("subnet_ids", self.subnet_ids, "and security_group_ids must be given together")
        if not 1 <= self.volume_gb <= 16384:
            _fail("volume_gb", self.volume_gb, "must be between 1 and 16384")
        if not 60 <= self.max_runtime_seconds <= MAX_RUNTIME_SECONDS:
            _fail("max_runtime_seconds", self.max_runtime_seconds, f"must be 60-{MAX_RUNTIME_SECONDS}")
        if not 0 <= self.threshold_cycles <= bnames.MAX_THRESHOLD_CYCLES:
            _fail("threshold_cycles", self.threshold_cycles, f"must be 0-{bnames.MAX_THRESHOLD_CYCLES}")

    @property
    def output_uri(self) -> str:
        """`s3://<artifacts>/<output prefix>`: each execution writes under `<execution id>/` here."""
        return f"s3://{self.artifact_bucket}/{self.output_prefix}"


def _fail(field: str, value: object, problem: str) -> None:
    raise ValueError(f"BatchPipelineConfig.{field}={value!r} {problem}")


def from_training_config(
    training: PipelineConfig, *, pipeline_name: str, fleet_uri: str
) -> dict[str, object]:
    """The fields the batch pipeline shares with the training pipeline (role, image, code, key, network)."""
    return {
        "pipeline_name": pipeline_name,
        "region": training.region,
        "role_arn": training.role_arn,
        "artifact_bucket": training.artifact_bucket,
        "code_uri": training.code_uri,
        "image_uri": training.image_uri,
        "fleet_uri": fleet_uri,
        "champion_uri": training.champion_uri,
        "kms_key_arn": training.kms_key_arn,
        "subnet_ids": training.subnet_ids,
        "security_group_ids": training.security_group_ids,
        "enable_network_isolation": training.enable_network_isolation,
    }


def local_fleet_uri(training: PipelineConfig) -> str:
    """The local data bucket's fleet prefix, beside the training data's `raw/`."""
    bucket = training.data_uri[len("s3://") :].split("/", 1)[0]
    return f"s3://{bucket}/{bnames.FLEET_PREFIX}"


def local_batch_config(training: PipelineConfig | None = None, **overrides: object) -> BatchPipelineConfig:
    """A well-formed config beside the local training config: same buckets, role, image and code."""
    training = training or local_config()
    values = from_training_config(
        training, pipeline_name=f"{training.pipeline_name}-batch", fleet_uri=local_fleet_uri(training)
    )
    known = {item.name for item in fields(BatchPipelineConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"local_batch_config: unknown field(s) {', '.join(unknown)}")
    values.update(overrides)
    return BatchPipelineConfig(**values)  # type: ignore[arg-type]
