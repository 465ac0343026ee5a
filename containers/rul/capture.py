"""Data capture of endpoint traffic in SageMaker's record layout: the one writer and the one reader.

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
                       "inferenceTime": "2024-05-01T12:34:56.789Z", "variantName": "<this writer's>"},
     "eventVersion": "0"}

`variantName` is this project's addition (SageMaker's records carry the variant only in their path): the
reader takes a record's variant from it, else from the `<variant>` folder, so SageMaker's records and older
ones read the same; an A/B test's quality is grouped by it.
`encoding` is CSV for text/csv bodies, JSON for application/json bodies (the data is the body text) and
BASE64 for anything else or bodies that are not UTF-8. Only successful invocations are captured, and only
a sample of them: each request is kept with probability `percentage / 100`, drawn from a generator seeded
by `seed` when one is given (for tests) or from the OS otherwise. Each process appends to its own file
(a new file per hour folder), so several gunicorn workers never interleave within a line; every record is
written with one `write` and flushed.

Reading: the drift and model-quality jobs read captures only through `read_window`, which parses every
request body with serving's own parser (`rul.inference.parse_request`: CSV with or without a header in any
column order, whitespace-separated rows, JSON instances), so whatever the endpoint accepted, the monitors
read. A record that cannot be read (bad JSON, an undecodable body, a body serving would reject, a response
that does not answer the request) is skipped and listed with its file and line, never failing the window.
Each request keeps the rows the model read (`rul.model_window.model_rows`, with the `cycles_used` the
response reports per unit), so a client sending whole histories and one sending windows look the same.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import random
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from rul.data import COLUMNS
from rul.errors import ConfigurationError, DataFormatError
from rul.inference import CSV, JSON, RequestError, RequestLimits, media_type, parse_request, parse_response
from rul.model_window import model_rows

DEFAULT_VARIANT = "AllTraffic"
EVENT_VERSION = "0"
# The reader accepts any size: the server's own limits were applied when the request was answered.
UNLIMITED = RequestLimits(max_bytes=sys.maxsize, max_rows=sys.maxsize)
# How many skipped records a report lists (all are counted).
REPORTED_SKIPS = 5
REQUEST_COLUMNS = ["event_id", "inference_time"]
PREDICTION_COLUMNS = [
    "event_id", "inference_id", "inference_time", "unit", "last_cycle", "predicted_rul", "cycles_used",
    "padded", "model_version", "source", "line", "variant",
]  # fmt: skip


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


def parse_time(text: str, where: str = "time", line: int | None = None) -> datetime:
    """An ISO 8601 time ("Z" allowed) as an aware UTC datetime; naive times are taken as UTC."""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise DataFormatError(where, line, f"not an ISO 8601 time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
    """The body bytes of one side of `captureData`; `binascii.Error` for invalid BASE64."""
    if side.get("encoding") == "BASE64":
        return base64.b64decode(side["data"], validate=True)
    return str(side["data"]).encode("utf-8")


def capture_record(
    request: bytes | str,
    request_type: str | None,
    response: bytes | str,
    response_type: str | None,
    moment: datetime,
    inference_id: str | None = None,
    event_id: str | None = None,
    variant: str | None = None,
) -> dict:
    """One capture record in SageMaker's layout (plus `variantName` when `variant` is given)."""
    metadata = {"eventId": event_id or str(uuid.uuid4())}
    if inference_id:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = format_time(moment)
    if variant:
        metadata["variantName"] = variant
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
            request,
            request_type,
            response,
            response_type,
            moment or datetime.now(UTC),
            inference_id,
            variant=self.config.variant,
        )
        self.write(record)
        return record


