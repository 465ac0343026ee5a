"""What the drift and model-quality jobs share: arguments, the capture window, reports and metric data.

Both jobs read the captures of one time window through `rul.capture.read_window` (`load_window` here),
state in their report how many records were read and skipped (`captures` block, the first few skipped
records with file, line and reason), print every skipped record, and emit the `CaptureRecordsSkipped`
metric, so a client whose requests cannot be monitored is seen rather than silently dropped. Metrics are
CloudWatch PutMetricData entries, sent by boto3 (`cloudwatch`), appended as JSON Lines (`file`) or not
emitted (`none`).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from rul.capture import CaptureWindow, capture_files, parse_time, read_window
from rul.errors import ConfigurationError, DataFormatError

METRICS_FILE = "metrics.jsonl"
METRICS_TARGETS = ("cloudwatch", "file", "none")
# PutMetricData takes at most 1000 metrics per request (CloudWatch API reference); we send far fewer.
MAX_METRICS_PER_REQUEST = 1000
# Additions (the `captures` block, `counts.rows_sent`) keep the version: readers ignore unknown keys.
REPORT_VERSION = 1
# A capture file sits at <endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl under the captures root.
CAPTURE_DEPTH = 7

MetricsClientFactory = Callable[[str | None], Any]  # a boto3 CloudWatch client


def log(message: str) -> None:
    """Print `message` to the job's log at once (flushed)."""
    print(message, flush=True)


def time_argument(text: str) -> datetime:
    """argparse type: an ISO 8601 time as aware UTC; anything else is an argument error."""
    try:
        return parse_time(text, "argument")
    except DataFormatError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None


def add_common_arguments(parser: argparse.ArgumentParser, namespace: str) -> None:
    """Captures, output, window, endpoint and metrics arguments of both monitoring jobs."""
    parser.add_argument("--captures", type=Path, default=None, help="data-capture folder")
    parser.add_argument("--output", type=Path, default=None, help="report folder")
    parser.add_argument("--endpoint", default=None, help="endpoint name (default: from the capture folders)")
    parser.add_argument(
        "--start", type=time_argument, default=None, help="window start, ISO 8601 (inclusive)"
    )
    parser.add_argument("--end", type=time_argument, default=None, help="window end, ISO 8601 (exclusive)")
    parser.add_argument("--metrics-target", choices=METRICS_TARGETS, default="file")
    parser.add_argument("--metrics-file", type=Path, default=None, help=f"default: <output>/{METRICS_FILE}")
    parser.add_argument("--namespace", default=namespace, help=f"CloudWatch namespace (default {namespace})")
    parser.add_argument("--region", default=None, help="AWS region of CloudWatch (default: boto3's)")


def check_window(start: datetime | None, end: datetime | None) -> None:
    """Refuse a window whose `start` is not before its `end` (either may be open)."""
    if start is not None and end is not None and not start < end:
        raise ConfigurationError(f"--start {start.isoformat()} must be before --end {end.isoformat()}")


def endpoint_name(root: Path, given: str | None) -> str:
    """The given endpoint name, else the one endpoint folder of the capture layout under `root`."""
    if given:
        return given
    names = {
        path.relative_to(root).parts[-CAPTURE_DEPTH]
        for path in capture_files(root)
        if root.is_dir() and len(path.relative_to(root).parts) >= CAPTURE_DEPTH
    }
    if len(names) != 1:
        found = ", ".join(sorted(names)) or "none in the <endpoint>/<variant>/yyyy/mm/dd/hh layout"
        raise ConfigurationError(f"pass --endpoint: the captures under {root} name endpoints: {found}")
    return names.pop()


