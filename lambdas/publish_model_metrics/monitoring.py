"""Publish the metrics of a finished monitoring-pipeline execution to CloudWatch.

The monitoring pipeline's DriftCheck and ModelQualityCheck jobs run with network isolation, so they write
their PutMetricData requests, one JSON object per line (`{"Namespace", "MetricData": [...]}`, timestamps
in ISO 8601), to `metrics.jsonl` in their report output under
`s3://<artifacts>/<MONITORING_REPORTS_PREFIX><execution id>/<step>/report/`. When an execution ends
(Succeeded, or Failed: a step that failed writes nothing, the other's metrics still count), this module
lists that execution's prefix, checks every request (namespace in `MONITORING_NAMESPACES`, finite values,
times) and sends it. A malformed line is skipped and reported, never failing the rest; no metrics at all
is reported as `skipped`, and the "monitoring silent" alarm notices the gap.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lambdas.common.config import BUCKET_PATTERN, ConfigError
from lambdas.common.pipeline_names import METRICS_FILE

from .config import ENV_MONITORING_BUCKET as ENV_BUCKET
from .config import ENV_MONITORING_NAMESPACES as ENV_NAMESPACES
from .config import ENV_MONITORING_PIPELINE as ENV_PIPELINE
from .config import ENV_MONITORING_PREFIX as ENV_PREFIX

HANDLED_STATUSES = ("Succeeded", "Failed")
_EXECUTION_ID = re.compile(r":pipeline/([^/]+)/execution/([A-Za-z0-9]+)$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/-]+/$")


@dataclass(frozen=True)
class MonitoringConfig:
    """The monitoring pipeline, where its jobs write metric files, and the namespaces accepted."""

    pipeline_name: str
    bucket: str
    prefix: str
    namespaces: tuple[str, ...]


def load_monitoring_config(environ: Mapping[str, str]) -> MonitoringConfig | None:
    """The monitoring settings, or None when the function serves only the training pipeline."""
    pipeline = environ.get(ENV_PIPELINE, "").strip()
    if not pipeline:
        return None
    bucket, prefix = environ.get(ENV_BUCKET, "").strip(), environ.get(ENV_PREFIX, "").strip()
    namespaces = tuple(item.strip() for item in environ.get(ENV_NAMESPACES, "").split(",") if item.strip())
    problems = [
        f"{name}: {problem} (got {value!r})"
        for name, value, ok, problem in (
            (ENV_BUCKET, bucket, bool(BUCKET_PATTERN.match(bucket)), "a bucket"),
            (ENV_PREFIX, prefix, bool(_PREFIX.match(prefix)), "a key prefix ending in '/'"),
            (ENV_NAMESPACES, namespaces, bool(namespaces), "a comma-separated list of namespaces"),
        )
        if not ok
    ]
    if problems:
        raise ConfigError("invalid monitoring configuration: " + "; ".join(problems))
    return MonitoringConfig(pipeline, bucket, prefix, namespaces)


def monitoring_execution(event: Any, config: MonitoringConfig) -> tuple[str, str] | None:
    """(execution id, status) for a finished execution of the monitoring pipeline, else None."""
    detail = event.get("detail") if isinstance(event, dict) else None
    if not isinstance(detail, dict):
        return None
    match = _EXECUTION_ID.search(str(detail.get("pipelineExecutionArn", "")))
    # SageMaker lower-cases the names in its ARNs.
    if match is None or match.group(1).lower() != config.pipeline_name.lower():
        return None
    status = detail.get("currentPipelineExecutionStatus")
    return (match.group(2), status) if status in HANDLED_STATUSES else None


def metrics_keys(s3: Any, config: MonitoringConfig, execution_id: str) -> list[str]:
    """The keys of the metric files one monitoring execution wrote, sorted."""
    paginator = s3.get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=config.bucket, Prefix=f"{config.prefix}{execution_id}/")
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return sorted(key for key in keys if key.rsplit("/", 1)[-1] == METRICS_FILE)


def parse_request(line: str, namespaces: tuple[str, ...]) -> dict:
    """One PutMetricData request of a metrics line; ValueError says what is wrong."""
    request = json.loads(line)
    if not isinstance(request, dict) or request.get("Namespace") not in namespaces:
        raise ValueError(f"namespace must be one of {', '.join(namespaces)}")
    data = request.get("MetricData")
    if not isinstance(data, list) or not data:
        raise ValueError("MetricData must be a non-empty list")
    checked = []
    for datum in data:
        value = datum.get("Value") if isinstance(datum, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"metric value {value!r} is not a finite number")
        moment = datetime.fromisoformat(str(datum.get("Timestamp", "")).replace("Z", "+00:00"))
        checked.append({**datum, "Timestamp": moment})
    return {"Namespace": request["Namespace"], "MetricData": checked}


def publish_execution(
    s3: Any, cloudwatch: Any, config: MonitoringConfig, execution_id: str
) -> dict[str, Any]:
    """Send every valid request of the execution's metrics files; report what was sent and skipped."""
    sent, metrics, skipped = 0, 0, []
    keys = metrics_keys(s3, config, execution_id)
    for key in keys:
        text = s3.get_object(Bucket=config.bucket, Key=key)["Body"].read().decode("utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                request = parse_request(line, config.namespaces)
            except ValueError as error:  # json.JSONDecodeError and bad times are ValueErrors too
                skipped.append(f"s3://{config.bucket}/{key}:{number}: {error}")
                continue
            cloudwatch.put_metric_data(**request)
            sent, metrics = sent + 1, metrics + len(request["MetricData"])
    return {"files": keys, "requests": sent, "metrics": metrics, "skipped_lines": skipped}