# --- reading ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkippedRecord:
    """A capture line the monitors could not use, and why."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class CapturedRequest:
    """One captured invocation: the rows sent (serving's parse) and the per-unit predictions answered."""

    path: str
    line: int
    event_id: str
    inference_id: str | None
    inference_time: datetime
    rows: pd.DataFrame
    predictions: pd.DataFrame
    model_version: str | None
    variant: str | None = None  # the production variant that answered (None outside the layout)

    def model_rows(self) -> pd.DataFrame:
        """The rows the model read: each unit's last `cycles_used` cycles, as the response reports them."""
        used = dict(
            zip(self.predictions["unit"].tolist(), self.predictions["cycles_used"].tolist(), strict=True)
        )
        return model_rows(self.rows, used)


@dataclass(frozen=True)
class CaptureWindow:
    """The readable requests of a time window, the records skipped and the number of files read."""

    requests: tuple[CapturedRequest, ...]
    skipped: tuple[SkippedRecord, ...]
    files: int

    def summary(self, limit: int = REPORTED_SKIPS) -> dict:
        """The `captures` block of the monitoring reports: counts and the first `limit` skipped records."""
        return {
            "files": self.files,
            "records": len(self.requests) + len(self.skipped),
            "records_read": len(self.requests),
            "records_skipped": len(self.skipped),
            "first_skipped": [
                {"file": s.path, "line": s.line, "reason": s.reason} for s in self.skipped[:limit]
            ],
            "rows_sent": int(sum(len(request.rows) for request in self.requests)),
        }

    def model_rows(self) -> pd.DataFrame:
        """`COLUMNS` plus `REQUEST_COLUMNS` of the rows the model read, oldest request first. A (unit,
        cycle) row read again by a later request (a client resending history) counts once, the latest."""
        frames = [
            request.model_rows().assign(event_id=request.event_id, inference_time=request.inference_time)
            for request in sorted(self.requests, key=lambda request: request.inference_time)
        ]
        if not frames:
            return pd.DataFrame(columns=[*COLUMNS, *REQUEST_COLUMNS])
        rows = pd.concat(frames, ignore_index=True)
        return rows.drop_duplicates(["unit", "cycle"], keep="last").reset_index(drop=True)

    def predictions(self) -> pd.DataFrame:
        """One row per (request, unit) with `PREDICTION_COLUMNS`; `last_cycle` is the cycle predicted at."""
        frames = []
        for request in self.requests:
            last = request.rows.groupby("unit")["cycle"].max()
            frames.append(
                request.predictions.assign(
                    event_id=request.event_id,
                    inference_id=request.inference_id,
                    inference_time=request.inference_time,
                    last_cycle=request.predictions["unit"].map(last).to_numpy(),
                    model_version=request.model_version,
                    variant=request.variant,
                    source=request.path,
                    line=request.line,
                )
            )
        if not frames:
            return pd.DataFrame(columns=PREDICTION_COLUMNS)
        return pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS]


