"""The main job: render the pipeline definition and execute it locally, end to end.

What `cdk deploy` puts in place on AWS is laid out in the local object store first: the container code
(the deterministic source bundle and its unpacked files at the code URI), the raw C-MAPSS training file
at the input data URI, the champion prefix and the model package group. Then the very definition JSON
that CDK deploys runs through `PipelineExecutor`. Data comes from `data_dir` (a folder holding
train_<subset>.txt, e.g. ../shared/data/cmapss) or, when none is given, from the synthetic generator.
The model family is part of the rendered definition (each family has its own search space), so a
`ModelFamily` among the run parameters re-renders with that family instead of being passed as a
parameter; `config_overrides` sets other render-time fields (e.g. static hyperparameters for a tiny run).
With `tracking` on (the default) the execution is tracked in MLflow (`local_runner.tracking`): in the
store `MLFLOW_TRACKING_URI` names, else in `<work>/mlflow/mlflow.db`. Once the executor returns, the main
job writes the execution's HTML report and closes its tracked run (`local_runner.report_publish`).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from local_runner.champion import ensure_champion_prefix
from local_runner.container_code import CONTAINERS_DIR
from local_runner.data_version import with_data_versions
from local_runner.errors import RunnerError
from local_runner.execution import PipelineExecutor
from local_runner.live_view import shown
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from local_runner.report_publish import publish_execution
from local_runner.results import ExecutionResult
from local_runner.signals import StopController
from local_runner.tracking import make_tracker
from pipeline_steps import names
from pipeline_steps.code import build_source_bundle, code_uri_for, library_uri, source_dir_uri
from pipeline_steps.config import PipelineConfig, local_config


class MainJobError(RunnerError, RuntimeError):
    """The main job could not start (missing data, bad option)."""


@dataclass(frozen=True)
class MainJobOptions:
    """What `python -m local_runner run` asks of the main job: folders, data, parameters, tracking."""

    work_dir: Path = Path(".work")
    data_dir: Path | None = None
    subset: str = "FD001"
    synthetic_units: int = 100
    seed: int = 0
    parameters: dict[str, object] = field(default_factory=dict)  # pipeline parameter overrides
    tracking: bool = True  # MLflow tracking of the execution, its steps and trials
    config_overrides: dict[str, object] = field(default_factory=dict)  # render-time PipelineConfig fields


@dataclass
class Workspace:
    """The local stand-ins of what is deployed: object store, registry, rendered definition."""

    config: PipelineConfig
    store: ObjectStore
    registry: LocalRegistry
    definition: dict
    definition_path: Path


def prepare_data(options: MainJobOptions, echo: Callable[[str], None] = print) -> Path:
    """The train_<subset>.txt to use: the given folder's, or a freshly generated synthetic one (whose folder
    also holds test_<subset>.txt and RUL_<subset>.txt, so the official protocol evaluates)."""
    if options.data_dir is not None:
        path = Path(options.data_dir) / f"train_{options.subset}.txt"
        if not path.is_file():
            raise MainJobError(f"{path} not found (the data folder must hold train_{options.subset}.txt)")
        pair = [path.with_name(f"{kind}_{options.subset}.txt") for kind in ("test", "RUL")]
        if pair[0].is_file() != pair[1].is_file():
            present, absent = pair if pair[0].is_file() else pair[::-1]
            raise MainJobError(f"{present} has no {absent.name} beside it: test and RUL files come as a pair")
        return path
    target = Path(options.work_dir).resolve() / "data" / "synthetic"
    echo(f"generating synthetic data: {options.synthetic_units} units, seed {options.seed}: {shown(target)}")
    command = [sys.executable, str(CONTAINERS_DIR / "rul" / "synthetic.py"), "--output-dir", str(target)]
    command += [
        "--name",
        options.subset,
        "--train-units",
        str(options.synthetic_units),
        "--seed",
        str(options.seed),
    ]
    subprocess.run(command, check=True, cwd=CONTAINERS_DIR, stdout=subprocess.DEVNULL)
    return target / f"train_{options.subset}.txt"


def publish_code(store: ObjectStore, work_dir: Path, bucket: str) -> str:
    """Build the source bundle and lay it out under its code URI in `bucket`, as the CDK app deploys it.

    The unpacked files go first and the tarball last, each file atomically: a tarball in place means its
    version is complete (the version is the content hash), so a second publication of it writes nothing.
    """
    bundle = build_source_bundle(CONTAINERS_DIR, work_dir / "build")
    code_uri = code_uri_for(bucket, bundle.version)
    published = store.path_for(source_dir_uri(code_uri))
    payload = bundle.tarball.read_bytes()
    if published.is_file() and published.read_bytes() == payload:
        return code_uri
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(fileobj=io.BytesIO(payload)) as archive:
        archive.extractall(scratch, filter="data")
        store.upload(Path(scratch), library_uri(code_uri))
    store.upload(bundle.tarball, source_dir_uri(code_uri))
    return code_uri


def prepare_workspace(
    work_dir: Path, data_file: Path | None = None, render: bool = True, **config_overrides: Any
) -> Workspace:
    """The workspace of `local_config(**config_overrides)` (see `open_workspace`)."""
    return open_workspace(work_dir, local_config(**config_overrides), data_file, render)


def open_workspace(
    work_dir: Path, config: PipelineConfig, data_file: Path | None = None, render: bool = True
) -> Workspace:
    """Object store, registry and (if `render`) the definition of `config`, its code published in its
    bucket; uploads the data file (train_<subset>.txt) and, when they lie beside it, the official
    test_<subset>.txt and RUL_<subset>.txt."""
    work_dir = Path(work_dir)
    store = ObjectStore(work_dir / "s3")
    config = replace(config, code_uri=publish_code(store, work_dir, config.artifact_bucket))
    if data_file is not None:
        store.delete(config.data_uri)
        subset = data_file.name.removeprefix("train_")
        official = [data_file.with_name(f"{kind}_{subset}") for kind in ("test", "RUL")]
        for path in [data_file, *(path for path in official if data_file.name != subset and path.is_file())]:
            store.upload(path, config.data_uri.rstrip("/") + "/" + path.name)
    ensure_champion_prefix(store, config.champion_uri)
    registry = LocalRegistry(work_dir / "registry.sqlite", region=config.region)
    registry.create_group(config.model_package_group_name)
    definition_path = work_dir / "definition.json"
    if not render:
        return Workspace(config, store, registry, {}, definition_path)
    from pipeline_steps.render import render_definition  # the SageMaker SDK, imported only to render

    definition_text = render_definition(config)
    definition_path.write_text(definition_text)
    return Workspace(config, store, registry, json.loads(definition_text), definition_path)


def uploaded_origins(data_file: Path, data_uri: str) -> dict[str, Path]:
    """The user's files behind the data objects: train_<subset>.txt and the test/RUL files beside it."""
    subset = data_file.name.removeprefix("train_")
    files = [data_file, *(data_file.with_name(f"{kind}_{subset}") for kind in ("test", "RUL"))]
    return {f"{data_uri.rstrip('/')}/{path.name}": path.resolve() for path in files if path.is_file()}


