"""The S3-compatible destination: a client for its endpoint, and verified, idempotent uploads.

`make_client` signs with Signature Version 4 and, by default, path-style addressing (Supabase Storage,
MinIO), with short timeouts and botocore's flexible checksums only where an operation requires them: the
CRC trailers botocore adds by default are rejected by several S3-compatible stores, so integrity comes from
`Content-MD5` (or a precomputed `x-amz-checksum-sha256`) instead. `put_verified` skips an object whose
stored sha256 metadata and size already match, uploads otherwise, and reads the object's head back to check
size and sha256. Every object carries the model version, package ARN, group and its sha256 as user
metadata. Store errors become `MirrorError` with a message naming the endpoint, bucket and key, never a key
or secret.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

SHA256_METADATA = "sha256"
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
CREDENTIAL_CODES = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
)
CHECKSUMS = ("md5", "sha256")


class MirrorError(RuntimeError):
    """The mirror could not be written or verified; the message says where and why."""


@dataclass(frozen=True)
class Destination:
    """A bucket and key prefix of an S3-compatible store, reached through `client`."""

    client: Any
    endpoint_url: str
    bucket: str
    prefix: str
    checksum: str = "md5"

    def where(self, key: str) -> str:
        """Where `key` is, for messages: the endpoint, bucket and key (never credentials)."""
        return f"{self.endpoint_url} bucket {self.bucket!r} key {key!r}"


def make_client(
    endpoint_url: str,
    region: str,
    access_key_id: str,
    secret_access_key: str,
    *,
    path_style: bool = True,
    timeout_seconds: int = 30,
) -> Any:
    """An S3 client for the store; a session of its own, so no ambient AWS credentials are mixed in."""
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if path_style else "virtual"},
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
        retries={"mode": "standard", "max_attempts": 3},
        **checksum_options(Config),
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    )


def checksum_options(config_class: Any) -> dict[str, str]:
    """Checksums only where an operation requires them, for a botocore that knows the options.

    botocore 1.36 began adding CRC checksums to every upload by default, with these two `Config` options
    to turn that off. The function uses the Lambda runtime's boto3, whose version depends on the runtime
    release and the region; an older botocore adds no default checksums and rejects the options, so they
    are passed only when `config_class` declares them.
    """
    options = ("request_checksum_calculation", "response_checksum_validation")
    known = getattr(config_class, "OPTION_DEFAULTS", {})
    return {option: "when_required" for option in options if option in known}


class StoreSettings(Protocol):
    """What names a destination: the function's `MirrorConfig` and the local runner's settings both do.

    Read-only members, so that frozen dataclasses and frozen pydantic models match.
    """

    @property
    def endpoint_url(self) -> str:
        """The store's S3 API URL."""

    @property
    def bucket(self) -> str:
        """The destination bucket."""

    @property
    def region(self) -> str:
        """The signing region: a region name or 'auto'."""

    @property
    def prefix(self) -> str:
        """The key prefix the mirror writes under."""

    @property
    def path_style(self) -> bool:
        """Whether the bucket goes in the URL path (True) or in the host name."""

    @property
    def checksum(self) -> str:
        """How uploads are checked by the store: 'md5' (Content-MD5) or 'sha256'."""

    @property
    def timeout_seconds(self) -> int:
        """The connect and read timeout of each store call."""


def open_destination(settings: StoreSettings, access_key_id: str, secret_access_key: str) -> Destination:
    """The destination `settings` name, reached with the given keys."""
    client = make_client(
        settings.endpoint_url,
        settings.region,
        access_key_id,
        secret_access_key,
        path_style=settings.path_style,
        timeout_seconds=settings.timeout_seconds,
    )
    return Destination(client, settings.endpoint_url, settings.bucket, settings.prefix, settings.checksum)


def explain(error: Exception, destination: Destination, key: str) -> MirrorError:
    """A `MirrorError` for a botocore error: bad keys, a missing bucket, an unreachable endpoint."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    where = destination.where(key)
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", "unknown"))
        if code in CREDENTIAL_CODES:
            return MirrorError(
                f"the store refused the credentials ({code}) at {where}: check the access keys"
            )
        if code == "NoSuchBucket":
            return MirrorError(f"bucket {destination.bucket!r} does not exist at {destination.endpoint_url}")
        return MirrorError(f"the store answered {code} at {where}")
    if isinstance(error, EndpointConnectionError):
        return MirrorError(
            f"cannot reach the store at {destination.endpoint_url} (is it up, is egress open?)"
        )
    return MirrorError(f"{type(error).__name__} at {where}: {error}")


def _head(destination: Destination, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return destination.client.head_object(Bucket=destination.bucket, Key=key)
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) in NOT_FOUND_CODES:
            return None
        raise explain(error, destination, key) from None
    except BotoCoreError as error:
        raise explain(error, destination, key) from None


def _matches(head: dict[str, Any] | None, sha256: str, size: int) -> bool:
    if head is None:
        return False
    return head.get("Metadata", {}).get(SHA256_METADATA) == sha256 and head.get("ContentLength") == size


def _checksum_argument(checksum: str, body: bytes) -> dict[str, str]:
    if checksum == "md5":
        return {"ContentMD5": base64.b64encode(hashlib.md5(body).digest()).decode()}
    if checksum == "sha256":
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        return {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": digest}
    raise ValueError(f"checksum {checksum!r} is not one of {', '.join(CHECKSUMS)}")


def put_verified(
    destination: Destination, key: str, body: bytes, metadata: dict[str, str], content_type: str
) -> str:
    """Write `body` at `key` with `metadata` plus its sha256; "skipped" when an identical object is there,
    else "uploaded" once the object's head shows the same size and sha256."""
    from botocore.exceptions import BotoCoreError, ClientError

    sha256 = hashlib.sha256(body).hexdigest()
    if _matches(_head(destination, key), sha256, len(body)):
        return "skipped"
    try:
        destination.client.put_object(
            Bucket=destination.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            Metadata={**metadata, SHA256_METADATA: sha256},
            **_checksum_argument(destination.checksum, body),
        )
    except (ClientError, BotoCoreError) as error:
        raise explain(error, destination, key) from None
    if not _matches(_head(destination, key), sha256, len(body)):
        raise MirrorError(
            f"{destination.where(key)} does not read back with sha256 {sha256} after the upload"
        )
    return "uploaded"
