"""Processing-job entry point of the monitoring pipeline: resolve the window, then run one monitoring job.

`python3 monitoring_window.py --job drift|quality --window-end END --execution-start T --window-hours H
-- <job arguments>` computes the window [end - H hours, end) and runs `drift.py` or `model_quality.py`
with `--start`/`--end` appended to the job arguments (their inputs, outputs and metrics file keep the
jobs' defaults under /opt/ml/processing). END is an ISO 8601 time, or `ExecutionHour`: the start of the
hour in which the pipeline execution started (T, SageMaker's `Execution.StartDateTime`), so every step and
retry of one execution looks at the same window, and an hourly schedule looks at the previous full hour.

Late labels may not exist yet: when the quality job's ground-truth folder holds no label file (the prefix
holds only its placeholder), the job is skipped with a note in `quality_skipped.json` and exit 0, instead
of failing the whole execution. The job names and the sentinel are spelled again in
`pipeline_steps/monitoring_names.py`, which this container cannot import; a test keeps them equal.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rul.contract import processing_dir, run_entrypoint
from rul.errors import ConfigurationError

WINDOW_END_AT_EXECUTION_HOUR = "ExecutionHour"
JOBS = ("drift", "quality")
LABEL_SUFFIXES = (".csv", ".json", ".jsonl")  # model_quality.GROUND_TRUTH_SUFFIXES
SKIPPED_FILE = "quality_skipped.json"
MAX_WINDOW_HOURS = 168


def parse_time(text: str, name: str) -> datetime:
    """An ISO 8601 time ("Z" allowed) as aware UTC; naive times are UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"{name} is not an ISO 8601 time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def resolve_window(window_end: str, execution_start: str, hours: int) -> tuple[datetime, datetime]:
    """(start, end) of the window; `ExecutionHour` floors the execution's start time to its hour."""
    if not 1 <= hours <= MAX_WINDOW_HOURS:
        raise ConfigurationError(f"--window-hours must be 1-{MAX_WINDOW_HOURS}, got {hours}")
    if window_end == WINDOW_END_AT_EXECUTION_HOUR:
        end = parse_time(execution_start, "--execution-start").replace(minute=0, second=0, microsecond=0)
    else:
        end = parse_time(window_end, "--window-end")
    return end - timedelta(hours=hours), end


def has_labels(folder: Path) -> bool:
    """Whether `folder` holds a failure-label file (.csv, .json or .jsonl) anywhere below it."""
    return folder.is_dir() and any(p.suffix in LABEL_SUFFIXES for p in folder.rglob("*") if p.is_file())


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The wrapper's options, and the job's own arguments that follow `--`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", choices=JOBS, required=True)
    parser.add_argument("--window-end", required=True, help=f"ISO 8601, or {WINDOW_END_AT_EXECUTION_HOUR}")
    parser.add_argument("--execution-start", default="", help="the pipeline execution's start time")
    parser.add_argument("--window-hours", type=int, required=True)
    parser.add_argument("job_arguments", nargs=argparse.REMAINDER, help="-- then the job's arguments")
    args = parser.parse_args(argv)
    passed = args.job_arguments[1:] if args.job_arguments[:1] == ["--"] else args.job_arguments
    return args, passed


def job_main(job: str) -> Callable[[list[str] | None], int]:
    """The job's main, imported on demand (both jobs load pandas and the statistics)."""
    if job == "drift":
        import drift

        return drift.main
    import model_quality

    return model_quality.main


def main(argv: list[str] | None = None) -> int:
    """Run the drift or quality job on the resolved window (skip quality without labels); its exit code."""
    args, passed = parse_args(argv)
    start, end = resolve_window(args.window_end, args.execution_start, args.window_hours)
    print(f"monitoring window: {start.isoformat()} to {end.isoformat()} ({args.job})", flush=True)
    if args.job == "quality" and not has_labels(processing_dir("input", "ground_truth")):
        note = {"job": "quality", "skipped": "no failure-label file yet", "window": [str(start), str(end)]}
        output = processing_dir("output")
        output.mkdir(parents=True, exist_ok=True)
        (output / SKIPPED_FILE).write_text(json.dumps(note, indent=2) + "\n")
        print("model quality skipped: no failure-label file (*.csv, *.json, *.jsonl) yet", flush=True)
        return 0
    window = ["--start", start.isoformat(), "--end", end.isoformat()]
    return job_main(args.job)([*passed, *window])


if __name__ == "__main__":
    raise SystemExit(run_entrypoint(main))
