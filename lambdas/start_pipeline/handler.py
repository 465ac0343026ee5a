"""Lambda entry point: start the training pipeline on new raw data, on a schedule and on drift, keyed by the
data version of its input, once per burst of files.

Triggers: S3 `Object Created` events under the raw prefix (one invocation per object; a data set is
several objects arriving within minutes, which must start ONE execution on their folder), and the schedule
and drift-alarm rules, whose constant input names the reason and the whole raw prefix (`events`).

Data version: SageMaker's step cache is keyed by a step's request arguments, i.e. S3 URIs, not bytes. The
function therefore lists the input prefix and passes `DataVersion` (a hash of the listing, see
`data_version`) and `RegisteredDataVersion` (the newest registered package's, see `registry`) as pipeline
parameters; the pipeline puts `DataVersion` into its steps' arguments, so new or changed data means fresh
steps, and registers nothing when the two are equal.

Unchanged data is not started at all (action "unchanged"): the definition would end such a run without a
new version, every step a cache hit within the 30-day expiry, but after it a full retrain on the same data,
paid for nothing. Drift on unchanged data is logged the same way: retraining cannot help until new data
arrives under the raw prefix. To retrain anyway (new code, other parameters) start the pipeline by hand.

Debounce: leading edge, per input prefix. If an execution for the prefix (its display name
`<reason>-<prefix digest>-<data version>-<window>`) started within the last `DEBOUNCE_SECONDS`, whatever
its reason or data version, the event is absorbed (action "debounced"); files of a burst change the
listing, yet must not start a run each. Otherwise StartPipelineExecution is called with
`ClientRequestToken` = sha256(pipeline, prefix, time window index), SageMaker's idempotency key ("an
idempotent operation completes no more than once"): two concurrent invocations for one burst that both saw
no execution collapse into one. The data version is deliberately NOT in the token: two concurrent calls
may list the burst at different moments, and a token per version would start one run per listing. When
they send the same token with different parameters SageMaker either returns the first execution or
rejects the second call, whose retry then finds the execution and is debounced. Remaining gap: two calls
at the same moment on both sides of a window boundary get different tokens.

Cost of the leading edge: the execution starts on the first file; PreprocessData downloads the prefix when
its instance starts (minutes later), so later files of the burst are included, but its `DataVersion` names
the listing at the start. Upload a data set within a few minutes, or under a new prefix.

Objects outside the bucket or raw prefix, folder markers, unexpected suffixes and malformed events are
logged and ignored. Every path returns {"action", "reason", ...} and logs one JSON line.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lambdas.common.clients import make_clients
from lambdas.common.decisions import DecisionLog
from lambdas.common.handler import run_logged
from lambdas.common.pipeline_names import DATA_VERSION, REGISTERED_DATA_VERSION

from .config import ConfigError, TriggerConfig, load_config
from .data_version import list_data_objects, listing_version
from .events import INPUT_DATA_URI, Ignored, StartRequest, parse_event
from .registry import registered_data_version

__all__ = ["ConfigError", "TriggerConfig", "handler", "load_config", "run"]

DECISIONS = DecisionLog("start_pipeline")
decide = DECISIONS.decide


@dataclass(frozen=True)
class Clients:
    """The boto3 clients the function calls: SageMaker and S3."""

    sagemaker: Any
    s3: Any


def prefix_digest(input_data_uri: str) -> str:
    """12 hex characters of the input URI's sha256, used in execution names and client tokens."""
    return hashlib.sha256(input_data_uri.encode()).hexdigest()[:12]


def request_identity(
    config: TriggerConfig, request: StartRequest, data_version: str, now: datetime
) -> tuple[str, str]:
    """(display name, idempotency token) of the execution for `request` in the time window holding `now`."""
    uri = request.input_data_uri
    window = int(now.timestamp()) // config.debounce_seconds
    token = hashlib.sha256(f"{config.pipeline_name}|{uri}|{window}".encode()).hexdigest()  # 64 chars
    return f"{request.reason}-{prefix_digest(uri)}-{data_version}-{window}", token


