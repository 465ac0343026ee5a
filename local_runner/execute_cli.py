"""`python -m local_runner execute` (any pipeline definition) and `python -m local_runner callback`.

python -m local_runner execute DEFINITION.json [--param N=V]... [--object S3URI=LOCALPATH]...
    [--lambda-map FILE] [--serve IMAGE=COMMAND]... [--steps A,B [--source-execution ID]]
    [--max-parallel N] [--callback-timeout S] [--max-retry-wait S] [--work-dir DIR]
python -m local_runner callback list | send-success TOKEN [--output N=V]... | send-failure TOKEN --reason R

DEFINITION.json is a pipeline definition (`pipeline.definition()`) or a CreatePipeline request holding one
(`PipelineDefinition`, with its `ParallelismConfiguration`). `--object` copies a local file or folder to
an S3 URI of the work dir's object store (`<work>/s3`) before the run; the steps' outputs land there too.
Exit codes: 0 succeeded, 3 failed only in a Fail step, 1 failed otherwise, 2 usage error (bad definition,
parameter, option or unsupported step type: nothing ran).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local_runner.definition_executor import DefinitionExecutor, ExecuteOptions
from local_runner.execution_record import ExecutionResult
from local_runner.graph import ExecutionError, flatten_steps
from local_runner.object_store import ObjectStore, ObjectStoreError
from local_runner.registry import LocalRegistry
from local_runner.report_publish import publish_execution
from local_runner.selective import load_selection
from local_runner.signals import StopController, install_handlers
from local_runner.step_callback import CallbackError, failure_answer, pending_tokens, send, success_answer
from local_runner.step_lambda import load_lambda_map
from local_runner.work_layout import REGISTRY_FILE, STORE_FOLDER

DEFAULT_PARALLEL = 2
FAIL_STEP_ONLY = 3


def _assignment(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _object(text: str) -> tuple[str, str]:
    # An S3 URI holds no "=" before its key in practice; split at the first "=" after the scheme.
    uri, separator, path = text.partition("=")
    if not separator or not uri.startswith("s3://") or not path:
        raise argparse.ArgumentTypeError(f"expected S3URI=LOCALPATH, got {text!r}")
    return uri, path


def _at_least(minimum: float, kind: type = float) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` no smaller than `minimum`."""

    def check(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below the minimum {minimum:g}")
        return value

    return check


def add_execute_parser(verbs: Any) -> None:
    """Register the `execute` verb."""
    execute = verbs.add_parser("execute", help="run any SageMaker pipeline definition locally")
    execute.add_argument("definition", type=Path, help="definition JSON or CreatePipeline request")
    execute.add_argument("--param", type=_assignment, action="append", default=[], metavar="NAME=VALUE")
    execute.add_argument("--object", type=_object, action="append", default=[], metavar="S3URI=LOCALPATH")
    execute.add_argument(
        "--lambda-map", type=Path, metavar="FILE", help="JSON: function ARN -> 'handler.py:function'"
    )
    execute.add_argument(
        "--serve", type=_assignment, action="append", default=[], metavar="IMAGE=COMMAND",
        help="the serving command of a model image (image URI or repository name), for Transform steps",
    )  # fmt: skip
    execute.add_argument(
        "--steps", metavar="A,B", help="selective execution: run only these steps (comma-separated)"
    )
    execute.add_argument(
        "--source-execution", metavar="ID", help="execution whose results the other steps reuse"
    )
    execute.add_argument(
        "--max-parallel",
        type=_at_least(1, int),
        metavar="N",
        help="default: ParallelismConfiguration, else 2",
    )
    execute.add_argument("--callback-timeout", type=_at_least(0), default=3600.0, metavar="SECONDS")
    execute.add_argument(
        "--max-retry-wait",
        type=_at_least(0),
        metavar="SECONDS",
        help="cap each retry policy's wait (default: none)",
    )
    execute.add_argument("--work-dir", type=Path, default=Path(".work/execute"), metavar="DIR")
    execute.add_argument("--pipeline-name", default="local-pipeline")


def add_callback_parser(verbs: Any) -> None:
    """Register the `callback` verb and its actions."""
    callback = verbs.add_parser("callback", help="answer a waiting Callback step of `execute`")
    actions = callback.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="tokens of the callback steps waiting for an answer")
    success = actions.add_parser("send-success", help="complete a callback step with its outputs")
    success.add_argument("token")
    success.add_argument("--output", type=_assignment, action="append", default=[], metavar="NAME=VALUE")
    failure = actions.add_parser("send-failure", help="fail a callback step")
    failure.add_argument("token")
    failure.add_argument("--reason", required=True)
    for parser in (listing, success, failure):
        parser.add_argument("--work-dir", type=Path, default=Path(".work/execute"))


