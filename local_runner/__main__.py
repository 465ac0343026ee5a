"""Command line of the local runner.

python -m local_runner run [--data-dir D] [--subset FD001] [--param Name=Value ...]
python -m local_runner registry list | show N | approve N | reject N
python -m local_runner endpoint serve [--model-version N] | swap N | status
python -m local_runner monitor [run [--captures D] [--window-end T]] | drift ... | quality ...
python -m local_runner batch [--fleet D] [--model PATH] [--units N] [--threshold-cycles N]
python -m local_runner ui [--work-dir .work] [--port 5000]     the MLflow UI of the tracked executions
python -m local_runner demo [--work-dir .work/demo]      the whole model lifecycle, with a timeline

`run` exits 0 when the execution succeeded, 3 when the quality gate rejected the model (the execution ended
in its Fail step and nothing else failed), 1 when it failed otherwise, 2 for a usage error, and 130 (SIGINT)
or 143 (SIGTERM) when a signal stopped it: its jobs are ended, the execution is recorded `Stopped` and a
rerun resumes from the step cache.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from local_runner.batch_run import add_batch_parser, run_batch
from local_runner.demo import add_demo_parser, run_demo_command
from local_runner.endpoint import on_approval_callback
from local_runner.endpoint_cli import add_endpoint_parser, run_endpoint_command
from local_runner.execution import ExecutionError, ExecutionResult
from local_runner.main_job import MainJobError, MainJobOptions, Workspace, run_main_job
from local_runner.monitor_cli import add_monitor_parser, run_monitor_command
from local_runner.object_store import ObjectStoreError
from local_runner.registry_cli import add_registry_parser, run_registry_command
from local_runner.signals import StopController, install_handlers
from local_runner.tracking import add_ui_parser, run_ui
from pipeline_steps import names


def parse_assignment(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local_runner", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("run", help="render the pipeline definition and execute it locally")
    run.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get("DATA_DIR") or None,
        help="folder with train_<subset>.txt (default: $DATA_DIR, else synthetic data)",
    )
    run.add_argument("--subset", default=os.environ.get("SUBSET") or "FD001")
    run.add_argument("--work-dir", type=Path, default=Path(".work"))
    run.add_argument("--units", type=int, default=100, help="units of synthetic training data")
    run.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    run.add_argument(
        "--param",
        type=parse_assignment,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a pipeline parameter (repeatable), e.g. --param MaxTuningJobs=4",
    )
    run.add_argument(
        "--no-tracking",
        dest="tracking",
        action="store_false",
        help="do not track the execution in MLflow (default: $MLFLOW_TRACKING_URI, else <work>/mlflow)",
    )
    add_ui_parser(verbs)
    add_registry_parser(verbs)
    add_endpoint_parser(verbs)
    add_monitor_parser(verbs)
    add_batch_parser(verbs)
    add_demo_parser(verbs)
    return parser


def _data_unchanged(result: ExecutionResult) -> bool:
    """The new-data check ran and found the newest registered version's data (its condition held)."""
    step = next((s for s in result.steps if s.name == names.DATA_VERSION_CHECK_STEP), None)
    return bool(step and step.properties and step.properties.get("Outcome") == "True")


