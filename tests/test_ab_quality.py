"""Model quality of an A/B test: captures of two variants, joined with late labels, grouped by variant."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from test_model_quality import ENDPOINT, record

import model_quality
from local_runner import report_variants
from local_runner.ab_split import AbPaths, write_state
from rul.capture import CaptureConfig, DataCapture, read_window, variant_of

START = datetime(2026, 11, 25, 13, tzinfo=UTC)
EVENTS = [
    {"unit": unit, "failure_cycle": 200, "event_time": None, "source": "labels.csv", "line": unit}
    for unit in (1, 2, 3, 4)
]


def write(root, variant: str, lines: list[str]) -> None:
    folder = root / ENDPOINT / variant / START.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"00-00-000-{variant}.jsonl").write_text("\n".join(lines) + "\n")


def test_quality_is_grouped_by_variant_with_per_variant_metrics(tmp_path):
    # Champion predicts units 1, 2 (true RUL 100, 50) with errors +10, -10; the challenger units 3, 4
    # (true RUL 100, 20) with errors +2, -2; unit 5 (no label yet) goes to the challenger.
    write(tmp_path, "Champion", [record([(1, 100, 110.0), (2, 150, 40.0)], START)])
    write(
        tmp_path,
        "Challenger",
        [record([(3, 100, 102.0), (4, 180, 18.0)], START), record([(5, 10, 90.0)], START + timedelta(1e-3))],
    )
    window = read_window(tmp_path)

    report = model_quality.quality_report(window, EVENTS, 125.0, {"endpoint": ENDPOINT})

    champion, challenger = report["variants"]["Champion"], report["variants"]["Challenger"]
    assert champion["counts"] == {"predictions": 2, "matched_predictions": 2, "unmatched_predictions": 0}
    assert challenger["counts"] == {"predictions": 3, "matched_predictions": 2, "unmatched_predictions": 1}
    assert champion["regression_metrics"]["rmse"]["value"] == pytest.approx(10.0)
    assert challenger["regression_metrics"]["rmse"]["value"] == pytest.approx(2.0)
    overall = np.sqrt((100 + 100 + 4 + 4) / 4)
    assert report["regression_metrics"]["rmse"]["value"] == pytest.approx(overall)

    data = model_quality.quality_metrics(report, ENDPOINT, START)
    per_variant = {
        (next(d["Value"] for d in datum["Dimensions"] if d["Name"] == "Variant"), datum["MetricName"]): datum[
            "Value"
        ]
        for datum in data
        if any(d["Name"] == "Variant" for d in datum["Dimensions"])
    }
    assert per_variant[("Challenger", "RMSE")] == pytest.approx(2.0)
    assert per_variant[("Champion", "MatchedPredictions")] == 2


def test_a_single_variant_sends_no_per_variant_metrics(tmp_path):
    write(tmp_path, "AllTraffic", [record([(1, 100, 110.0)], START)])
    report = model_quality.quality_report(read_window(tmp_path), EVENTS, 125.0, {"endpoint": ENDPOINT})
    assert list(report["variants"]) == ["AllTraffic"]
    data = model_quality.quality_metrics(report, ENDPOINT, START)
    assert all(d["Name"] != "Variant" for datum in data for d in datum["Dimensions"])


def test_the_writer_records_its_variant_and_old_records_fall_back_to_the_folder(tmp_path):
    capture = DataCapture(CaptureConfig(tmp_path, ENDPOINT, "Challenger", seed=1))
    body = "1 1 " + " ".join(["1.5"] * 24)
    response = json.dumps(
        {"predictions": [{"unit": 1, "predicted_rul": 9.0, "cycles_used": 1, "padded": True}]}
    )
    written = capture.capture(body, "text/csv", response, "application/json", moment=START)
    assert written["eventMetadata"]["variantName"] == "Challenger"
    write(tmp_path, "Champion", [record([(2, 100, 50.0)], START)])  # no variantName: an older record

    window = read_window(tmp_path)

    assert sorted(request.variant for request in window.requests) == ["Challenger", "Champion"]
    assert set(window.predictions()["variant"]) == {"Challenger", "Champion"}
    assert variant_of(tmp_path / "loose.jsonl") is None


def run_cli(argv: list[str]) -> tuple[int, str]:
    import argparse

    from local_runner.endpoint_cli import add_endpoint_parser

    parser = argparse.ArgumentParser()
    add_endpoint_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(argv)
    lines: list[str] = []
    return args.handler(args, lines.append), "\n".join(lines)


def test_ab_report_compares_the_variants_from_captures_and_late_labels(tmp_path):
    captures = tmp_path / "captures"
    write(captures, "Champion", [record([(1, 100, 110.0)], START), record([(2, 150, 40.0)], START)])
    write(captures, "Challenger", [record([(3, 100, 102.0)], START)])
    labels = tmp_path / "labels.csv"
    labels.write_text("unit,failure_cycle\n1,200\n3,200\n")

    code, text = run_cli(
        ["endpoint", "ab-report", "--captures", str(captures), "--ground-truth", str(labels)]
    )

    assert code == 0
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:]}
    # variant, requests, predictions, labelled, RMSE, MAE, PHM08 score
    assert rows["Champion"][1:5] == ["2", "2", "1", "10.00"]
    assert rows["Challenger"][1:5] == ["1", "1", "1", "2.00"]
    html = report_variants.render_html(report_variants.compare_variants(captures))
    assert "<td>Champion</td>" in html and "<td>-</td>" in html  # no labels: no metrics, not zeros


def test_ab_cli_shift_and_status_and_errors(tmp_path):
    assert run_cli(["endpoint", "ab-shift", "40", "--work-dir", str(tmp_path)])[0] == 1  # no test started
    write_state(
        AbPaths.of(tmp_path),
        {
            "group": "g",
            "versions": {"Champion": 1, "Challenger": 2},
            "weights": {"Champion": 50, "Challenger": 50},
        },
    )

    code, text = run_cli(["endpoint", "ab-shift", "40", "--reason", "ramp up", "--work-dir", str(tmp_path)])
    assert code == 0 and json.loads(text)["weights"] == {"Champion": 60.0, "Challenger": 40.0}
    code, text = run_cli(["endpoint", "ab-status", "--work-dir", str(tmp_path)])
    assert code == 0 and '"reason": "ramp up"' in text
    code, text = run_cli(["endpoint", "ab-report", "--captures", str(tmp_path / "none")])
    assert code == 1 and "does not exist" in text


def test_the_report_section_appears_only_for_a_started_test(tmp_path):
    assert report_variants.ab_section(tmp_path) == ""
    captures = tmp_path / "captures"
    write(captures, "Champion", [record([(1, 100, 110.0)], START)])
    state = {"group": "g", "versions": {"Champion": 1, "Challenger": 2}, "weights": {}}
    write_state(AbPaths.of(tmp_path), {**state, "capture_dir": str(captures)})
    labels = AbPaths.of(tmp_path).root / "ground_truth"
    labels.mkdir()
    (labels / "failures.csv").write_text("unit,failure_cycle\n1,200\n")

    section = report_variants.ab_section(tmp_path)

    assert "Champion v1, Challenger v2" in section and "<td>10.00</td>" in section
    write_state(AbPaths.of(tmp_path), state)  # no capture dir recorded
    assert "no capture dir" in report_variants.ab_section(tmp_path)
