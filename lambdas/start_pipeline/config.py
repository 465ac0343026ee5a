"""The starter's configuration: read from the function's environment, validated once per invocation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from lambdas.common.config import BUCKET_PATTERN, NAME_PATTERN, PIPELINE_NAME_PATTERN, ConfigError, EnvReader

ENV_PIPELINE = "PIPELINE_NAME"
ENV_BUCKET = "DATA_BUCKET"
ENV_RAW_PREFIX = "RAW_PREFIX"
ENV_SUFFIXES = "ALLOWED_SUFFIXES"
ENV_DEBOUNCE = "DEBOUNCE_SECONDS"
ENV_GROUP = "MODEL_PACKAGE_GROUP_NAME"

# A key prefix: ends with "/", does not start with it.
RAW_PREFIX_PATTERN = re.compile(r"^(?!/).*/$", re.DOTALL)

__all__ = ["ConfigError", "TriggerConfig", "load_config"]


@dataclass(frozen=True)
class TriggerConfig:
    """The validated environment: the pipeline to start, the raw-data location and the debounce."""

    pipeline_name: str
    data_bucket: str
    raw_prefix: str  # e.g. "raw/"
    suffixes: tuple[str, ...]  # e.g. (".txt",)
    debounce_seconds: int
    model_package_group: str


def _suffixes(raw: str, problems: list[str]) -> tuple[str, ...]:
    suffixes = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    if not suffixes or not all(suffix.startswith(".") for suffix in suffixes):
        problems.append(f"{ENV_SUFFIXES}: comma-separated suffixes starting with '.' (got {raw!r})")
    return suffixes


def load_config(environ: Mapping[str, str]) -> TriggerConfig:
    """Validate the environment into a `TriggerConfig`; `ConfigError` names every bad variable."""
    read = EnvReader(environ)
    pipeline = read.text(ENV_PIPELINE, PIPELINE_NAME_PATTERN, expect="a SageMaker pipeline name")
    bucket = read.text(ENV_BUCKET, BUCKET_PATTERN, expect="an S3 bucket name")
    prefix = read.text(ENV_RAW_PREFIX, RAW_PREFIX_PATTERN, "raw/", expect="a key prefix ending in '/'")
    suffixes = _suffixes(environ.get(ENV_SUFFIXES, ".txt"), read.problems)
    raw_debounce = environ.get(ENV_DEBOUNCE, "300")
    debounce = int(raw_debounce) if raw_debounce.strip().isdigit() else -1
    if not 30 <= debounce <= 3600:
        read.problems.append(f"{ENV_DEBOUNCE}: an integer in [30, 3600] seconds (got {raw_debounce!r})")
    group = read.text(ENV_GROUP, NAME_PATTERN, expect="a model package group name")
    read.check("start-pipeline")
    return TriggerConfig(pipeline, bucket, prefix, suffixes, debounce, group)