def is_execution_for(display_name: str, input_data_uri: str) -> bool:
    """Whether a display name is one this function gave an execution on `input_data_uri` (any reason)."""
    parts = display_name.split("-")
    return len(parts) >= 3 and parts[1] == prefix_digest(input_data_uri)


def recent_execution(sagemaker: Any, config: TriggerConfig, uri: str, now: datetime) -> dict | None:
    """The newest execution on `uri` started within the debounce window, if any (any status)."""
    since = now - timedelta(seconds=config.debounce_seconds)
    paginator = sagemaker.get_paginator("list_pipeline_executions")
    pages = paginator.paginate(
        PipelineName=config.pipeline_name, CreatedAfter=since, SortBy="CreationTime", SortOrder="Descending"
    )
    for page in pages:
        for summary in page.get("PipelineExecutionSummaries", []):
            started = summary.get("StartTime")
            name = summary.get("PipelineExecutionDisplayName") or ""
            # Filter here too: the window is re-checked whatever the service applied.
            if started is not None and started >= since and is_execution_for(name, uri):
                return summary
    return None


def start(
    sagemaker: Any, config: TriggerConfig, request: StartRequest, versions: tuple[str, str], now: datetime
) -> tuple[str, str]:
    """Start the execution; returns (execution ARN, display name)."""
    data_version, registered = versions
    display_name, token = request_identity(config, request, data_version, now)
    origin = f" ({request.key})" if request.key else ""
    response = sagemaker.start_pipeline_execution(
        PipelineName=config.pipeline_name,
        PipelineExecutionDisplayName=display_name,
        PipelineExecutionDescription=(
            f"{request.reason}: data version {data_version} under {request.input_data_uri}{origin}"
        ),
        PipelineParameters=[
            {"Name": INPUT_DATA_URI, "Value": request.input_data_uri},
            {"Name": DATA_VERSION, "Value": data_version},
            {"Name": REGISTERED_DATA_VERSION, "Value": registered},
        ],
        ClientRequestToken=token,
    )
    return response["PipelineExecutionArn"], display_name


def run(event: Any, config: TriggerConfig, clients: Clients, clock: Callable[[], datetime]) -> dict[str, Any]:
    """Act on one event with the given clients and clock (the tests call this)."""
    try:
        request = parse_event(event, config)
    except Ignored as reason:
        return decide("ignored", str(reason))
    now, uri = clock(), request.input_data_uri
    fields: dict[str, Any] = {
        "pipeline": config.pipeline_name,
        "trigger": request.reason,
        "input_data_uri": uri,
    }
    if request.key:
        fields["key"] = request.key
    recent = recent_execution(clients.sagemaker, config, uri, now)
    if recent is not None:
        return decide(
            "debounced",
            f"an execution on {uri} started at {recent['StartTime']}, "
            f"within the last {config.debounce_seconds} s",
            execution_arn=recent["PipelineExecutionArn"],
            execution_status=recent.get("PipelineExecutionStatus"),
            **fields,
        )
    objects = list_data_objects(clients.s3, request.bucket, request.prefix, config.suffixes)
    if not objects:
        suffixes = ", ".join(config.suffixes)
        return decide("no-data", f"no {suffixes} file under {uri}", level=logging.WARNING, **fields)
    data_version = listing_version(objects)
    registered = registered_data_version(clients.sagemaker, config.model_package_group)
    fields.update(data_version=data_version, registered_data_version=registered, objects=len(objects))
    if data_version == registered:
        return decide(
            "unchanged",
            f"the newest model of {config.model_package_group} was trained on data version {data_version}; "
            "nothing new to train on",
            **fields,
        )
    arn, display_name = start(clients.sagemaker, config, request, (data_version, registered), now)
    return decide(
        "started",
        f"{request.reason}: data version {data_version} under {uri}",
        execution_arn=arn,
        display_name=display_name,
        **fields,
    )


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda handler: validate the environment, build the clients, run; failures are logged, then raised."""
    return run_logged(DECISIONS, lambda: _invoke(event))


def _invoke(event: Any) -> dict[str, Any]:
    config = load_config(os.environ)
    sagemaker, s3 = make_clients("sagemaker", "s3")
    return run(event, config, Clients(sagemaker=sagemaker, s3=s3), lambda: datetime.now(UTC))
