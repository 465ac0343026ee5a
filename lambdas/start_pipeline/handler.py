"""Lambda entry point: start the training pipeline when new raw data lands, once per burst of files.

Trigger: the data bucket sends S3 events to EventBridge; a rule for `Object Created` on the bucket and the
raw prefix invokes this function once per object. Uploading a data set is several objects (train, test,
RUL files, or parts) arriving within seconds to minutes of each other; they must start ONE execution.

Chosen design: leading-edge debounce per input prefix, made race-safe by an idempotency token.
- The pipeline parameter `InputDataUri` is the "folder" of the new object (`s3://<bucket>/raw/<batch>/`).
- If an execution for that prefix (recognised by its display name `newdata-<prefix digest>-<window>`)
  started within the last `DEBOUNCE_SECONDS`, the event is absorbed (action "debounced").
- Otherwise StartPipelineExecution is called with `ClientRequestToken` = sha256(pipeline, prefix, time
  window index). The token is SageMaker's idempotency key ("an idempotent operation completes no more
  than once"), so concurrent invocations for the same burst that both saw no execution collapse into
  one. Every request field is derived from (prefix, window) only, so the repeated requests are identical.
- Remaining gap: two invocations that run at the same moment on both sides of a window boundary get
  different tokens and can start two executions; only simultaneous calls are exposed (a later call sees
  the first execution in the list check).

Alternative not chosen: EventBridge -> SQS -> Lambda with a batching window (up to 300 s) starts after the
burst (trailing edge), so a slow upload is not split. But a window does not guarantee one batch per burst
(Lambda polls SQS with several concurrent pollers, and batch size limits split bursts), so it needs the
same de-duplication anyway, plus a queue, a DLQ and their KMS grants. The leading-edge choice has its own
cost: the execution starts on the first file; the PreprocessData job downloads `InputDataUri` when its
instance starts (minutes later), so files of the same burst that land before then are included, and a
file arriving after the download but within the window is absorbed without being processed. Upload a data
set within a few minutes, or under a new prefix, and keep `DEBOUNCE_SECONDS` short (default 300).

Objects outside the bucket or raw prefix, folder markers and unexpected suffixes are ignored; malformed
events are logged and ignored. Every path returns {"action", "reason", ...} and logs one JSON line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

LOGGER = logging.getLogger("start_pipeline")
LOGGER.setLevel(logging.INFO)

# Same value as pipeline_steps.names.INPUT_DATA_URI (a test keeps them equal; this package stands alone).
INPUT_DATA_URI = "InputDataUri"
EVENT_SOURCE = "aws.s3"
EVENT_DETAIL_TYPE = "Object Created"
DISPLAY_NAME_PREFIX = "newdata"

ENV_PIPELINE = "PIPELINE_NAME"
ENV_BUCKET = "DATA_BUCKET"
ENV_RAW_PREFIX = "RAW_PREFIX"
ENV_SUFFIXES = "ALLOWED_SUFFIXES"
ENV_DEBOUNCE = "DEBOUNCE_SECONDS"

PIPELINE_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ConfigError(ValueError):
    """Missing or invalid environment variables; the message names each with its value."""


@dataclass(frozen=True)
class TriggerConfig:
    pipeline_name: str
    data_bucket: str
    raw_prefix: str  # e.g. "raw/"
    suffixes: tuple[str, ...]  # e.g. (".txt",)
    debounce_seconds: int


@dataclass(frozen=True)
class NewObject:
    bucket: str
    key: str


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
    raw_suffixes = environ.get(ENV_SUFFIXES, ".txt")
    suffixes = tuple(part.strip().lower() for part in raw_suffixes.split(",") if part.strip())
    if not suffixes or not all(suffix.startswith(".") for suffix in suffixes):
        problems.append(f"{ENV_SUFFIXES}: comma-separated suffixes starting with '.' (got {raw_suffixes!r})")
    raw_debounce = environ.get(ENV_DEBOUNCE, "300")
    debounce = int(raw_debounce) if raw_debounce.strip().isdigit() else -1
    if not 30 <= debounce <= 3600:
        problems.append(f"{ENV_DEBOUNCE}: an integer in [30, 3600] seconds (got {raw_debounce!r})")
    if problems:
        raise ConfigError("invalid start-pipeline configuration: " + "; ".join(problems))
    return TriggerConfig(pipeline, bucket, prefix, suffixes, debounce)


def decide(action: str, reason: str, level: int = logging.INFO, **fields: Any) -> dict[str, Any]:
    """Log one JSON line for the decision and return it as the function's result."""
    result = {"action": action, "reason": reason, **fields}
    LOGGER.log(level, json.dumps({"function": "start_pipeline", **result}, default=str, sort_keys=True))
    return result


