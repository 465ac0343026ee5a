"""The demo's traffic and monitoring windows: a synthetic fleet calls the endpoint, the monitoring pipeline
checks the window, and the drift alarm's rule is evaluated on its metrics as the Ops stack's alarm would.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from local_runner.demo_state import Demo, DemoError, _rul
from local_runner.execution import ExecutionResult
from local_runner.monitoring_run import MonitoringRunOptions, report_of, run_monitoring
from pipeline_steps import monitoring_names as mnames
from settings import load_settings


def fleet_requests(units, cycles: int) -> list[bytes]:
    """One CSV request per unit: its last `cycles` cycles, or its whole history when shorter. A unit cut
    after cycle 1 must carry the cycles the model reads (`DemoOptions.cycles_sent`), or serving refuses it."""
    columns = _rul().data.COLUMNS
    recent = units.groupby("unit", group_keys=False).tail(cycles)
    return [rows[columns].to_csv(index=False).encode() for _, rows in recent.groupby("unit")]


def invoke(url: str, body: bytes) -> tuple[int, str | None, float, list[float]]:
    """Status, answering version, seconds, and the widths of the prediction intervals (if served)."""
    request = urllib.request.Request(
        url + "/invocations", body, {"Content-Type": "text/csv", "Accept": "application/json"}
    )
    begun = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, document = response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        status, document = error.code, {}
    widths = [
        item["rul_upper"] - item["rul_lower"]
        for item in document.get("predictions", [])
        if "rul_upper" in item
    ]
    return status, document.get("model_version"), time.perf_counter() - begun, widths


def send(demo: Demo, stage: str, bodies: list[bytes], what: str) -> list[str | None]:
    """POST every body with a few concurrent clients; the versions that answered, per request."""
    assert demo.endpoint is not None  # started by the first deployment
    url = demo.endpoint.url
    with ThreadPoolExecutor(demo.options.concurrency) as pool:
        answers = list(pool.map(lambda body: invoke(url, body), bodies))
    ok = sum(answer[0] == 200 for answer in answers)
    latencies = sorted(answer[2] * 1000 for answer in answers)
    versions = sorted({str(answer[1]) for answer in answers})
    widths = [width for answer in answers for width in answer[3]]
    intervals = {"mean_interval_width": sum(widths) / len(widths)} if widths else {}
    shown = f", intervals {intervals['mean_interval_width']:.0f} cycles wide on average" if widths else ""
    demo.timeline.add(
        stage,
        f"{what}: {len(bodies)} requests, {ok} answered 200 by version {'/'.join(versions)}{shown}",
        ok == len(bodies),
        requests=len(bodies),
        answered_200=ok,
        p50_ms=latencies[len(latencies) // 2],
        max_ms=latencies[-1],
        **intervals,
    )
    return [answer[1] for answer in answers]


# -- monitoring ----------------------------------------------------------------------------------------------
def capture_sizes(root: Path) -> dict[Path, int]:
    """Size of each capture file under `root`, to cut the next window from."""
    return {path: path.stat().st_size for path in root.rglob("*.jsonl")} if root.is_dir() else {}


def cut_window(root: Path, before: dict[Path, int], target: Path) -> Path:
    """The capture records appended since `before`, same layout; capture files are append-only."""
    for path in root.rglob("*.jsonl"):
        new = path.read_bytes()[before.get(path, 0) :]
        if new:
            destination = target / path.relative_to(root)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(new)
    return target


def ground_truth(fleet, folder: Path) -> Path:
    """The fleet's failure labels (unit, failure_cycle), as they arrive late in the field."""
    last = fleet.test.groupby("unit")["cycle"].max()
    labels = fleet.test_rul.assign(failure_cycle=fleet.test_rul["unit"].map(last) + fleet.test_rul["rul"])
    folder.mkdir(parents=True, exist_ok=True)
    labels[["unit", "failure_cycle"]].to_csv(folder / "failures.csv", index=False)
    return folder


def drift_metric(store, result: ExecutionResult, metric: str) -> float:
    """The alarm's metric as the drift step published it (its metrics file, what CloudWatch receives)."""
    outputs = result.step(mnames.DRIFT_STEP).properties["ProcessingOutputConfig"]["Outputs"]
    uri = outputs[mnames.REPORT_OUTPUT]["S3Output"]["S3Uri"].rstrip("/") + "/" + mnames.METRICS_FILE
    for line in store.read_text(uri).splitlines():
        for datum in json.loads(line)["MetricData"]:
            if datum["MetricName"] == metric and not any(d["Name"] == "Feature" for d in datum["Dimensions"]):
                return float(datum["Value"])
    raise DemoError(f"the drift step published no {metric} metric in {uri}")


def monitor(demo: Demo, stage: str, captures: Path, labels: Path) -> bool:
    """Run the monitoring pipeline on one window; evaluate the drift alarm's rule; True when it fires."""
    end = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    options = MonitoringRunOptions(
        work_dir=demo.work_dir,
        captures=captures,
        ground_truth=labels,
        parameters={mnames.WINDOW_END: end, mnames.WINDOW_HOURS: 1},
    )
    _, store, result = run_monitoring(options, echo=demo.log)
    if result.status != "Succeeded":
        raise DemoError(f"the monitoring pipeline failed: {result.failure_reason}")
    report = report_of(store, result, mnames.DRIFT_STEP, mnames.DRIFT_REPORT_FILE)
    if report is None:
        raise DemoError("the monitoring pipeline succeeded but wrote no drift report")
    quality = report_of(store, result, mnames.QUALITY_STEP, mnames.QUALITY_REPORT_FILE) or {}
    monitoring = load_settings().monitoring
    value = drift_metric(store, result, monitoring.drift_metric)
    fires = value > monitoring.drift_threshold  # the alarm's GreaterThanThreshold
    verdict = "DETECTED" if report["drift_detected"] else "not detected"
    demo.timeline.add(
        stage,
        f"monitoring pipeline {result.status.lower()}: drift {verdict}; alarm rule "
        f"{monitoring.drift_metric} {value:.3f} {'>' if fires else '<='} {monitoring.drift_threshold:g}: "
        + ("ALARM" if fires else "OK"),
        not fires,
        **{str(monitoring.drift_metric): value},
        drifted_features=report["drifted_features"],
        requests=report["counts"]["requests"],
        records_read=report["captures"]["records_read"],
        records_skipped=report["captures"]["records_skipped"],
        labelled_rmse=((quality.get("regression_metrics") or {}).get("rmse") or {}).get("value", "-"),
    )
    demo.facts.drift_flags.append(fires)
    return fires


def traffic_window(demo: Demo, stage: str, seed: int, drift) -> bool:
    """A fleet sends one window of traffic; the monitoring pipeline checks exactly that window."""
    rul = _rul()
    spec = rul.synthetic.SyntheticSpec(
        n_train_units=1, n_test_units=demo.options.fleet_units, seed=seed, drift=drift
    )
    fleet = rul.synthetic.generate(spec)
    before = capture_sizes(demo.work_dir / "captures")
    what = "drifted fleet" if drift else "fleet"
    send(
        demo,
        stage,
        fleet_requests(fleet.test, demo.options.cycles_sent),
        f"{what} of {demo.options.fleet_units} units",
    )
    folder = demo.work_dir / "demo" / "windows" / stage.replace(" ", "-")
    captures = cut_window(demo.work_dir / "captures", before, folder / "captures")
    return monitor(demo, stage, captures, ground_truth(fleet, folder / "ground-truth"))


# -- retraining on new data ---------------------------------------------------------------------------------
