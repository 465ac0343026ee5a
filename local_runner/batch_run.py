"""The batch-scoring pipeline, run locally: the same definition CDK deploys, executed by the runner.

`python -m local_runner batch [--fleet DIR] [--model PATH] [--units N] [--threshold-cycles N]` lays out
in the local object store what exists on AWS: the code bundle, the fleet's recent cycles under the data
bucket's `fleet/` prefix (the files of `--fleet`, else a synthetic fleet of `--units` in-service engines
when the prefix is empty) and the model to score with: the champion `registry approve` published, or the
model folder or `model.tar.gz` given by `--model`, staged at its own prefix and passed as `ChampionUri`
(the registry's champion is never overwritten). It renders the batch definition with
`render_batch_definition`, executes it with `PipelineExecutor`, and prints where the fleet table and the
ranked list are and the ten engines to inspect first. `run_batch(args)` returns 0 when the execution
succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from local_runner.champion import CHAMPION_FILE, MODEL_FILE
from local_runner.execution import CONTAINERS_DIR, ExecutionError, ExecutionResult, PipelineExecutor
from local_runner.jobs import pack_model
from local_runner.main_job import prepare_workspace
from local_runner.object_store import ObjectStore
from pipeline_steps import batch_names as bnames
from pipeline_steps.batch_config import BatchPipelineConfig, local_batch_config
from pipeline_steps.batch_pipeline import render_batch_definition

DEFAULT_WORK_DIR = Path(".work")
SYNTHETIC_FILE = "synthetic_fleet.txt"
TOP = 10


class BatchRunError(RuntimeError):
    """The batch pipeline cannot start (no model to score with, missing folder)."""


@dataclass(frozen=True)
class BatchRunOptions:
    work_dir: Path = DEFAULT_WORK_DIR
    fleet: Path | None = None
    model: Path | None = None
    units: int = 50
    seed: int = 0
    parameters: dict[str, object] = field(default_factory=dict)


def given_model_uri(config: BatchPipelineConfig) -> str:
    """Where a `--model` is staged: beside the champion, never over it."""
    return f"s3://{config.artifact_bucket}/batch-model/"


def write_synthetic_fleet(path: Path, units: int, seed: int) -> Path:
    """`units` in-service engines (cut trajectories of the synthetic generator) in the C-MAPSS layout."""
    # The runner runs the container scripts but does not import them at module level; the generator is theirs.
    if str(CONTAINERS_DIR) not in sys.path:
        sys.path.append(str(CONTAINERS_DIR))
    from rul.data import write_trajectories
    from rul.synthetic import SyntheticSpec, generate

    write_trajectories(generate(SyntheticSpec(n_train_units=1, n_test_units=units, seed=seed)).test, path)
    return path


def stage_fleet(store: ObjectStore, config: BatchPipelineConfig, options: BatchRunOptions) -> str:
    """Put `--fleet` at the fleet prefix, or a synthetic fleet when the prefix is empty; what was done."""
    if options.fleet is not None:
        if not Path(options.fleet).exists():
            raise BatchRunError(f"--fleet {options.fleet} does not exist")
        store.delete(config.fleet_uri)
        store.upload(Path(options.fleet), config.fleet_uri)
        return f"fleet from {options.fleet}"
    if store.objects(config.fleet_uri):
        return f"fleet already under {config.fleet_uri}"
    with tempfile.TemporaryDirectory(prefix="fleet-") as scratch:
        path = write_synthetic_fleet(Path(scratch) / SYNTHETIC_FILE, options.units, options.seed)
        store.upload(path, config.fleet_uri + SYNTHETIC_FILE)
    return f"synthetic fleet of {options.units} engines (seed {options.seed})"


def stage_model(store: ObjectStore, config: BatchPipelineConfig, model: Path | None) -> str:
    """The ChampionUri to score with: the given model, staged; else the champion, which must hold a model."""
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
    store.delete(uri)
    with tempfile.TemporaryDirectory(prefix="batch-model-") as scratch:
        archive = model if model.is_file() else pack_model(model, Path(scratch) / MODEL_FILE)
        store.upload(archive, uri + MODEL_FILE)
    store.put_text(uri + CHAMPION_FILE, json.dumps({"version": f"file:{model.name}"}))
    return uri


def run_batch_pipeline(
    options: BatchRunOptions, echo: Callable[[str], None] = print
) -> tuple[BatchPipelineConfig, ObjectStore, ExecutionResult]:
    workspace = prepare_workspace(Path(options.work_dir), render=False)
    config = local_batch_config(workspace.config)
    echo(stage_fleet(workspace.store, config, options))
    parameters = {bnames.CHAMPION_URI: stage_model(workspace.store, config, options.model)}
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
    return config, workspace.store, executor.start({**parameters, **options.parameters})


def output_uri(result: ExecutionResult) -> str | None:
    outputs = result.step(bnames.SCORE_STEP).properties.get("ProcessingOutputConfig", {}).get("Outputs", {})
    scores = outputs.get(bnames.SCORES_OUTPUT)
    return None if scores is None else scores["S3Output"]["S3Uri"].rstrip("/") + "/"


def batch_summary(store: ObjectStore, result: ExecutionResult, top: int = TOP) -> list[str]:
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


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_batch_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `batch` verb; sets `handler=run_batch`."""
    batch = subparsers.add_parser("batch", help="score and rank the whole fleet with the batch pipeline")
    batch.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="default: .work")
    batch.add_argument("--fleet", type=Path, default=None, help="folder or file of the fleet's cycles")
    batch.add_argument(
        "--model", type=Path, default=None, help="model folder or model.tar.gz (default: champion)"
    )
    batch.add_argument(
        "--units", type=positive_int, default=50, help="engines of the synthetic fleet (no --fleet)"
    )
    batch.add_argument("--seed", type=int, default=0, help="seed of the synthetic fleet")
    batch.add_argument("--threshold-cycles", type=int, default=None, help="flag engines due within N cycles")
    batch.set_defaults(handler=run_batch)
    return batch


def run_batch(args: argparse.Namespace) -> int:
    """`batch`: the batch definition through the runner; 0 if the execution succeeded."""
    parameters = {}
    if args.threshold_cycles is not None:
        parameters[bnames.MAINTENANCE_THRESHOLD_CYCLES] = args.threshold_cycles
    options = BatchRunOptions(
        work_dir=Path(args.work_dir),
        fleet=args.fleet,
        model=args.model,
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
