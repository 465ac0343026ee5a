"""The per-execution HTML report: content from a fabricated execution, and rendering in headless Chromium.

The execution is built from the real producers (rul.metrics, rul.plots, rul.lineage) so the report reads
the same files a run leaves, without running a pipeline. The browser tests skip with a reason when no
Chromium is installed (Debian: `apt-get install -y chromium`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from evaluate import gate_verdict
from local_runner.object_store import ObjectStore
from local_runner.report import collect, render, write_report
from local_runner.results import ExecutionResult, StepRecord
from rul.lineage import build_manifest, describe_files, write_manifest
from rul.metrics import evaluation_report
from rul.official import OFFICIAL, protocol_record
from rul.plots import write_evaluation_plots

ROOT = "s3://local-artifacts/turbofan-rul/exec-1"
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)


def _outputs(**names: str) -> dict:
    return {
        "Outputs": {name: {"OutputName": name, "S3Output": {"S3Uri": uri}} for name, uri in names.items()}
    }


def _evaluation(store: ObjectStore, passed: bool = True) -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(5, 140, 30)
    predicted = np.clip(truth + rng.normal(0, 12, 30), 0, 125)
    report = evaluation_report(truth, predicted, cap=125, units=range(1, 31), n_bootstrap=20)
    report["champion"], report["champion_comparison"] = None, {"allowed_rmse": 1e12, "tolerance": 1.0}
    # The protocol, model and interval sections as evaluate.py writes them for the official test set.
    files = ["RUL_FD001.txt", "test_FD001.txt"]
    record = protocol_record(OFFICIAL, 30, 30, [7], files)
    report["protocol"] = {**record, "n_units": 30, "model_window": 30, "padded_units": [7]}
    report["model"] = {
        "model_family": "gbm",
        "hyperparameters": {},
        "final_refit": True,
        "training_units": {"train": 62, "validation": 11, "holdout": 27},
    }
    report["prediction_intervals"] = {
        "nominal_coverage": 0.9,
        "coverage": 0.8667,
        "coverage_capped_truth": 0.9,
        "mean_width": 41.25,
        "n_units": 30,
    }
    # The gate section exactly as evaluate.py writes it.
    report["gate"] = gate_verdict(report, report["champion_comparison"], 20.0 if passed else 0.5, 500.0)
    folder = store.path_for(f"{ROOT}/EvaluateModel/evaluation")
    folder.mkdir(parents=True)
    (folder / "evaluation.json").write_text(json.dumps(report))
    cycles = np.arange(1, 101)
    trajectory = {"unit": 7, "cycles": cycles, "true_rul": 150 - cycles, "predicted_rul": 140 - cycles}
    write_evaluation_plots(truth, predicted, report["error_by_rul_bucket"], trajectory, folder / "plots")


def _manifest(store: ObjectStore, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "train_FD001.txt").write_text("1 1 " + " ".join(["0.5"] * 24) + "\n")
    splits = {"train": {"rows": 1, "units": 1, "unit_ids": [1]}}
    manifest = build_manifest(
        describe_files([raw / "train_FD001.txt"], raw), "FD001", ["unit"], ["sensor_2"], splits, {"seed": 0}
    )
    write_manifest(manifest, store.path_for(f"{ROOT}/PreprocessData/manifest"), "algo-1")


def _trial(number: int, value: float | None) -> dict:
    objective = {"MetricName": "validation:rmse", "Value": value} if value is not None else None
    return {
        "TrainingJobName": f"exec-1-TuneModel-{number:03d}",
        "TrainingJobStatus": "Completed" if value else "Failed",
        "TunedHyperParameters": {"learning_rate": "0.05", "max_leaf_nodes": str(10 + number)},
        "FinalHyperParameterTuningJobObjectiveMetric": objective,
        "FailureReason": "" if value else "boom",
    }


def _job_steps(trials: list[dict]) -> list[StepRecord]:
    """Preprocessing (a cache hit), tuning and evaluation, with the properties a run gives them."""
    preprocess = _outputs(manifest=f"{ROOT}/PreprocessData/manifest")
    evaluate = _outputs(evaluation=f"{ROOT}/EvaluateModel/evaluation")
    return [
        StepRecord(
            "PreprocessData", "Processing", "Succeeded", "2026-01-01T10:00:00", 2.0, 1.9, True,
            properties={"ProcessingOutputConfig": preprocess},
        ),
        StepRecord(
            "TuneModel", "Tuning", "Succeeded", "2026-01-01T10:00:02", 30.0, 29.0,
            properties={"BestTrainingJob": trials[0], "TrainingJobSummaries": trials},
        ),
        StepRecord(
            "EvaluateModel", "Processing", "Succeeded", "2026-01-01T10:00:32", 3.0, 2.9,
            properties={"ProcessingOutputConfig": evaluate},
        ),
    ]  # fmt: skip


def _outcome_step(passed: bool) -> StepRecord:
    """The registration when the gate passed, else the Fail step (its reason holds markup to escape)."""
    if passed:
        properties = {"ModelPackageArn": "arn:x/4", "ModelPackageVersion": 4}
        return StepRecord("RegisterModel-RegisterModel", "RegisterModel", "Succeeded", properties=properties)
    reason = "Quality gate failed: <script>alert(1)</script>"
    return StepRecord("FailQualityGate", "Fail", "Failed", failure_reason=reason)


def fabricated_execution(tmp_path: Path, passed: bool = True) -> tuple[ExecutionResult, ObjectStore]:
    """An execution whose outputs (evaluation, plots, manifest) the real producers wrote to a store."""
    store = ObjectStore(tmp_path / "s3")
    _evaluation(store, passed)
    _manifest(store, tmp_path)
    trials = [_trial(2, 11.25), _trial(1, 12.5), _trial(3, None)]
    steps = _job_steps(trials)
    steps.append(
        StepRecord("CheckQualityGate", "Condition", "Succeeded", properties={"Outcome": str(passed)})
    )
    steps.append(_outcome_step(passed))
    result = ExecutionResult(
        "exec-1",
        "Succeeded" if passed else "Failed",
        "" if passed else "step FailQualityGate failed: <b>gate</b>",
        {"TuningMaxJobs": 3},
        steps,
        36.0,
        tmp_path / "executions" / "exec-1" / "execution.json",
    )
    return result, store


def test_the_report_shows_metrics_trials_gate_plots_and_manifest(tmp_path):
    """The cards, the trials with the best starred, the gate rules, the embedded plots and the manifest."""
    result, store = fabricated_execution(tmp_path)
    data = collect(result, store, links={"MLflow run": "abc123"})
    page = render(data)
    rmse = data.evaluation["regression_metrics"]["rmse"]["value"]
    assert f'data-metric="Test RMSE">{rmse:,.2f}<' in page
    assert re.search(r'<tr class="best"><td>002 <span class="star">★ best', page)
    assert "11.250" in page and "12.500" in page and "boom" in page
    assert page.count("data:image/png;base64,") == 4 and set(data.plots) == {
        "predicted_vs_true",
        "error_histogram",
        "error_by_bucket",
        "unit_trajectory",
    }
    assert "all quality rules pass" in page and "decided <b>True</b>" in page
    assert data.manifest["version"] in page and data.manifest["files"][0]["sha256"] in page
    assert "cache hit" in page and ">4<" in page and "abc123" in page
    assert "Drift" not in page


def test_the_report_says_which_protocol_scored_the_model_and_what_it_was_trained_on(tmp_path):
    """The evaluated-model section: protocol, files, padded units, refit, training units, coverage."""
    result, store = fabricated_execution(tmp_path)
    page = render(collect(result, store))
    section = page[page.index('id="model"') : page.index('id="gate"')]
    assert "official test set: official C-MAPSS test set" in section
    assert "RUL_FD001.txt, test_FD001.txt" in section
    assert "<td>padded (shorter than the window)</td><td>7</td>" in section
    assert "<td>final refit on all training units</td><td>yes</td>" in section
    assert "62 train, 11 validation, 27 holdout" in section
    assert (
        "coverage 87% (nominal 90%), 90% of the capped truth, mean width 41.2 cycles on 30 units" in section
    )
    assert 'data-metric="Test units (official test set)"' in page
    assert "capped at 125, official test set" in page


def test_a_report_without_a_protocol_or_intervals_says_so(tmp_path):
    """An evaluation from before those fields existed renders as `protocol unknown`, without intervals."""
    result, store = fabricated_execution(tmp_path)
    path = store.path_for(f"{ROOT}/EvaluateModel/evaluation/evaluation.json")
    report = json.loads(path.read_text())
    for key in ("protocol", "model", "prediction_intervals"):
        report.pop(key)
    path.write_text(json.dumps(report))
    section = render(collect(result, store))
    assert "official test set" not in section and "protocol unknown" in section
    assert "prediction intervals" not in section


def test_the_report_is_self_contained(tmp_path):
    """A Content-Security-Policy forbidding fetches, no script, no external link."""
    result, store = fabricated_execution(tmp_path)
    page = render(collect(result, store))
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"""(src|href)=["'](https?:|//)""", page)
    assert "<script" not in page and "<link" not in page


