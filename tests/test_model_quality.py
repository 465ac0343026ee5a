"""The model-quality job (containers/model_quality.py): captured predictions joined with failure events."""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from drift_helpers import capture_line

import model_quality
from local_runner.monitor_cli import add_monitor_parser, run_monitor_command
from rul.contract import run_entrypoint
from rul.data import COLUMNS
from rul.errors import DataFormatError

START = datetime(2026, 11, 25, 13, tzinfo=UTC)
ENDPOINT = "rul-endpoint"


def request_rows(unit: int, last_cycle: int, length: int = 5) -> pd.DataFrame:
    cycles = np.arange(last_cycle - length + 1, last_cycle + 1)
    values = np.full((length, len(COLUMNS) - 2), 1.5)
    frame = pd.DataFrame(values, columns=COLUMNS[2:])
    frame.insert(0, "cycle", cycles)
    frame.insert(0, "unit", unit)
    return frame


def record(requests: list[tuple[int, int, float]], moment: datetime) -> str:
    """A capture record of one request holding (unit, last cycle, predicted RUL) per unit."""
    rows = pd.concat([request_rows(unit, last) for unit, last, _ in requests])
    predictions = [
        {"unit": unit, "predicted_rul": rul, "cycles_used": 5, "padded": True} for unit, _, rul in requests
    ]
    return capture_line(rows, moment, predictions)


def write_capture_file(root, lines: list[str], hour: datetime = START):
    folder = root / ENDPOINT / "AllTraffic" / hour.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "00-00-000-capture.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def opt_ml(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt_ml"))
    return tmp_path / "opt_ml"


@pytest.fixture
def scenario(opt_ml):
    """Units 1 and 2 predicted twice, unit 3 once; units 1 and 2 failed (CSV), unit 3 not yet."""
    captures = opt_ml / "processing" / "input" / "captures"
    write_capture_file(
        captures,
        [
            record([(1, 100, 60.0), (2, 50, 120.0)], START),
            record([(1, 130, 25.0), (3, 40, 90.0)], START + timedelta(minutes=5)),
            record([(2, 150, 10.0)], START + timedelta(minutes=10)),
        ],
    )
    truth = opt_ml / "processing" / "input" / "ground_truth"
    truth.mkdir(parents=True)
    (truth / "failures.csv").write_text(
        "unit,failure_cycle,event_time\n1,150,2026-11-30T00:00:00Z\n2,170,\n4,99,\n"
    )
    return opt_ml


def hand_metrics(true: list[float], predicted: list[float]) -> dict:
    d = np.array(predicted) - np.array(true)
    score = float(np.sum(np.where(d < 0, np.exp(-d / 13) - 1, np.exp(d / 10) - 1)))
    return {"rmse": math.sqrt(np.mean(d**2)), "mae": float(np.mean(np.abs(d))), "phm08_score": score}


def test_realised_metrics_equal_a_hand_computation(scenario):
    assert run_entrypoint(model_quality.main, []) == 0
    output = scenario / "processing" / "output"
    report = json.loads((output / model_quality.REPORT_FILE).read_text())
    # True RUL = failure cycle - last cycle of the unit in the request.
    true, predicted = [150 - 100, 170 - 50, 150 - 130, 170 - 150], [60.0, 120.0, 25.0, 10.0]
    expected = hand_metrics(true, predicted)
    for name, value in expected.items():
        assert report["regression_metrics"][name]["value"] == pytest.approx(value)
    assert report["regression_metrics"]["phm08_score_mean"]["value"] == pytest.approx(
        expected["phm08_score"] / 4
    )
    capped = hand_metrics([min(t, 125) for t in true], predicted)
    assert report["capped_truth_metrics"]["rmse"]["value"] == pytest.approx(capped["rmse"])
    assert report["counts"] == {
        "requests": 3,
        "skipped_records": 0,
        "predictions": 5,
        "matched_predictions": 4,
        "unmatched_predictions": 1,
        "failure_events": 3,
        "events_with_predictions": 2,
        "events_without_predictions": 1,
    }
    assert report["unmatched_units"] == [3] and report["report_type"] == "model_quality"
    assert {"endpoint", "generated_at", "window", "settings"} <= set(report)
    assert [p["true_rul"] for p in report["predictions"]] == [50, 120, 20, 20]
    request = json.loads((output / "metrics.jsonl").read_text())
    assert request["Namespace"] == "TurbofanRul/ModelQuality"
    values = {datum["MetricName"]: datum["Value"] for datum in request["MetricData"]}
    assert values["RMSE"] == pytest.approx(expected["rmse"]) and values["MatchedPredictions"] == 4
    assert values["UnmatchedPredictions"] == 1 and values["CaptureRecordsSkipped"] == 0
    assert report["captures"]["records_read"] == 3 and report["captures"]["first_skipped"] == []


