"""The `monitor` verb of the local runner: the drift and model-quality jobs as local processing jobs.

`python -m local_runner monitor drift --captures DIR --baseline DIR` and
`python -m local_runner monitor quality --captures DIR --ground-truth DIR` lay out a job folder
`<work-dir>/monitoring/<job>/opt_ml/` as SageMaker would (each input copied under
`processing/input/<name>`, the reports in `processing/output`), run the container script
(`containers/drift.py` or `containers/model_quality.py`) in a subprocess of this Python with
`SAGEMAKER_BASE_DIR` pointing there, print its output (the per-feature table, or the metrics) and the
report paths, and return the script's exit code. Metrics go to `processing/output/metrics.jsonl` unless
`--metrics-target` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTAINERS_DIR = PROJECT_ROOT / "containers"
DEFAULT_WORK_DIR = Path(".work")
# action -> (script, the inputs it takes: argument name -> input channel folder)
JOBS = {
    "drift": ("drift.py", {"captures": "captures", "baseline": "baseline"}),
    "quality": ("model_quality.py", {"captures": "captures", "ground_truth": "ground_truth"}),
}


def add_monitor_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `monitor` verb with `drift` and `quality`; sets `handler=run_monitor_command`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--captures", type=Path, required=True, help="data-capture folder")
    common.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="default: .work")
    common.add_argument("--endpoint", default=None, help="endpoint name (default: from the capture folders)")
    common.add_argument("--start", default=None, help="window start, ISO 8601")
    common.add_argument("--end", default=None, help="window end, ISO 8601")
    common.add_argument("--metrics-target", choices=("file", "cloudwatch", "none"), default="file")
    monitor = subparsers.add_parser("monitor", help="run the drift or model-quality monitoring job locally")
    actions = monitor.add_subparsers(dest="monitor_action", required=True)
    drift = actions.add_parser("drift", parents=[common], help="data drift of captures against a baseline")
    drift.add_argument("--baseline", type=Path, required=True, help="statistics.json folder or CSV")
    drift.add_argument("--alpha", type=float, default=None)
    drift.add_argument("--correction", choices=("bh", "holm"), default=None)
    drift.add_argument("--psi-threshold", type=float, default=None)
    quality = actions.add_parser("quality", parents=[common], help="realised error against failure events")
    quality.add_argument("--ground-truth", type=Path, required=True, help="folder of failure-event files")
    quality.add_argument("--rul-cap", type=float, default=None)
    monitor.set_defaults(handler=run_monitor_command)
    return monitor


def script_arguments(args: argparse.Namespace) -> list[str]:
    """The optional arguments passed through to the script, as `--name value` pairs."""
    names = ("endpoint", "start", "end", "metrics_target", "alpha", "correction", "psi_threshold", "rul_cap")
    argv: list[str] = []
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def prepare_job(args: argparse.Namespace, job_dir: Path) -> Path:
    """Copy each input under `<job>/opt_ml/processing/input/<channel>`; returns the opt_ml folder."""
    opt_ml = job_dir / "opt_ml"
    for argument, channel in JOBS[args.monitor_action][1].items():
        source = Path(getattr(args, argument))
        if not source.exists():
            raise FileNotFoundError(f"--{argument.replace('_', '-')} {source} does not exist")
        target = opt_ml / "processing" / "input" / channel
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.mkdir(parents=True)
            shutil.copy(source, target / source.name)
    return opt_ml


def run_monitor_command(args: argparse.Namespace) -> int:
    script, _ = JOBS[args.monitor_action]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    job_dir = Path(args.work_dir) / "monitoring" / f"{args.monitor_action}-{stamp}"
    try:
        opt_ml = prepare_job(args, job_dir)
    except FileNotFoundError as error:
        print(f"monitor {args.monitor_action}: {error}", file=sys.stderr)
        return 1
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(opt_ml.resolve()), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(CONTAINERS_DIR / script), *script_arguments(args)]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    sys.stdout.write(completed.stdout)
    sys.stderr.write(completed.stderr)
    output = opt_ml / "processing" / "output"
    if completed.returncode == 0:
        for path in sorted(output.glob("*")):
            print(f"  {path}")
    else:
        print(
            f"monitor {args.monitor_action} failed (exit {completed.returncode}); job folder {job_dir}",
            file=sys.stderr,
        )
    return completed.returncode
