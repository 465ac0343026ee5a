"""The monitoring pipeline: its definition rendered offline, its window script, and a local execution."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import monitoring_window
import pandas as pd
import pytest
from pydantic import ValidationError

from local_runner.champion import publish_champion
from local_runner.monitor_cli import add_monitor_parser, run_monitor_command
from local_runner.monitoring_run import MonitoringRunError, MonitoringRunOptions, run_monitoring
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from pipeline_steps import monitoring_names as mnames
from pipeline_steps.monitoring_config import MonitoringPipelineConfig, local_monitoring_config
from pipeline_steps.monitoring_pipeline import render_monitoring_definition
from pipeline_steps.names import CODE_INPUT
from rul.capture import CaptureConfig, DataCapture
from rul.data import COLUMNS, SENSOR_COLUMNS, SETTING_COLUMNS
from rul.errors import ConfigurationError
from rul.monitoring import write_baseline
from rul.synthetic import DriftSpec, SyntheticSpec, generate

WINDOW_END = datetime(2026, 11, 25, 14, tzinfo=UTC)
ENDPOINT = "turbofan-rul-local"
SUBNETS = ("subnet-0123456789abcdef0", "subnet-0123456789abcdef1")
GROUPS = ("sg-0123456789abcdef0",)
KEY = "arn:aws:kms:us-east-1:000000000000:alias/turbofan-rul-data"


# ---------------------------------------------------------------------------------------------------------
# The definition


@pytest.fixture(scope="module")
def definition() -> dict:
    config = local_monitoring_config(
        subnet_ids=SUBNETS, security_group_ids=GROUPS, kms_key_arn=KEY, max_runtime_minutes=20
    )
    return json.loads(render_monitoring_definition(config))


def steps_by_name(definition: dict) -> dict[str, dict]:
    return {step["Name"]: step for step in definition["Steps"]}


def test_definition_has_the_two_independent_processing_steps(definition):
    steps = steps_by_name(definition)
    assert tuple(steps) == mnames.STEP_NAMES
    for step in steps.values():
        assert step["Type"] == "Processing"
        assert "DependsOn" not in step and "CacheConfig" not in step  # a new window every execution


def test_parameters_are_declared_once_and_all_used(definition):
    declared = [item["Name"] for item in definition["Parameters"]]
    assert tuple(declared) == mnames.PARAMETER_NAMES
    text = json.dumps(definition["Steps"])
    for name in declared:
        assert f'"Parameters.{name}"' in text, name
    window_end = next(p for p in definition["Parameters"] if p["Name"] == mnames.WINDOW_END)
    assert window_end["DefaultValue"] == mnames.WINDOW_END_AT_EXECUTION_HOUR


def test_each_step_reads_its_inputs_and_writes_its_report_per_execution(definition):
    for name, step in steps_by_name(definition).items():
        arguments = step["Arguments"]
        inputs = {item["InputName"]: item["S3Input"] for item in arguments["ProcessingInputs"]}
        assert tuple(inputs) == mnames.INPUT_NAMES[name]
        captures = inputs[mnames.CAPTURES_INPUT]
        assert captures["LocalPath"] == mnames.CAPTURES_PATH
        assert captures["S3Uri"]["Std:Join"]["Values"] == [
            {"Get": f"Parameters.{mnames.CAPTURE_DATA_URI}"},
            {"Get": f"Parameters.{mnames.ENDPOINT_NAME}"},
            "/",
        ]
        assert inputs[CODE_INPUT]["S3Uri"].endswith(f"src/{mnames.WINDOW_SCRIPT}")
        (output,) = arguments["ProcessingOutputConfig"]["Outputs"]
        assert output["OutputName"] == mnames.REPORT_OUTPUT
        assert output["S3Output"]["LocalPath"] == mnames.REPORT_PATH
        parts = output["S3Output"]["S3Uri"]["Std:Join"]["Values"]
        assert parts == [
            "s3:/",
            "local-artifacts",
            "monitoring",
            {"Get": "Execution.PipelineExecutionId"},
            name,
            "report",
        ]
    drift, quality = (steps_by_name(definition)[name]["Arguments"] for name in mnames.STEP_NAMES)
    baseline = next(i for i in drift["ProcessingInputs"] if i["InputName"] == mnames.BASELINE_INPUT)
    assert baseline["S3Input"]["S3Uri"] == {"Get": f"Parameters.{mnames.BASELINE_URI}"}
    assert baseline["S3Input"]["LocalPath"] == mnames.BASELINE_PATH
    labels = next(i for i in quality["ProcessingInputs"] if i["InputName"] == mnames.GROUND_TRUTH_INPUT)
    assert labels["S3Input"]["S3Uri"] == {"Get": f"Parameters.{mnames.GROUND_TRUTH_URI}"}


def test_jobs_are_isolated_encrypted_in_the_vpc_and_bounded_in_time(definition):
    for step in definition["Steps"]:
        arguments = step["Arguments"]
        network = arguments["NetworkConfig"]
        assert network["EnableNetworkIsolation"] is True
        assert network["EnableInterContainerTrafficEncryption"] is True
        assert network["VpcConfig"] == {"Subnets": list(SUBNETS), "SecurityGroupIds": list(GROUPS)}
        assert arguments["StoppingCondition"] == {"MaxRuntimeInSeconds": 1200}
        cluster = arguments["ProcessingResources"]["ClusterConfig"]
        assert cluster["VolumeKmsKeyId"] == KEY and cluster["InstanceCount"] == 1
        assert cluster["InstanceType"] == {"Get": "Parameters.ProcessingInstanceType"}
        assert arguments["ProcessingOutputConfig"]["KmsKeyId"] == KEY
        app = arguments["AppSpecification"]
        assert app["ImageUri"].endswith("turbofan-rul:local")
        assert app["ContainerEntrypoint"] == [
            "python3",
            f"/opt/ml/processing/input/code/{mnames.WINDOW_SCRIPT}",
        ]


def test_window_arguments_come_from_the_parameters_and_the_execution(definition):
    for name, step in steps_by_name(definition).items():
        args = step["Arguments"]["AppSpecification"]["ContainerArguments"]
        assert args[args.index("--job") + 1] == mnames.JOB_OF_STEP[name]
        assert args[args.index("--window-end") + 1] == {"Get": f"Parameters.{mnames.WINDOW_END}"}
        assert args[args.index("--execution-start") + 1] == {"Get": "Execution.StartDateTime"}
        assert args[args.index("--metrics-target") + 1] == "file"


def test_rendering_is_deterministic():
    config = local_monitoring_config()
    assert render_monitoring_definition(config) == render_monitoring_definition(config)


@pytest.mark.parametrize(
    ("field", "value"),
    [("capture_uri", "s3://bucket/no-slash"), ("role_arn", "role"), ("subnet_ids", SUBNETS)],
)  # fmt: skip
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=f"MonitoringPipelineConfig.{field}="):
        local_monitoring_config(**{field: value})


@pytest.mark.parametrize(("field", "value"), [("window_hours", 0), ("max_runtime_minutes", 90)])
def test_settings_overrides_are_checked_by_the_monitoring_settings(field, value):
    with pytest.raises(ValidationError, match=field):
        local_monitoring_config(**{field: value})


def test_config_type_is_the_builders():
    assert isinstance(local_monitoring_config(), MonitoringPipelineConfig)


# ---------------------------------------------------------------------------------------------------------
# The window entry script


def test_window_script_spells_the_shared_names():
    assert monitoring_window.WINDOW_END_AT_EXECUTION_HOUR == mnames.WINDOW_END_AT_EXECUTION_HOUR
    assert set(monitoring_window.JOBS) == set(mnames.JOB_OF_STEP.values())
    assert monitoring_window.MAX_WINDOW_HOURS == mnames.MAX_WINDOW_HOURS


def test_execution_hour_window_is_the_previous_full_hours():
    start, end = monitoring_window.resolve_window("ExecutionHour", "2026-11-25T14:00:07.123Z", 2)
    assert (start, end) == (WINDOW_END - timedelta(hours=2), WINDOW_END)
    start, end = monitoring_window.resolve_window("2026-11-25T14:30:00+01:00", "", 1)
    assert end == datetime(2026, 11, 25, 13, 30, tzinfo=UTC) and start == end - timedelta(hours=1)


@pytest.mark.parametrize(
    ("end", "started", "hours", "problem"),
    [("ExecutionHour", "yesterday", 1, "--execution-start"), ("soon", "", 1, "--window-end"),
     ("ExecutionHour", "2026-11-25T14:00:00Z", 0, "--window-hours")],
)  # fmt: skip
def test_window_errors_name_the_argument(end, started, hours, problem):
    with pytest.raises(ConfigurationError, match=problem):
        monitoring_window.resolve_window(end, started, hours)


# ---------------------------------------------------------------------------------------------------------
# The definition executed by the local runner on the local endpoint's captures


def capture_requests(root, windows: pd.DataFrame, start: datetime) -> None:
    """One request per unit, a minute apart, written by the serving side's capture writer."""
    capture = DataCapture(CaptureConfig(root=root, endpoint=ENDPOINT, seed=0))
    for index, (unit, rows) in enumerate(windows.groupby("unit", sort=True)):
        body = rows[COLUMNS].to_csv(index=False)
        last = int(rows["cycle"].max())
        response = {"predictions": [{"unit": int(unit), "predicted_rul": 50.0, "cycles_used": 30,
                                     "padded": False}], "model_version": 1}  # fmt: skip
        moment = start + timedelta(minutes=index)
        capture.capture(body, "text/csv", json.dumps(response), "application/json", moment=moment)
        assert last > 0


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory):
    train = generate(SyntheticSpec(n_train_units=60, n_test_units=1, seed=0)).train
    folder = tmp_path_factory.mktemp("baseline")
    write_baseline(train[[*SETTING_COLUMNS, *SENSOR_COLUMNS]], folder)
    return folder


