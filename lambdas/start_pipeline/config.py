"""The starter's configuration: read from the function's environment, validated once per invocation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

ENV_PIPELINE = "PIPELINE_NAME"
ENV_BUCKET = "DATA_BUCKET"
ENV_RAW_PREFIX = "RAW_PREFIX"
ENV_SUFFIXES = "ALLOWED_SUFFIXES"
ENV_DEBOUNCE = "DEBOUNCE_SECONDS"
ENV_GROUP = "MODEL_PACKAGE_GROUP_NAME"

PIPELINE_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
GROUP_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class ConfigError(ValueError):
    """Missing or invalid environment variables; the message names each with its value."""


@dataclass(frozen=True)
class TriggerConfig:
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
    problems: list[str] = []
    pipeline = environ.get(ENV_PIPELINE, "").strip()
    if not PIPELINE_NAME_PATTERN.match(pipeline):
        problems.append(f"{ENV_PIPELINE}: must be a SageMaker pipeline name (got {pipeline!r})")
    bucket = environ.get(ENV_BUCKET, "").strip()
    if not BUCKET_PATTERN.match(bucket):
        problems.append(f"{ENV_BUCKET}: must be an S3 bucket name (got {bucket!r})")
    prefix = environ.get(ENV_RAW_PREFIX, "raw/").strip()
    if not prefix.endswith("/") or prefix.startswith("/"):
        problems.append(f"{ENV_RAW_PREFIX}: must be a key prefix ending in '/' (got {prefix!r})")
    suffixes = _suffixes(environ.get(ENV_SUFFIXES, ".txt"), problems)
    raw_debounce = environ.get(ENV_DEBOUNCE, "300")
    debounce = int(raw_debounce) if raw_debounce.strip().isdigit() else -1
    if not 30 <= debounce <= 3600:
        problems.append(f"{ENV_DEBOUNCE}: an integer in [30, 3600] seconds (got {raw_debounce!r})")
    group = environ.get(ENV_GROUP, "").strip()
    if not GROUP_NAME_PATTERN.match(group):
        problems.append(f"{ENV_GROUP}: must be a model package group name (got {group!r})")
    if problems:
        raise ConfigError("invalid start-pipeline configuration: " + "; ".join(problems))
    return TriggerConfig(pipeline, bucket, prefix, suffixes, debounce, group)
