"""The execution record: `<work>/executions/<id>/execution.json`, always present, always whole.

The record is written when an execution starts (status `Executing`) and rewritten atomically each time a
step ends, so a run killed at any moment leaves a record naming what it did (a registered model version
included). While an execution runs, its runner holds an exclusive lock on `.running` beside the record;
the kernel drops the lock when the process dies, even by SIGKILL. A later run finds records still
`Executing` whose lock is free and marks them `Stopped`, with their running steps, as SageMaker shows a
stopped execution.
"""

from __future__ import annotations

import fcntl
import json
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from local_runner.atomic import write_json_atomic
from local_runner.results import ExecutionResult, StepRecord

LOCK_NAME = ".running"
__all__ = ["ExecutionResult", "RecordWriter", "StepRecord", "mark_abandoned"]
ABANDONED = "the runner ended without finishing the execution (killed, or the machine stopped)"


def _try_lock(handle: TextIO) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class RecordWriter:
    """Writes one execution's record atomically, from any step thread, while holding its run lock."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._handle: TextIO | None = None

    def open(self) -> None:
        """Take the work folder's run lock; another runner holding it is a `RuntimeError`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = (self.path.parent / LOCK_NAME).open("w")
        if not _try_lock(self._handle):
            raise RuntimeError(f"{self.path.parent} is in use by another runner")

    def write(self, result: ExecutionResult) -> None:
        """Write `result` as the record's JSON, atomically and one thread at a time."""
        with self._lock:
            content = {**asdict(result), "record_path": str(result.record_path)}
            write_json_atomic(self.path, content)

    def close(self) -> None:
        """Release the run lock and remove its file; does nothing when not open."""
        if self._handle is not None:
            (self.path.parent / LOCK_NAME).unlink(missing_ok=True)
            self._handle.close()
            self._handle = None


def _read_record(path: Path, echo: Callable[[str], None]) -> dict | None:
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        echo(f"ignoring the unreadable execution record {path} ({type(error).__name__}: {error})")
        return None
    return record


def mark_abandoned(work_dir: Path, echo: Callable[[str], None] = print) -> list[str]:
    """Mark `Stopped` the executions whose runner died while they were `Executing`; returns their ids."""
    marked = []
    for path in sorted(Path(work_dir).glob("executions/*/execution.json")):
        record = _read_record(path, echo)
        if record is None or record.get("status") != "Executing":
            continue
        with (path.parent / LOCK_NAME).open("a") as handle:
            if not _try_lock(handle):
                continue  # its runner is alive
            record["status"], record["failure_reason"] = "Stopped", ABANDONED
            for step in record.get("steps", []):
                if step.get("status") == "Executing":
                    step["status"], step["failure_reason"] = "Stopped", ABANDONED
            write_json_atomic(path, record)
        (path.parent / LOCK_NAME).unlink(missing_ok=True)
        marked.append(record.get("execution_id", path.parent.name))
        echo(f"execution {marked[-1]} was left Executing by a runner that died: marked Stopped")
    return marked
