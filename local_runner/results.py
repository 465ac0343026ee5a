"""What an execution produces: a `StepRecord` per step and the `ExecutionResult` of the whole run.

These are plain data, shared by the scheduler (`local_runner.execution`), the execution record
(`local_runner.execution_record`), the report, the tracking and the command lines, so that none of them
has to import another to know a result's shape. A step record keeps the wall-clock interval of each job
it ran; `ExecutionResult.busy_seconds` is the time during which at least one job ran (the union of those
intervals), which the runner's overhead is measured against.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_JOBS_LOCK = threading.Lock()  # trials of one tuning step end on different threads


@dataclass
class StepRecord:
    """One step of an execution: status, timings, cache hit, failure reason and properties."""

    name: str
    type: str
    status: str = "NotStarted"  # Executing, Succeeded, Failed, Stopped, NotExecuted
    started_at: str = ""
    seconds: float = 0.0
    job_seconds: float = 0.0
    cache_hit: bool = False
    failure_reason: str = ""
    properties: dict = field(default_factory=dict)
    job_intervals: list[list[float]] = field(default_factory=list)  # [start, end] epoch seconds per job

    def add_job(self, seconds: float, ended: float | None = None) -> None:
        """Count a job of `seconds` that ended at `ended` (epoch seconds, default now)."""
        end = time.time() if ended is None else ended
        with _JOBS_LOCK:
            self.job_seconds += seconds
            self.job_intervals.append([end - seconds, end])

    @property
    def display_name(self) -> str:
        """The name without the type the SDK appends to a step collection's steps.

        `RegisterModel-RegisterModel` shows as `RegisterModel`; the type has a column of its own.
        """
        suffix = f"-{self.type}"
        if self.name.endswith(suffix) and len(self.name) > len(suffix):
            return self.name[: -len(suffix)]
        return self.name


@dataclass
class ExecutionResult:
    """The outcome of one execution, as its record `execution.json` holds it."""

    execution_id: str
    status: str  # Executing, Succeeded, Failed or Stopped
    failure_reason: str
    parameters: dict[str, Any]
    steps: list[StepRecord]
    seconds: float
    record_path: Path
    report_path: Path | None = None

    def step(self, name: str) -> StepRecord:
        """The record of the step named `name` (StopIteration when there is none)."""
        return next(record for record in self.steps if record.name == name)

    @property
    def job_seconds(self) -> float:
        """The summed duration of every job; more than the wall time when jobs ran side by side."""
        return sum(record.job_seconds for record in self.steps)

    @property
    def busy_seconds(self) -> float:
        """The time during which at least one job ran."""
        return union_seconds(interval for record in self.steps for interval in record.job_intervals)


def union_seconds(intervals: Iterable[Sequence[float]]) -> float:
    """The length of the union of `[start, end]` intervals (overlaps counted once)."""
    total, covered_to = 0.0, float("-inf")
    for start, end in sorted((float(s), float(e)) for s, e in intervals):
        if end <= covered_to:
            continue
        total += end - max(start, covered_to)
        covered_to = end
    return total


def overhead_seconds(wall: float, result: ExecutionResult) -> float:
    """The wall time during which no job ran: scheduling, caching, rendering, preparing the workspace."""
    return wall - result.busy_seconds
