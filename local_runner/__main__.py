"""Command line of the local runner.

python -m local_runner run [--data-dir D] [--subset FD001] [--param Name=Value ...]
python -m local_runner registry list | show N | approve N | reject N | mirror N | export DIR | import DIR
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
import importlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from local_runner.errors import RunnerError
from local_runner.live_view import LiveView, shown
from local_runner.object_store import ObjectStoreError
from local_runner.params_check import UsageError, check_parameters, check_run_options, declared_parameters
from local_runner.quiet import silence_sdk
from local_runner.results import overhead_seconds
from local_runner.signals import StopController, install_handlers
from pipeline_steps import names

if TYPE_CHECKING:
    from local_runner.main_job import Workspace
    from local_runner.results import ExecutionResult

# Every verb but `run` lives in a module that imports pydantic, pandas or the SageMaker SDK: imported only
# when the verb runs, so `--help` is fast. verb -> (module, function adding its parser, function running it
# (None: see `main`), the help line shown before the import)
LAZY_VERBS = {
    "ui": ("tracking", "add_ui_parser", "run_ui", "the MLflow UI of the tracked executions"),
    "registry": ("registry_cli", "add_registry_parser", None, "list, show, approve or reject models"),
    "endpoint": ("endpoint_cli", "add_endpoint_parser", "run_endpoint_command", "serve a model locally"),
    "monitor": ("monitor_cli", "add_monitor_parser", "run_monitor_command", "drift and model quality"),
    "batch": ("batch_run", "add_batch_parser", "run_batch", "score and rank the fleet"),
    "demo": ("demo", "add_demo_parser", "run_demo_command", "the whole model lifecycle, with a timeline"),
    "execute": ("execute_cli", "add_execute_parser", "run_execute", "run any SageMaker pipeline definition"),
    "callback": ("execute_cli", "add_callback_parser", "run_callback_command", "answer a Callback step"),
}
MAIN_JOB_NAMES = ("MainJobError", "MainJobOptions", "Workspace", "run_main_job")


def __getattr__(name: str) -> object:
    """The main job's names, imported on first use (a test driver may replace `MainJobOptions`)."""
    if name in MAIN_JOB_NAMES:
        from local_runner import main_job

        return getattr(main_job, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_assignment(text: str) -> tuple[str, str]:
    """argparse type: `NAME=VALUE` as (name, value); text without `=` is an argument error."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name.strip(), value


def _add_run_parser(verbs: argparse._SubParsersAction) -> None:
    run = verbs.add_parser("run", help="render the pipeline definition and execute it locally")
    run.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get("DATA_DIR") or None,
        help="folder with train_<subset>.txt (default: $DATA_DIR, else synthetic data)",
    )
    run.add_argument("--subset", default=os.environ.get("SUBSET") or "FD001", help="FD001 to FD004")
    run.add_argument("--work-dir", type=Path, default=Path(".work"))
    run.add_argument("--units", type=int, default=100, help="units of synthetic training data")
    run.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    run.add_argument(
        "--param",
        type=parse_assignment,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a pipeline parameter (repeatable), e.g. --param TuningMaxJobs=4; checked before any work",
    )
    run.add_argument(
        "--no-tracking",
        dest="tracking",
        action="store_false",
        help="do not track the execution in MLflow (default: $MLFLOW_TRACKING_URI, else <work>/mlflow)",
    )
    loudness = run.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true", help="print only the final summary")
    loudness.add_argument("-v", "--verbose", action="store_true", help="also stream every job's log")


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The command line; the lazy verbs get their full options only when `verb` names them."""
    parser = argparse.ArgumentParser(prog="python -m local_runner", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    _add_run_parser(verbs)
    for name, (module, adder, _, summary) in LAZY_VERBS.items():
        if name == verb:
            getattr(importlib.import_module(f"local_runner.{module}"), adder)(verbs)
        else:
            verbs.add_parser(name, help=summary)
    return parser


def _data_unchanged(result: ExecutionResult) -> bool:
    """The new-data check ran and found the newest registered version's data (its condition held)."""
    step = next((s for s in result.steps if s.name == names.DATA_VERSION_CHECK_STEP), None)
    return bool(step and step.properties and step.properties.get("Outcome") == "True")


def step_table(result: ExecutionResult) -> list[str]:
    """One aligned row per step: name, type, status, seconds."""
    rows = [
        (s.display_name, s.type, s.status + (" (cached)" if s.cache_hit else ""), f"{s.seconds:.1f}")
        for s in result.steps
    ]
    header = ("step", "type", "status", "seconds")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(4)]
    return [
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]:>{widths[3]}}"
        for row in [header, *rows]
    ]


def human(value: object) -> str:
    """A hyperparameter for people: floats to 3 significant digits, anything else as it is."""
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        return text
    return text if number.is_integer() and "." not in text else f"{number:.3g}"


def _tuning_line(result: ExecutionResult) -> list[str]:
    tuning = next((step for step in result.steps if step.type == "Tuning" and step.properties), None)
    if not tuning:
        return []
    best = tuning.properties["BestTrainingJob"]
    objective = best["FinalHyperParameterTuningJobObjectiveMetric"]
    tuned = ", ".join(
        f"{name}={human(value)}" for name, value in sorted(best["TunedHyperParameters"].items())
    )
    trials = len(tuning.properties["TrainingJobSummaries"])
    return [f"best of {trials} trials: {objective['MetricName']} {objective['Value']:.2f} with {tuned}"]


