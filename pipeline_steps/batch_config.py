"""Everything the batch-scoring pipeline's definition needs, as one frozen, validated object.

`BatchPipelineConfig` holds the names, URIs (the fleet's recent cycles, the champion prefix, the output
prefix), image, role, key and network, plus `batch`, the `settings.BatchSettings` it renders from as it
is (job size, runtime, the default maintenance threshold: validated once, by pydantic). Nothing here
reads the environment or calls AWS, so rendering stays offline and deterministic. Each bad resource field
raises `ValueError` naming the field and the value. `from_training_config` takes what the batch pipeline
shares with the training pipeline (role, image, code, key, network), and `local_batch_config()` derives a
fake-but-well-formed config from the training pipeline's `local_config()` for the runner and the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from pipeline_steps import batch_names as bnames
from pipeline_steps.config import PipelineConfig, local_config
from settings.ml import BatchSettings

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
_S3_PREFIX_FIELDS = ("code_uri", "fleet_uri", "champion_uri")
_KEY_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/-]+/$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")


@dataclass(frozen=True)
class BatchPipelineConfig:
    """Inputs of the batch definition; the URIs and `batch`'s values are the parameters' defaults."""

    pipeline_name: str
    region: str
    role_arn: str
    artifact_bucket: str
    code_uri: str
    image_uri: str
    fleet_uri: str  # every engine's recent cycles: C-MAPSS rows, one or more files
    champion_uri: str  # model.tar.gz + champion.json of the model in service
    batch: BatchSettings
    output_prefix: str = bnames.OUTPUT_PREFIX  # artifacts-bucket key prefix of the outputs
    kms_key_arn: str | None = None
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    network_isolation: bool = True  # the training pipeline's setting: one job network for every pipeline

    def __post_init__(self) -> None:
        if not isinstance(self.batch, BatchSettings):
            _fail("batch", self.batch, "must be a BatchSettings")
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

    @property
    def max_runtime_seconds(self) -> int:
        """The scoring job's stopping condition, from `batch.max_runtime_minutes`."""
        return self.batch.max_runtime_minutes * 60

    @property
    def output_uri(self) -> str:
        """`s3://<artifacts>/<output prefix>`: each execution writes under `<execution id>/` here."""
        return f"s3://{self.artifact_bucket}/{self.output_prefix}"


def _fail(field: str, value: object, problem: str) -> None:
    raise ValueError(f"BatchPipelineConfig.{field}={value!r} {problem}")


def from_training_config(training: PipelineConfig, *, pipeline_name: str, fleet_uri: str) -> dict[str, Any]:
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
        "network_isolation": training.network_isolation,
    }


def local_fleet_uri(training: PipelineConfig) -> str:
    """The local data bucket's fleet prefix, beside the training data's `raw/`."""
    bucket = training.data_uri[len("s3://") :].split("/", 1)[0]
    return f"s3://{bucket}/{bnames.FLEET_PREFIX}"


def local_batch_config(training: PipelineConfig | None = None, **overrides: object) -> BatchPipelineConfig:
    """A well-formed config beside the local training config: same buckets, role, image and code.

    `overrides` names BatchPipelineConfig fields or BatchSettings fields (which build a BatchSettings, so
    pydantic checks them); the rest are the settings' defaults.
    """
    training = training or local_config()
    values = from_training_config(
        training, pipeline_name=f"{training.pipeline_name}-batch", fleet_uri=local_fleet_uri(training)
    )
    known = {item.name for item in fields(BatchPipelineConfig)}
    settings_fields = set(BatchSettings.model_fields)
    unknown = sorted(set(overrides) - known - settings_fields)
    if unknown:
        raise ValueError(f"local_batch_config: unknown field(s) {', '.join(unknown)}")
    batch_values = {key: value for key, value in overrides.items() if key in settings_fields}
    values["batch"] = BatchSettings(**batch_values)  # type: ignore[arg-type]
    values.update({key: value for key, value in overrides.items() if key in known})
    return BatchPipelineConfig(**values)