def test_window_limits_the_predictions(scenario):
    argv = ["--start", "2026-11-25T13:04:00Z", "--end", "2026-11-25T13:06:00Z", "--metrics-target", "none"]
    assert run_entrypoint(model_quality.main, argv) == 0
    report = json.loads((scenario / "processing" / "output" / model_quality.REPORT_FILE).read_text())
    assert report["counts"]["predictions"] == 2 and report["counts"]["matched_predictions"] == 1
    assert report["regression_metrics"]["mae"]["value"] == pytest.approx(5.0)
    assert not (scenario / "processing" / "output" / "metrics.jsonl").exists()


def test_a_unit_failing_twice_matches_each_life_by_event_time(tmp_path):
    captures = tmp_path / "captures"
    write_capture_file(
        captures,
        [record([(7, 100, 30.0)], START), record([(7, 20, 100.0)], START + timedelta(hours=2))],
        START,
    )
    events = tmp_path / "truth.jsonl"
    events.write_text(
        '{"unit": 7, "failure_cycle": 120, "event_time": "2026-11-25T14:00:00Z"}\n'
        '{"unit": 7, "failure_cycle": 140, "event_time": "2026-12-20T00:00:00Z"}\n'
    )
    window = model_quality.load_window(captures, None, None)
    report = model_quality.quality_report(window, model_quality.read_failure_events(events), 125.0, {})
    assert [p["true_rul"] for p in report["predictions"]] == [20, 120]


def test_json_ground_truth_and_no_labels_yet(tmp_path):
    captures = tmp_path / "captures"
    write_capture_file(captures, [record([(1, 10, 30.0)], START)])
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"events": [{"unit": 9, "failure_cycle": 200}]}))
    window = model_quality.load_window(captures, None, None)
    report = model_quality.quality_report(window, model_quality.read_failure_events(truth), 125.0, {})
    assert report["regression_metrics"]["rmse"] == {"value": None}
    names = [d["MetricName"] for d in model_quality.quality_metrics(report, ENDPOINT, START)]
    assert names == ["MatchedPredictions", "UnmatchedPredictions", "CaptureRecordsSkipped"]


def whitespace_record(unit: int, last_cycle: int, rul: float, moment: datetime) -> str:
    """A request the endpoint accepts but a comma-only reader does not: a reordered header and
    whitespace-separated rows."""
    rows = request_rows(unit, last_cycle)
    order = [*reversed(COLUMNS)]
    body = " ".join(order) + "\n" + "\n".join(" ".join(str(v) for v in row) for row in rows[order].to_numpy())
    line = json.loads(record([(unit, last_cycle, rul)], moment))
    line["captureData"]["endpointInput"]["data"] = body
    return json.dumps(line)


