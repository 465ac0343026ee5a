"""The operations dashboard on the local source, over work folders made by the project's own code.

Always on (`world`, a few seconds): the project's registry (`LocalRegistry`) holds two versions whose
`evaluation.json` carries metrics computed by `rul.metrics`; v1 is approved and made the endpoint's
current release by `local_runner.endpoint`; the serving side's capture writer records drifted requests on
two days; the drift and model-quality job scripts (`containers/drift.py`, `model_quality.py`) run
in-process on those captures, writing their reports into the local object store under the prefixes of
three execution records in the executor's format. `AppTest` drives the page and its numbers are checked
against those reports; empty, unreadable and missing work folders show hints, rows and one error line.
The `long` test runs the real training and monitoring pipelines and checks the page against what they
wrote. The browser test over `world` is in test_dashboard_browser.py.
"""

from __future__ import annotations

import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from tiny_run import TINY

import drift
import model_quality
from dashboard.local_source import LocalSource
from dashboard.sources import MAX_PSI, MONITORING, RMSE, TRAINING
from local_runner.endpoint import EndpointPaths, model_archive, point_current, prepare_release
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from pipeline_steps import monitoring_names as mnames
from rul import metrics
from rul.capture import CaptureConfig, DataCapture
from rul.data import COLUMNS, SENSOR_COLUMNS, SETTING_COLUMNS
from rul.monitoring import write_baseline
from rul.synthetic import DriftSpec, SyntheticSpec, generate

ENDPOINT = "turbofan-rul-local"
GROUP = "turbofan-rul"
BUCKET = "s3://local-artifacts"
TODAY = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
YESTERDAY_REQUESTS = 4
TODAY_REQUESTS = 20
PREDICTED_RUL = 60.0
GATE_PASSES = {"RmseThreshold": 500.0, "ScoreThreshold": 1e9}
HEADERS = ["Model", "Drift per feature", "Pipeline executions", "Model registry", "Monitoring over time"]


def run_dashboard(argv: list[str]) -> None:
    from dashboard.app import main

    main(argv)


def page(*argv: str) -> AppTest:
    return AppTest.from_function(run_dashboard, args=(list(argv),), default_timeout=60).run()


def capture_requests(root: Path, moment: datetime, count: int) -> dict[int, int]:
    """`count` one-unit requests of drifted windows a minute apart from `moment`, as the endpoint writes
    them (each answered PREDICTED_RUL); the last cycle sent per unit."""
    spec = SyntheticSpec(
        n_train_units=1, n_test_units=count, seed=5, min_test_cycles=30, drift=DriftSpec("offset", 3.0)
    )
    windows = generate(spec).test.groupby("unit").tail(30)
    capture = DataCapture(CaptureConfig(root=root, endpoint=ENDPOINT, seed=0))
    for index, (unit, rows) in enumerate(windows.groupby("unit", sort=True)):
        prediction = {"unit": int(unit), "predicted_rul": PREDICTED_RUL, "cycles_used": 30, "padded": False}
        response = json.dumps({"predictions": [prediction], "model_version": "1"})
        body = rows[COLUMNS].to_csv(index=False)
        when = moment + timedelta(minutes=index)
        capture.capture(body, "text/csv", response, "application/json", moment=when)
    return windows.groupby("unit")["cycle"].max().to_dict()


def serve(work: Path, version: int) -> None:
    """What `endpoint serve` does before it starts the server: unpack the version, point `current` at it."""
    package = LocalRegistry(work / "registry.sqlite").get(GROUP, version)
    paths = EndpointPaths.of(work)
    point_current(paths, prepare_release(paths, package, model_archive(work, package)))


def write_record(work: Path, execution_id: str, status: str, steps: list[dict], failure: str = "") -> None:
    """An execution record in the format `local_runner.execution` writes."""
    record = {"execution_id": execution_id, "status": status, "failure_reason": failure, "parameters": {}}
    record.update(steps=steps, seconds=sum(step["seconds"] for step in steps))
    path = work / "executions" / execution_id / "execution.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record, indent=2))


def step(name: str, started: datetime, seconds: float, outputs: dict[str, str], status="Succeeded") -> dict:
    config = {key: {"OutputName": key, "S3Output": {"S3Uri": uri}} for key, uri in outputs.items()}
    return {
        "name": name,
        "type": "Processing",
        "status": status,
        "started_at": started.isoformat(),
        "seconds": seconds,
        "cache_hit": False,
        "failure_reason": "",
        "properties": {"ProcessingOutputConfig": {"Outputs": config}},
    }


