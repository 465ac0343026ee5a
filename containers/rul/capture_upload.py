"""Uploading the serving container's own captures to S3, for endpoints without SageMaker's DataCaptureConfig.

With `serving.capture_mode = "container"` the deploy function gives the model `RUL_CAPTURE_S3_URI`
(`s3://<artifacts>/datacapture/<endpoint>/`) and `RUL_CAPTURE_KMS_KEY_ID`; `rul.capture.DataCapture`
writes records locally under `<capture root>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`, and this
module moves them to `<RUL_CAPTURE_S3_URI><variant>/yyyy/mm/dd/hh/<file>.jsonl`: the layout SageMaker's
own capture writes, so the monitoring jobs read either source unchanged.

One `CaptureUploader` runs per container, in a thread of the gunicorn master (never in a worker, so a
request never waits for S3). Every `interval_seconds` it uploads the files it sealed in the previous round,
then seals the files written since: a seal renames the file into `<capture root>/.outbox/` (same folder
layout, a unique name), and the writer, which opens its file by path for every record, starts a new one.
Waiting one round before uploading lets a write that opened the file just before the rename land in it.
A file is deleted only after S3 accepted it (SSE-KMS with the project key); a failed upload keeps it in
the outbox for the next round. `stop()` (at shutdown, after the workers exited) seals and uploads all.
"""

from __future__ import annotations

import re
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rul.errors import ConfigurationError

S3_URI_VARIABLE = "RUL_CAPTURE_S3_URI"
KMS_KEY_VARIABLE = "RUL_CAPTURE_KMS_KEY_ID"
INTERVAL_VARIABLE = "RUL_CAPTURE_UPLOAD_SECONDS"
DEFAULT_INTERVAL_SECONDS = 60.0
OUTBOX = ".outbox"
CONTENT_TYPE = "application/jsonlines"
S3_URI_PATTERN = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/((?:[^/]+/)*)$")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class UploadConfig:
    """Where the writer's endpoint folder is uploaded to, and how often."""

    endpoint_dir: Path  # <capture root>/<endpoint>: the writer's files are under <variant>/yyyy/mm/dd/hh/
    s3_uri: str  # s3://bucket/prefix/, ending in "/"
    kms_key_id: str | None = None
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS

    def __post_init__(self):
        object.__setattr__(self, "endpoint_dir", Path(self.endpoint_dir))
        if not S3_URI_PATTERN.match(self.s3_uri):
            raise ConfigurationError(f"{S3_URI_VARIABLE}={self.s3_uri!r} is not an s3://bucket/prefix/ URI")
        if not 1.0 <= float(self.interval_seconds) <= 3600.0:
            raise ConfigurationError(f"{INTERVAL_VARIABLE}={self.interval_seconds} is outside [1, 3600]")

    @property
    def bucket(self) -> str:
        """The bucket name of `s3_uri`."""
        return self._uri_match().group(1)

    @property
    def prefix(self) -> str:
        """The key prefix of `s3_uri` (empty or ending in '/')."""
        return self._uri_match().group(2)

    def _uri_match(self) -> re.Match[str]:
        match = S3_URI_PATTERN.match(self.s3_uri)
        assert match is not None  # checked in __post_init__
        return match

    @property
    def outbox(self) -> Path:
        """The folder the writer's sealed files wait in until they are uploaded."""
        return self.endpoint_dir.parent / OUTBOX / self.endpoint_dir.name


@dataclass
class RoundResult:
    """What one upload round did: keys uploaded, files kept after a failure, files sealed for the next."""

    uploaded: list[str] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)
    sealed: list[Path] = field(default_factory=list)


class CaptureUploader:
    """Seals the writer's capture files and uploads them; `run_round` is one pass, `start`/`stop` the loop."""

    def __init__(self, config: UploadConfig, s3: Any, log: Callable[[str], None] = _stderr):
        self.config = config
        self.s3 = s3
        self.log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def key_for(self, sealed: Path) -> str:
        """`<prefix><variant>/yyyy/mm/dd/hh/<file>` of a file in the outbox."""
        return self.config.prefix + sealed.relative_to(self.config.outbox).as_posix()

    def seal(self) -> list[Path]:
        """Move every non-empty capture file of the writer into the outbox, under a unique name."""
        sealed = []
        root = self.config.endpoint_dir
        for path in sorted(root.rglob("*.jsonl")) if root.is_dir() else []:
            if not path.is_file() or path.stat().st_size == 0:
                continue
            target = self.config.outbox / path.parent.relative_to(root)
            target.mkdir(parents=True, exist_ok=True)
            destination = target / f"{path.stem}-{uuid.uuid4().hex[:8]}.jsonl"
            path.rename(destination)  # atomic within one file system
            sealed.append(destination)
        return sealed

    def upload_sealed(self) -> RoundResult:
        """Upload every file of the outbox; delete each only after S3 accepted it."""
        result = RoundResult()
        outbox = self.config.outbox
        for path in sorted(outbox.rglob("*.jsonl")) if outbox.is_dir() else []:
            key = self.key_for(path)
            try:
                self._put(path, key)
            except Exception as error:  # any fault: the file stays for the next round
                self.log(f"capture upload of {path} to s3://{self.config.bucket}/{key} failed: {error}")
                result.failed.append(path)
                continue
            path.unlink()
            result.uploaded.append(key)
        return result

    def _put(self, path: Path, key: str) -> None:
        encryption = {}
        if self.config.kms_key_id:
            encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.config.kms_key_id}
        self.s3.put_object(
            Bucket=self.config.bucket, Key=key, Body=path.read_bytes(), ContentType=CONTENT_TYPE, **encryption
        )

    def run_round(self) -> RoundResult:
        """Upload what the previous round sealed, then seal what was written since."""
        result = self.upload_sealed()
        result.sealed = self.seal()
        return result

    def start(self) -> None:
        """Run a round every `interval_seconds` in a daemon thread until `stop`."""
        self._thread = threading.Thread(target=self._loop, name="capture-upload", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.config.interval_seconds):
            try:
                self.run_round()
            except Exception as error:  # never end the loop: the next round retries
                self.log(f"capture upload round failed: {type(error).__name__}: {error}")

    def stop(self) -> RoundResult:
        """End the loop, then seal and upload everything (the writers have stopped by now)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.seal()
        return self.upload_sealed()


def uploader_from_environment(
    environ: Mapping[str, str],
    capture_root: Path | None,
    endpoint_name: str,
    make_s3: Callable[[], Any] | None = None,
) -> CaptureUploader | None:
    """The uploader `RUL_CAPTURE_S3_URI` asks for, or None when it is unset.

    `capture_root` is where the server writes captures (`RUL_CAPTURE_DIR`); uploading needs one.
    """
    s3_uri = environ.get(S3_URI_VARIABLE, "").strip()
    if not s3_uri:
        return None
    if capture_root is None:
        raise ConfigurationError(f"{S3_URI_VARIABLE} is set but RUL_CAPTURE_DIR is not: nothing to upload")
    interval_text = environ.get(INTERVAL_VARIABLE, "").strip() or str(DEFAULT_INTERVAL_SECONDS)
    try:
        interval = float(interval_text)
    except ValueError:
        raise ConfigurationError(f"{INTERVAL_VARIABLE}={interval_text!r} is not a number") from None
    config = UploadConfig(
        endpoint_dir=Path(capture_root) / endpoint_name,
        s3_uri=s3_uri,
        kms_key_id=environ.get(KMS_KEY_VARIABLE, "").strip() or None,
        interval_seconds=interval,
    )
    return CaptureUploader(config, (make_s3 or _default_s3)())


def _default_s3() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 3}))