def test_requests_serving_accepts_are_read_and_a_corrupt_record_is_skipped(opt_ml, capsys):
    captures = opt_ml / "processing" / "input" / "captures"
    path = write_capture_file(
        captures,
        [
            whitespace_record(1, 100, 60.0, START),
            '{"captureData": "truncated',
            record([(2, 50, 120.0)], START + timedelta(minutes=1)),
        ],
    )
    truth = opt_ml / "processing" / "input" / "ground_truth"
    truth.mkdir(parents=True)
    (truth / "f.csv").write_text("unit,failure_cycle\n1,150\n2,170\n")
    assert run_entrypoint(model_quality.main, []) == 0
    report = json.loads((opt_ml / "processing" / "output" / model_quality.REPORT_FILE).read_text())
    assert report["counts"]["requests"] == 2 and report["counts"]["matched_predictions"] == 2
    assert [p["true_rul"] for p in report["predictions"]] == [50, 120]
    captured = report["captures"]
    assert (captured["records"], captured["records_read"], captured["records_skipped"]) == (3, 2, 1)
    assert captured["first_skipped"][0]["file"] == str(path) and captured["first_skipped"][0]["line"] == 2
    assert f"skipped capture record {path}:2: not valid JSON" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.csv", "unit,cycle\n1,2\n", r"a\.csv, line 1: the header must name unit, failure_cycle"),
        (
            "a.csv",
            "unit,failure_cycle\n1,150\n2,1.5\n",
            r"a\.csv, line 3: failure_cycle must be a positive integer",
        ),
        ("a.jsonl", '{"unit": 1, "failure_cycle": 5}\n{"unit": 1\n', r"a\.jsonl, line 2: not valid JSON"),
        ("a.json", '[{"unit": 1}]', r"a\.json \(event 1\): the failure event lacks failure_cycle"),
        (
            "a.csv",
            "unit,failure_cycle\n1,150\n1,160\n",
            r"a\.csv, line 2: unit 1 fails 2 times; each needs event_time",
        ),
        ("a.csv", "unit,failure_cycle,event_time\n1,150,yesterday\n", r"line 2: not an ISO 8601 time"),
    ],
)
def test_bad_failure_events_name_the_file_and_problem(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataFormatError, match=message):
        model_quality.read_failure_events(tmp_path)


def test_a_prediction_after_the_failure_is_an_error(opt_ml, capsys):
    captures = opt_ml / "processing" / "input" / "captures"
    path = write_capture_file(captures, [record([(1, 100, 30.0)], START)])
    truth = opt_ml / "processing" / "input" / "ground_truth"
    truth.mkdir(parents=True)
    (truth / "f.csv").write_text("unit,failure_cycle\n1,90\n")
    assert run_entrypoint(model_quality.main, []) == 1
    err = capsys.readouterr().err
    assert f"{path}, line 1: unit 1 was predicted at cycle 100, after its failure at cycle 90" in err
    assert "f.csv, line 2" in err


def test_missing_inputs_are_errors(opt_ml, tmp_path, capsys):
    assert run_entrypoint(model_quality.main, []) == 1
    assert "ground_truth: the ground-truth folder does not exist" in capsys.readouterr().err
    (tmp_path / "f.csv").write_text("unit,failure_cycle\n1,90\n")
    argv = ["--ground-truth", str(tmp_path / "f.csv"), "--captures", str(tmp_path / "none")]
    assert run_entrypoint(model_quality.main, argv) == 1
    assert "none: the captures folder does not exist" in capsys.readouterr().err


def test_monitor_quality_runs_the_job_locally(scenario, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_monitor_parser(parser.add_subparsers(dest="verb"))
    inputs = scenario / "processing" / "input"
    args = parser.parse_args(
        [
            "monitor",
            "quality",
            "--captures",
            str(inputs / "captures"),
            "--ground-truth",
            str(inputs / "ground_truth"),
            "--work-dir",
            str(tmp_path / "w"),
        ]
    )
    assert run_monitor_command(args) == 0
    out = capsys.readouterr().out
    assert "matched 4, unmatched 1" in out and "rmse" in out
    assert list(
        (tmp_path / "w" / "monitoring").glob("quality-*/opt_ml/processing/output/model_quality_report.json")
    )