class Ignored(Exception):
    """The event names no object this function starts the pipeline for; the message is the reason."""


def parse_event(event: Any, config: TriggerConfig) -> NewObject:
    if not isinstance(event, dict):
        raise Ignored(f"event is not an object: {type(event).__name__}")
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
    return NewObject(bucket, key)


def input_prefix(obj: NewObject) -> str:
    """The object's folder as an S3 URI ending in '/': the pipeline reads every file under it."""
    return f"s3://{obj.bucket}/{posixpath.dirname(obj.key)}/"


def request_identity(config: TriggerConfig, prefix: str, now: datetime) -> tuple[str, str]:
    """(display name, idempotency token) of the execution for `prefix` in the time window holding `now`."""
    window = int(now.timestamp()) // config.debounce_seconds
    token = hashlib.sha256(f"{config.pipeline_name}|{prefix}|{window}".encode()).hexdigest()  # 64 chars
    return f"{display_name_marker(prefix)}{window}", token


def display_name_marker(prefix: str) -> str:
    """Start of the display name of every new-data execution for `prefix`."""
    return f"{DISPLAY_NAME_PREFIX}-{hashlib.sha256(prefix.encode()).hexdigest()[:12]}-"


def recent_execution(sagemaker: Any, config: TriggerConfig, prefix: str, now: datetime) -> dict | None:
    """The newest execution for `prefix` started within the debounce window, if any (any status)."""
    since = now - timedelta(seconds=config.debounce_seconds)
    marker = display_name_marker(prefix)
    paginator = sagemaker.get_paginator("list_pipeline_executions")
    pages = paginator.paginate(
        PipelineName=config.pipeline_name, CreatedAfter=since, SortBy="CreationTime", SortOrder="Descending"
    )
    for page in pages:
        for summary in page.get("PipelineExecutionSummaries", []):
            started = summary.get("StartTime")
            name = summary.get("PipelineExecutionDisplayName") or ""
            # Filter here too: the window is re-checked whatever the service applied.
            if started is not None and started >= since and name.startswith(marker):
                return summary
    return None


def run(event: Any, config: TriggerConfig, sagemaker: Any, clock: Callable[[], datetime]) -> dict[str, Any]:
    """Act on one event with the given client and clock (the tests call this)."""
    try:
        obj = parse_event(event, config)
    except Ignored as reason:
        return decide("ignored", str(reason))
    now = clock()
    prefix = input_prefix(obj)
    fields = {"pipeline": config.pipeline_name, "input_data_uri": prefix, "key": obj.key}
    recent = recent_execution(sagemaker, config, prefix, now)
    if recent is not None:
        return decide(
            "debounced",
            f"an execution for {prefix} started at {recent['StartTime']}, "
            f"within the last {config.debounce_seconds} s",
            execution_arn=recent["PipelineExecutionArn"],
            execution_status=recent.get("PipelineExecutionStatus"),
            **fields,
        )
    display_name, token = request_identity(config, prefix, now)
    response = sagemaker.start_pipeline_execution(
        PipelineName=config.pipeline_name,
        PipelineExecutionDisplayName=display_name,
        PipelineExecutionDescription=f"New data under {prefix}",
        PipelineParameters=[{"Name": INPUT_DATA_URI, "Value": prefix}],
        ClientRequestToken=token,
    )
    return decide(
        "started",
        f"new data under {prefix}",
        execution_arn=response["PipelineExecutionArn"],
        display_name=display_name,
        **fields,
    )


def make_client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("sagemaker", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda handler: validate the environment, build the client, run; failures are logged, then raised."""
    try:
        return run(event, load_config(os.environ), make_client(), lambda: datetime.now(UTC))
    except Exception as error:
        decide("error", f"{type(error).__name__}: {error}", level=logging.ERROR)
        raise
