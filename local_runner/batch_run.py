"""The batch-scoring pipeline, run locally: the same definition CDK deploys, executed by the runner.

`python -m local_runner batch [--fleet DIR] [--model PATH] [--units N] [--threshold-cycles N]` lays out
in the local object store what exists on AWS: the code bundle, the fleet's recent cycles under the data
bucket's `fleet/` prefix (the files of `--fleet`, else a synthetic fleet of `--units` in-service engines
when the prefix is empty) and the model to score with: the champion `registry approve` published, or the
model folder or `model.tar.gz` given by `--model`, staged at its own prefix and passed as `ChampionUri`
(the registry's champion is never overwritten). `--model` and `--fleet` take what `registry show` prints,
as the monitor commands do: a registered version number (`--model` only: its model archive), an `s3://`
URI of the local object store or a local path; one that names nothing exits 2 before anything is written.
It renders the batch definition with
`render_batch_definition`, executes it with `PipelineExecutor`, and prints where the fleet table and the
ranked list are and the ten engines to inspect first. `run_batch(args)` returns 0 when the execution
succeeded, 2 for an input that names nothing readable, 1 otherwise.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from local_runner.champion import CHAMPION_FILE, MODEL_FILE
from local_runner.container_code import use_container_code
from local_runner.errors import RunnerError
from local_runner.execution import ExecutionError, ExecutionResult, PipelineExecutor
from local_runner.jobs import pack_model
from local_runner.main_job import prepare_workspace
from local_runner.monitor_cli import USAGE, MonitorInputError, registered_package, resolve_location
from local_runner.object_store import ObjectStore
from local_runner.report_publish import publish_execution
from pipeline_steps import batch_names as bnames
from pipeline_steps.batch_config import BatchPipelineConfig, local_batch_config
from pipeline_steps.batch_pipeline import render_batch_definition

DEFAULT_WORK_DIR = Path(".work")
SYNTHETIC_FILE = "synthetic_fleet.txt"
TOP = 10


class BatchRunError(RunnerError, RuntimeError):
    """The batch pipeline cannot start (no model to score with, missing folder)."""


@dataclass(frozen=True)
class BatchRunOptions:
    """What `batch` scores and with which model; paths already resolved."""

    work_dir: Path = DEFAULT_WORK_DIR
    fleet: Path | None = None
    model: Path | None = None
    model_version: int | None = None  # the registered version `model` is the archive of, if any
    units: int = 50
    seed: int = 0
    parameters: dict[str, object] = field(default_factory=dict)


def given_model_uri(config: BatchPipelineConfig) -> str:
    """Where a `--model` is staged: beside the champion, never over it."""
    return f"s3://{config.artifact_bucket}/batch-model/"


def write_synthetic_fleet(path: Path, units: int, seed: int) -> Path:
    """`units` in-service engines (cut trajectories of the synthetic generator) in the C-MAPSS layout."""
    use_container_code()
    from rul.data import write_trajectories
    from rul.synthetic import SyntheticSpec, generate

    write_trajectories(generate(SyntheticSpec(n_train_units=1, n_test_units=units, seed=seed)).test, path)
    return path


def stage_fleet(store: ObjectStore, config: BatchPipelineConfig, options: BatchRunOptions) -> str:
    """Put `--fleet` at the fleet prefix, or a synthetic fleet when the prefix is empty; what was done."""
    if options.fleet is not None:
        fleet = Path(options.fleet)
        if not fleet.exists():
            raise BatchRunError(f"--fleet {options.fleet} does not exist")
        if fleet.resolve() == store.path_for(config.fleet_uri).resolve():
            return f"fleet already under {config.fleet_uri}"
        with tempfile.TemporaryDirectory(prefix="fleet-") as scratch:
            # Copied aside first: the fleet given may lie under the prefix that is about to be emptied.
            copy = Path(scratch) / fleet.name
            if fleet.is_dir():
                shutil.copytree(fleet, copy)
            else:
                shutil.copy(fleet, copy)
            store.delete(config.fleet_uri)
            store.upload(copy, config.fleet_uri + ("" if fleet.is_dir() else fleet.name))
        return f"fleet from {options.fleet}"
    if store.objects(config.fleet_uri):
        return f"fleet already under {config.fleet_uri}"
    with tempfile.TemporaryDirectory(prefix="fleet-") as scratch:
        path = write_synthetic_fleet(Path(scratch) / SYNTHETIC_FILE, options.units, options.seed)
        store.upload(path, config.fleet_uri + SYNTHETIC_FILE)
    return f"synthetic fleet of {options.units} engines (seed {options.seed})"


def stage_model(
    store: ObjectStore, config: BatchPipelineConfig, model: Path | None, version: int | None = None
) -> str:
    """The ChampionUri to score with: the given model (of `version`, if registered), staged; else the
    champion, which must hold a model."""
    if model is None:
        if not store.objects(config.champion_uri + MODEL_FILE):
            raise BatchRunError(
                f"no champion model under {config.champion_uri}: approve a model version "
                "(registry approve N) or pass --model"
            )
        return config.champion_uri
    model = Path(model)
    if not model.exists():
        raise BatchRunError(f"--model {model} does not exist")
    uri = given_model_uri(config)
    with tempfile.TemporaryDirectory(prefix="batch-model-") as scratch:
        # Packed or copied aside before the staging prefix is emptied: the model may have been given there.
        archive = Path(scratch) / MODEL_FILE
        if model.is_file():
            shutil.copy(model, archive)
        else:
            pack_model(model, archive)
        store.delete(uri)
        store.upload(archive, uri + MODEL_FILE)
    label = version if version is not None else f"file:{model.name}"
    store.put_text(uri + CHAMPION_FILE, json.dumps({"version": label}))
    return uri


def run_batch_pipeline(
    options: BatchRunOptions, echo: Callable[[str], None] = print
) -> tuple[BatchPipelineConfig, ObjectStore, ExecutionResult]:
    """Stage the fleet and the model, render the batch definition and execute it; the published result."""
    workspace = prepare_workspace(Path(options.work_dir), render=False)
    config = local_batch_config(workspace.config)
    echo(stage_fleet(workspace.store, config, options))
    parameters = {
        bnames.CHAMPION_URI: stage_model(workspace.store, config, options.model, options.model_version)
    }
    definition = render_batch_definition(config)
    path = Path(options.work_dir) / "batch-definition.json"
    path.write_text(definition)
    echo(f"batch definition rendered to {path}; running it locally")
    executor = PipelineExecutor(
        json.loads(definition),
        Path(options.work_dir),
        workspace.store,
        workspace.registry,
        echo,
        pipeline_name=config.pipeline_name,
    )
    result = executor.start({**parameters, **options.parameters})
    return config, workspace.store, publish_execution(result, workspace.store, echo=echo)


def output_uri(result: ExecutionResult) -> str | None:
    """The prefix of the scoring step's output, None if the step has none."""
    outputs = result.step(bnames.SCORE_STEP).properties.get("ProcessingOutputConfig", {}).get("Outputs", {})
    scores = outputs.get(bnames.SCORES_OUTPUT)
    return None if scores is None else scores["S3Output"]["S3Uri"].rstrip("/") + "/"