def load_definition(path: Path) -> tuple[dict, int | None]:
    """The definition in the file and its MaxParallelExecutionSteps, if the file gives one."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ExecutionError(f"cannot read the pipeline definition {path}: {error}") from None
    if not isinstance(document, dict):
        raise ExecutionError(f"{path} is not a pipeline definition (a JSON {type(document).__name__})")
    parallelism = (document.get("ParallelismConfiguration") or {}).get("MaxParallelExecutionSteps")
    if "PipelineDefinition" in document:
        try:
            document = json.loads(document["PipelineDefinition"])
        except (TypeError, json.JSONDecodeError) as error:
            raise ExecutionError(f"{path}: PipelineDefinition is not a JSON string: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Steps"), list):
        raise ExecutionError(f"{path} is not a pipeline definition (no Steps list)")
    if parallelism is not None and (not isinstance(parallelism, int) or parallelism < 1):
        raise ExecutionError(f"{path}: MaxParallelExecutionSteps {parallelism!r} is not an integer >= 1")
    return document, parallelism


def stage_objects(store: ObjectStore, objects: list[tuple[str, str]]) -> dict[str, Path]:
    """Copy each local file or folder to its S3 URI in the store; returns URI -> local path."""
    origins = {}
    for uri, local in objects:
        path = Path(local).expanduser().resolve()
        if not path.exists():
            raise ExecutionError(f"--object {uri}={local}: {path} does not exist")
        store.upload(path, uri.rstrip("/") + "/" if path.is_dir() else uri)
        origins[uri] = path
    return origins


def build_executor(
    args: argparse.Namespace, stop: StopController
) -> tuple[DefinitionExecutor, dict[str, str]]:
    """Everything checked and prepared before the first step runs."""
    definition, parallelism = load_definition(args.definition)
    work_dir = Path(args.work_dir).resolve()
    store = ObjectStore(work_dir / STORE_FOLDER)
    graph = flatten_steps(definition["Steps"])
    steps = [name.strip() for name in (args.steps or "").split(",") if name.strip()]
    selection = load_selection(work_dir, steps, args.source_execution, graph) if steps else None
    options = ExecuteOptions(
        lambda_map=load_lambda_map(args.lambda_map) if args.lambda_map else {},
        serving=dict(args.serve),
        callback_timeout=args.callback_timeout,
        max_retry_wait=args.max_retry_wait,
        selection=selection,
    )
    max_parallel = args.max_parallel or parallelism or DEFAULT_PARALLEL
    executor = DefinitionExecutor(
        definition,
        work_dir,
        store,
        LocalRegistry(work_dir / REGISTRY_FILE),
        options,
        max_parallel=max_parallel,
        pipeline_name=args.pipeline_name,
        stop=stop,
        origins=stage_objects(store, args.object),
    )
    return executor, dict(args.param)


def summary_lines(result: ExecutionResult) -> list[str]:
    """One aligned line per step, then the execution's outcome and record."""
    width = max([len(step.name) for step in result.steps] + [4])
    lines = ["", f"{'step':<{width}}  {'type':<13} {'status':<12} {'seconds':>8}  attempts"]
    for step in result.steps:
        attempts = step.properties.get("AttemptCount", 1 if step.status != "NotExecuted" else 0)
        lines.append(
            f"{step.name:<{width}}  {step.type:<13} {step.status:<12} {step.seconds:>8.1f}  {attempts}"
        )
    outcome = f" - {result.failure_reason}" if result.failure_reason else ""
    lines += [f"execution {result.execution_id}: {result.status}{outcome}", f"record: {result.record_path}"]
    return lines


def execute_exit_code(result: ExecutionResult, signal_code: int) -> int:
    """0 succeeded, 3 failed only in a Fail step, 1 any other failure, the signal's code when stopped."""
    if result.status == "Stopped":
        return signal_code
    if result.status == "Succeeded":
        return 0
    failed = {record.type for record in result.steps if record.status == "Failed"}
    return FAIL_STEP_ONLY if failed == {"Fail"} else 1


def run_execute(args: argparse.Namespace) -> int:
    """The `execute` verb."""
    stop = StopController()
    try:
        executor, parameters = build_executor(args, stop)
        restore = install_handlers(stop)
        try:
            result = publish_execution(executor.start(parameters), executor.store, executor.tracker)
        finally:
            restore()
    except (ExecutionError, ObjectStoreError) as error:
        print(f"execute: {error}", file=sys.stderr)
        return 2
    for line in summary_lines(result):
        print(line)
    return execute_exit_code(result, stop.exit_code)


def run_callback_command(args: argparse.Namespace) -> int:
    """The `callback` verb: list waiting tokens, or answer one."""
    try:
        if args.action == "list":
            for token in pending_tokens(args.work_dir):
                print(token)
            return 0
        success = args.action == "send-success"
        answer = success_answer(args.output) if success else failure_answer(args.reason)
        path = send(args.work_dir, args.token, answer)
    except CallbackError as error:
        print(f"callback: {error}", file=sys.stderr)
        return 2
    print(f"callback {args.token}: {answer['status']} ({path})")
    return 0