def drifted_captures(tmp_path):
    spec = SyntheticSpec(
        n_train_units=1, n_test_units=40, seed=11, min_test_cycles=30, drift=DriftSpec("offset", 3.0)
    )
    windows = generate(spec).test.groupby("unit").tail(30).reset_index(drop=True)
    root = tmp_path / "captures"
    capture_requests(root, windows, WINDOW_END - timedelta(minutes=50))
    capture_requests(root, windows.head(60), WINDOW_END + timedelta(minutes=5))  # after the window
    return root, windows


def test_runner_executes_the_monitoring_definition_on_captures(tmp_path, baseline_dir):
    captures, windows = drifted_captures(tmp_path)
    labels = tmp_path / "labels"
    labels.mkdir()
    last = windows.groupby("unit")["cycle"].max()
    labels.joinpath("failures.csv").write_text(
        "unit,failure_cycle\n" + "".join(f"{u},{c + 40}\n" for u, c in last.head(10).items())
    )
    options = MonitoringRunOptions(
        work_dir=tmp_path / "work",
        captures=captures,
        baseline=baseline_dir,
        ground_truth=labels,
        parameters={mnames.WINDOW_END: WINDOW_END.isoformat(), mnames.WINDOW_HOURS: 1},
    )
    config, store, result = run_monitoring(options, echo=lambda _line: None)
    assert result.status == "Succeeded", result.failure_reason
    report_prefix = f"{config.report_prefix_uri}{result.execution_id}"
    drift = json.loads(
        store.read_text(f"{report_prefix}/{mnames.DRIFT_STEP}/report/{mnames.DRIFT_REPORT_FILE}")
    )
    assert drift["drift_detected"] is True and drift["endpoint"] == ENDPOINT
    assert drift["counts"]["requests"] == 40  # the five requests after the window end are left out
    assert drift["window"]["end"] == WINDOW_END.isoformat()
    quality_uri = f"{report_prefix}/{mnames.QUALITY_STEP}/report/{mnames.QUALITY_REPORT_FILE}"
    quality = json.loads(store.read_text(quality_uri))
    assert quality["counts"]["matched_predictions"] == 10
    assert quality["regression_metrics"]["rmse"]["value"] == pytest.approx(10.0)
    for step in mnames.STEP_NAMES:
        lines = store.read_text(f"{report_prefix}/{step}/report/{mnames.METRICS_FILE}").splitlines()
        assert lines and all(json.loads(line)["MetricData"] for line in lines)


