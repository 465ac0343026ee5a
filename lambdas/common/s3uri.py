"""The one S3-URI parser of the functions: `s3://<bucket>/<key>` into its bucket and key."""

from __future__ import annotations

import re
from dataclasses import dataclass

SCHEME = "s3://"
S3_URI_PATTERN = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?$", re.DOTALL)


class S3UriError(ValueError):
    """Not an `s3://<bucket>/<key>` URI; the message quotes it."""


@dataclass(frozen=True)
class S3Uri:
    """A bucket and a key (possibly empty, or a prefix ending in "/")."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def parse_s3_uri(uri: object, require_key: bool = False) -> S3Uri:
    """Split `uri`; `S3UriError` when it is no S3 URI with a valid bucket (or lacks a key if required)."""
    match = S3_URI_PATTERN.match(uri) if isinstance(uri, str) else None
    if match is None or (require_key and not match.group(2)):
        needed = "s3://bucket/key" if require_key else "s3://bucket[/key]"
        raise S3UriError(f"not an {needed} URI: {uri!r}")
    return S3Uri(match.group(1), match.group(2) or "")


def is_s3_uri(uri: object) -> bool:
    """Whether `parse_s3_uri` accepts `uri`."""
    return isinstance(uri, str) and S3_URI_PATTERN.match(uri) is not None
