"""Settings of the model mirror: approved model artifacts copied to an S3-compatible store.

Supabase Storage speaks the S3 protocol at ``https://<project>.supabase.co/storage/v1/s3`` (path-style
addressing, Signature Version 4, the project's region); MinIO, Cloudflare R2 and others do too. Off by
default. On AWS the store's keys live in one Secrets Manager secret (``secret_arn``, a JSON object with
``access_key_id`` and ``secret_access_key``); locally (``LocalMirrorSettings``) they come from environment
variables it names or from a JSON file of the same shape. Keys are never part of the settings.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from settings.types import FrozenModel

# Plain http is accepted only on the loopback (a local test server); everything else must be https.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SECRET_ARN_PATTERN = r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$"
KMS_KEY_ARN_PATTERN = r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[a-zA-Z0-9-]+$"
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]{0,127}$"


class ModelMirrorSettings(FrozenModel):
    """Where approved versions are mirrored (endpoint, bucket, region, key prefix) and with which keys."""

    enabled: bool = False
    endpoint_url: str | None = None
    bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
    # Supabase: the project's region; MinIO accepts any region name.
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$|^auto$")
    prefix: str = Field(default="models/", pattern=r"^([A-Za-z0-9!_.*'()-]+/)*$", max_length=256)
    path_style: bool = True
    # "md5": Content-MD5 on every upload (the store rejects a corrupted body), which Supabase, MinIO and
    # S3 all check; "sha256": the flexible x-amz-checksum-sha256 header, for stores that implement it.
    checksum: Literal["md5", "sha256"] = "md5"
    timeout_seconds: int = Field(default=30, ge=1, le=300)
    # AWS: the secret holding the keys, and the customer managed key it is encrypted with (None: the
    # AWS managed key aws/secretsmanager, which needs no grant).
    secret_arn: str | None = Field(default=None, pattern=SECRET_ARN_PATTERN)
    secret_kms_key_arn: str | None = Field(default=None, pattern=KMS_KEY_ARN_PATTERN)

    @field_validator("endpoint_url")
    @classmethod
    def _https_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parsed = urlparse(value)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise ValueError(
                "must be an http(s) URL with a host, e.g. https://<project>.supabase.co/storage/v1/s3"
            )
        if parsed.scheme == "http" and parsed.hostname not in LOOPBACK_HOSTS:
            raise ValueError("must use https (plain http only on the loopback, for a local test server)")
        if parsed.query or parsed.fragment or parsed.username or parsed.password:
            raise ValueError("must not carry a query, a fragment or user info (keys belong in the secret)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _enabled_needs_destination(self) -> ModelMirrorSettings:
        if self.enabled and (self.endpoint_url is None or self.bucket is None):
            raise ValueError("enabled needs endpoint_url and bucket")
        if self.secret_kms_key_arn is not None and self.secret_arn is None:
            raise ValueError("secret_kms_key_arn is only allowed with secret_arn")
        return self

    def deployed_secret_arn(self) -> str:
        """The secret the AWS mirror function reads; a deployment of the mirror cannot do without it."""
        if self.secret_arn is None:
            raise ValueError(
                "mirror.secret_arn is required to deploy the mirror function (mirror.enabled is true): the "
                'ARN of a Secrets Manager secret holding {"access_key_id": ..., "secret_access_key": ...}'
            )
        return self.secret_arn


class LocalMirrorSettings(ModelMirrorSettings):
    """The local runner's mirror (``<work-dir>/mirror.json``): the destination, and where the keys are.

    Not part of the app's settings: the CDK app never reads local key sources. The keys come from the
    environment variables named here, or from a JSON file of the secret's shape (``credentials_file``).
    """

    access_key_id_env: str = Field(default="MODEL_MIRROR_ACCESS_KEY_ID", pattern=ENV_NAME_PATTERN)
    secret_access_key_env: str = Field(default="MODEL_MIRROR_SECRET_ACCESS_KEY", pattern=ENV_NAME_PATTERN)
    credentials_file: str | None = None
