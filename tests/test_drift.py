"""The drift statistics (rul.drift_stats), the drift job (containers/drift.py) and `monitor drift`."""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws
from scipy import stats

import drift
from local_runner.monitor_cli import add_monitor_parser, run_monitor_command
from rul import drift_stats as ds
from rul import drift_tests as dt
from rul.capture import read_window
from rul.contract import run_entrypoint
from rul.data import COLUMNS, SENSOR_COLUMNS, SETTING_COLUMNS
from rul.drift_constraints import constraint_violations
from rul.errors import ConfigurationError, DataFormatError
from rul.monitoring import write_baseline
from rul.synthetic import DriftSpec, SyntheticSpec, generate

FEATURES = [*SETTING_COLUMNS, *SENSOR_COLUMNS]
START = datetime(2026, 11, 25, 13, tzinfo=UTC)
ENDPOINT = "rul-endpoint"


# ---------------------------------------------------------------------------------------------------------
# Fixtures: a baseline and SageMaker data-capture files


def capture_line(rows: pd.DataFrame, moment: datetime, predictions: list[dict] | None = None) -> str:
    data = "\n".join(
        ",".join(repr(float(v)) if i > 1 else str(int(v)) for i, v in enumerate(row))
        for row in rows[COLUMNS].itertuples(index=False)
    )
    if predictions is None:
        predictions = [
            {"unit": int(u), "predicted_rul": 80.0, "cycles_used": 30, "padded": False}
            for u in pd.unique(rows["unit"])
        ]
    output = json.dumps({"predictions": predictions, "model_version": 3})
    record = {
        "captureData": {
            "endpointInput": {
                "observedContentType": "text/csv",
                "mode": "INPUT",
                "data": data,
                "encoding": "CSV",
            },
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": output,
                "encoding": "JSON",
            },
        },
        "eventMetadata": {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "eventVersion": "0",
    }
    return json.dumps(record)


def write_captures(root, windows: pd.DataFrame, start: datetime = START, endpoint: str = ENDPOINT):
    """One request per unit (its rows), a minute apart, in SageMaker's hour folders."""
    files: dict = {}
    for index, (_, rows) in enumerate(windows.groupby("unit", sort=True)):
        moment = start + timedelta(minutes=index)
        folder = root / endpoint / "AllTraffic" / moment.strftime("%Y/%m/%d/%H")
        files.setdefault(folder, []).append(capture_line(rows, moment))
    for folder, lines in files.items():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "00-00-000-capture.jsonl").write_text("\n".join(lines) + "\n")
    return root


def served_windows(seed: int, units: int = 50, drift_spec: DriftSpec | None = None) -> pd.DataFrame:
    spec = SyntheticSpec(n_train_units=1, n_test_units=units, seed=seed, min_test_cycles=30, drift=drift_spec)
    return generate(spec).test.groupby("unit").tail(30).reset_index(drop=True)


@pytest.fixture(scope="session")
def baseline_dir(tmp_path_factory):
    """statistics.json and constraints.json of 100 training units, as DataQualityBaseline writes them."""
    train = generate(SyntheticSpec(n_train_units=100, n_test_units=1, seed=0)).train
    folder = tmp_path_factory.mktemp("baseline")
    write_baseline(train[FEATURES], folder)
    return folder


@pytest.fixture(scope="session")
def baseline(baseline_dir):
    return drift.load_baseline(baseline_dir)


@pytest.fixture
def opt_ml(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt_ml"))
    return tmp_path / "opt_ml"


def run_drift(opt_ml, baseline_dir, windows, *extra):
    captures = write_captures(opt_ml / "processing" / "input" / "captures", windows)
    code = run_entrypoint(drift.main, ["--baseline", str(baseline_dir), "--captures", str(captures), *extra])
    output = opt_ml / "processing" / "output"
    return code, output


# ---------------------------------------------------------------------------------------------------------
# KS, PSI, severities, corrections


def test_identical_samples_do_not_drift():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=2000)
    statistic, pvalue = dt.ks_test(reference, reference.copy())
    bins = dt.psi_bins(reference)
    value = dt.psi(dt.bin_shares(bins, reference), dt.bin_shares(bins, reference))
    assert statistic == 0 and pvalue == 1.0 and value == 0.0 and dt.severity(value) == dt.LOW


