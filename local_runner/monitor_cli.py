"""The `monitor` verb of the local runner: the monitoring pipeline, or one monitoring job, run locally.

`python -m local_runner monitor [run] [--captures DIR] [--baseline DIR] [--ground-truth DIR]
[--window-end T] [--window-hours H]` renders the monitoring pipeline's definition (the one CDK deploys)
and executes it through the runner (`local_runner.monitoring_run`); with no sub-verb it runs with the
defaults. The single jobs stay available:
`python -m local_runner monitor drift --captures DIR --baseline DIR` and
`python -m local_runner monitor quality --captures DIR --ground-truth DIR` lay out a job folder
`<work-dir>/monitoring/<job>/opt_ml/` as SageMaker would (each input copied under
`processing/input/<name>`, the reports in `processing/output`), run the container script
(`containers/drift.py` or `containers/model_quality.py`) in a subprocess of this Python with
`SAGEMAKER_BASE_DIR` pointing there, print its output (the per-feature table, or the metrics) and the
report paths, and return the script's exit code. Metrics go to `processing/output/metrics.jsonl` unless
`--metrics-target` says otherwise. Inputs take what `registry show` prints: a local path, an `s3://` URI of
the local object store (`<work-dir>/s3`), and for `--baseline` also a registered version number (its drift
baselines); anything else is a usage error (exit 2) naming the argument.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from local_runner.container_code import CONTAINERS_DIR
from local_runner.errors import RunnerError
from local_runner.work_layout import REGISTRY_FILE, STORE_FOLDER

if TYPE_CHECKING:
    from local_runner.registry import ModelPackage

DEFAULT_WORK_DIR = Path(".work")
# action -> (script, the inputs it takes: argument name -> input channel folder)
JOBS = {
    "drift": ("drift.py", {"captures": "captures", "baseline": "baseline"}),
    "quality": ("model_quality.py", {"captures": "captures", "ground_truth": "ground_truth"}),
}
LOCATION_ARGUMENTS = ("captures", "baseline", "ground_truth")
BASELINE_FILES = ("statistics.json", "constraints.json")
USAGE = 2


class MonitorInputError(RunnerError, ValueError):
    """An input argument names nothing this command can read."""


def registered_package(version: int, work_dir: Path, flag: str) -> ModelPackage:
    """Version `version` of the local registry's model package group; `MonitorInputError` naming `flag`."""
    from local_runner.registry import LocalRegistry, RegistryError
    from pipeline_steps.config import local_config

    registry = Path(work_dir) / REGISTRY_FILE
    if not registry.is_file():
        raise MonitorInputError(f"{flag} {version}: no model registry at {registry}")
    try:
        return LocalRegistry(registry).get(local_config().model_package_group_name, version)
    except RegistryError as error:
        raise MonitorInputError(f"{flag} {version}: {error}") from None


def version_baselines(version: int, work_dir: Path) -> Path:
    """The folder of the drift baselines registered with a model version of the local registry."""
    from local_runner.object_store import ObjectStore

    package = registered_package(version, work_dir, "--baseline")
    statistics = (package.drift_check_baselines or {}).get("ModelDataQuality", {}).get("Statistics", {})
    if not statistics.get("S3Uri", "").startswith("s3://"):
        raise MonitorInputError(f"--baseline {version}: version {version} has no data-quality baselines")
    return ObjectStore(Path(work_dir) / STORE_FOLDER).path_for(statistics["S3Uri"]).parent


def resolve_location(text: str, argument: str, work_dir: Path) -> Path:
    """A path, an s3:// URI of the local store or (for --baseline) a version number, as an existing path."""
    flag, is_baseline = f"--{argument.replace('_', '-')}", argument == "baseline"
    if is_baseline and text.isdigit():
        return version_baselines(int(text), work_dir)
    accepted = "a local path, an s3:// URI of the local store" + (
        " or a registered version" if is_baseline else ""
    )
    if text.startswith("s3://"):
        from local_runner.object_store import ObjectStore, ObjectStoreError

        try:
            path = ObjectStore(Path(work_dir) / STORE_FOLDER).path_for(text)
        except ObjectStoreError as error:
            raise MonitorInputError(f"{flag} {text}: {error}") from None
        if not path.exists():
            raise MonitorInputError(f"{flag} {text}: nothing there in the local store under {work_dir}/s3")
    elif "://" in text:
        raise MonitorInputError(f"{flag} {text}: not a location this command reads ({accepted})")
    else:
        path = Path(text)
        if not path.exists():
            raise MonitorInputError(f"{flag} {text} does not exist (give {accepted})")
    # `registry show` prints the statistics or constraints file; the baselines are the folder holding both.
    return path.parent if is_baseline and path.name in BASELINE_FILES else path


def resolve_locations(args: argparse.Namespace) -> None:
    """Replace each given input argument by the existing path it names (MonitorInputError if none)."""
    for argument in LOCATION_ARGUMENTS:
        value = getattr(args, argument, None)
        if value is not None:
            setattr(args, argument, resolve_location(str(value), argument, Path(args.work_dir)))