def test_a_failed_execution_renders_with_escaped_reasons_and_no_register_card(tmp_path):
    """Failure reasons holding markup are escaped; a failed gate shows no registered version."""
    result, store = fabricated_execution(tmp_path, passed=False)
    page = render(collect(result, store))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "&lt;b&gt;gate&lt;/b&gt;" in page
    assert "Registered version" not in page and 'class="badge bad">failed' in page


def test_missing_parts_are_shown_as_missing(tmp_path):
    """An execution that failed in preprocessing: each section says what is missing."""
    store = ObjectStore(tmp_path / "s3")
    result = ExecutionResult(
        "exec-2",
        "Failed",
        "step PreprocessData failed",
        {},
        [
            StepRecord("PreprocessData", "Processing", "Failed", failure_reason="DataFormatError: bad line"),
            StepRecord("TuneModel", "Tuning", "NotExecuted"),
        ],
        1.0,
        tmp_path / "execution.json",
    )
    page = render(collect(result, store))
    assert "No tuning step ran" in page and "the gate was not reached" in page
    assert "produced no dataset manifest" in page and "DataFormatError: bad line" in page


def test_drift_results_are_shown_when_a_step_produced_them(tmp_path):
    """A drift output's per-feature table, drifted features marked."""
    result, store = fabricated_execution(tmp_path)
    drift = {
        "drift_detected": True,
        "features": [
            {
                "name": "sensor_11",
                "ks_statistic": 0.4,
                "adjusted_p_value": 0.001,
                "psi": 0.31,
                "severity": "high",
                "drifted": True,
            },
            {
                "name": "sensor_2",
                "ks_statistic": 0.05,
                "adjusted_p_value": 0.9,
                "psi": 0.01,
                "severity": "low",
                "drifted": False,
            },
        ],
    }
    store.put_text(f"{ROOT}/CheckDrift/drift/drift_report.json", json.dumps(drift))
    result.steps.append(
        StepRecord(
            "CheckDrift",
            "Processing",
            "Succeeded",
            properties={"ProcessingOutputConfig": _outputs(drift=f"{ROOT}/CheckDrift/drift")},
        )
    )
    page = render(collect(result, store))
    assert '<section id="drift">' in page and 'class="drifted"><td>sensor_11' in page