def test_shifted_sample_drifts_and_a_same_distribution_sample_does_not():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=2000)
    bins = dt.psi_bins(reference)
    expected = dt.bin_shares(bins, reference)
    same, shifted = rng.normal(size=500), rng.normal(0.5, 1, size=500)
    assert dt.ks_test(reference, same)[1] > 0.05 and dt.psi(expected, dt.bin_shares(bins, same)) < 0.1
    assert dt.ks_test(reference, shifted)[1] < 1e-6 and dt.psi(expected, dt.bin_shares(bins, shifted)) > 0.2


@pytest.mark.parametrize(
    ("value", "level"), [(0.0, "low"), (0.0999, "low"), (0.1, "medium"), (0.1999, "medium"), (0.2, "high")]
)
def test_severity_boundaries(value, level):
    assert dt.severity(value) == level


def test_psi_by_hand_and_epsilon_for_empty_bins():
    expected, actual = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.75, 0.0])
    assert dt.psi(expected, actual) == pytest.approx(-0.25 * np.log(0.5) + 0.25 * np.log(1.5))
    # A bin empty in the baseline counts with share 1e-4; a bin empty on both sides adds nothing.
    assert dt.psi(np.array([1.0, 0.0]), np.array([0.9, 0.1])) == pytest.approx(
        -0.1 * np.log(0.9) + (0.1 - 1e-4) * np.log(0.1 / 1e-4)
    )


def test_psi_bins_put_out_of_range_values_in_their_own_bins():
    bins = dt.psi_bins(np.arange(100.0))
    assigned = bins.assign(np.array([-1.0, 0.0, 99.0, 100.0]))
    assert (
        assigned[0] == 0
        and assigned[-1] == bins.count - 1
        and 0 < assigned[1] <= assigned[2] < bins.count - 1
    )


def test_near_constant_feature_bins_on_its_mode():
    reference = np.r_[np.full(980, 21.61), np.full(20, 21.60)]  # sensor 6 with 2% one-quantum dips
    bins = dt.psi_bins(reference)
    assert bins.mode == 21.61 and bins.count == 5
    same = dt.psi(dt.bin_shares(bins, reference), dt.bin_shares(bins, reference[::2]))
    more_dips = np.r_[np.full(400, 21.61), np.full(100, 21.60)]
    assert same == 0.0
    assert dt.psi(dt.bin_shares(bins, reference), dt.bin_shares(bins, more_dips)) > 0.2


def test_benjamini_hochberg_matches_scipy_and_holm_matches_a_hand_computation():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    assert dt.adjust_pvalues(p, "bh") == pytest.approx(stats.false_discovery_control(p, method="bh"))
    assert dt.adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert dt.adjust_pvalues([0.9, 0.8], "holm") == pytest.approx([1.0, 1.0])
    with pytest.raises(ConfigurationError):
        dt.adjust_pvalues(p, "bonferroni")
    with pytest.raises(ConfigurationError):
        dt.adjust_pvalues([1.5], "bh")


def test_effective_rows_count_units_not_rows_when_rows_of_a_unit_agree():
    groups = np.repeat(np.arange(10), 30)
    same_within = np.repeat(np.random.default_rng(0).normal(size=10), 30)
    independent = np.random.default_rng(1).normal(size=300)
    assert dt.effective_rows(same_within, groups) == pytest.approx(10)
    assert dt.effective_rows(independent, groups) > 200
    assert dt.effective_rows(independent, None) == 300


def test_settings_are_validated():
    with pytest.raises(ConfigurationError, match="alpha"):
        ds.DriftSettings(alpha=1.5)
    with pytest.raises(ConfigurationError, match="correction"):
        ds.DriftSettings(correction="sidak")


# ---------------------------------------------------------------------------------------------------------
# Baselines and constraint violations


def test_statistics_baseline_uses_the_sketch_and_weighs_levels():
    kll = {"sketch": {"data": [[1.0, 2.0], [3.0]]}}
    assert list(ds.sketch_sample(kll, "s")) == [1.0, 2.0, 3.0, 3.0]
    with pytest.raises(DataFormatError, match="no finite values"):
        ds.sketch_sample({"sketch": {"data": []}}, "s")


