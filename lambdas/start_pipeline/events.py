"""What asks for a run: an S3 `Object Created` event under the raw prefix, or a rule's constant input.

`parse_event` turns either into a `StartRequest` (why, which bucket and prefix, which object) or raises
`Ignored` with the reason. The schedule and drift rules cannot compute a data version themselves, so they
invoke this function with `rule_input(reason, uri)`; the CDK app builds their input with the same
function, so the format exists once.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from lambdas.common.decisions import Ignored
from lambdas.common.pipeline_names import INPUT_DATA_URI

from .config import TriggerConfig

EVENT_SOURCE = "aws.s3"
EVENT_DETAIL_TYPE = "Object Created"
# Why a run starts; each is a word without hyphens, the first part of the execution's display name.
NEW_DATA = "newdata"
SCHEDULE = "schedule"
DRIFT = "drift"
RULE_REASONS = (SCHEDULE, DRIFT)
REASON_FIELD = "reason"


@dataclass(frozen=True)
class StartRequest:
    """Why and on which input folder to start the pipeline."""

    reason: str  # NEW_DATA, SCHEDULE or DRIFT
    bucket: str
    prefix: str  # key prefix ending in "/", e.g. "raw/batch-7/"
    key: str | None = None  # the new object, for NEW_DATA

    @property
    def input_data_uri(self) -> str:
        """The input folder as an s3:// URI."""
        return f"s3://{self.bucket}/{self.prefix}"


def rule_input(reason: str, input_data_uri: str) -> dict[str, str]:
    """The constant input of the schedule and drift rules' targets."""
    if reason not in RULE_REASONS:
        raise ValueError(f"reason {reason!r} is not one of {', '.join(RULE_REASONS)}")
    return {REASON_FIELD: reason, INPUT_DATA_URI: input_data_uri}


def parse_event(event: Any, config: TriggerConfig) -> StartRequest:
    """The start request in an S3 object-created event or a rule's input; `Ignored` says why not."""
    if not isinstance(event, dict):
        raise Ignored(f"event is not an object: {type(event).__name__}")
    if REASON_FIELD in event:
        return _parse_rule_input(event, config)
    if event.get("source") != EVENT_SOURCE or event.get("detail-type") != EVENT_DETAIL_TYPE:
        raise Ignored(f"unexpected source/detail-type {event.get('source')!r}/{event.get('detail-type')!r}")
    detail = event.get("detail")
    bucket = detail.get("bucket", {}).get("name") if isinstance(detail, dict) else None
    key = detail.get("object", {}).get("key") if isinstance(detail, dict) else None
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
        raise Ignored("detail lacks bucket.name or object.key")
    # EventBridge S3 events carry the key as stored (not URL-encoded like S3 notifications).
    if bucket != config.data_bucket:
        raise Ignored(f"object is in bucket {bucket!r}, not the data bucket {config.data_bucket!r}")
    if not key.startswith(config.raw_prefix) or key.endswith("/"):
        raise Ignored(f"key {key!r} is not a file under {config.raw_prefix!r}")
    if not key.lower().endswith(config.suffixes):
        raise Ignored(f"key {key!r} does not end with one of {', '.join(config.suffixes)}")
    # The object's folder: the pipeline reads every file under it.
    return StartRequest(NEW_DATA, bucket, f"{posixpath.dirname(key)}/", key)


def _parse_rule_input(event: dict, config: TriggerConfig) -> StartRequest:
    reason, uri = event.get(REASON_FIELD), event.get(INPUT_DATA_URI)
    if reason not in RULE_REASONS:
        raise Ignored(f"{REASON_FIELD} {reason!r} is not one of {', '.join(RULE_REASONS)}")
    bucket_prefix = f"s3://{config.data_bucket}/"
    if not isinstance(uri, str) or not uri.startswith(bucket_prefix) or not uri.endswith("/"):
        raise Ignored(f"{INPUT_DATA_URI} {uri!r} is not a folder of {bucket_prefix}")
    prefix = uri[len(bucket_prefix) :]
    if not prefix.startswith(config.raw_prefix) or "//" in prefix:
        raise Ignored(f"{INPUT_DATA_URI} {uri!r} is not under {bucket_prefix}{config.raw_prefix}")
    return StartRequest(reason, config.data_bucket, prefix)