def test_write_report_puts_the_file_next_to_the_record(tmp_path):
    """report.html lands beside execution.json and is a whole HTML document."""
    result, store = fabricated_execution(tmp_path)
    path = write_report(result, store)
    assert path == result.record_path.parent / "report.html" and path.read_text().startswith(
        "<!DOCTYPE html>"
    )


# -- in a real browser ---------------------------------------------------------------------------------------
def chromium(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    """Headless Chromium offline, with page console messages logged to stderr as `...:CONSOLE...] "..."`."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--log-level=0",
        *extra,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    """The browser console messages in Chromium's stderr, without its own start-up noise."""
    return re.findall(r":CONSOLE[^\]]*\] (.*)", stderr)


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)


@needs_chromium
def test_the_console_check_sees_errors(tmp_path):
    """The harness itself: a page with a failing script and a blocked fetch must produce console messages."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<meta http-equiv="Content-Security-Policy" content="img-src data:">'
        '<img src="https://example.invalid/x.png"><script>undefinedFunction()</script>'
    )
    messages = console_messages(chromium(page.as_uri(), tmp_path, "--dump-dom").stderr)
    assert any("undefinedFunction" in message for message in messages)


@needs_chromium
def test_the_report_loads_in_chromium_without_console_errors(tmp_path):
    """Headless Chromium renders the page (DOM dump and screenshot) with no console error."""
    result, store = fabricated_execution(tmp_path)
    path = write_report(result, store)
    dumped = chromium(path.as_uri(), tmp_path, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert console_messages(dumped.stderr) == []
    evaluation = json.loads(store.read_text(f"{ROOT}/EvaluateModel/evaluation/evaluation.json"))
    rmse = evaluation["regression_metrics"]["rmse"]["value"]
    assert f'data-metric="Test RMSE">{rmse:,.2f}</div>' in dumped.stdout
    assert "★ best" in dumped.stdout and "Data manifest" in dumped.stdout
    shot = tmp_path / "report.png"
    shown = chromium(path.as_uri(), tmp_path, "--window-size=1280,2400", f"--screenshot={shot}")
    assert shown.returncode == 0 and console_messages(shown.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_the_steps_table_names_a_step_collections_step_once(tmp_path):
    """The SDK names the register step `RegisterModel-RegisterModel`; the table shows its name once."""
    result, store = fabricated_execution(tmp_path)
    page = render(collect(result, store))
    steps = page[page.index('id="steps"') : page.index('id="trials"')]
    assert "<td>RegisterModel</td><td>RegisterModel</td>" in steps
    assert "RegisterModel-RegisterModel" not in page