def capture_files(root: str | Path) -> list[Path]:
    """Every *.jsonl file under `root` in path order (`root` itself when it is a file)."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(path for path in root.rglob("*.jsonl") if path.is_file())


def _hour_of(path: Path) -> datetime | None:
    """The UTC hour of a capture file from its yyyy/mm/dd/hh folders; None without such folders."""
    parts = path.parent.parts[-4:]
    try:
        year, month, day, hour = (int(part) for part in parts)
        return datetime(year, month, day, hour, tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def variant_of(path: str | Path) -> str | None:
    """The `<variant>` folder of a file at `<endpoint>/<variant>/yyyy/mm/dd/hh/<file>`, else None."""
    path = Path(path)
    parts = path.parent.parts
    return parts[-5] if _hour_of(path) is not None and len(parts) >= 6 else None


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _window_files(root: Path, start: datetime | None, end: datetime | None) -> list[Path]:
    """The capture files whose hour folder overlaps [start, end); files outside any hour folder too."""
    kept = []
    for path in capture_files(root):
        hour = _hour_of(path)
        if hour is not None and (
            (start is not None and hour.timestamp() + 3600 <= start.timestamp())
            or (end is not None and hour >= end)
        ):
            continue
        kept.append(path)
    return kept


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Numbered non-blank lines; an unterminated last line is a write in progress, left for the next read."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                return
            if line.strip():
                yield number, line


def _record(line: bytes, where: str, number: int) -> tuple[dict, datetime]:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError) as error:
        raise DataFormatError(where, number, f"not valid JSON ({error})") from None
    try:
        return record, parse_time(record["eventMetadata"]["inferenceTime"], where, number)
    except (KeyError, TypeError) as error:
        raise DataFormatError(
            where, number, f"not a capture record (no eventMetadata.inferenceTime: {error})"
        ) from None


def _in_window(moment: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or moment >= start) and (end is None or moment < end)


def read_captures(
    root: str | Path, start: datetime | None = None, end: datetime | None = None
) -> Iterator[dict]:
    """Yield the raw records under `root` whose inferenceTime is in [start, end), strictly.

    `root` may be the capture root, an endpoint's or a variant's folder; files are read in path order and
    hour folders outside the range are not opened. Naive datetimes are taken as UTC. A line that is not a
    capture record raises `DataFormatError` naming the file and line (the monitors use `read_window`, which
    skips it instead).
    """
    start, end = _aware(start), _aware(end)
    for path in _window_files(Path(root), start, end):
        for number, line in _lines(path):
            record, moment = _record(line, str(path), number)
            if _in_window(moment, start, end):
                yield record


def _side(data: Any, name: str, where: str, number: int) -> tuple[bytes, str | None]:
    try:
        side = data[name]
        return decode_body(side), side.get("observedContentType")
    except (KeyError, TypeError, AttributeError) as error:
        raise DataFormatError(
            where, number, f"captureData.{name} is missing or incomplete ({error})"
        ) from None
    except (binascii.Error, ValueError) as error:
        raise DataFormatError(where, number, f"captureData.{name} is not valid BASE64 ({error})") from None


def _answered(rows: pd.DataFrame, predictions: pd.DataFrame, where: str, number: int) -> None:
    """The response must predict each unit of the request once, from 1..its rows cycles."""
    sent = rows.groupby("unit")["cycle"].size()
    if sorted(predictions["unit"].tolist()) != sorted(sent.index.tolist()):
        raise DataFormatError(
            where, number, f"the response predicts units {sorted(predictions['unit'].tolist())[:5]}, "
            f"the request sent {sorted(sent.index.tolist())[:5]}"
        )  # fmt: skip
    used = predictions.set_index("unit")["cycles_used"]
    bad = (used < 1) | (used > sent.reindex(used.index))
    if bad.any():
        unit = int(used.index[bad.to_numpy()][0])
        raise DataFormatError(
            where, number, f"unit {unit}: cycles_used {int(used[unit])} is not within 1..{int(sent[unit])}"
        )


def parse_capture(record: dict, where: str, number: int) -> CapturedRequest:
    """One capture record -> `CapturedRequest`, the request parsed as serving parses it; `DataFormatError`
    naming the file and line for anything the monitors cannot use."""
    data = record.get("captureData") if isinstance(record, dict) else None
    request, request_type = _side(data, "endpointInput", where, number)
    response, response_type = _side(data, "endpointOutput", where, number)
    try:
        rows = parse_request(request, request_type, UNLIMITED)
    except RequestError as error:
        raise DataFormatError(where, number, f"serving would reject the request ({error})") from None
    try:
        predictions = parse_response(response, response_type)
        document = json.loads(response) if media_type(response_type) == JSON else {}
        version = document.get("model_version")
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DataFormatError(
            where, number, f"the response is not a predictions document ({error})"
        ) from None
    _answered(rows, predictions, where, number)
    metadata = record["eventMetadata"]
    return CapturedRequest(
        path=where,
        line=number,
        event_id=str(metadata.get("eventId") or f"{where}:{number}"),
        inference_id=metadata.get("inferenceId"),
        inference_time=parse_time(metadata["inferenceTime"], where, number),
        rows=rows,
        predictions=predictions,
        model_version=None if version is None else str(version),
        variant=str(metadata.get("variantName") or "") or variant_of(where),
    )


def read_window(
    root: str | Path, start: datetime | None = None, end: datetime | None = None
) -> CaptureWindow:
    """Every capture record under `root` with start <= inferenceTime < end, parsed; unreadable ones skipped.

    A line whose time cannot be read counts in the window when its hour folder overlaps it. A missing
    `root` raises `DataFormatError`.
    """
    root, start, end = Path(root), _aware(start), _aware(end)
    if not root.exists():
        raise DataFormatError(root, None, "the captures folder does not exist")
    files = _window_files(root, start, end)
    requests, skipped = [], []
    for path in files:
        for number, line in _lines(path):
            try:
                record, moment = _record(line, str(path), number)
                if _in_window(moment, start, end):
                    requests.append(parse_capture(record, str(path), number))
            except DataFormatError as error:
                skipped.append(SkippedRecord(str(path), number, error.problem))
    return CaptureWindow(tuple(requests), tuple(skipped), len(files))