def _evaluation_lines(workspace: Workspace, result: ExecutionResult) -> list[str]:
    import json

    outputs = (step.properties.get("ProcessingOutputConfig", {}).get("Outputs", {}) for step in result.steps)
    evaluation = next((found["evaluation"] for found in outputs if found.get("evaluation")), None)
    if not evaluation:
        return []
    uri = evaluation["S3Output"]["S3Uri"].rstrip("/")
    report = json.loads(workspace.store.read_text(uri + "/evaluation.json"))
    metrics, capped = report["regression_metrics"], report["capped_truth_metrics"]
    return [
        f"test units {report['n_units']}: RMSE {metrics['rmse']['value']:.2f} "
        f"(capped truth {capped['rmse']['value']:.2f}), MAE {metrics['mae']['value']:.2f}, "
        f"PHM08 score {metrics['phm08_score']['value']:.1f} "
        f"({capped['phm08_score_per_100_units']['value']:.1f} per 100 units on the capped truth)",
        f"quality gate: {report['gate']['summary']}",
        f"evaluation plots: {shown(workspace.store.path_for(uri + '/plots'))}",
    ]


def summary_lines(workspace: Workspace, result: ExecutionResult, wall: float) -> list[str]:
    """The closing summary: step table, tuning, test metrics, gate, registration, wall time, files."""
    lines = ["", *step_table(result), ""]
    lines += _tuning_line(result) + _evaluation_lines(workspace, result)
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
    overhead = overhead_seconds(wall, result)  # wall time during which no job ran
    lines.append(
        f"wall time {wall:.1f}s, of which runner overhead {overhead:.1f}s ({100 * overhead / wall:.1f}%)"
    )
    lines.append(f"record: {shown(result.record_path)}")
    if result.report_path:
        lines.append(f"report: {shown(result.report_path)}")
    return lines


GATE_REJECTED = 3
USAGE = 2


def exit_code(result: ExecutionResult, signal_code: int) -> int:
    """0 succeeded, 3 rejected by a Fail step (the quality gate), 1 any other failure, else the signal's."""
    if result.status == "Stopped":
        return signal_code
    if result.status == "Succeeded":
        return 0
    failed = {record.type for record in result.steps if record.status == "Failed"}
    return GATE_REJECTED if failed == {"Fail"} else 1


def checked_parameters(args: argparse.Namespace) -> dict[str, object]:
    """The run's parameters, typed and checked with its options before any work (UsageError if not)."""
    declared, bounds = declared_parameters()
    parameters = check_parameters(args.param, declared, bounds)
    check_run_options(args.data_dir, args.subset, args.units, parameters)
    return parameters


def run(args: argparse.Namespace) -> int:
    """`run`: check the inputs, then execute the main job behind the live view; the exit code."""
    try:
        parameters = checked_parameters(args)
    except UsageError as error:
        print(f"python -m local_runner run: error: {error}", file=sys.stderr)
        return USAGE
    main_job = sys.modules[__name__]  # attribute access, so a replaced MainJobOptions is honoured
    options = main_job.MainJobOptions(
        work_dir=args.work_dir,
        data_dir=args.data_dir,
        subset=args.subset,
        synthetic_units=args.units,
        seed=args.seed,
        parameters=parameters,
        tracking=args.tracking,
    )
    started = time.perf_counter()
    stop = StopController()
    view = LiveView("quiet" if args.quiet else "verbose" if args.verbose else "normal")
    restore = install_handlers(stop)  # SIGINT/SIGTERM stop the jobs and end the execution Stopped
    try:
        workspace, result = main_job.run_main_job(options, echo=view, stop=stop)
    except RunnerError as error:  # MainJobError, ExecutionError and every other error the runner names
        view.close()
        print(f"main job failed: {error}", file=sys.stderr)
        return stop.exit_code if stop.requested else 1
    finally:
        view.close()
        restore()
    try:
        lines = summary_lines(workspace, result, time.perf_counter() - started)
    except ObjectStoreError:  # a step stopped midway left no outputs to summarize
        if result.status != "Stopped":
            raise
        lines = [f"execution {result.execution_id}: Stopped - {result.failure_reason}"]
        lines.append(f"record: {shown(result.record_path)}")
    for line in lines:
        print(line)
    return exit_code(result, stop.exit_code)  # 130 after SIGINT, 143 after SIGTERM


def main(argv: list[str] | None = None) -> int:
    """Run the verb the command line names (run, registry or a lazily imported one); its exit code."""
    silence_sdk(offline=True)  # the local runner never calls AWS
    argv = sys.argv[1:] if argv is None else list(argv)
    verb = next((item for item in argv if not item.startswith("-")), None)
    args = build_parser(verb).parse_args(argv)
    if args.verb == "run":
        return run(args)
    if args.verb == "registry":
        from local_runner.endpoint import on_approval_callback
        from local_runner.registry_cli import run_registry_command

        # What deploy-on-approval does on AWS: the champion moves with the status (inside the command,
        # verified), then the endpoint follows (health-checked). `list` and `show` write nothing.
        return run_registry_command(args, on_change=on_approval_callback(args.work_dir))
    module, _, runner, _ = LAZY_VERBS[args.verb]
    assert runner is not None  # only `registry` has none, and it returned above
    return getattr(importlib.import_module(f"local_runner.{module}"), runner)(args)


if __name__ == "__main__":
    raise SystemExit(main())
