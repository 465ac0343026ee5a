"""Reading captures: the records of a time window, parsed as serving parses requests.

The drift and model-quality jobs read captures only through `read_window`, which parses every request
body with serving's own parser (`rul.serving_request.parse_request`: CSV with or without a header in any
column order, whitespace-separated rows, JSON instances), so whatever the endpoint accepted, the monitors
read. A record that cannot be read (bad JSON, an undecodable body, a body serving would reject, a response
that does not answer the request) is skipped and listed with its file and line, never failing the window.
Each request keeps the rows the model read (`rul.model_window.model_rows`, with the `cycles_used` the
response reports per unit), so a client sending whole histories and one sending windows look the same.
"""

from __future__ import annotations

import binascii
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from rul.capture_format import decode_body, parse_time
from rul.data import COLUMNS
from rul.errors import DataFormatError
from rul.model_window import model_rows
from rul.serving_request import JSON, RequestError, RequestLimits, media_type, parse_request
from rul.serving_response import parse_response

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