def register(work: Path, store: ObjectStore, version: int, error: float) -> str:
    """A version whose test-set predictions are off by `error` cycles; its execution's id."""
    execution_id = f"local-2026112{version}120000-00000{version}"
    truth = [12.0, 40.0, 75.0, 110.0, 130.0]
    predicted = [value + error for value in truth]
    evaluation = {
        "regression_metrics": {
            "rmse": {"value": metrics.rmse(truth, predicted)},
            "phm08_score": {"value": metrics.phm08_score(truth, predicted)},
        }
    }
    prefix = f"{BUCKET}/registry/{GROUP}/{execution_id}/EvaluateModel/evaluation"
    store.put_text(f"{prefix}/evaluation.json", json.dumps(evaluation))
    model = f"{BUCKET}/models/{GROUP}/{execution_id}/output/model.tar.gz"
    store.put_text(model, "")
    with tarfile.open(store.path_for(model), "w:gz") as bundle:
        metadata = work / "metadata.json"
        metadata.write_text("{}")
        bundle.add(metadata, arcname="metadata.json")
    statistics = {"ContentType": "application/json", "S3Uri": f"{prefix}/evaluation.json"}
    LocalRegistry(work / "registry.sqlite").register(
        GROUP,
        model_data_url=model,
        image_uri="image",
        model_metrics={"ModelQuality": {"Statistics": statistics}},
        customer_metadata={"DataVersion": f"data-v{version}"},
        execution_id=execution_id,
    )
    started = datetime(2026, 11, 20 + version, 12, tzinfo=UTC)
    write_record(
        work, execution_id, "Succeeded", [step("EvaluateModel", started, 90.0, {"evaluation": prefix})]
    )
    return execution_id


def monitor(work: Path, store: ObjectStore, tmp: Path, end: datetime, last_cycles: dict[int, int]) -> None:
    """The monitoring pipeline's two job scripts, in-process, over the window that ends at `end`."""
    train = generate(SyntheticSpec(n_train_units=40, n_test_units=1, seed=0)).train
    baseline = tmp / "baseline"
    write_baseline(train[[*SETTING_COLUMNS, *SENSOR_COLUMNS]], baseline)
    labels = tmp / "labels"
    labels.mkdir()
    rows = "".join(f"{unit},{cycle + int(PREDICTED_RUL) - 10}\n" for unit, cycle in last_cycles.items())
    (labels / "failures.csv").write_text("unit,failure_cycle\n" + rows)  # every prediction 10 cycles late
    execution_id = "local-20261125140500-00000m"
    prefix = f"{BUCKET}/monitoring/{execution_id}"
    window = ["--captures", str(work / "captures"), "--start", (end - timedelta(hours=1)).isoformat()]
    window += ["--end", end.isoformat()]
    drift_out = f"{prefix}/{mnames.DRIFT_STEP}/report"
    assert drift.main([*window, "--baseline", str(baseline), "--output", str(store.path_for(drift_out))]) == 0
    quality_out = f"{prefix}/{mnames.QUALITY_STEP}/report"
    quality_args = ["--ground-truth", str(labels), "--output", str(store.path_for(quality_out))]
    assert model_quality.main([*window, *quality_args]) == 0
    steps = [
        step(mnames.DRIFT_STEP, end, 4.0, {mnames.REPORT_OUTPUT: drift_out}),
        step(mnames.QUALITY_STEP, end, 3.0, {mnames.REPORT_OUTPUT: quality_out}),
    ]
    write_record(work, execution_id, "Succeeded", steps)


def build_world(tmp: Path) -> Path:
    """Two registered versions (v1 approved and served, v2 rejected), a failed run, captures on two days
    and one monitoring execution, in `tmp`/work; see the module docstring."""
    work = tmp / "work"
    store = ObjectStore(work / "s3")
    registry = LocalRegistry(work / "registry.sqlite")
    registry.create_group(GROUP)
    register(work, store, 1, error=4.0)
    register(work, store, 2, error=-15.0)
    registry.update_approval(GROUP, 1, "Approved")
    registry.update_approval(GROUP, 2, "Rejected")
    serve(work, 1)
    started = datetime(2026, 11, 24, 9, tzinfo=UTC)
    gate = step("FailQualityGate", started, 0.5, {}, status="Failed")
    write_record(work, "local-20261124090000-00000f", "Failed", [gate], failure="Quality gate failed")
    end = datetime(2026, 11, 25, 14, tzinfo=UTC)
    capture_requests(work / "captures", end - timedelta(days=1), YESTERDAY_REQUESTS)
    last_cycles = capture_requests(work / "captures", end - timedelta(minutes=40), TODAY_REQUESTS)
    monitor(work, store, tmp, end, last_cycles)
    return work


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return build_world(tmp_path_factory.mktemp("dashboard"))


