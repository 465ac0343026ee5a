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

The record layout is built by `rul.capture_format` and read back by `rul.capture_read` (`read_window`,
the monitors' only way in); this module holds the writer and re-exports both, the names callers import
from `rul.capture`.
"""

from __future__ import annotations

import json
import os
import random
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rul.capture_format import (
    DEFAULT_VARIANT,
    EVENT_VERSION,
    capture_record,
    decode_body,
    encode_body,
    format_time,
    parse_time,
)
from rul.capture_read import (
    PREDICTION_COLUMNS,
    REPORTED_SKIPS,
    REQUEST_COLUMNS,
    UNLIMITED,
    CapturedRequest,
    CaptureWindow,
    SkippedRecord,
    capture_files,
    parse_capture,
    read_captures,
    read_window,
    variant_of,
)
from rul.errors import ConfigurationError

__all__ = [
    "DEFAULT_VARIANT", "EVENT_VERSION", "PREDICTION_COLUMNS", "REPORTED_SKIPS", "REQUEST_COLUMNS",
    "UNLIMITED", "CaptureConfig", "CaptureWindow", "CapturedRequest", "DataCapture", "SkippedRecord",
    "capture_files", "capture_record", "decode_body", "encode_body", "format_time", "parse_capture",
    "parse_time", "read_captures", "read_window", "variant_of",
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
            # Opened by path for every record: the uploader renames a file away (`rul.capture_upload`) and
            # the next record must start a new one. O_APPEND makes each single write land whole at the end.
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
