"""The caller of an execution publishes it (`local_runner.report_publish`): the executor only executes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_runner import report_publish
from local_runner.execution import PipelineExecutor
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from local_runner.report_publish import publish_execution
from local_runner.tracking_hooks import ExecutionTracker

DEFINITION = {
    "Parameters": [],
    "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "no"}}],
}


class RecordingTracker(ExecutionTracker):
    """Remembers what the hooks were called with."""

    def __init__(self) -> None:
        self.finished: list[tuple[str, Path | None]] = []
        self.started: list[str] = []

    def start_execution(self, execution_id, pipeline_name, parameters) -> None:
        self.started.append(execution_id)

    def finish_execution(self, result, store, report) -> None:
        self.finished.append((result.status, report))

    def links(self) -> dict[str, str]:
        return {"MLflow run": "run-1"}


@pytest.fixture
def executed(tmp_path):
    """A one-step execution (a Fail step) run with a recording tracker: (result, store, tracker)."""
    store = ObjectStore(tmp_path / "s3")
    tracker = RecordingTracker()
    executor = PipelineExecutor(
        DEFINITION,
        tmp_path,
        store,
        LocalRegistry(tmp_path / "r.sqlite"),
        echo=lambda _: None,
        tracker=tracker,
    )
    return executor.start(execution_id="e1"), store, tracker


def test_the_executor_returns_the_result_without_report_or_closing_the_tracked_run(executed):
    """The record is written, but no report.html and no `finish_execution` call."""
    result, _, tracker = executed
    assert result.status == "Failed" and tracker.started == ["e1"]
    assert result.report_path is None and not (result.record_path.parent / "report.html").exists()
    assert tracker.finished == []
    assert json.loads(result.record_path.read_text())["status"] == "Failed"


def test_publishing_writes_the_report_records_it_and_closes_the_run(executed):
    """The report holds the tracker's links; the record names the report; the tracker gets its path."""
    result, store, tracker = executed
    published = publish_execution(result, store, tracker, echo=lambda _: None)
    assert published.report_path == result.record_path.parent / "report.html"
    assert "run-1" in published.report_path.read_text()  # the tracker's links are in the page
    assert json.loads(result.record_path.read_text())["report_path"] == str(published.report_path)
    assert tracker.finished == [("Failed", published.report_path)]


def test_a_report_that_cannot_be_written_is_echoed_and_the_run_still_closes(executed, monkeypatch):
    """A failing report writer: one echoed line, no report path, the tracked run still finished."""
    result, store, tracker = executed

    def broken(*args, **kwargs):
        raise ValueError("bad evaluation")

    monkeypatch.setattr(report_publish, "write_report", broken)
    lines: list[str] = []
    published = publish_execution(result, store, tracker, echo=lines.append)
    assert published.report_path is None
    assert lines == ["the HTML report could not be written: ValueError: bad evaluation"]
    assert tracker.finished == [("Failed", None)]
    assert json.loads(result.record_path.read_text())["report_path"] is None
