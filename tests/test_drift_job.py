"""The drift job (containers/drift.py) end to end: captures in; report, violations and metrics out."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from drift_helpers import (  # noqa: F401 - fixtures
    ENDPOINT,
    FEATURES,
    START,
    baseline_dir_fixture,
    opt_ml_fixture,
    run_drift,
    served_windows,
    write_captures,
)
from moto import mock_aws

import drift
from local_runner.monitor_cli import add_monitor_parser, run_monitor_command
from rul.contract import run_entrypoint
from rul.monitoring import write_baseline
from rul.synthetic import DriftSpec, SyntheticSpec, generate


def test_clean_captures_raise_no_drift(opt_ml, baseline_dir):
    code, output = run_drift(opt_ml, baseline_dir, served_windows(seed=11))
    assert code == 0
    report = json.loads((output / drift.REPORT_FILE).read_text())
    assert report["drift_detected"] is False and report["drifted_features"] == []
    assert report["endpoint"] == ENDPOINT and report["counts"]["requests"] == 50
    assert report["counts"]["rows"] == 1500 and report["counts"]["features"] == 24
    feature = report["features"][0]
    assert {"ks_statistic", "p_value", "adjusted_p_value", "psi", "severity", "drifted"} <= set(feature)
    assert json.loads((output / drift.VIOLATIONS_FILE).read_text()) == {"violations": []}


def test_drift_is_found_in_the_sensors_where_it_was_made(opt_ml, baseline_dir):
    shifted = DriftSpec("offset", 3.0, ("sensor_4", "sensor_11"))
    code, output = run_drift(opt_ml, baseline_dir, served_windows(seed=11, drift_spec=shifted))
    assert code == 0
    report = json.loads((output / drift.REPORT_FILE).read_text())
    assert report["drift_detected"] is True and report["drifted_features"] == ["sensor_4", "sensor_11"]
    severities = {f["name"]: f["severity"] for f in report["features"]}
    assert severities["sensor_4"] == severities["sensor_11"] == "high"
    assert report["counts"]["drifted_features"] == 2


def test_a_new_operating_condition_drifts_settings_and_sensors(opt_ml, baseline_dir):
    code, output = run_drift(
        opt_ml, baseline_dir, served_windows(seed=11, drift_spec=DriftSpec("new_condition", 0.2))
    )
    report = json.loads((output / drift.REPORT_FILE).read_text())
    assert code == 0 and {"setting_1", "setting_2", "setting_3", "sensor_1"} <= set(
        report["drifted_features"]
    )
    violations = json.loads((output / drift.VIOLATIONS_FILE).read_text())["violations"]
    assert ("setting_1", "out_of_range_check") in {
        (v["feature_name"], v["constraint_check_type"]) for v in violations
    }


def test_metrics_file_holds_put_metric_data_requests(opt_ml, baseline_dir):
    code, output = run_drift(opt_ml, baseline_dir, served_windows(seed=11))
    assert code == 0
    lines = (output / drift.METRICS_FILE).read_text().splitlines()
    assert len(lines) == 1
    request = json.loads(lines[0])
    assert request["Namespace"] == "TurbofanRul/Drift"
    names = [datum["MetricName"] for datum in request["MetricData"]]
    assert (
        names[:4] == ["MaxPSI", "DriftedFeatures", "ConstraintViolations", "CaptureRecordsSkipped"]
        and names.count("FeaturePSI") == 24
    )
    assert request["MetricData"][0]["Dimensions"] == [{"Name": "Endpoint", "Value": ENDPOINT}]
    assert request["MetricData"][4]["Dimensions"][1] == {"Name": "Feature", "Value": "setting_1"}
    datetime.fromisoformat(request["MetricData"][0]["Timestamp"])


def test_cloudwatch_receives_the_metrics(opt_ml, baseline_dir, monkeypatch):
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        code, output = run_drift(
            opt_ml, baseline_dir, served_windows(seed=11), "--metrics-target", "cloudwatch"
        )
        assert code == 0 and not (output / drift.METRICS_FILE).exists()
        client = boto3.client("cloudwatch", region_name="eu-west-1")
        metrics = client.list_metrics(Namespace="TurbofanRul/Drift")["Metrics"]
        assert {m["MetricName"] for m in metrics} == {
            "MaxPSI",
            "DriftedFeatures",
            "ConstraintViolations",
            "CaptureRecordsSkipped",
            "FeaturePSI",
        }
        now = datetime.now(UTC)
        points = client.get_metric_statistics(
            Namespace="TurbofanRul/Drift",
            MetricName="DriftedFeatures",
            Dimensions=[{"Name": "Endpoint", "Value": ENDPOINT}],
            StartTime=now - timedelta(minutes=10),
            EndTime=now + timedelta(minutes=10),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        assert [point["Maximum"] for point in points] == [0.0]


def test_errors_name_the_problem(opt_ml, baseline_dir, tmp_path, capsys):
    captures = write_captures(tmp_path / "captures", served_windows(seed=5, units=2))
    assert (
        run_entrypoint(drift.main, ["--baseline", str(tmp_path / "nope"), "--captures", str(captures)]) == 1
    )
    assert "nope: the baseline does not exist" in (opt_ml / "output" / "failure").read_text()
    late = ["--start", "2027-01-01T00:00:00Z"]
    assert (
        run_entrypoint(drift.main, ["--baseline", str(baseline_dir), "--captures", str(captures), *late]) == 1
    )
    assert "no captured request between 2027-01-01" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert (
        run_entrypoint(drift.main, ["--baseline", str(baseline_dir), "--captures", str(tmp_path / "empty")])
        == 1
    )
    assert "no capture file (*.jsonl) found" in capsys.readouterr().err
    bad = next(captures.rglob("*.jsonl"))
    bad.write_text("not json\n" * 2)
    assert run_entrypoint(drift.main, ["--baseline", str(baseline_dir), "--captures", str(captures)]) == 1
    err = capsys.readouterr().err
    assert "no readable captured request" in err and f"2 skipped, {bad}:1: not valid JSON" in err


def test_monitor_drift_runs_the_job_locally(tmp_path, baseline_dir, capsys):
    captures = write_captures(
        tmp_path / "captures", served_windows(seed=11, drift_spec=DriftSpec("offset", 3.0))
    )
    parser = argparse.ArgumentParser()
    add_monitor_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(
        [
            "monitor",
            "drift",
            "--captures",
            str(captures),
            "--baseline",
            str(baseline_dir),
            "--work-dir",
            str(tmp_path / "w"),
        ]
    )
    assert args.handler is run_monitor_command
    assert run_monitor_command(args) == 0
    out = capsys.readouterr().out
    assert "drift DETECTED: 14 of 24 features drifted" in out and "sensor_11" in out
    reports = list((tmp_path / "w" / "monitoring").glob("drift-*/opt_ml/processing/output/drift_report.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())["drift_detected"] is True


def _model_monitor_inputs(opt_ml) -> dict[str, str]:
    """Baseline and captures (50 drifted requests in the window, 5 an hour before) under `opt_ml`, and the
    variables Model Monitor sets to point at them (paths under /opt/ml, moved to SAGEMAKER_BASE_DIR)."""
    train = generate(SyntheticSpec(n_train_units=100, n_test_units=1, seed=0)).train
    written = write_baseline(train[FEATURES], opt_ml / "processing" / "baseline")
    write_captures(
        opt_ml / "processing" / "input" / "endpoint",
        served_windows(seed=11, drift_spec=DriftSpec("new_condition", 0.2)),
    )
    before = START - timedelta(hours=1)
    write_captures(opt_ml / "processing" / "input" / "endpoint", served_windows(seed=3, units=5), before)
    return {
        "dataset_format": json.dumps({"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput"]}}),
        "dataset_source": "/opt/ml/processing/input/endpoint",
        "output_path": "/opt/ml/processing/resultdata",
        "baseline_statistics": "/opt/ml/processing/baseline/" + written["statistics"].name,
        "baseline_constraints": "/opt/ml/processing/baseline/" + written["constraints"].name,
        "start_time": START.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_time": (START + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "publish_cloudwatch_metrics": "Enabled",
        "sagemaker_endpoint_name": ENDPOINT,
        "sagemaker_monitoring_schedule_name": "rul-schedule",
    }


def test_model_monitor_contract_writes_violations_and_cloudwatch_metric_files(opt_ml, monkeypatch):
    """Inputs from the variables Model Monitor sets; outputs where it collects them."""
    for name, value in _model_monitor_inputs(opt_ml).items():
        monkeypatch.setenv(name, value)

    assert run_entrypoint(drift.main, []) == 0

    output = opt_ml / "processing" / "resultdata"
    report = json.loads((output / drift.REPORT_FILE).read_text())
    assert report["counts"]["requests"] == 50  # the 5 requests an hour earlier are outside the window
    assert report["window"]["start"] == START.isoformat()
    violations = json.loads((output / drift.VIOLATIONS_FILE).read_text())["violations"]
    assert ("setting_1", "out_of_range_check") in {
        (v["feature_name"], v["constraint_check_type"]) for v in violations
    }
    assert not (output / drift.METRICS_FILE).exists()  # no other target under the contract
    metrics_file = opt_ml / "output" / "metrics" / "cloudwatch" / drift.CLOUDWATCH_METRICS_FILE
    lines = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    assert [line["MetricName"] for line in lines[:4]] == [
        "MaxPSI",
        "DriftedFeatures",
        "ConstraintViolations",
        "CaptureRecordsSkipped",
    ]
    assert [line["MetricName"] for line in lines[4:]] == ["FeaturePSI"] * 24
    assert all(set(line) == {"MetricName", "Timestamp", "Dimensions", "Value", "Unit"} for line in lines)
    assert lines[0]["Dimensions"] == [{"Name": "Endpoint", "Value": ENDPOINT}]
    assert lines[0]["Value"] == pytest.approx(report["max_psi"]) and lines[0]["Value"] >= 0.2
    assert lines[2]["Value"] == len(violations) and lines[2]["Unit"] == "Count"
    assert lines[4]["Dimensions"] == [
        {"Name": "Endpoint", "Value": ENDPOINT},
        {"Name": "Feature", "Value": "setting_1"},
    ]
    datetime.strptime(lines[0]["Timestamp"], "%Y-%m-%dT%H:%M:%SZ")


def test_model_monitor_contract_needs_the_baseline_statistics(opt_ml, monkeypatch):
    write_captures(opt_ml / "processing" / "input" / "endpoint", served_windows(seed=3, units=5))
    monkeypatch.setenv("dataset_source", "/opt/ml/processing/input/endpoint")
    monkeypatch.setenv("output_path", "/opt/ml/processing/resultdata")
    assert run_entrypoint(drift.main, ["--contract", "model-monitor"]) == 1
    assert "baseline_statistics" in (opt_ml / "output" / "failure").read_text()
    assert not (opt_ml / "output" / "metrics").exists()