def add_monitor_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `monitor` verb with `drift` and `quality`; sets `handler=run_monitor_command`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--captures", required=True, help="data-capture folder (path or s3:// URI)")
    common.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="default: .work")
    common.add_argument("--endpoint", default=None, help="endpoint name (default: from the capture folders)")
    common.add_argument("--start", default=None, help="window start, ISO 8601")
    common.add_argument("--end", default=None, help="window end, ISO 8601")
    common.add_argument("--metrics-target", choices=("file", "cloudwatch", "none"), default="file")
    monitor = subparsers.add_parser(
        "monitor", help="run the monitoring pipeline, or one of its jobs, locally"
    )
    monitor.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="with no sub-verb: .work")
    actions = monitor.add_subparsers(dest="monitor_action", required=False)
    add_run_parser(actions)
    monitor.set_defaults(**RUN_DEFAULTS)
    drift = actions.add_parser("drift", parents=[common], help="data drift of captures against a baseline")
    drift.add_argument("--baseline", required=True, help=BASELINE_HELP)
    drift.add_argument("--alpha", type=float, default=None)
    drift.add_argument("--correction", choices=("bh", "holm"), default=None)
    drift.add_argument("--psi-threshold", type=float, default=None)
    quality = actions.add_parser("quality", parents=[common], help="realised error against failure events")
    quality.add_argument("--ground-truth", required=True, help="folder of failure-event files (docs/cli.md)")
    quality.add_argument("--rul-cap", type=float, default=None)
    monitor.set_defaults(handler=run_monitor_command)
    return monitor


BASELINE_HELP = "a version number, the s3:// URI `registry show` prints, or a statistics.json folder or CSV"
RUN_DEFAULTS = {
    "captures": None,
    "baseline": None,
    "ground_truth": None,
    "endpoint": None,
    "window_end": None,
    "window_hours": None,
}


def add_run_parser(actions: argparse._SubParsersAction) -> None:
    """Add `monitor run`, the monitoring pipeline's definition through the runner."""
    run = actions.add_parser("run", help="execute the monitoring pipeline's definition (the default)")
    run.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="default: .work")
    run.add_argument("--captures", default=None, help="the local endpoint's --capture-dir")
    run.add_argument("--baseline", default=None, help=BASELINE_HELP + " (default: the champion's)")
    run.add_argument("--ground-truth", default=None, help="folder of failure-label files (docs/cli.md)")
    run.add_argument("--endpoint", default=None, help="endpoint name (default: the local endpoint's)")
    run.add_argument("--window-end", default=None, help="ISO 8601 (default: this hour's start)")
    run.add_argument("--window-hours", type=int, default=None, help="hours before the window end")


def run_pipeline_command(args: argparse.Namespace) -> int:
    """`monitor` / `monitor run`: the monitoring definition through the runner; exit 0 if it succeeded."""
    from local_runner.execution import ExecutionError
    from local_runner.monitoring_run import (
        MonitoringRunError,
        MonitoringRunOptions,
        monitoring_summary,
        run_monitoring,
    )
    from pipeline_steps.monitoring_names import WINDOW_END, WINDOW_HOURS

    parameters = {
        name: value
        for name, value in ((WINDOW_END, args.window_end), (WINDOW_HOURS, args.window_hours))
        if value is not None
    }
    options = MonitoringRunOptions(
        work_dir=Path(args.work_dir),
        captures=args.captures,
        baseline=args.baseline,
        ground_truth=args.ground_truth,
        parameters=parameters,
        **({"endpoint": args.endpoint} if args.endpoint else {}),
    )
    try:
        _, store, result = run_monitoring(options)
    except (MonitoringRunError, ExecutionError) as error:
        print(f"monitor: {error}", file=sys.stderr)
        return 1
    for line in monitoring_summary(store, result):
        print(line)
    return 0 if result.status == "Succeeded" else 1


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


def user_paths(text: str, args: argparse.Namespace, opt_ml: Path) -> str:
    """The script's output naming the inputs the user gave, not their copies in the job folder (so an
    error in a ground-truth file names that file)."""
    for argument, channel in JOBS[args.monitor_action][1].items():
        source = Path(getattr(args, argument))
        copy = (opt_ml / "processing" / "input" / channel).resolve()
        text = text.replace(str(copy), str(source if source.is_dir() else source.parent))
    return text


def run_monitor_command(args: argparse.Namespace) -> int:
    """Run the monitoring pipeline or one job; 2 when an input names nothing readable."""
    try:
        resolve_locations(args)
    except MonitorInputError as error:
        print(f"monitor: {error}", file=sys.stderr)
        return USAGE
    if args.monitor_action in (None, "run"):
        return run_pipeline_command(args)
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
    sys.stdout.write(user_paths(completed.stdout, args, opt_ml))
    sys.stderr.write(user_paths(completed.stderr, args, opt_ml))
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