def run_main_job(
    options: MainJobOptions, echo: Callable[[str], None] = print, stop: StopController | None = None
) -> tuple[Workspace, ExecutionResult]:
    """Prepare the workspace and execute the definition; `stop` ends it early (SIGINT/SIGTERM)."""
    work_dir = Path(options.work_dir)
    parameters = dict(options.parameters)
    overrides: dict[str, Any] = dict(options.config_overrides)
    if names.MODEL_FAMILY in parameters:
        overrides["model_family"] = str(parameters.pop(names.MODEL_FAMILY))
    config = local_config(**overrides)
    # Made before the workspace: MLflow's import and connection run on a thread while the data and
    # definition are prepared.
    tracker = make_tracker(work_dir, config.pipeline_name, options.tracking, echo=echo)
    data_file = prepare_data(options, echo)
    workspace = open_workspace(work_dir, config, data_file)
    echo(f"definition rendered to {shown(workspace.definition_path)}; running it locally")
    executor = PipelineExecutor(
        workspace.definition,
        work_dir,
        workspace.store,
        workspace.registry,
        echo,
        pipeline_name=workspace.config.pipeline_name,
        tracker=tracker,
        stop=stop,
        origins=uploaded_origins(data_file, workspace.config.data_uri),
    )
    run_parameters = {names.SUBSET: options.subset, **parameters}
    # DataVersion and RegisteredDataVersion, as the start function passes them on AWS (user values win).
    run_parameters = with_data_versions(run_parameters, workspace.store, workspace.registry, workspace.config)
    result = executor.start(run_parameters)
    return workspace, publish_execution(result, workspace.store, tracker, echo)
