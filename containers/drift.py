"""Processing-job entry point of the data-drift monitor: captured endpoint inputs against the baseline.

Inputs (paths under /opt/ml follow `SAGEMAKER_BASE_DIR`):

- `--baseline` (default /opt/ml/processing/input/baseline): a folder holding the `DataQualityBaseline`
  step's statistics.json (and constraints.json), or training CSV file(s) with the settings and sensor
  columns;
- `--captures` (default /opt/ml/processing/input/captures): SageMaker data capture,
  `<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl`, read by `rul.capture.read_window`; only requests with
  `--start` <= inferenceTime < `--end` count. From each request only the rows the model read are compared
  (each unit's last `cycles_used` cycles, as the response reports them), so whole histories and windows
  give the same statistics; a (unit, cycle) row read again by a later request counts once.

Outputs in `--output` (default /opt/ml/processing/output): `constraint_violations.json` (Model Monitor's
shape) and `drift_report.json` (per-feature KS statistic, p-value, adjusted p-value, PSI, severity, the
overall flag and counts; `rul.drift_stats` explains the statistics). Metrics: `--metrics-target
cloudwatch` calls PutMetricData (namespace `TurbofanRul/Drift`, dimension `Endpoint`; MaxPSI,
DriftedFeatures, ConstraintViolations, CaptureRecordsSkipped, and FeaturePSI per `Feature`), `file`
appends the same requests as JSON Lines to `--metrics-file`, `none` emits nothing. A detected drift is a
finding, not a failure: the job exits 0. A malformed capture record is skipped, printed with its file and
line and counted in the report's `captures` block; no readable request in the window or a missing
baseline exit 1.

Model Monitor (`--contract model-monitor`, the default when the `dataset_source` variable is set): the
deploy-on-approval function schedules this script as a bring-your-own-container monitoring job, and
SageMaker passes its inputs as environment variables (developer guide, "Container Contract Inputs",
model-monitor-byoc-contract-inputs): `dataset_source` (the captures, `<endpoint>/<variant>/yyyy/mm/dd/hh`),
`output_path` (the reports, uploaded to the schedule's S3 output), `baseline_statistics` and
`baseline_constraints` (the local files of `BaselineConfig`), `start_time`/`end_time` (the window),
`sagemaker_endpoint_name` and `publish_cloudwatch_metrics`. Paths under /opt/ml follow
`SAGEMAKER_BASE_DIR`. These variables replace the path, window and endpoint arguments (the statistics
settings still apply), and no other metrics target is used unless `--metrics-target` names one.

A job with network isolation cannot call CloudWatch, so unless `publish_cloudwatch_metrics` is
"Disabled" the metrics are written, one MetricData entry per line ("Timestamp" as yyyy-mm-ddThh:mm:ssZ),
to `/opt/ml/output/metrics/cloudwatch/cloudwatch_metrics.jsonl`, which SageMaker publishes ("CloudWatch
Metrics for Bring Your Own Containers", model-monitor-byoc-cloudwatch). That file cannot name a
namespace: SageMaker publishes it in `/aws/sagemaker/Endpoint/data-metrics` (`MODEL_MONITOR_NAMESPACE`),
the namespace the drift alarm watches (stacks/monitoring_dashboard.py). The dimensions are ours:
`Endpoint` (and `Feature` for FeaturePSI), as on the other targets, so the alarm's dimension matches.

The helpers for arguments, captures, reports and metrics (`rul.monitor_job`) are shared with
`model_quality.py`.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from rul.capture import CaptureWindow, parse_time
from rul.contract import DEFAULT_BASE_DIR, base_dir, processing_dir, run_entrypoint
from rul.drift_constraints import constraint_violations
from rul.drift_stats import (
    Baseline,
    DriftSettings,
    baseline_from_frame,
    baseline_from_statistics,
    compare_features,
    summarise,
)
from rul.errors import ConfigurationError, DataFormatError
from rul.monitor_job import (
    METRICS_FILE,
    REPORT_VERSION,
    MetricsClientFactory,
    add_common_arguments,
    check_window,
    cloudwatch_client,
    emit_metrics,
    endpoint_name,
    load_window,
    log,
    metric_datum,
    skipped_metric,
    window_dict,
    write_json,
)
from rul.monitoring import CONSTRAINTS_FILE, STATISTICS_FILE

NAMESPACE = "TurbofanRul/Drift"
REPORT_FILE = "drift_report.json"
VIOLATIONS_FILE = "constraint_violations.json"

# Model Monitor's bring-your-own-container contract (see the module docstring).
CONTRACTS = ("cli", "model-monitor")
MONITOR_SOURCE_VARIABLE = "dataset_source"
MODEL_MONITOR_NAMESPACE = "/aws/sagemaker/Endpoint/data-metrics"
CLOUDWATCH_METRICS_FILE = "cloudwatch_metrics.jsonl"


# ---------------------------------------------------------------------------------------------------------
# Drift job


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The drift job's options: baseline, capture window, metric target and drift-test settings."""
    parser = argparse.ArgumentParser(description="Data drift of captured requests against the baseline.")
    parser.add_argument("--baseline", type=Path, default=None, help="statistics.json folder or CSV")
    add_common_arguments(parser, NAMESPACE)
    defaults = DriftSettings()
    parser.add_argument("--alpha", type=float, default=defaults.alpha, help="significance level (0.05)")
    parser.add_argument("--correction", choices=("bh", "holm"), default=defaults.correction)
    parser.add_argument("--psi-threshold", type=float, default=defaults.psi_threshold)
    parser.add_argument("--psi-bins", type=int, default=defaults.psi_bins)
    parser.add_argument("--range-threshold", type=float, default=defaults.range_threshold)
    parser.add_argument(
        "--contract",
        choices=CONTRACTS,
        default=None,
        help=f"model-monitor: inputs from Model Monitor's variables (default if ${MONITOR_SOURCE_VARIABLE})",
    )
    parser.set_defaults(metrics_target=None)  # file, or none under Model Monitor (see main)
    return parser.parse_args(argv)


