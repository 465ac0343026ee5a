"""Configuration of the mirror function: environment variables validated into a frozen dataclass.

`load_config(environ)` runs on every invocation (never at import time) and, with the shared `EnvReader`,
names every bad variable with its value in one `ConfigError`. The CDK construct
`stacks.model_mirror.ModelMirror` sets them; the names are the `ENV_*` constants. No key is ever in the
environment: the function reads them from the secret `MIRROR_SECRET_ARN`. The store's endpoint must be an
https:// URL: the function sends the store's keys to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from lambdas.common.config import NAME_PATTERN, EnvReader
from lambdas.common.config import ConfigError as ConfigError  # raised by load_config, caught by callers

from .store import CHECKSUMS

ENV_GROUP = "MODEL_PACKAGE_GROUP_NAME"
ENV_ENDPOINT = "MIRROR_ENDPOINT_URL"
ENV_BUCKET = "MIRROR_BUCKET"
ENV_REGION = "MIRROR_REGION"
ENV_PREFIX = "MIRROR_PREFIX"
ENV_PATH_STYLE = "MIRROR_PATH_STYLE"
ENV_CHECKSUM = "MIRROR_CHECKSUM"
ENV_TIMEOUT = "MIRROR_TIMEOUT_SECONDS"
ENV_SECRET_ARN = "MIRROR_SECRET_ARN"

HTTPS_URL_PATTERN = re.compile(r"^https://[^\s/?#@]+(/[^\s?#]*)?$")
# S3-compatible stores also accept underscores, unlike AWS bucket names.
STORE_BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
REGION_PATTERN = re.compile(r"^([a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d|auto)$")
PREFIX_PATTERN = re.compile(r"^([A-Za-z0-9!_.*'()-]+/)*$")  # empty, or folders each ending in "/"
SECRET_ARN_PATTERN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$"
)
MAX_TIMEOUT_SECONDS = 999


@dataclass(frozen=True)
class MirrorConfig:
    """The validated environment: the model package group and the external store to copy to."""

    group: str
    endpoint_url: str
    bucket: str
    region: str
    prefix: str
    path_style: bool
    checksum: str
    timeout_seconds: int
    secret_arn: str


def _prefix(read: EnvReader) -> str:
    """The key prefix: required, but may be empty (objects at the bucket's root)."""
    value = read.environ.get(ENV_PREFIX)
    if value is None or not PREFIX_PATTERN.match(value):
        read.problems.append(f"{ENV_PREFIX}: must be empty or folders ending in '/' (got {value!r})")
        return ""
    return value


def load_config(environ: Mapping[str, str]) -> MirrorConfig:
    """Validate every variable, then build the config; one `ConfigError` lists all the problems."""
    read = EnvReader(environ)
    config = MirrorConfig(
        group=read.text(ENV_GROUP, NAME_PATTERN, expect="a model package group name"),
        endpoint_url=read.text(ENV_ENDPOINT, HTTPS_URL_PATTERN, expect="an https:// URL with a host"),
        bucket=read.text(ENV_BUCKET, STORE_BUCKET_PATTERN, expect="a bucket name"),
        region=read.text(ENV_REGION, REGION_PATTERN, expect="a region name or 'auto'"),
        prefix=_prefix(read),
        path_style=read.flag(ENV_PATH_STYLE, default=True),
        checksum=read.choice(ENV_CHECKSUM, CHECKSUMS, default="md5"),
        timeout_seconds=read.integer(ENV_TIMEOUT, 1, MAX_TIMEOUT_SECONDS),
        secret_arn=read.text(ENV_SECRET_ARN, SECRET_ARN_PATTERN, expect="a Secrets Manager secret ARN"),
    )
    read.check("mirror function")
    return config
