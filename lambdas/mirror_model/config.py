"""Configuration of the mirror function: environment variables validated into a frozen dataclass.

`load_config(environ)` runs on every invocation (never at import time) and names every bad variable with
its value. The CDK construct `stacks.model_mirror.ModelMirror` sets them; the names are the `ENV_*`
constants. No key is ever in the environment: the function reads them from the secret `MIRROR_SECRET_ARN`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from lambdas.common.config import ConfigError

ENV_GROUP = "MODEL_PACKAGE_GROUP_NAME"
ENV_ENDPOINT = "MIRROR_ENDPOINT_URL"
ENV_BUCKET = "MIRROR_BUCKET"
ENV_REGION = "MIRROR_REGION"
ENV_PREFIX = "MIRROR_PREFIX"
ENV_PATH_STYLE = "MIRROR_PATH_STYLE"
ENV_CHECKSUM = "MIRROR_CHECKSUM"
ENV_TIMEOUT = "MIRROR_TIMEOUT_SECONDS"
ENV_SECRET_ARN = "MIRROR_SECRET_ARN"

_PATTERNS = {
    ENV_GROUP: r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
    ENV_ENDPOINT: r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
    ENV_BUCKET: r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$",
    ENV_REGION: r"^([a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d|auto)$",
    ENV_PREFIX: r"^([A-Za-z0-9!_.*'()-]+/)*$",
    ENV_PATH_STYLE: r"^(true|false)$",
    ENV_CHECKSUM: r"^(md5|sha256)$",
    ENV_TIMEOUT: r"^[1-9][0-9]{0,2}$",
    ENV_SECRET_ARN: r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$",
}


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


def load_config(environ: Mapping[str, str]) -> MirrorConfig:
    """Validate every variable, then build the config; one error lists all the problems."""
    problems = []
    for name, pattern in _PATTERNS.items():
        value = environ.get(name)
        if value is None:
            problems.append(f"{name} is not set")
        elif not re.fullmatch(pattern, value):
            problems.append(f"{name}={value!r} does not match {pattern}")
    if problems:
        raise ConfigError("invalid mirror function configuration: " + "; ".join(problems))
    return MirrorConfig(
        group=environ[ENV_GROUP],
        endpoint_url=environ[ENV_ENDPOINT],
        bucket=environ[ENV_BUCKET],
        region=environ[ENV_REGION],
        prefix=environ[ENV_PREFIX],
        path_style=environ[ENV_PATH_STYLE] == "true",
        checksum=environ[ENV_CHECKSUM],
        timeout_seconds=int(environ[ENV_TIMEOUT]),
        secret_arn=environ[ENV_SECRET_ARN],
    )
