"""`status` and `--wait`: one pipeline execution's state and steps, polled until it ends.

`show_status` prints the execution (DescribePipelineExecution) and one line per step
(ListPipelineExecutionSteps, oldest first). `wait_for` polls both with an interval that starts short and
doubles up to a bound, prints one line per status change of the execution or of a step with the time
elapsed since the execution was created, and returns the exit code of the outcome: 0 Succeeded,
`GATE_FAILED` (3) when a step of type Fail (the quality gate's FailStep) failed the execution, 1 for any
other failure or a stop, `INTERRUPTED` (130) on Ctrl-C, which leaves the execution running. A step's type
is the key of its `Metadata` (`Fail`, `ProcessingJob`, `TuningJob`, ...). Clock and sleep are injected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

SUCCEEDED = "Succeeded"
FAILED = "Failed"
TERMINAL = (SUCCEEDED, FAILED, "Stopped", "CompletedWithFailures")
FAIL_STEP_TYPE = "Fail"
GATE_FAILED = 3
INTERRUPTED = 130
MIN_POLL_SECONDS = 5


@dataclass(frozen=True)
class StepState:
    """One step of an execution as ListPipelineExecutionSteps reports it."""

    name: str
    status: str
    kind: str  # the Metadata key, e.g. Fail, ProcessingJob, TuningJob, Condition
    reason: str  # FailureReason, or a Fail step's ErrorMessage

    @classmethod
    def from_response(cls, step: dict[str, Any]) -> StepState:
        """The state of one entry of ListPipelineExecutionSteps' `PipelineExecutionSteps`."""
        metadata = step.get("Metadata") or {}
        kind = next(iter(metadata), "")
        reason = step.get("FailureReason") or metadata.get(FAIL_STEP_TYPE, {}).get("ErrorMessage", "")
        return cls(step["StepName"], step.get("StepStatus", ""), kind, reason)


def list_steps(client: Any, execution_arn: str) -> list[StepState]:
    """Every step of the execution, oldest first."""
    pages = client.get_paginator("list_pipeline_execution_steps").paginate(
        PipelineExecutionArn=execution_arn, SortOrder="Ascending"
    )
    return [
        StepState.from_response(step) for page in pages for step in page.get("PipelineExecutionSteps", [])
    ]


def elapsed(seconds: float) -> str:
    """`seconds` as H:MM:SS."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def outcome(execution: dict[str, Any], steps: list[StepState]) -> tuple[int, str]:
    """Exit code and one-line summary of an ended execution."""
    status = execution["PipelineExecutionStatus"]
    if status == SUCCEEDED:
        return 0, "execution Succeeded"
    failed = [step for step in steps if step.status == FAILED]
    gate = [step for step in failed if step.kind == FAIL_STEP_TYPE]
    if gate:
        return GATE_FAILED, f"the quality gate failed the execution: {gate[0].name}: {gate[0].reason}"
    details = "; ".join(f"{step.name} ({step.kind or 'step'}): {step.reason}" for step in failed)
    reason = execution.get("FailureReason") or ""
    summary = f"execution {status}" + (f": {reason}" if reason else "")
    return 1, summary + (f"; failed steps: {details}" if details else "")


def show_status(client: Any, execution_arn: str, out: TextIO) -> int:
    """Print the execution and its steps once; exit code 0 (the report itself succeeded)."""
    execution = client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
    name = execution.get("PipelineExecutionDisplayName", "")
    print(f"{execution_arn}  {name}  {execution['PipelineExecutionStatus']}", file=out)
    for step in list_steps(client, execution_arn):
        suffix = f"  {step.reason}" if step.reason else ""
        print(f"  {step.name:<28} {step.kind:<14} {step.status}{suffix}", file=out)
    return 0


@dataclass(frozen=True)
class Poller:
    """How `wait_for` waits: the bound of the poll interval, and the injected clock and sleep."""

    max_interval: float
    sleep: Callable[[float], None]
    now: Callable[[], datetime]


def _report_changes(
    execution: dict[str, Any], steps: list[StepState], seen: dict[str, str], now: datetime, out: TextIO
) -> None:
    clock = elapsed((now - execution["CreationTime"]).total_seconds())
    states = [("execution", execution["PipelineExecutionStatus"], "")]
    states += [(step.name, step.status, step.reason) for step in steps]
    for name, status, reason in states:
        if seen.get(name) != status:
            seen[name] = status
            suffix = f"  {reason}" if reason and status == FAILED else ""
            print(f"[{clock}] {name} {status}{suffix}", file=out, flush=True)


def wait_for(client: Any, execution_arn: str, poller: Poller, out: TextIO) -> int:
    """Poll until the execution ends; print changes; return its exit code (130 on Ctrl-C)."""
    seen: dict[str, str] = {}
    interval = min(MIN_POLL_SECONDS, poller.max_interval)
    try:
        while True:
            execution = client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
            steps = list_steps(client, execution_arn)
            _report_changes(execution, steps, seen, poller.now(), out)
            if execution["PipelineExecutionStatus"] in TERMINAL:
                code, summary = outcome(execution, steps)
                print(summary, file=out, flush=True)
                return code
            poller.sleep(interval)
            interval = min(interval * 2, poller.max_interval)
    except KeyboardInterrupt:
        print(f"interrupted: the execution keeps running: {execution_arn}", file=out, flush=True)
        return INTERRUPTED