def load_baseline(path: Path) -> Baseline:
    """statistics.json (+ constraints.json) in `path`, else every CSV file in it (or `path` itself)."""
    if not path.exists():
        raise DataFormatError(path, None, "the baseline does not exist")
    statistics_path = path / STATISTICS_FILE if path.is_dir() else path
    if statistics_path.name == STATISTICS_FILE and statistics_path.is_file():
        statistics = _read_json(statistics_path)
        constraints_path = statistics_path.with_name(CONSTRAINTS_FILE)
        constraints = _read_json(constraints_path) if constraints_path.is_file() else None
        return baseline_from_statistics(statistics, constraints, str(statistics_path))
    files = [path] if path.is_file() else sorted(path.rglob("*.csv"))
    if not files:
        raise DataFormatError(path, None, f"no {STATISTICS_FILE} and no CSV file in the baseline")
    frames = []
    for file in files:
        try:
            frames.append(pd.read_csv(file))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise DataFormatError(file, None, f"not a readable CSV file ({error})") from None
    return baseline_from_frame(pd.concat(frames, ignore_index=True), str(path))


def _read_json(path: Path) -> dict:
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataFormatError(path, getattr(error, "lineno", None), f"not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise DataFormatError(path, None, "must hold a JSON object")
    return document


def drift_report(
    baseline: Baseline, window: CaptureWindow, settings: DriftSettings, context: dict
) -> tuple[dict, dict]:
    """The drift report and the constraint violations of the rows the model read (pure)."""
    rows = window.model_rows()
    features = compare_features(baseline, rows, settings)
    violations = constraint_violations(baseline, rows, features, settings)
    summary = summarise(features)
    captures = window.summary()
    report = {
        "report_type": "data_drift",
        "version": REPORT_VERSION,
        **context,
        "baseline": {"source": baseline.source, "reference_rows": baseline.rows},
        "settings": settings.as_dict(),
        "captures": captures,
        "counts": {
            "requests": len(window.requests),
            "skipped_records": captures["records_skipped"],
            "rows_sent": captures["rows_sent"],
            "rows": len(rows),
            "units": int(rows["unit"].nunique()),
            "features": len(features),
            "drifted_features": len(summary["drifted_features"]),
            "violations": len(violations["violations"]),
        },
        **summary,
        "features": features,
    }
    return report, violations


def drift_metrics(report: dict, endpoint: str, timestamp: datetime) -> list[dict]:
    """The CloudWatch metric data of `report`: max PSI, counts and each feature's PSI."""
    dimensions = {"Endpoint": endpoint}
    counts = report["counts"]
    data = [
        metric_datum("MaxPSI", report["max_psi"], dimensions, timestamp),
        metric_datum("DriftedFeatures", counts["drifted_features"], dimensions, timestamp, "Count"),
        metric_datum("ConstraintViolations", counts["violations"], dimensions, timestamp, "Count"),
        skipped_metric(report, dimensions, timestamp),
    ]
    for feature in report["features"]:
        data.append(
            metric_datum("FeaturePSI", feature["psi"], {**dimensions, "Feature": feature["name"]}, timestamp)
        )
    return data


def print_table(report: dict) -> None:
    """Log each feature's test results and the drift verdict with its counts."""
    log(f"{'feature':<12} {'kind':<14} {'KS D':>7} {'p':>9} {'adj. p':>9} {'PSI':>8} {'severity':<8} drift")
    for f in report["features"]:
        log(
            f"{f['name']:<12} {f['kind']:<14} {f['ks_statistic']:>7.3f} {f['p_value']:>9.2e} "
            f"{f['adjusted_p_value']:>9.2e} {f['psi']:>8.3f} {f['severity']:<8} "
            + ("YES" if f["drifted"] else "")
        )
    counts = report["counts"]
    verdict = "DETECTED" if report["drift_detected"] else "not detected"
    log(
        f"drift {verdict}: {counts['drifted_features']} of "
        f"{counts['features']} features drifted, max PSI {report['max_psi']:.3f}, "
        f"{counts['violations']} constraint violations; {counts['requests']} requests "
        f"({counts['skipped_records']} records skipped), {counts['rows']} rows the model read of "
        f"{counts['rows_sent']} sent"
    )


# ---------------------------------------------------------------------------------------------------------
# Model Monitor's bring-your-own-container contract


def contract_path(value: str, environ: Mapping[str, str]) -> Path:
    """A path SageMaker passed, moved under `SAGEMAKER_BASE_DIR` when it lies under /opt/ml."""
    path = Path(value)
    try:
        return base_dir(environ) / path.relative_to(DEFAULT_BASE_DIR)
    except ValueError:
        return path


def _contract_time(environ: Mapping[str, str], name: str) -> datetime | None:
    text = environ.get(name, "").replace(" ", "")  # the guide's own example reads "16: 20: 00Z"
    return parse_time(text, f"environment variable {name}") if text else None


def apply_monitor_contract(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[Path, Path | None]:
    """Take captures, output, window and endpoint from Model Monitor's variables; return the baseline
    statistics and constraints files."""
    missing = [
        name
        for name in (MONITOR_SOURCE_VARIABLE, "output_path", "baseline_statistics")
        if not environ.get(name)
    ]
    if missing:
        raise ConfigurationError(
            "the Model Monitor contract needs the environment variable(s) "
            + ", ".join(missing)
            + " (set baseline_statistics with BaselineConfig.StatisticsResource)"
        )
    args.captures = contract_path(environ[MONITOR_SOURCE_VARIABLE], environ)
    args.output = contract_path(environ["output_path"], environ)
    args.start = _contract_time(environ, "start_time") or args.start
    args.end = _contract_time(environ, "end_time") or args.end
    args.endpoint = environ.get("sagemaker_endpoint_name") or args.endpoint
    constraints = environ.get("baseline_constraints")
    return (
        contract_path(environ["baseline_statistics"], environ),
        contract_path(constraints, environ) if constraints else None,
    )


def load_contract_baseline(statistics_path: Path, constraints_path: Path | None) -> Baseline:
    """The `Baseline` of Model Monitor's statistics (and constraints) files; missing is an error."""
    if not statistics_path.is_file():
        raise DataFormatError(statistics_path, None, "the baseline statistics file does not exist")
    if constraints_path is not None and not constraints_path.is_file():
        raise DataFormatError(constraints_path, None, "the baseline constraints file does not exist")
    statistics = _read_json(statistics_path)
    constraints = _read_json(constraints_path) if constraints_path is not None else None
    return baseline_from_statistics(statistics, constraints, str(statistics_path))


def cloudwatch_metrics_file(environ: Mapping[str, str] | None = None) -> Path:
    """Where Model Monitor reads the job's CloudWatch metrics, under the base folder."""
    return base_dir(environ) / "output" / "metrics" / "cloudwatch" / CLOUDWATCH_METRICS_FILE


def write_cloudwatch_metrics(path: Path, metric_data: list[dict]) -> int:
    """Append the metric data, one entry per line, in the file format Model Monitor publishes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for datum in metric_data:
            moment = datum["Timestamp"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            handle.write(json.dumps({**datum, "Timestamp": moment}, allow_nan=False) + "\n")
    return len(metric_data)


# ---------------------------------------------------------------------------------------------------------


def main(
    argv: list[str] | None = None,
    client_factory: MetricsClientFactory = cloudwatch_client,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Compare the window's captured requests to the baseline, write the reports and metrics; return 0."""
    environ = os.environ if environ is None else environ
    args = parse_args(argv)
    settings = DriftSettings(
        alpha=args.alpha,
        correction=args.correction,
        psi_threshold=args.psi_threshold,
        psi_bins=args.psi_bins,
        range_threshold=args.range_threshold,
    )
    contract = args.contract or ("model-monitor" if environ.get(MONITOR_SOURCE_VARIABLE) else "cli")
    monitored = contract == "model-monitor"
    metrics_target = args.metrics_target or ("none" if monitored else "file")
    if monitored:
        baseline = load_contract_baseline(*apply_monitor_contract(args, environ))
        check_window(args.start, args.end)
        captures, output = args.captures, args.output
    else:
        check_window(args.start, args.end)
        captures = args.captures or processing_dir("input", "captures")
        output = args.output or processing_dir("output")
        baseline = load_baseline(args.baseline or processing_dir("input", "baseline"))
    window = load_window(captures, args.start, args.end)
    endpoint = endpoint_name(captures, args.endpoint)
    now = datetime.now(UTC)
    context = {
        "endpoint": endpoint,
        "generated_at": now.isoformat(),
        "window": window_dict(args.start, args.end, window),
    }
    report, violations = drift_report(baseline, window, settings, context)
    write_json(output / VIOLATIONS_FILE, violations)
    write_json(output / REPORT_FILE, report)
    metric_data = drift_metrics(report, endpoint, now)
    if monitored and environ.get("publish_cloudwatch_metrics", "Enabled") != "Disabled":
        path = cloudwatch_metrics_file(environ)
        log(f"{write_cloudwatch_metrics(path, metric_data)} metric(s) written to {path} for Model Monitor")
    metrics_file = args.metrics_file or output / METRICS_FILE
    sent = emit_metrics(
        metrics_target, args.namespace, metric_data, metrics_file, args.region, client_factory
    )
    print_table(report)
    log(f"reports written to {output}; {sent} metric request(s) to {metrics_target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_entrypoint(main))
