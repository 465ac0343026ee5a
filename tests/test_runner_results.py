"""The result types (`local_runner.results`) and how `python -m local_runner run` presents them: exit
codes, the step table's names, the runner's overhead when jobs overlap."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from local_runner.__main__ import exit_code, step_table, summary_lines
from local_runner.execution import PipelineExecutor
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from local_runner.results import ExecutionResult, StepRecord, overhead_seconds, union_seconds


@pytest.mark.parametrize(
    ("status", "failed_types", "expected"),
    [
        ("Succeeded", [], 0),
        ("Failed", ["Fail"], 3),  # only the quality gate's Fail step failed: the model was rejected
        ("Failed", ["Processing"], 1),
        ("Failed", ["Training", "Fail"], 1),  # a crash is a crash, whatever else failed
        ("Stopped", [], 143),
    ],
)
def test_run_exit_codes_tell_a_rejection_from_a_failure_and_a_stop(status, failed_types, expected):
    """0 succeeded, 3 only the Fail step failed, 1 anything else failed, the signal's code when stopped."""
    steps = [StepRecord(f"step{i}", kind, status="Failed") for i, kind in enumerate(failed_types)]
    steps.append(StepRecord("Other", "Processing", status="Succeeded"))
    result = ExecutionResult("local-x", status, "", {}, steps, 1.0, Path("execution.json"))
    assert exit_code(result, signal_code=143) == expected


def test_the_step_table_names_a_step_collections_step_once():
    """The SDK's `<name>-<type>` step shows as `<name>`; other names, and the record, stay as they are."""
    steps = [
        StepRecord("RegisterModel-RegisterModel", "RegisterModel", "Succeeded", seconds=1.0),
        StepRecord("Champion-RegisterModel", "RegisterModel", "Succeeded"),
        StepRecord("RegisterModel", "RegisterModel", "Succeeded"),
        StepRecord("-Processing", "Processing", "Succeeded"),
    ]
    result = ExecutionResult("local-x", "Succeeded", "", {}, steps, 1.0, Path("execution.json"))
    table = step_table(result)
    names = [line.split()[0] for line in table[1:]]
    assert names == ["RegisterModel", "Champion", "RegisterModel", "-Processing"]
    assert not any("RegisterModel-RegisterModel" in line for line in table)
    assert result.step("RegisterModel-RegisterModel").seconds == 1.0  # the record keeps the SDK's name


@pytest.mark.parametrize(
    ("intervals", "busy"),
    [
        ([], 0.0),
        ([[0.0, 10.0]], 10.0),
        ([[0.0, 10.0], [2.0, 8.0]], 10.0),  # one job inside another
        ([[0.0, 10.0], [5.0, 15.0]], 15.0),  # overlapping
        ([[0.0, 1.0], [3.0, 4.0]], 2.0),  # a gap between them
        ([[5.0, 15.0], [0.0, 10.0], [20.0, 21.0]], 16.0),  # unsorted
    ],
)
def test_busy_time_is_the_union_of_the_job_intervals(intervals, busy):
    """Nested, overlapping, disjoint and unsorted intervals."""
    assert union_seconds(intervals) == pytest.approx(busy)


def test_the_overhead_of_overlapping_steps_is_the_time_no_job_ran():
    """Two 10 s jobs half a second apart in a 12 s run: 20.5 s of job time, 10.5 s busy, 1.5 s overhead."""
    first, second = StepRecord("A", "Processing"), StepRecord("B", "Processing")
    first.add_job(10.0, ended=1000.0)
    second.add_job(10.0, ended=1000.5)
    second.add_job(0.5, ended=995.0)  # inside the first job: counted once
    result = ExecutionResult("local-x", "Succeeded", "", {}, [first, second], 12.0, Path("e.json"))
    assert result.job_seconds == pytest.approx(20.5)
    assert result.busy_seconds == pytest.approx(10.5)
    assert overhead_seconds(12.0, result) == pytest.approx(1.5)
    line = next(line for line in summary_lines(_workspace(), result, 12.0) if line.startswith("wall time"))
    assert line == "wall time 12.0s, of which runner overhead 1.5s (12.5%)"


def _workspace():
    """A stand-in workspace: the summary reads the store only for an evaluation, and this run has none."""
    return SimpleNamespace(store=None)


def test_the_executor_records_each_jobs_interval(tmp_path):
    """Two side-by-side processing steps: one interval each, overlapping, saved in the record."""
    code = "import time; time.sleep(0.3)"
    request = {"AppSpecification": {"ContainerEntrypoint": ["python3", "-c", code]}}
    steps = [{"Name": name, "Type": "Processing", "Arguments": request} for name in ("A", "B")]
    registry = LocalRegistry(tmp_path / "registry.sqlite")
    store = ObjectStore(tmp_path / "s3")
    result = PipelineExecutor({"Steps": steps}, tmp_path, store, registry, echo=lambda line: None).start()
    assert result.status == "Succeeded", result.failure_reason
    for record in result.steps:
        ((start, end),) = record.job_intervals
        assert end - start == pytest.approx(record.job_seconds) and record.job_seconds >= 0.3
    assert result.busy_seconds < result.job_seconds  # the two steps ran side by side
    assert 0 < overhead_seconds(result.seconds, result) < result.seconds
    saved = json.loads(result.record_path.read_text())
    assert [len(step["job_intervals"]) for step in saved["steps"]] == [1, 1]
