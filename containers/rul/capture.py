"""Data capture of endpoint traffic in SageMaker's record layout, and the readers monitoring jobs use.

Layout (as SageMaker writes under an endpoint's `DataCaptureConfig.DestinationS3Uri`):

    <capture_root>/<endpoint>/<variant>/yyyy/mm/dd/hh/<MM>-<SS>-<mmm>-<uuid>.jsonl

The hour folders are UTC; a file name starts with the minute, second and millisecond its first record was
written. Each line is one JSON record:

    {"captureData": {
        "endpointInput":  {"observedContentType": "text/csv", "mode": "INPUT",
                           "data": "<request body>", "encoding": "CSV"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                           "data": "<response body>", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid4>", "inferenceId": "<optional, the caller's>",
                       "inferenceTime": "2024-05-01T12:34:56.789Z"},
     "eventVersion": "0"}

`encoding` is CSV for text/csv bodies, JSON for application/json bodies (the data is the body text) and
BASE64 for anything else or bodies that are not UTF-8. Only successful invocations are captured, and only
a sample of them: each request is kept with probability `percentage / 100`, drawn from a generator seeded
by `seed` when one is given (for tests) or from the OS otherwise. Each process appends to its own file
(a new file per hour folder), so several gunicorn workers never interleave within a line; every record is
written with one `write` and flushed.

Readers: `read_captures(root, start, end)` yields the records of a time range, and `captured_frame(records)`
turns them into C-MAPSS rows with the predictions joined, for the drift and model-quality jobs.
"""

from __future__ import annotations

import base64
import json
import os
import random
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from rul.data import COLUMNS
from rul.errors import ConfigurationError, DataFormatError
from rul.inference import CSV, JSON, RequestError, media_type, parse_request, parse_response

DEFAULT_VARIANT = "AllTraffic"
EVENT_VERSION = "0"
# Columns of `captured_frame`, besides the C-MAPSS `COLUMNS`.
EVENT_COLUMNS = ["event_id", "inference_id", "inference_time", "model_version"]
PREDICTION_JOIN_COLUMNS = ["predicted_rul", "cycles_used", "padded", "is_last"]
FRAME_COLUMNS = [*EVENT_COLUMNS, *COLUMNS, *PREDICTION_JOIN_COLUMNS]


@dataclass(frozen=True)
class CaptureConfig:
    """Where and how much to capture; `percentage` is SageMaker's InitialSamplingPercentage (0-100)."""

    root: Path
    endpoint: str
    variant: str = DEFAULT_VARIANT
    percentage: float = 100.0
    seed: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))
        if not 0.0 <= float(self.percentage) <= 100.0:
            raise ConfigurationError(f"capture percentage must be within [0, 100], got {self.percentage}")
        for name in ("endpoint", "variant"):
            value = getattr(self, name)
            if not value or "/" in value or value in (".", ".."):
                raise ConfigurationError(f"capture {name} {value!r} must be a non-empty folder name")


