"""What the caller of an execution does once the executor returns: report, record, tracked run.

`publish_execution` writes the execution's HTML report (`local_runner.report`), records the report's path
in `execution.json` (atomically, like every rewrite of the record) and closes the execution's MLflow run
with its metrics, record and report (`ExecutionTracker.finish_execution`). The executor only executes;
the main job and every other command that runs a pipeline call this with the result it returned. A report
that cannot be written is echoed and left out: the record stays the source of truth.
"""

from __future__ import annotations

from collections.abc import Callable

from local_runner.execution_record import RecordWriter
from local_runner.object_store import ObjectStore
from local_runner.report import write_report
from local_runner.results import ExecutionResult
from local_runner.tracking_hooks import ExecutionTracker


def publish_execution(
    result: ExecutionResult,
    store: ObjectStore,
    tracker: ExecutionTracker | None = None,
    echo: Callable[[str], None] = print,
) -> ExecutionResult:
    """Write the report, note it in the record and finish the tracked run; returns `result`."""
    tracker = tracker or ExecutionTracker()
    try:
        result.report_path = write_report(result, store, tracker.links())
    except Exception as error:  # a report bug must not hide the execution's own outcome
        echo(f"the HTML report could not be written: {type(error).__name__}: {error}")
        result.report_path = None
    RecordWriter(result.record_path).write(result)
    tracker.finish_execution(result, store, result.report_path)
    return result