def summary_lines(workspace: Workspace, result: ExecutionResult, wall: float) -> list[str]:
    lines = ["", f"{'step':<26} {'type':<13} {'status':<12} {'seconds':>8}"]
    for step in result.steps:
        cached = "  (cached)" if step.cache_hit else ""
        lines.append(f"{step.name:<26} {step.type:<13} {step.status:<12} {step.seconds:>8.1f}{cached}")
    tuning = next((step for step in result.steps if step.type == "Tuning" and step.properties), None)
    if tuning:
        best = tuning.properties["BestTrainingJob"]
        objective = best["FinalHyperParameterTuningJobObjectiveMetric"]
        tuned = ", ".join(f"{name}={value}" for name, value in sorted(best["TunedHyperParameters"].items()))
        lines.append(
            f"\nbest of {len(tuning.properties['TrainingJobSummaries'])} trials: "
            f"{objective['MetricName']}={objective['Value']:.3f} with {tuned}"
        )
    evaluation = next(
        (
            step
            for step in result.steps
            if step.properties.get("ProcessingOutputConfig", {}).get("Outputs", {}).get("evaluation")
        ),
        None,
    )
    if evaluation:
        uri = evaluation.properties["ProcessingOutputConfig"]["Outputs"]["evaluation"]["S3Output"]["S3Uri"]
        report = json.loads(workspace.store.read_text(uri.rstrip("/") + "/evaluation.json"))
        metrics, capped = report["regression_metrics"], report["capped_truth_metrics"]
        lines.append(
            f"test units {report['n_units']}: RMSE {metrics['rmse']['value']:.2f} "
            f"(capped truth {capped['rmse']['value']:.2f}), MAE {metrics['mae']['value']:.2f}, "
            f"PHM08 score {metrics['phm08_score']['value']:.1f} "
            f"({capped['phm08_score_per_100_units']['value']:.1f} per 100 units on the capped truth)"
        )
        lines.append(f"quality gate: {report['gate']['summary']}")
        lines.append(f"evaluation plots: {workspace.store.path_for(uri.rstrip('/') + '/plots')}")
    registered = next(
        (step for step in result.steps if step.type == "RegisterModel" and step.properties), None
    )
    if registered:
        lines.append(
            f"registered model version {registered.properties['ModelPackageVersion']}: "
            f"{registered.properties['ModelPackageArn']}"
        )
    elif _data_unchanged(result):
        lines.append(
            f"nothing registered: the data is unchanged since the newest version "
            f"(DataVersion {result.parameters.get(names.DATA_VERSION)})"
        )
    lines.append(
        f"execution {result.execution_id}: {result.status}"
        + (f" - {result.failure_reason}" if result.failure_reason else "")
    )
    overhead = max(0.0, wall - result.job_seconds)
    lines.append(
        f"wall time {wall:.1f}s, of which runner overhead {overhead:.1f}s ({100 * overhead / wall:.1f}%)"
    )
    lines.append(f"record: {result.record_path}")
    if result.report_path:
        lines.append(f"report: {result.report_path}")
    return lines


GATE_REJECTED = 3


def exit_code(result: ExecutionResult, signal_code: int) -> int:
    """0 succeeded, 3 rejected by a Fail step (the quality gate), 1 any other failure, else the signal's."""
    if result.status == "Stopped":
        return signal_code
    if result.status == "Succeeded":
        return 0
    failed = {record.type for record in result.steps if record.status == "Failed"}
    return GATE_REJECTED if failed == {"Fail"} else 1


def run(args: argparse.Namespace) -> int:
    options = MainJobOptions(
        work_dir=args.work_dir,
        data_dir=args.data_dir,
        subset=args.subset,
        synthetic_units=args.units,
        seed=args.seed,
        parameters=dict(args.param),
        tracking=args.tracking,
    )
    started = time.perf_counter()
    stop = StopController()
    restore = install_handlers(stop)  # SIGINT/SIGTERM stop the jobs and end the execution Stopped
    try:
        workspace, result = run_main_job(options, stop=stop)
    except (MainJobError, ExecutionError) as error:
        print(f"main job failed: {error}", file=sys.stderr)
        return stop.exit_code if stop.requested else 1
    finally:
        restore()
    try:
        lines = summary_lines(workspace, result, time.perf_counter() - started)
    except ObjectStoreError:  # a step stopped midway left no outputs to summarize
        if result.status != "Stopped":
            raise
        lines = [f"execution {result.execution_id}: Stopped - {result.failure_reason}"]
        lines.append(f"record: {result.record_path}")
    for line in lines:
        print(line)
    return exit_code(result, stop.exit_code)  # 130 after SIGINT, 143 after SIGTERM


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verb == "run":
        return run(args)
    if args.verb == "ui":
        return run_ui(args)
    if args.verb == "endpoint":
        return run_endpoint_command(args)
    if args.verb == "monitor":
        return run_monitor_command(args)
    if args.verb == "batch":
        return run_batch(args)
    if args.verb == "demo":
        return run_demo_command(args)
    # What deploy-on-approval does on AWS: the champion moves with the status (inside the command, verified),
    # then the endpoint follows (health-checked). Nothing is prepared here: `list` and `show` write nothing.
    return run_registry_command(args, on_change=on_approval_callback(args.work_dir))


if __name__ == "__main__":
    raise SystemExit(main())
