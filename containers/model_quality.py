"""Processing-job entry point of the model-quality monitor: captured predictions against late failure labels.

A unit's true RUL is known only once it fails. Failure events arrive as files under `--ground-truth`
(default /opt/ml/processing/input/ground_truth): CSV with a header (`unit`, `failure_cycle`, optional
`event_time`), a JSON array of such objects (or `{"events": [...]}`) or JSON Lines. Each captured
prediction of a unit (`--captures`, the window `--start` <= inferenceTime < `--end`) is joined with the
unit's failure: its true RUL is failure_cycle - the unit's last cycle in that request (the cycle the
model predicted at). When a unit number has several failures (an engine returned to service after an
overhaul), every one needs an `event_time`, and a prediction belongs to the first failure at or after
its inference time. Predictions of units with no failure yet are counted as unmatched, not dropped
silently; a prediction whose last cycle lies after its unit's failure cycle is an error.

Outputs in `--output`: `model_quality_report.json`, in the drift report's envelope (report_type,
version, endpoint, generated_at, window, settings, counts) with the realised RMSE, MAE and PHM08 score
(`rul.metrics`; against the true RUL and against the truth capped at `--rul-cap`) and the joined
predictions; metrics as in `drift.py`, namespace `TurbofanRul/ModelQuality`: RMSE, MAE, PHM08Score,
PHM08ScoreMean, MatchedPredictions, UnmatchedPredictions and CaptureRecordsSkipped (only the counts when
nothing matched yet). The report's `variants` block holds the same counts and metrics per production
variant (the capture's `variantName`, else its `<variant>` folder); during an A/B test (a variant other
than `AllTraffic`) RMSE, MAE, PHM08Score and MatchedPredictions are also sent per variant, with a
`Variant` dimension beside `Endpoint`. Captures are read as the drift job reads them
(`rul.capture.read_window`, serving's own parser): a malformed record is skipped, printed with its
file and line and counted in the report's `captures` block, never failing the window.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rul.capture import CaptureWindow, parse_time
from rul.contract import processing_dir, run_entrypoint
from rul.errors import ConfigurationError, DataFormatError
from rul.metrics import mae, phm08_score, rmse
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

NAMESPACE = "TurbofanRul/ModelQuality"
REPORT_FILE = "model_quality_report.json"
DEFAULT_RUL_CAP = 125.0
SINGLE_VARIANT = "AllTraffic"
UNKNOWN_VARIANT = "unknown"  # captures outside the <endpoint>/<variant>/... layout
GROUND_TRUTH_SUFFIXES = (".csv", ".json", ".jsonl")
EVENT_FIELDS = ("unit", "failure_cycle")


# ---------------------------------------------------------------------------------------------------------
# Failure events


def _positive_int(value: object, name: str, where: str, line: int | None) -> int:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number != int(number) or number < 1:
        raise DataFormatError(where, line, f"{name} must be a positive integer, found {value!r}")
    return int(number)


def parse_event(entry: object, where: str, line: int | None) -> dict:
    """One failure event {unit, failure_cycle, event_time (datetime or None), source, line}."""
    if not isinstance(entry, dict):
        raise DataFormatError(where, line, f"a failure event must be an object, found {entry!r}")
    missing = [name for name in EVENT_FIELDS if entry.get(name) in (None, "")]
    if missing:
        raise DataFormatError(where, line, f"the failure event lacks {', '.join(missing)}")
    raw_time: Any = entry.get("event_time")
    return {
        "unit": _positive_int(entry["unit"], "unit", where, line),
        "failure_cycle": _positive_int(entry["failure_cycle"], "failure_cycle", where, line),
        "event_time": parse_time(raw_time, where, line) if raw_time not in (None, "") else None,
        "source": where,
        "line": line,
    }


def read_event_file(path: Path) -> list[dict]:
    """The failure events of one .csv, .jsonl or .json file; a malformed file is a `DataFormatError`."""
    where = str(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or not set(EVENT_FIELDS) <= {name.strip() for name in reader.fieldnames}:
            raise DataFormatError(where, 1, f"the header must name {', '.join(EVENT_FIELDS)}[, event_time]")
        return [
            parse_event({key.strip(): value for key, value in row.items() if key}, where, reader.line_num)
            for row in reader
        ]
    if path.suffix == ".jsonl":
        events = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    events.append(parse_event(json.loads(line), where, number))
                except json.JSONDecodeError as error:
                    raise DataFormatError(where, number, f"not valid JSON ({error.msg})") from None
        return events
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataFormatError(where, error.lineno, f"not valid JSON ({error.msg})") from None
    entries = document.get("events") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise DataFormatError(where, None, 'expected a list of failure events or {"events": [...]}')
    return [parse_event(entry, f"{where} (event {index + 1})", None) for index, entry in enumerate(entries)]


def read_failure_events(root: Path) -> list[dict]:
    """Every failure event under `root`; a unit with several events needs an event_time on each."""
    if not root.exists():
        raise DataFormatError(root, None, "the ground-truth folder does not exist")
    files = (
        [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix in GROUND_TRUTH_SUFFIXES)
    )
    if not files:
        raise DataFormatError(root, None, "no failure-event file (*.csv, *.json, *.jsonl) found")
    events = [event for path in files for event in read_event_file(path)]
    if not events:
        raise DataFormatError(root, None, "the failure-event files hold no events")
    by_unit: dict[int, list[dict]] = {}
    for event in events:
        by_unit.setdefault(event["unit"], []).append(event)
    for unit, group in by_unit.items():
        if len(group) > 1 and any(event["event_time"] is None for event in group):
            untimed = next(event for event in group if event["event_time"] is None)
            raise DataFormatError(
                untimed["source"],
                untimed["line"],
                f"unit {unit} fails {len(group)} times; each needs event_time",
            )
    return events


# ---------------------------------------------------------------------------------------------------------
# Join and metrics (pure)


def _event_for(prediction: Any, events: list[dict]) -> dict | None:
    """The failure a prediction belongs to: the unit's only untimed one, else the first at or after it."""
    if len(events) == 1 and events[0]["event_time"] is None:
        return events[0]
    later = [
        e for e in events if e["event_time"] is not None and e["event_time"] >= prediction.inference_time
    ]
    return min(later, key=lambda e: e["event_time"]) if later else None