def report_of(work: Path, name: str) -> dict:
    [report] = list((work / "s3").rglob(name))
    return json.loads(report.read_text())


def test_local_source_reads_registry_executions_captures_and_reports(world):
    source = LocalSource(world)
    versions = {version.version: version for version in source.model_versions()}
    assert [(v.approval_status, v.serving, v.data_version) for v in versions.values()] == [
        ("Rejected", False, "data-v2"),
        ("Approved", True, "data-v1"),
    ]
    assert versions[1].rmse == pytest.approx(4.0) and versions[2].rmse == pytest.approx(15.0)
    assert versions[1].phm08_score == pytest.approx(5 * metrics.phm08_score([50.0], [54.0]))
    executions = source.executions()
    assert [(e.pipeline, e.status, e.seconds) for e in executions] == [
        (MONITORING, "Succeeded", 7.0),
        (TRAINING, "Failed", 0.5),
        (TRAINING, "Succeeded", 90.0),
        (TRAINING, "Succeeded", 90.0),
    ]
    days = {count.day.isoformat(): count.predictions for count in source.daily_predictions()}
    assert days == {"2026-11-24": YESTERDAY_REQUESTS, "2026-11-25": TODAY_REQUESTS}
    report = report_of(world, mnames.DRIFT_REPORT_FILE)
    snapshot = source.drift()
    assert {f.feature: f.psi for f in snapshot.features} == {f["name"]: f["psi"] for f in report["features"]}
    history = {point.metric: point.value for point in source.monitoring_history()}
    assert history[MAX_PSI] == report["max_psi"] and history[RMSE] == pytest.approx(10.0)


def test_the_page_shows_the_cards_drift_executions_registry_and_history(world):
    at = page("--work-dir", str(world))
    assert not at.exception and not at.error
    assert [header.value for header in at.header] == HEADERS
    metrics_shown = {metric.label: metric.value for metric in at.metric}
    assert metrics_shown == {
        "Test RMSE (v1)": "4.00",
        "PHM08 score (v1)": f"{5 * metrics.phm08_score([50.0], [54.0]):,.1f}",
        "Endpoint latency p99": "—",
        "Predictions, last day": str(TODAY_REQUESTS),
    }
    report = report_of(world, mnames.DRIFT_REPORT_FILE)
    above = [f["name"] for f in report["features"] if f["psi"] > 0.2]  # MonitoringSettings().drift_threshold
    assert above, "the drifted captures should breach the alert line"
    text = " ".join(markdown.value for markdown in at.markdown)
    assert f"**{len(above)} of {len(report['features'])} features above**: {', '.join(above)}" in text
    assert "**3** Succeeded, **1** Failed" in text
    assert "v1 is serving on the endpoint" in " ".join(caption.value for caption in at.caption)
    registry = at.table[1].value
    assert registry[["approval_status", "serving"]].reset_index().values.tolist() == [
        [2, "Rejected", False],
        [1, "Approved", True],
    ]
    assert [subheader.value for subheader in at.subheader] == [
        "MaxPSI",
        "DriftedFeatures",
        "RMSE",
        "PHM08Score",
    ]


def test_an_empty_work_folder_shows_how_to_fill_each_section(tmp_path):
    at = page("--work-dir", str(tmp_path))
    assert not at.exception and not at.error
    hints = " ".join(info.value for info in at.info)
    assert "No executions yet — run `make run`." in hints
    assert "No model versions registered yet" in hints and "No drift check yet" in hints
    assert "No monitoring results yet" in hints and "No captured predictions yet" in hints
    assert {metric.value for metric in at.metric} == {"—"}
    assert not any(tmp_path.iterdir())  # reading created nothing (no registry file, no object store)


def test_a_missing_work_folder_is_named_in_one_error_line(tmp_path):
    missing = tmp_path / "nope"
    at = page("--work-dir", str(missing))
    assert [error.value for error in at.error] == [
        f"work folder {missing} does not exist: run `make run` or pass --work-dir"
    ]
    assert not at.header and not missing.exists()