def test_monitor_verb_uses_the_champions_baselines_and_skips_quality_without_labels(
    tmp_path, baseline_dir, capsys
):
    captures, _ = drifted_captures(tmp_path)
    work = tmp_path / "work"
    parser = argparse.ArgumentParser()
    add_monitor_parser(parser.add_subparsers(dest="verb"))
    argv = ["monitor", "--work-dir", str(work)]
    assert run_monitor_command(parser.parse_args(argv)) == 1  # nothing approved, no --baseline
    assert "no baselines under" in capsys.readouterr().err
    store = ObjectStore(work / "s3")
    registry = LocalRegistry(work / "registry.sqlite")
    registry.create_group("turbofan-rul")
    store.upload(baseline_dir, "s3://local-artifacts/registry/x/baseline/")
    store.put_text("s3://local-artifacts/models/x/model.tar.gz", "model")
    registered = "s3://local-artifacts/registry/x/baseline/"
    quality = {
        kind: {"ContentType": "application/json", "S3Uri": registered + name}
        for kind, name in (("Statistics", "statistics.json"), ("Constraints", "constraints.json"))
    }
    package = registry.register(
        "turbofan-rul",
        model_data_url="s3://local-artifacts/models/x/model.tar.gz",
        image_uri="image",
        drift_check_baselines={"ModelDataQuality": quality},
        approval_status="Approved",
    )
    publish_champion(store, local_monitoring_config().baseline_uri.rsplit("baselines/", 1)[0], package)
    argv = ["monitor", "run", "--work-dir", str(work), "--captures", str(captures),
            "--window-end", WINDOW_END.isoformat()]  # fmt: skip
    assert run_monitor_command(parser.parse_args(argv)) == 0
    out = capsys.readouterr().out
    assert "drift DETECTED" in out and "40 requests in the window" in out
    assert "model quality skipped" in out and "labelled predictions" not in out  # only the placeholder


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(MonitoringRunError, match="--captures"):
        run_monitoring(
            MonitoringRunOptions(work_dir=tmp_path, captures=tmp_path / "nope"), echo=lambda _l: None
        )