def batch_summary(store: ObjectStore, result: ExecutionResult, top: int = TOP) -> list[str]:
    """The closing lines: outcome, output files, fleet summary and the `top` engines to inspect."""
    lines = [f"execution {result.execution_id}: {result.status}"]
    if result.failure_reason:
        return [lines[0] + f" - {result.failure_reason}"]
    prefix = output_uri(result)
    assert prefix is not None  # a succeeded batch execution has its scores output
    summary = json.loads(store.read_text(prefix + bnames.SUMMARY_FILE))
    lines.append(f"fleet table:      {store.path_for(prefix + bnames.PREDICTIONS_FILE)}")
    lines.append(f"maintenance list: {store.path_for(prefix + bnames.MAINTENANCE_FILE)}")
    lines.append(
        f"{summary['units']} engines scored by model version {summary['model_version']} "
        f"(data version {summary['data_version']}); {summary['due_units']} due within "
        f"{summary['threshold_cycles']} cycles, ranked by {summary['ranked_by']}"
    )
    ranked = pd.read_csv(io.StringIO(store.read_text(prefix + bnames.MAINTENANCE_FILE)), nrows=top)
    lines.append(f"top {min(top, len(ranked))} engines to inspect:")
    lines += ranked.to_string(index=False, float_format=lambda value: f"{value:.1f}").splitlines()
    return lines


def resolve_model(text: str, work_dir: Path) -> tuple[Path, int | None]:
    """`--model` as (model folder or archive, registered version or None): a version number of the local
    registry, an s3:// URI of the local store or a local path; `MonitorInputError` if it names nothing."""
    if text.isdigit():
        package = registered_package(int(text), work_dir, "--model")
        return resolve_location(package.model_data_url, "model", work_dir), package.version
    return resolve_location(text, "model", work_dir), None


def positive_int(text: str) -> int:
    """An integer >= 1, for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_batch_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `batch` verb; sets `handler=run_batch`."""
    batch = subparsers.add_parser("batch", help="score and rank the whole fleet with the batch pipeline")
    batch.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="default: .work")
    batch.add_argument("--fleet", default=None, help="folder or file of the fleet's cycles")
    batch.add_argument(
        "--model",
        default=None,
        help="a registered version, an s3:// URI of the local store, or a model folder or model.tar.gz "
        "(default: the champion)",
    )
    batch.add_argument(
        "--units", type=positive_int, default=50, help="engines of the synthetic fleet (no --fleet)"
    )
    batch.add_argument("--seed", type=int, default=0, help="seed of the synthetic fleet")
    batch.add_argument("--threshold-cycles", type=int, default=None, help="flag engines due within N cycles")
    batch.set_defaults(handler=run_batch)
    return batch


def run_batch(args: argparse.Namespace) -> int:
    """`batch`: the batch definition through the runner; 0 if the execution succeeded, 2 for a bad input."""
    work_dir = Path(args.work_dir)
    try:
        fleet = None if args.fleet is None else resolve_location(args.fleet, "fleet", work_dir)
        model, version = (None, None) if args.model is None else resolve_model(args.model, work_dir)
    except MonitorInputError as error:
        print(f"batch: {error}", file=sys.stderr)
        return USAGE
    parameters = {}
    if args.threshold_cycles is not None:
        parameters[bnames.MAINTENANCE_THRESHOLD_CYCLES] = args.threshold_cycles
    options = BatchRunOptions(
        work_dir=work_dir,
        fleet=fleet,
        model=model,
        model_version=version,
        units=args.units,
        seed=args.seed,
        parameters=parameters,
    )
    try:
        _, store, result = run_batch_pipeline(options)
    except (BatchRunError, ExecutionError) as error:
        print(f"batch: {error}", file=sys.stderr)
        return 1
    for line in batch_summary(store, result):
        print(line)
    return 0 if result.status == "Succeeded" else 1
