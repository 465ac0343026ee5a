"""Settings of the backups: the registry/endpoint backup function and the optional cross-region replication.

``BackupSettings.enabled`` turns the ``backup_registry`` function on (EventBridge calls it when the endpoint
becomes InService and on ``schedule_cron``); it writes JSON under ``prefix`` of the artifacts bucket.
``replication`` (None by default) makes S3 replicate the artifacts bucket, KMS-encrypted objects included,
into a bucket of another region, encrypted there with that region's key: both ARNs are required, and the
destination must be in another region than the deployment (the Storage stack checks it).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from settings.types import FrozenModel

BucketArn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
KmsKeyArn = Annotated[
    str,
    Field(pattern=r"^arn:aws[a-z-]*:kms:[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d:\d{12}:key/[a-zA-Z0-9-]{1,64}$"),
]
_KEY_REGION = re.compile(r"^arn:[^:]+:kms:([^:]+):")


class ReplicationSettings(FrozenModel):
    """Where S3 replicates the artifacts bucket: a versioned bucket in another region and its KMS key."""

    destination_bucket_arn: BucketArn
    destination_key_arn: KmsKeyArn
    # S3 storage class of the replicas: a DR copy is rarely read.
    storage_class: str = Field(
        default="STANDARD_IA", pattern=r"^(STANDARD|STANDARD_IA|ONEZONE_IA|INTELLIGENT_TIERING|GLACIER_IR)$"
    )

    @property
    def destination_region(self) -> str:
        """The destination's region, read from its key's ARN (a bucket ARN has none)."""
        match = _KEY_REGION.match(self.destination_key_arn)
        assert match is not None  # the field pattern guarantees it
        return match.group(1)


class BackupSettings(FrozenModel):
    """Backups of the model registry and the endpoint configuration, and the optional replication."""

    enabled: bool = True
    # EventBridge cron (minutes hours day-of-month month day-of-week year), UTC; daily 02:30 by default.
    schedule_cron: str = Field(default="cron(30 2 * * ? *)", pattern=r"^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$")
    # Artifacts-bucket prefix of the backups: <prefix><UTC time>/backup.json and <prefix>latest.json.
    prefix: str = Field(default="backups/", pattern=r"^[a-z0-9][a-z0-9-]{0,30}/$")
    replication: ReplicationSettings | None = None