def format_time(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a Z, as SageMaker writes inferenceTime."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def encode_body(body: bytes | str, content_type: str | None, mode: str) -> dict:
    """One side of `captureData`: the body as text for CSV and JSON, base64 otherwise."""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    kind = media_type(content_type)
    encoding = {CSV: "CSV", JSON: "JSON"}.get(kind, "BASE64")
    data = None
    if encoding != "BASE64":
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"
    if data is None:
        data = base64.b64encode(raw).decode("ascii")
    return {"observedContentType": content_type or "", "mode": mode, "data": data, "encoding": encoding}


def decode_body(side: dict) -> bytes:
    """The body bytes of one side of `captureData`."""
    if side.get("encoding") == "BASE64":
        return base64.b64decode(side["data"])
    return str(side["data"]).encode("utf-8")


def capture_record(
    request: bytes | str,
    request_type: str | None,
    response: bytes | str,
    response_type: str | None,
    moment: datetime,
    inference_id: str | None = None,
    event_id: str | None = None,
) -> dict:
    """One capture record in SageMaker's layout."""
    metadata = {"eventId": event_id or str(uuid.uuid4())}
    if inference_id:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = format_time(moment)
    return {
        "captureData": {
            "endpointInput": encode_body(request, request_type, "INPUT"),
            "endpointOutput": encode_body(response, response_type, "OUTPUT"),
        },
        "eventMetadata": metadata,
        "eventVersion": EVENT_VERSION,
    }


class DataCapture:
    """Samples invocations and appends their records under `config.root`; safe across threads and forks."""

    def __init__(self, config: CaptureConfig):
        self.config = config
        self._random = random.Random(config.seed) if config.seed is not None else random.SystemRandom()
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._hour: str | None = None
        self._pid: int | None = None

    def sampled(self) -> bool:
        """Whether to capture the next invocation (one draw per call)."""
        with self._lock:
            return self._random.random() * 100.0 < float(self.config.percentage)

    def _file(self, moment: datetime) -> Path:
        hour = moment.strftime("%Y/%m/%d/%H")
        if self._path is None or hour != self._hour or os.getpid() != self._pid:
            folder = self.config.root / self.config.endpoint / self.config.variant / hour
            folder.mkdir(parents=True, exist_ok=True)
            name = moment.strftime("%M-%S-") + f"{moment.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
            self._path, self._hour, self._pid = folder / name, hour, os.getpid()
        return self._path

    def write(self, record: dict) -> Path:
        """Append one record to this process's file of the record's hour."""
        moment = parse_time(record["eventMetadata"]["inferenceTime"])
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            path = self._file(moment)
            # O_APPEND makes each single write land whole at the end of the file.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(descriptor, line)
            finally:
                os.close(descriptor)
        return path

    def capture(
        self,
        request: bytes | str,
        request_type: str | None,
        response: bytes | str,
        response_type: str | None,
        inference_id: str | None = None,
        moment: datetime | None = None,
    ) -> dict | None:
        """Capture one invocation if it is sampled; returns the record written, or None."""
        if not self.sampled():
            return None
        record = capture_record(
            request, request_type, response, response_type, moment or datetime.now(UTC), inference_id
        )
        self.write(record)
        return record


def _hour_of(path: Path) -> datetime | None:
    """The UTC hour of a capture file from its yyyy/mm/dd/hh folders; None without such folders."""
    parts = path.parent.parts[-4:]
    try:
        return datetime(*(int(part) for part in parts), tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_captures(
    root: str | Path, start: datetime | None = None, end: datetime | None = None
) -> Iterator[dict]:
    """Yield the capture records under `root` whose inferenceTime is in [start, end).

    `root` may be the capture root (every endpoint and variant), an endpoint's folder or a variant's
    folder; files are read in path order, so records come hour by hour, and within an hour file by file
    (each file in time order; files of different workers are not merged). `start` and `end` are datetimes,
    naive ones taken as UTC; hour folders outside the range are skipped without being opened. Records are
    the dicts as written (the layout in this module's docstring). A malformed line raises
    `DataFormatError` naming the file and line, except an unterminated last line, which is a write in
    progress and is left for the next read.
    """
    start, end = _aware(start), _aware(end)
    for path in sorted(Path(root).rglob("*.jsonl")):
        hour = _hour_of(path)
        if hour is not None and (
            (start is not None and hour.timestamp() + 3600 <= start.timestamp())
            or (end is not None and hour >= end)
        ):
            continue
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith(b"\n"):
                    break
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    moment = parse_time(record["eventMetadata"]["inferenceTime"])
                except (ValueError, KeyError, TypeError) as error:
                    raise DataFormatError(path, number, f"not a capture record: {error}") from None
                if (start is None or moment >= start) and (end is None or moment < end):
                    yield record


def _record_frame(record: dict) -> pd.DataFrame:
    metadata = record["eventMetadata"]
    data = record["captureData"]
    request, response = data["endpointInput"], data["endpointOutput"]
    rows = parse_request(decode_body(request), request["observedContentType"])
    predictions = parse_response(decode_body(response), response["observedContentType"])
    version = None
    if media_type(response["observedContentType"]) == JSON:
        version = json.loads(decode_body(response)).get("model_version")
    frame = rows.merge(predictions, on="unit", how="left", validate="many_to_one")
    frame["is_last"] = np.r_[frame["unit"].to_numpy()[1:] != frame["unit"].to_numpy()[:-1], True]
    frame["event_id"] = metadata["eventId"]
    frame["inference_id"] = metadata.get("inferenceId")
    frame["inference_time"] = pd.Timestamp(parse_time(metadata["inferenceTime"]))
    frame["model_version"] = version
    return frame


def captured_frame(records: Iterable[dict]) -> pd.DataFrame:
    """The C-MAPSS rows of captured requests, one row per input row, with the predictions joined per unit.

    Columns (`FRAME_COLUMNS`): `event_id`, `inference_id` (None unless the caller sent one),
    `inference_time` (UTC timestamp), `model_version` (from the JSON response, else None), the 26
    C-MAPSS `COLUMNS` as sent, then the prediction of the row's unit in that request: `predicted_rul`,
    `cycles_used`, `padded`, and `is_last` (True on the unit's last row, the cycle the RUL is predicted at;
    model-quality joins ground truth there). Rows are ordered by inference time, then as sent. A client
    that resends a unit's history sends the same (unit, cycle) rows again: a drift job should drop
    duplicates on those two columns, keeping the last. A record whose bodies cannot be parsed raises
    `DataFormatError` naming its eventId.
    """
    frames = []
    for record in records:
        try:
            frames.append(_record_frame(record))
        except (RequestError, KeyError, ValueError, TypeError) as error:
            event = (record.get("eventMetadata") or {}).get("eventId", "?")
            raise DataFormatError(f"capture record {event}", None, f"cannot be read: {error}") from None
    if not frames:
        empty = pd.DataFrame({name: pd.Series(dtype=object) for name in FRAME_COLUMNS})
        return empty.astype(
            {name: np.float64 for name in COLUMNS[2:]} | {"unit": np.int64, "cycle": np.int64}
        )
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.sort_values("inference_time", kind="stable").reset_index(drop=True)
    return frame[FRAME_COLUMNS]
