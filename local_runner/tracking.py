"""MLflow tracking of local pipeline executions: one parent run per execution, a nested run per step.

By default the store is SQLite under the work folder (`<work>/mlflow/mlflow.db`, artifacts in
`<work>/mlflow/artifacts`); `MLFLOW_TRACKING_URI` in the environment points the runner and its jobs at
another store instead. The experiment is named after the pipeline. Runs:

- the execution: pipeline parameters as params; the data version, the dataset input and the manifest once
  preprocessing has run; the test metrics, the execution record and the HTML report at the end;
- one nested run per step that started (type, status, seconds, cache hit, failure reason); the container
  jobs of a step log their own runs nested under it (the jobs get `MLFLOW_TRACKING_URI`,
  `MLFLOW_EXPERIMENT_NAME`, `MLFLOW_PARENT_RUN_ID`, `MLFLOW_RUN_NAME` and `MLFLOW_RUN_TAGS`, see
  `containers/rul/tracking.py`), so each tuning trial is a run under the tuning step's run; the tuning run
  gets the objective per trial and the best trial's run is tagged `best_trial`;
- a registered model version is mirrored into MLflow's model registry (model name = package group) with
  the package ARN, approval status, test metrics and data version as tags.

MLflow is imported and connected on a background thread started with the tracker, so the import overlaps
the runner's own preparation. Tracking failures are echoed once and switch tracking off; they never fail
an execution.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_runner.object_store import ObjectStore

if TYPE_CHECKING:
    from local_runner.execution import ExecutionResult, StepRecord
    from local_runner.registry import ModelPackage

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
PARENT_RUN_ENV = "MLFLOW_PARENT_RUN_ID"
RUN_NAME_ENV = "MLFLOW_RUN_NAME"
RUN_TAGS_ENV = "MLFLOW_RUN_TAGS"
STORE_DIR = "mlflow"
CONNECT_TIMEOUT_SECONDS = 120.0


def default_tracking_uri(work_dir: Path) -> str:
    return f"sqlite:///{(Path(work_dir) / STORE_DIR / 'mlflow.db').resolve()}"


def artifact_root(work_dir: Path) -> str:
    return (Path(work_dir) / STORE_DIR / "artifacts").resolve().as_uri()


def resolve_tracking_uri(work_dir: Path, environ: Mapping[str, str]) -> str:
    """`MLFLOW_TRACKING_URI` when set, else the SQLite store of the work folder."""
    return environ.get(TRACKING_URI_ENV, "").strip() or default_tracking_uri(work_dir)


class ExecutionTracker:
    """Tracking switched off: every hook does nothing and jobs get no MLflow variables."""

    enabled = False
    tracking_uri = ""

    def start_execution(self, execution_id: str, pipeline_name: str, parameters: Mapping[str, Any]) -> None:
        pass

    def start_step(self, name: str, step_type: str) -> None:
        pass

    def job_environment(self, step_name: str, job_name: str) -> dict[str, str]:
        # Blank, not absent: a job must not pick up a MLFLOW_TRACKING_URI of the runner's environment.
        return {TRACKING_URI_ENV: ""}

    def finish_step(self, record: StepRecord, store: ObjectStore) -> None:
        pass

    def finish_tuning(self, step_name: str, properties: Mapping[str, Any]) -> None:
        pass

    def model_registered(self, package: ModelPackage, store: ObjectStore) -> None:
        pass

    def finish_execution(self, result: ExecutionResult, store: ObjectStore, report: Path | None) -> None:
        pass

    def links(self) -> dict[str, str]:
        return {}


class MlflowExecutionTracker(ExecutionTracker):
    """Tracking into an MLflow store; see the module docstring for what goes where."""

    enabled = True

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        artifact_location: str | None = None,
        echo: Callable[[str], None] = print,
    ):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.echo = echo
        self._artifact_location = artifact_location
        self._lock = threading.RLock()
        self._client = None
        self._experiment_id = ""
        self._failed = False
        self._execution_run = ""
        self._execution_id = ""
        self._step_runs: dict[str, str] = {}
        self._manifest_uri = ""  # where this execution's preprocess step (run or cached) put the manifest
        self._connect_error: BaseException | None = None
        self._connected = threading.Event()
        threading.Thread(target=self._connect, name="mlflow-connect", daemon=True).start()

    # -- connection and failure handling ------------------------------------------------------------------
    def _connect(self) -> None:
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=self.tracking_uri)
            experiment = client.get_experiment_by_name(self.experiment_name)
            self._experiment_id = (
                experiment.experiment_id
                if experiment
                else client.create_experiment(self.experiment_name, artifact_location=self._artifact_location)
            )
            self._client = client
        except Exception as error:
            self._connect_error = error
        finally:
            self._connected.set()

    def _ready(self) -> bool:
        if self._failed:
            return False
        if not self._connected.wait(CONNECT_TIMEOUT_SECONDS) or self._client is None:
            self._disable(f"cannot connect to {self.tracking_uri}: {self._connect_error!r}")
            return False
        return True

    def _disable(self, reason: str) -> None:
        if not self._failed:
            self._failed = True
            self.echo(f"mlflow: {reason}; tracking is off for the rest of this execution")

    def _guarded(self, action: Callable[[], None], what: str) -> None:
        with self._lock:
            if not self._ready():
                return
            try:
                action()
            except Exception as error:  # tracking is a side channel: report, switch off, go on
                self._disable(f"{what} failed: {type(error).__name__}: {error}")

    # -- hooks called by the executor ---------------------------------------------------------------------
    def start_execution(self, execution_id: str, pipeline_name: str, parameters: Mapping[str, Any]) -> None:
        def action() -> None:
            from mlflow.entities import Param

            run = self._client.create_run(
                self._experiment_id,
                run_name=execution_id,
                tags={
                    "pipeline.name": pipeline_name,
                    "pipeline.execution_id": execution_id,
                    "mlflow.source.type": "PROJECT",
                    "mlflow.source.name": "local_runner",
                },
            )
            self._execution_run, self._execution_id = run.info.run_id, execution_id
            params = [Param(name, str(value)) for name, value in sorted(parameters.items())]
            self._client.log_batch(self._execution_run, params=params)

        self._guarded(action, "starting the execution run")

    def start_step(self, name: str, step_type: str) -> None:
        def action() -> None:
            run = self._client.create_run(
                self._experiment_id,
                run_name=name,
                tags={
                    "mlflow.parentRunId": self._execution_run,
                    "step.name": name,
                    "step.type": step_type,
                    "pipeline.execution_id": self._execution_id,
                },
            )
            self._step_runs[name] = run.info.run_id

        if self._execution_run:
            self._guarded(action, f"starting the run of step {name}")

    def job_environment(self, step_name: str, job_name: str) -> dict[str, str]:
        parent = self._step_runs.get(step_name)
        if self._failed or not parent:
            return {TRACKING_URI_ENV: ""}
        tags = {"step.name": step_name, "job.name": job_name, "pipeline.execution_id": self._execution_id}
        return {
            TRACKING_URI_ENV: self.tracking_uri,
            EXPERIMENT_ENV: self.experiment_name,
            PARENT_RUN_ENV: parent,
            RUN_NAME_ENV: job_name,
            RUN_TAGS_ENV: json.dumps(tags),
        }

    def finish_step(self, record: StepRecord, store: ObjectStore) -> None:
        run_id = self._step_runs.get(record.name)
        if not run_id:
            return

        def action() -> None:
            from mlflow.entities import Metric, RunTag

            tags = {"step.status": record.status, "step.cache_hit": str(record.cache_hit).lower()}
            if record.failure_reason:
                tags["step.failure_reason"] = record.failure_reason[:5000]
            metrics = [
                Metric("seconds", record.seconds, _now_ms(), 0),
                Metric("job_seconds", record.job_seconds, _now_ms(), 0),
            ]
            self._client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
            self._client.set_terminated(run_id, "FAILED" if record.status == "Failed" else "FINISHED")
            manifest_output = record.properties.get("ProcessingOutputConfig", {}).get("Outputs", {})
            if "manifest" in manifest_output and record.status == "Succeeded":
                self._log_manifest(manifest_output["manifest"]["S3Output"]["S3Uri"], store)

        self._guarded(action, f"finishing the run of step {record.name}")

    def _log_manifest(self, uri: str, store: ObjectStore) -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        from local_runner.report import read_manifest

        manifest = read_manifest(store, uri)
        if manifest is None:
            return
        self._manifest_uri = uri
        self._client.set_tag(self._execution_run, "data.version", manifest["version"])
        self._client.set_tag(self._execution_run, "data.manifest_uri", uri)
        self._client.log_dict(self._execution_run, manifest, "data/manifest.json")
        profile = json.dumps({"rows": manifest["rows"], "units": manifest["units"]})
        dataset = Dataset(
            f"cmapss-{manifest['subset']}",
            manifest["version"],
            "s3",
            json.dumps({"uri": uri}),
            profile=profile,
        )
        self._client.log_inputs(
            self._execution_run, [DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])]
        )

    def finish_tuning(self, step_name: str, properties: Mapping[str, Any]) -> None:
        run_id = self._step_runs.get(step_name)
        if not run_id:
            return

        def action() -> None:
            from mlflow.entities import Metric

            summaries = properties["TrainingJobSummaries"]
            best = properties["BestTrainingJob"]
            metrics = []
            for summary in summaries:
                objective = summary["FinalHyperParameterTuningJobObjectiveMetric"]
                number = int(summary["TrainingJobName"].rsplit("-", 1)[-1])
                if objective:
                    metrics.append(Metric("trial_objective", objective["Value"], _now_ms(), number))
            objective = best["FinalHyperParameterTuningJobObjectiveMetric"]
            metrics.append(Metric("best_objective", objective["Value"], _now_ms(), 0))
            self._client.log_batch(run_id, metrics=metrics)
            self._client.set_tag(run_id, "tuning.best_job", best["TrainingJobName"])
            self._client.set_tag(run_id, "tuning.objective_metric", objective["MetricName"])
            trial_runs = self._client.search_runs(
                [self._experiment_id], f"tags.mlflow.parentRunId = '{run_id}'", max_results=1000
            )
            for trial in trial_runs:
                if trial.info.run_name == best["TrainingJobName"]:
                    self._client.set_tag(trial.info.run_id, "best_trial", "true")

        self._guarded(action, f"recording the trials of {step_name}")

    def model_registered(self, package: ModelPackage, store: ObjectStore) -> None:
        def action() -> None:
            from local_runner.report import read_manifest

            tags = {
                "sagemaker.model_package_arn": package.arn,
                "sagemaker.approval_status": package.approval_status,
                "pipeline.execution_id": package.execution_id or "",
            }
            statistics = ((package.metrics or {}).get("ModelQuality", {}).get("Statistics", {}) or {}).get(
                "S3Uri"
            )
            if statistics and store.path_for(statistics).is_file():
                evaluation = json.loads(store.read_text(statistics))
                for name, entry in evaluation["regression_metrics"].items():
                    tags[f"metric.test_{name}"] = f"{entry['value']:.4f}"
            manifest_uri = (package.customer_metadata or {}).get("DataManifestUri", "")
            # The metadata names this execution's prefix; a cached preprocess step left it elsewhere.
            for uri in dict.fromkeys(u for u in (manifest_uri, self._manifest_uri) if u):
                manifest = read_manifest(store, uri)
                if manifest:
                    tags.update({"data.manifest_uri": uri, "data.version": manifest["version"]})
                    break
            if not self._client.search_registered_models(f"name = '{package.group}'"):
                self._client.create_registered_model(
                    package.group, description="Mirror of the SageMaker model package group"
                )
            version = self._client.create_model_version(
                package.group,
                package.model_data_url,
                run_id=self._execution_run or None,
                tags=tags,
                description=f"SageMaker model package {package.arn}",
            )
            self.echo(f"mlflow: registered model {package.group} version {version.version}")

        self._guarded(action, "mirroring the registered model")

    def finish_execution(self, result: ExecutionResult, store: ObjectStore, report: Path | None) -> None:
        if not self._execution_run:
            return

        def action() -> None:
            from mlflow.entities import Metric

            from local_runner.report import read_evaluation

            evaluation = read_evaluation(result, store)
            metrics = [
                Metric("seconds", result.seconds, _now_ms(), 0),
                Metric("job_seconds", result.job_seconds, _now_ms(), 0),
            ]
            if evaluation:
                metrics += [
                    Metric(f"test_{name}", entry["value"], _now_ms(), 0)
                    for name, entry in evaluation["regression_metrics"].items()
                ]
                self._client.set_tag(self._execution_run, "gate.passed", str(evaluation["gate"]["passed"]))
            self._client.log_batch(self._execution_run, metrics=metrics)
            if result.failure_reason:
                self._client.set_tag(self._execution_run, "failure_reason", result.failure_reason[:5000])
            self._client.log_artifact(self._execution_run, str(result.record_path))
            if report is not None and report.is_file():
                self._client.log_artifact(self._execution_run, str(report))
            status = "FINISHED" if result.status == "Succeeded" else "FAILED"
            self._client.set_terminated(self._execution_run, status)

        self._guarded(action, "finishing the execution run")

    def links(self) -> dict[str, str]:
        if not self._execution_run:
            return {}
        return {
            "MLflow tracking URI": self.tracking_uri,
            "MLflow experiment": self.experiment_name,
            "MLflow run": self._execution_run,
        }


def _now_ms() -> int:
    return int(time.time() * 1000)


def make_tracker(
    work_dir: Path,
    experiment_name: str,
    enabled: bool = True,
    environ: Mapping[str, str] | None = None,
    echo: Callable[[str], None] = print,
) -> ExecutionTracker:
    """The runner's tracker: off, or MLflow at `MLFLOW_TRACKING_URI` / the work folder's SQLite store."""
    if not enabled:
        return ExecutionTracker()
    uri = resolve_tracking_uri(work_dir, os.environ if environ is None else environ)
    location = artifact_root(work_dir) if uri == default_tracking_uri(work_dir) else None
    if location:
        (Path(work_dir) / STORE_DIR).mkdir(parents=True, exist_ok=True)
    return MlflowExecutionTracker(uri, experiment_name, location, echo)


# -- the `ui` verb ------------------------------------------------------------------------------------------
def add_ui_parser(verbs: argparse._SubParsersAction) -> None:
    ui = verbs.add_parser("ui", help="start the MLflow UI on localhost for the tracked executions")
    ui.add_argument("--work-dir", type=Path, default=Path(".work"))
    ui.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: localhost only)")
    ui.add_argument("--port", type=int, default=5000)


def ui_command(work_dir: Path, host: str, port: int, environ: Mapping[str, str]) -> list[str]:
    """The `mlflow ui` command line for the store the runner tracks into."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        resolve_tracking_uri(work_dir, environ),
        "--default-artifact-root",
        artifact_root(work_dir),
        "--host",
        host,
        "--port",
        str(port),
    ]


def run_ui(args: argparse.Namespace) -> int:
    uri = resolve_tracking_uri(args.work_dir, os.environ)
    if (
        uri == default_tracking_uri(args.work_dir)
        and not (Path(args.work_dir) / STORE_DIR / "mlflow.db").is_file()
    ):
        print(f"no MLflow store in {args.work_dir}: run `python -m local_runner run` first", file=sys.stderr)
        return 1
    print(f"MLflow UI of {uri} at http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    try:
        return subprocess.call(ui_command(args.work_dir, args.host, args.port, os.environ))
    except KeyboardInterrupt:
        return 0