def load_window(root: Path, start: datetime | None, end: datetime | None) -> CaptureWindow:
    """The readable captured requests of the window; every skipped record is printed with file and line.

    Raises `DataFormatError` when there is no capture file or no readable request in the window (the
    message then names the first skipped records).
    """
    if not root.exists():
        raise DataFormatError(root, None, "the captures folder does not exist")
    if not capture_files(root):
        raise DataFormatError(root, None, "no capture file (*.jsonl) found")
    window = read_window(root, start, end)
    for skipped in window.skipped:
        log(f"skipped capture record {skipped}")
    if not window.requests:
        span = (
            f"between {start.isoformat() if start else 'the start'} and {end.isoformat() if end else 'now'}"
        )
        if not window.skipped:
            raise DataFormatError(root, None, f"no captured request {span}")
        reasons = "; ".join(str(skipped) for skipped in window.skipped[:3])
        raise DataFormatError(
            root, None, f"no readable captured request {span}: {len(window.skipped)} skipped, {reasons}"
        )
    return window


def window_dict(start: datetime | None, end: datetime | None, window: CaptureWindow) -> dict:
    """The report's window block: the asked bounds and the first and last request's times."""
    times = [request.inference_time for request in window.requests]
    return {
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        "first_request": min(times).isoformat() if times else None,
        "last_request": max(times).isoformat() if times else None,
    }


def write_json(path: Path, document: dict) -> Path:
    """Write `document` as indented strict JSON (no NaN) to `path`, creating its folder; the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    return path


def metric_datum(
    name: str, value: float, dimensions: Mapping[str, str], timestamp: datetime, unit: str = "None"
) -> dict:
    """One MetricData entry; CloudWatch rejects NaN and infinities, so those are refused here."""
    if not math.isfinite(value):
        raise ConfigurationError(f"metric {name} has the non-finite value {value}")
    return {
        "MetricName": name,
        "Dimensions": [{"Name": key, "Value": str(val)} for key, val in dimensions.items()],
        "Timestamp": timestamp,
        "Value": float(value),
        "Unit": unit,
    }


def skipped_metric(report: dict, dimensions: Mapping[str, str], timestamp: datetime) -> dict:
    """`CaptureRecordsSkipped`: capture records of the window the job could not read."""
    skipped = report["captures"]["records_skipped"]
    return metric_datum("CaptureRecordsSkipped", skipped, dimensions, timestamp, "Count")


def metric_requests(namespace: str, metric_data: list[dict]) -> list[dict]:
    """PutMetricData keyword arguments, split to the per-request limit."""
    return [
        {"Namespace": namespace, "MetricData": metric_data[i : i + MAX_METRICS_PER_REQUEST]}
        for i in range(0, len(metric_data), MAX_METRICS_PER_REQUEST)
    ]


def _json_ready(request: dict) -> dict:
    data = [{**datum, "Timestamp": datum["Timestamp"].isoformat()} for datum in request["MetricData"]]
    return {"Namespace": request["Namespace"], "MetricData": data}


def cloudwatch_client(region: str | None) -> object:
    """A boto3 CloudWatch client for `region` (the default region when None)."""
    import boto3  # only the cloudwatch target needs it

    return boto3.client("cloudwatch", region_name=region)


def emit_metrics(
    target: str,
    namespace: str,
    metric_data: list[dict],
    metrics_file: Path,
    region: str | None = None,
    client_factory: MetricsClientFactory = cloudwatch_client,
) -> int:
    """Send or append the metric data; returns the number of requests made."""
    requests = metric_requests(namespace, metric_data)
    if target == "none" or not requests:
        return 0
    if target == "file":
        metrics_file.parent.mkdir(parents=True, exist_ok=True)
        with metrics_file.open("a", encoding="utf-8") as handle:
            for request in requests:
                handle.write(json.dumps(_json_ready(request), allow_nan=False) + "\n")
        return len(requests)
    if target != "cloudwatch":
        raise ConfigurationError(
            f"metrics target must be one of {', '.join(METRICS_TARGETS)}, got {target!r}"
        )
    client = client_factory(region)
    for request in requests:
        client.put_metric_data(**request)
    return len(requests)