def test_unreadable_records_are_shown_not_dropped(tmp_path):
    record = tmp_path / "executions" / "local-20261201120000-abcdef" / "execution.json"
    record.parent.mkdir(parents=True)
    record.write_text("{not json")
    captures = tmp_path / "captures" / ENDPOINT / "AllTraffic" / "2026" / "12" / "01" / "12"
    captures.mkdir(parents=True)
    (captures / "x.jsonl").write_text("garbage\n")
    (captures / ".tmp-7-0a1b2c3d-y.jsonl").write_text("half a rec")  # an object-store write in flight: unseen
    at = page("--work-dir", str(tmp_path))
    assert not at.exception
    table = at.table[0].value
    assert table["status"].tolist() == ["Unreadable"]
    assert table["failure_reason"].tolist() == [f"{record} is not an execution record"]
    assert [warning.value for warning in at.warning] == [
        "1 capture lines could not be read and are not counted."
    ]


# -- the real pipelines (minutes on a loaded machine) --------------------------------------------------------
@pytest.fixture(scope="module")
def pipeline_work(tmp_path_factory, synthetic_dir) -> Path:
    from local_runner.main_job import MainJobOptions, run_main_job  # imports the SageMaker SDK
    from local_runner.monitoring_run import MonitoringRunOptions, run_monitoring

    work = tmp_path_factory.mktemp("dashboard-pipelines")
    options = dict(work_dir=work, data_dir=synthetic_dir, tracking=False, config_overrides=TINY)
    fast = {"TuningMaxJobs": 1, "TuningMaxParallelJobs": 1, "DataVersion": "v1"}
    workspace, passed = run_main_job(MainJobOptions(**options, parameters={**fast, **GATE_PASSES}))
    assert passed.status == "Succeeded", passed.failure_reason
    _, failed = run_main_job(MainJobOptions(**options, parameters={**fast, "RmseThreshold": 0.5}))
    assert failed.status == "Failed"
    workspace.registry.update_approval(GROUP, 1, "Approved")
    serve(work, 1)
    now = datetime.now(UTC)
    capture_requests(work / "captures", now - timedelta(minutes=30), TODAY_REQUESTS)
    package = workspace.registry.get(GROUP, 1)
    statistics = package.drift_check_baselines["ModelDataQuality"]["Statistics"]["S3Uri"]
    monitoring = MonitoringRunOptions(
        work_dir=work,
        captures=work / "captures",
        baseline=workspace.store.path_for(statistics).parent,
        parameters={mnames.WINDOW_END: (now + timedelta(minutes=1)).isoformat(), mnames.WINDOW_HOURS: 1},
    )
    _, _, result = run_monitoring(monitoring, echo=lambda _line: None)
    assert result.status == "Succeeded", result.failure_reason  # model quality skips without labels
    return work


@pytest.mark.long
def test_the_page_over_real_pipeline_runs(pipeline_work):
    at = page("--work-dir", str(pipeline_work))
    assert not at.exception and not at.error
    assert [header.value for header in at.header] == HEADERS
    package = LocalRegistry(pipeline_work / "registry.sqlite").get(GROUP, 1)
    evaluation = package.metrics["ModelQuality"]["Statistics"]["S3Uri"]
    report = json.loads(ObjectStore(pipeline_work / "s3").read_text(evaluation))
    rmse = report["regression_metrics"]["rmse"]["value"]
    metrics_shown = {metric.label: metric.value for metric in at.metric}
    assert metrics_shown["Test RMSE (v1)"] == f"{rmse:.2f}"
    assert metrics_shown["Predictions, last day"] == str(TODAY_REQUESTS)
    text = " ".join(markdown.value for markdown in at.markdown)
    report = report_of(pipeline_work, mnames.DRIFT_REPORT_FILE)
    above = [f["name"] for f in report["features"] if f["psi"] > 0.2]
    assert f"**{len(above)} of {len(report['features'])} features above**" in text
    assert "**2** Succeeded, **1** Failed" in text


def test_the_alert_line_follows_the_monitoring_settings(world, tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"monitoring": {"drift_threshold": 100.0}}))
    text = " ".join(
        markdown.value
        for markdown in page("--work-dir", str(world), "--settings-file", str(settings)).markdown
    )
    features = len(report_of(world, mnames.DRIFT_REPORT_FILE)["features"])
    assert f"alert line PSI 100 (monitoring.drift_threshold). **0 of {features} features above**." in text
    settings.write_text(json.dumps({"monitoring": {"drift_metric": "DriftedFeatures", "drift_threshold": 3}}))
    at = page("--work-dir", str(world), "--settings-file", str(settings))
    assert "the drift alarm watches DriftedFeatures > 3, so no PSI alert line." in " ".join(
        m.value for m in at.markdown
    )
    settings.write_text(json.dumps({"monitoring": {"drift_threshold": -1}}))
    [error] = page("--work-dir", str(world), "--settings-file", str(settings)).error
    assert error.value.startswith("invalid settings:") and "monitoring.drift_threshold" in error.value
