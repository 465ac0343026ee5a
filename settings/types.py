"""Shared field types, limits and the base model of the settings."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

PLACEHOLDER_ACCOUNT = "111111111111"
PLACEHOLDER_REGION = "eu-west-1"

# ml.<family>.<size>, e.g. ml.m5.xlarge, ml.g4dn.2xlarge, ml.c6i.large, ml.t3.medium.
InstanceType = Annotated[
    str, Field(pattern=r"^ml\.[a-z][a-z0-9-]*\.(nano|micro|small|medium|large|\d{0,2}xlarge)$")
]
InstanceCount = Annotated[int, Field(ge=1, le=8)]
ProfileName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")]
EmailAddress = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
]
VpcId = Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")]
SubnetId = Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]
VpcEndpointId = Annotated[str, Field(pattern=r"^vpce-[0-9a-f]{8,17}$")]
# A pinned ECR image: <account>.dkr.ecr.<region>.amazonaws.com/<repository> then @sha256:<digest> or :<tag>.
EcrImageUri = Annotated[
    str,
    Field(
        pattern=r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9]+(?:[._/-][a-z0-9]+)*"
        r"(@sha256:[0-9a-f]{64}|:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$"
    ),
]
IamPrincipalArn = Annotated[
    str,
    Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:(root|role/[A-Za-z0-9+=,.@_/-]+|user/[A-Za-z0-9+=,.@_/-]+)$"),
]
# CloudWatch Logs accepts only these retention periods (days).
LogRetentionDays = Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 3653]

MAX_BUCKET_NAME = 63
MAX_ROLE_NAME = 64


class SettingsError(ValueError):
    """Invalid settings; the message lists every bad field with the value that was given."""


class FrozenModel(BaseModel):
    """Base of every settings model: immutable, strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
