"""Configuration of the backup function: environment variables validated into a frozen dataclass.

`load_config(environ)` runs on every invocation (never at import time) and names every bad variable with
its value before raising. The CDK construct ``stacks.backup.RegistryBackup`` sets the ``ENV_*`` variables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from lambdas.common.config import BUCKET_PATTERN, NAME_PATTERN, EnvReader
from lambdas.common.config import ConfigError as ConfigError  # raised by load_config, caught by callers

ENV_GROUP = "MODEL_PACKAGE_GROUP_NAME"
ENV_ENDPOINTS = "ENDPOINT_NAMES"  # comma-separated
ENV_BUCKET = "BACKUP_BUCKET"  # also the artifacts bucket whose objects' versions are recorded
ENV_PREFIX = "BACKUP_PREFIX"
ENV_ARTIFACT_PREFIXES = "ARTIFACT_PREFIXES"  # comma-separated key prefixes the role may HeadObject

PREFIX_PATTERN = re.compile(r"^[a-z0-9][a-z0-9/_-]{0,62}/$")


@dataclass(frozen=True)
class BackupConfig:
    """The validated environment: what to back up (group, endpoints, artifact prefixes) and where."""

    group_name: str
    endpoint_names: tuple[str, ...]
    bucket: str
    prefix: str
    artifact_prefixes: tuple[str, ...]


def _names(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def load_config(environ: Mapping[str, str]) -> BackupConfig:
    """Validate the environment; `ConfigError` names every problem."""
    read = EnvReader(environ)
    group = read.text(ENV_GROUP, NAME_PATTERN, expect="a model package group name")
    endpoints = _names(environ.get(ENV_ENDPOINTS, ""))
    bad = [name for name in endpoints if not NAME_PATTERN.match(name)]
    if not endpoints or bad:
        raw = environ.get(ENV_ENDPOINTS)
        read.problems.append(f"{ENV_ENDPOINTS}: must list endpoint names (got {raw!r})")
    bucket = read.text(ENV_BUCKET, BUCKET_PATTERN, expect="a bucket name")
    prefix = read.text(ENV_PREFIX, PREFIX_PATTERN, expect="a key prefix ending in '/'")
    artifact_prefixes = _names(environ.get(ENV_ARTIFACT_PREFIXES, ""))
    if not artifact_prefixes or not all(PREFIX_PATTERN.match(p) for p in artifact_prefixes):
        read.problems.append(
            f"{ENV_ARTIFACT_PREFIXES}: must list key prefixes ending in '/' "
            f"(got {environ.get(ENV_ARTIFACT_PREFIXES)!r})"
        )
    read.check("backup-registry")
    return BackupConfig(group, endpoints, bucket, prefix, artifact_prefixes)
