"""The readers of job outputs (`local_runner.readers`): what an execution produced, None when it did not."""

from __future__ import annotations

import json
from pathlib import Path

from local_runner.object_store import ObjectStore
from local_runner.readers import (
    read_drift,
    read_evaluation,
    read_execution_manifest,
    read_plots,
    step_outputs,
)
from local_runner.results import ExecutionResult, StepRecord


def _result(outputs: dict[str, str]) -> ExecutionResult:
    config = {name: {"S3Output": {"S3Uri": uri + "/"}} for name, uri in outputs.items()}
    step = StepRecord("Evaluate", "Processing", "Succeeded")
    step.properties = {"ProcessingOutputConfig": {"Outputs": config}}
    return ExecutionResult("e", "Succeeded", "", {}, [step], 1.0, Path("execution.json"))


def test_an_execution_without_outputs_has_nothing_to_read(tmp_path):
    """No processing output: every reader answers None or empty."""
    store, result = ObjectStore(tmp_path), _result({})
    assert step_outputs(result) == {}
    assert read_evaluation(result, store) is None and read_execution_manifest(result, store) is None
    assert read_plots(result, store, ["predicted_vs_true"]) == {} and read_drift(result, store) == {}


def test_an_output_named_but_empty_is_missing_not_an_error(tmp_path):
    """Outputs declared but never written (a failed job) read as missing."""
    store = ObjectStore(tmp_path)
    result = _result({"evaluation": "s3://b/eval", "manifest": "s3://b/manifest"})
    assert step_outputs(result) == {"evaluation": "s3://b/eval", "manifest": "s3://b/manifest"}
    assert read_evaluation(result, store) is None and read_execution_manifest(result, store) is None


def test_the_readers_parse_what_the_jobs_wrote(tmp_path):
    """Evaluation JSON, only the plots that exist, and only the JSON files of a drift output."""
    store = ObjectStore(tmp_path)
    result = _result({"evaluation": "s3://b/eval", "data-drift": "s3://b/drift"})
    store.put_text("s3://b/eval/evaluation.json", json.dumps({"n_units": 3}))
    store.path_for("s3://b/eval/plots").mkdir(parents=True)
    store.path_for("s3://b/eval/plots/error_histogram.png").write_bytes(b"png")
    store.put_text("s3://b/drift/report.json", json.dumps({"drifted": True}))
    store.put_text("s3://b/drift/notes.txt", "not json")
    assert read_evaluation(result, store) == {"n_units": 3}
    assert read_plots(result, store, ["error_histogram", "unit_trajectory"]) == {"error_histogram": b"png"}
    assert read_drift(result, store) == {"data-drift/report.json": {"drifted": True}}