def join_predictions(predictions: pd.DataFrame, events: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(matched predictions with true_rul and failure_cycle, unmatched predictions)."""
    by_unit: dict[int, list[dict]] = {}
    for failure in events:
        by_unit.setdefault(failure["unit"], []).append(failure)
    matched: list[dict] = []
    unmatched: list[dict] = []
    for prediction in predictions.itertuples(index=False):
        event = _event_for(prediction, by_unit.get(prediction.unit, []))
        if event is None:
            unmatched.append(prediction._asdict())
            continue
        true_rul = event["failure_cycle"] - prediction.last_cycle
        if true_rul < 0:
            raise DataFormatError(
                prediction.source,
                prediction.line,
                f"unit {prediction.unit} was predicted at cycle {prediction.last_cycle}, after its failure "
                f"at cycle {event['failure_cycle']} ({event['source']}"
                + (f", line {event['line']})" if event["line"] else ")"),
            )
        matched.append(
            {**prediction._asdict(), "failure_cycle": event["failure_cycle"], "true_rul": true_rul}
        )
    columns = [*predictions.columns, "failure_cycle", "true_rul"]
    return pd.DataFrame(matched, columns=columns), pd.DataFrame(unmatched, columns=list(predictions.columns))


def metric_block(true: np.ndarray, predicted: np.ndarray) -> dict:
    """RMSE, MAE and the PHM08 score (total and mean) of `predicted` against `true`; None when empty."""
    if true.size == 0:
        return {name: {"value": None} for name in ("rmse", "mae", "phm08_score", "phm08_score_mean")}
    score = phm08_score(true, predicted)
    return {
        "rmse": {"value": rmse(true, predicted)},
        "mae": {"value": mae(true, predicted)},
        "phm08_score": {"value": score},
        "phm08_score_mean": {"value": score / true.size},
    }


def _variant_labels(frame: pd.DataFrame) -> pd.Series:
    return frame["variant"].fillna(UNKNOWN_VARIANT).astype(str)


def variant_blocks(predictions: pd.DataFrame, matched: pd.DataFrame) -> dict[str, dict]:
    """{variant: counts and realised metrics of its predictions} (pure); variants in name order."""
    blocks = {}
    matched_labels = _variant_labels(matched)
    counts = _variant_labels(predictions).value_counts()
    for variant in sorted(counts.index):
        mine = matched[matched_labels == variant]
        blocks[variant] = {
            "counts": {
                "predictions": int(counts[variant]),
                "matched_predictions": len(mine),
                "unmatched_predictions": int(counts[variant]) - len(mine),
            },
            "regression_metrics": metric_block(
                mine["true_rul"].to_numpy(dtype=float), mine["predicted_rul"].to_numpy(dtype=float)
            ),
        }
    return blocks


def quality_report(window: CaptureWindow, events: list[dict], rul_cap: float, context: dict) -> dict:
    """The model-quality report of the captured predictions and the failure events (pure)."""
    predictions = window.predictions()
    matched, unmatched = join_predictions(predictions, events)
    true = matched["true_rul"].to_numpy(dtype=float)
    predicted = matched["predicted_rul"].to_numpy(dtype=float)
    matched_events = {(row.unit, row.failure_cycle) for row in matched.itertuples()}
    return {
        "report_type": "model_quality",
        "version": REPORT_VERSION,
        **context,
        "settings": {"rul_cap": rul_cap},
        "captures": window.summary(),
        "counts": {
            "requests": len(window.requests),
            "skipped_records": len(window.skipped),
            "predictions": len(predictions),
            "matched_predictions": len(matched),
            "unmatched_predictions": len(unmatched),
            "failure_events": len(events),
            "events_with_predictions": len(matched_events),
            "events_without_predictions": len(
                {(e["unit"], e["failure_cycle"]) for e in events} - matched_events
            ),
        },
        "regression_metrics": metric_block(true, predicted),
        "variants": variant_blocks(predictions, matched),
        "capped_truth_metrics": metric_block(np.minimum(true, rul_cap), predicted),
        "predictions": [
            {
                "event_id": row.event_id,
                "inference_time": row.inference_time.isoformat(),
                "unit": int(row.unit),
                "last_cycle": int(row.last_cycle),
                "failure_cycle": int(row.failure_cycle),
                "true_rul": int(row.true_rul),
                "predicted_rul": float(row.predicted_rul),
                "error": float(row.predicted_rul - row.true_rul),
            }
            for row in matched.itertuples()
        ],
        "unmatched_units": sorted({int(unit) for unit in unmatched["unit"]}),
    }


def quality_metrics(report: dict, endpoint: str, timestamp: datetime) -> list[dict]:
    """The CloudWatch metric data of `report`: match counts, the realised metrics and per variant."""
    dimensions = {"Endpoint": endpoint}
    counts = report["counts"]
    data = [
        metric_datum("MatchedPredictions", counts["matched_predictions"], dimensions, timestamp, "Count"),
        metric_datum("UnmatchedPredictions", counts["unmatched_predictions"], dimensions, timestamp, "Count"),
        skipped_metric(report, dimensions, timestamp),
    ]
    names = {"rmse": "RMSE", "mae": "MAE", "phm08_score": "PHM08Score", "phm08_score_mean": "PHM08ScoreMean"}
    for key, name in names.items():
        value = report["regression_metrics"][key]["value"]
        if value is not None:
            data.append(metric_datum(name, value, dimensions, timestamp))
    return data + _variant_metrics(report, endpoint, timestamp)


def _variant_metrics(report: dict, endpoint: str, timestamp: datetime) -> list[dict]:
    """Per-variant datums during an A/B test; none for a single `AllTraffic` variant."""
    variants = report.get("variants", {})
    if set(variants) <= {SINGLE_VARIANT}:
        return []
    data = []
    for variant, block in variants.items():
        dimensions = {"Endpoint": endpoint, "Variant": variant}
        matched = block["counts"]["matched_predictions"]
        data.append(metric_datum("MatchedPredictions", matched, dimensions, timestamp, "Count"))
        for key, name in (("rmse", "RMSE"), ("mae", "MAE"), ("phm08_score", "PHM08Score")):
            value = block["regression_metrics"][key]["value"]
            if value is not None:
                data.append(metric_datum(name, value, dimensions, timestamp))
    return data


# ---------------------------------------------------------------------------------------------------------
# Entry point


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The model-quality job's options: ground-truth folder, capture window, metric target and RUL cap."""
    parser = argparse.ArgumentParser(description="Realised RUL error of captured predictions.")
    parser.add_argument("--ground-truth", type=Path, default=None, help="folder of failure-event files")
    add_common_arguments(parser, NAMESPACE)
    parser.add_argument(
        "--rul-cap", type=float, default=DEFAULT_RUL_CAP, help="cap of the capped-truth metrics"
    )
    return parser.parse_args(argv)


def print_summary(report: dict) -> None:
    """Log the report's counts and its realised metrics, overall and per variant."""
    counts, metrics = report["counts"], report["regression_metrics"]
    log(
        f"requests {counts['requests']} ({counts['skipped_records']} capture records skipped); "
        f"predictions {counts['predictions']}: matched {counts['matched_predictions']}, unmatched "
        f"{counts['unmatched_predictions']}; failure events {counts['failure_events']} "
        f"({counts['events_without_predictions']} without predictions)"
    )
    if metrics["rmse"]["value"] is None:
        log("no prediction has a failure label yet: no realised metrics")
        return
    log(f"{'metric':<18} {'value':>10}")
    for name, block in metrics.items():
        log(f"{name:<18} {block['value']:>10.3f}")
    for variant, block in report.get("variants", {}).items():
        rmse_value = block["regression_metrics"]["rmse"]["value"]
        shown = "-" if rmse_value is None else f"{rmse_value:.3f}"
        log(f"variant {variant}: {block['counts']['matched_predictions']} matched, RMSE {shown}")


def main(argv: list[str] | None = None, client_factory: MetricsClientFactory = cloudwatch_client) -> int:
    """Match the window's predictions to failure labels, write the report and metrics; return 0."""
    args = parse_args(argv)
    check_window(args.start, args.end)
    if not args.rul_cap > 0:
        raise ConfigurationError(f"--rul-cap must be positive, got {args.rul_cap}")
    captures = args.captures or processing_dir("input", "captures")
    output = args.output or processing_dir("output")
    events = read_failure_events(args.ground_truth or processing_dir("input", "ground_truth"))
    window = load_window(captures, args.start, args.end)
    endpoint = endpoint_name(captures, args.endpoint)
    now = datetime.now(UTC)
    context = {
        "endpoint": endpoint,
        "generated_at": now.isoformat(),
        "window": window_dict(args.start, args.end, window),
    }
    report = quality_report(window, events, args.rul_cap, context)
    write_json(output / REPORT_FILE, report)
    sent = emit_metrics(
        args.metrics_target,
        args.namespace,
        quality_metrics(report, endpoint, now),
        args.metrics_file or output / METRICS_FILE,
        args.region,
        client_factory,
    )
    print_summary(report)
    log(f"report written to {output / REPORT_FILE}; {sent} metric request(s) to {args.metrics_target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_entrypoint(main))