def test_baseline_from_statistics_and_from_csv_agree(baseline, baseline_dir, tmp_path):
    assert set(baseline.features) == set(FEATURES) and baseline.source == "statistics"
    assert baseline.comparison_threshold == 0.1
    train = generate(SyntheticSpec(n_train_units=100, n_test_units=1, seed=0)).train
    train[FEATURES].to_csv(tmp_path / "baseline.csv", index=False)
    from_csv = drift.load_baseline(tmp_path)
    assert from_csv.source == "csv" and from_csv.rows == len(train)
    for name in FEATURES:
        assert from_csv.features[name].minimum == baseline.features[name].minimum
        assert from_csv.features[name].maximum == baseline.features[name].maximum


def test_violations_have_model_monitors_shape_and_checks(baseline):
    current = served_windows(seed=5, units=10)[COLUMNS].astype(object)
    current = current.drop(columns=["sensor_3"])
    current.loc[0, "sensor_4"] = "n/a"
    current.loc[1:, "sensor_7"] = None
    current["sensor_9"] = 99999.0
    features = ds.compare_features(baseline, current, ds.DriftSettings())
    document = constraint_violations(baseline, current, features, ds.DriftSettings())
    assert set(document) == {"violations"}
    assert all(
        set(v) == {"feature_name", "constraint_check_type", "description"} for v in document["violations"]
    )
    found = {(v["feature_name"], v["constraint_check_type"]) for v in document["violations"]}
    assert {
        ("sensor_3", "missing_column_check"),
        ("sensor_4", "data_type_check"),
        ("sensor_7", "completeness_check"),
        ("sensor_9", "out_of_range_check"),
        ("sensor_9", "baseline_drift_check"),
    } <= found
    assert json.loads(json.dumps(document)) == document


# ---------------------------------------------------------------------------------------------------------
# Capture records


def test_malformed_records_are_skipped_with_their_file_and_line(tmp_path):
    folder = tmp_path / ENDPOINT / "AllTraffic" / "2026" / "11" / "25" / "13"
    folder.mkdir(parents=True)
    rows = served_windows(seed=5, units=1)
    good = capture_line(rows, START)
    bad_row = good.replace('"data": "1,', '"data": "1,2,', 1)
    stray = capture_line(rows, START, [{"unit": 7, "predicted_rul": 3.0, "cycles_used": 30, "padded": False}])
    (folder / "a.jsonl").write_text("\n".join([good, '{"captureData": {}', bad_row, stray, good]) + "\n")
    window = read_window(tmp_path)
    assert len(window.requests) == 2
    reasons = {skipped.line: skipped.reason for skipped in window.skipped}
    assert sorted(reasons) == [2, 3, 4] and all(s.path.endswith("a.jsonl") for s in window.skipped)
    assert reasons[2].startswith("not valid JSON")
    assert "serving would reject the request" in reasons[3] and "expected 26 columns, found 27" in reasons[3]
    assert "the response predicts units [7], the request sent [1]" in reasons[4]


def test_capture_window_and_predictions(tmp_path):
    write_captures(tmp_path, served_windows(seed=5, units=3))
    window = read_window(tmp_path, START + timedelta(minutes=1), START + timedelta(minutes=2))
    assert len(window.requests) == 1 and window.requests[0].inference_time == START + timedelta(minutes=1)
    predictions = window.predictions()
    assert list(predictions["unit"]) == [2]
    assert predictions["last_cycle"][0] == window.requests[0].rows["cycle"].max()


# ---------------------------------------------------------------------------------------------------------
# The drift job end to end


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


# ---------------------------------------------------------------------------------------------------------
# python -m local_runner monitor drift


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


# ---------------------------------------------------------------------------------------------------------
# Model Monitor's bring-your-own-container contract


def test_model_monitor_contract_writes_violations_and_cloudwatch_metric_files(opt_ml, monkeypatch):
    """Inputs from the variables Model Monitor sets (paths under /opt/ml moved to SAGEMAKER_BASE_DIR)."""
    train = generate(SyntheticSpec(n_train_units=100, n_test_units=1, seed=0)).train
    written = write_baseline(train[FEATURES], opt_ml / "processing" / "baseline")
    write_captures(
        opt_ml / "processing" / "input" / "endpoint",
        served_windows(seed=11, drift_spec=DriftSpec("new_condition", 0.2)),
    )
    before = START - timedelta(hours=1)
    write_captures(opt_ml / "processing" / "input" / "endpoint", served_windows(seed=3, units=5), before)
    environment = {
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
    for name, value in environment.items():
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
