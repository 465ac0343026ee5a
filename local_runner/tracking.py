"""MLflow tracking of local pipeline executions: one parent run per execution, a nested run per step.

By default the store is SQLite under the work folder (`<work>/mlflow/mlflow.db`, artifacts in
`<work>/mlflow/artifacts`); `MLFLOW_TRACKING_URI` in the environment points the runner and its jobs at
another store instead. The experiment is named after the pipeline and tagged as a model-development
experiment (MLflow 3's UI would otherwise open it on its GenAI traces view). Runs:

- the execution: pipeline parameters as params; the data version, the dataset input and the manifest once
  preprocessing has run; the test metrics, the execution record and the HTML report at the end;
- one nested run per step that started (type, status, seconds, cache hit, failure reason); the container
  job of a processing or training step logs its parameters, metrics and artifacts into that same run
  (`MLFLOW_RUN_ID`), while each tuning trial gets a run of its own nested under the tuning step's run
  (`MLFLOW_PARENT_RUN_ID`; the jobs also get `MLFLOW_TRACKING_URI`, `MLFLOW_EXPERIMENT_NAME`,
  `MLFLOW_RUN_NAME` and `MLFLOW_RUN_TAGS`, see `containers/rul/tracking.py`). One execution is thus one
  parent run, one run per step and one per trial; the tuning run gets the objective per trial and the best
  trial's run is tagged `best_trial`;
- a registered model version is mirrored into MLflow's model registry (`tracking_registry`): a `pyfunc`
  model with its signature, loadable as `models:/<group>/<version>`, tagged with the package ARN,
  approval status, test metrics and data version. `mirror_approval` mirrors a later approval or
  rejection and moves the `champion` alias.

`python -m local_runner ui` (`make ui`) serves the MLflow UI of that store on the loopback interface, with
MLflow's telemetry and its server job runner off.

MLflow is imported and connected on a background thread started with the tracker, so the import overlaps
the runner's own preparation. Tracking failures are echoed once and switch tracking off; they never fail
an execution.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_runner.object_store import ObjectStore
from local_runner.readers import read_evaluation, read_manifest
from local_runner.tracking_hooks import ExecutionTracker as ExecutionTracker
from local_runner.tracking_registry import mirror_approval as mirror_approval
from local_runner.tracking_registry import register_version
from local_runner.tracking_runs import log_manifest, log_trials, now_ms
from local_runner.tracking_store import (
    STORE_DIR,
    TELEMETRY_OFF,
    TRACKING_URI_ENV,
    artifact_root,
    default_tracking_uri,
    resolve_tracking_uri,
)
from local_runner.tracking_store import add_ui_parser as add_ui_parser
from local_runner.tracking_store import run_ui as run_ui
from local_runner.tracking_store import ui_command as ui_command
from local_runner.tracking_store import ui_environment as ui_environment

if TYPE_CHECKING:
    from local_runner.registry import ModelPackage
    from local_runner.results import ExecutionResult, StepRecord

EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
PARENT_RUN_ENV = "MLFLOW_PARENT_RUN_ID"
RUN_NAME_ENV = "MLFLOW_RUN_NAME"
RUN_TAGS_ENV = "MLFLOW_RUN_TAGS"
RUN_ID_ENV = "MLFLOW_RUN_ID"
# MLflow 3's UI opens an experiment without this tag on its GenAI (traces) view.
EXPERIMENT_KIND_TAGS = {"mlflow.experimentKind": "custom_model_development"}
CONNECT_TIMEOUT_SECONDS = 120.0


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
        self._client: Any = None  # an mlflow MlflowClient once connected (mlflow is imported lazily)
        self._experiment_id = ""
        self._failed = False
        self._execution_run = ""
        self._execution_id = ""
        self._step_runs: dict[str, str] = {}
        self._step_types: dict[str, str] = {}
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
            if experiment is None:
                self._experiment_id = client.create_experiment(
                    self.experiment_name, artifact_location=self._artifact_location, tags=EXPERIMENT_KIND_TAGS
                )
            else:
                self._experiment_id = experiment.experiment_id
                for key, value in EXPERIMENT_KIND_TAGS.items():
                    if key not in experiment.tags:  # a store made before the tag was set
                        client.set_experiment_tag(self._experiment_id, key, value)
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
        """Start the execution's MLflow run, tagged with the pipeline, and log the parameters."""

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
        """Start a child run of the execution's run for the step."""

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
            self._step_types[name] = step_type

        if self._execution_run:
            self._guarded(action, f"starting the run of step {name}")

    def job_environment(self, step_name: str, job_name: str) -> dict[str, str]:
        """MLflow variables for a job: log into its step's run, or a child run of it for a tuning trial."""
        step_run = self._step_runs.get(step_name)
        if self._failed or not step_run:
            return {TRACKING_URI_ENV: ""}
        tags = {"step.name": step_name, "job.name": job_name, "pipeline.execution_id": self._execution_id}
        # A trial is a run of its own under the tuning step's run; any other job logs into its step's run.
        # The other variable is blanked so that one of the runner's own environment does not leak in.
        trial = self._step_types.get(step_name) == "Tuning"
        return {
            TRACKING_URI_ENV: self.tracking_uri,
            EXPERIMENT_ENV: self.experiment_name,
            PARENT_RUN_ENV: step_run if trial else "",
            RUN_ID_ENV: "" if trial else step_run,
            RUN_NAME_ENV: job_name,
            RUN_TAGS_ENV: json.dumps(tags),
            **TELEMETRY_OFF,
        }

    def finish_step(self, record: StepRecord, store: ObjectStore) -> None:
        """Log the step's status and durations, end its run, and log a data manifest it produced."""
        run_id = self._step_runs.get(record.name)
        if not run_id:
            return

        def action() -> None:
            from mlflow.entities import Metric, RunTag

            tags = {"step.status": record.status, "step.cache_hit": str(record.cache_hit).lower()}
            if record.failure_reason:
                tags["step.failure_reason"] = record.failure_reason[:5000]
            metrics = [
                Metric("seconds", record.seconds, now_ms(), 0),
                Metric("job_seconds", record.job_seconds, now_ms(), 0),
            ]
            self._client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
            self._client.set_terminated(run_id, "FAILED" if record.status == "Failed" else "FINISHED")
            manifest_output = record.properties.get("ProcessingOutputConfig", {}).get("Outputs", {})
            if "manifest" in manifest_output and record.status == "Succeeded":
                self._log_manifest(manifest_output["manifest"]["S3Output"]["S3Uri"], store)

        self._guarded(action, f"finishing the run of step {record.name}")

    def _log_manifest(self, uri: str, store: ObjectStore) -> None:
        manifest = read_manifest(store, uri)
        if manifest is not None:
            self._manifest_uri = uri
            log_manifest(self._client, self._execution_run, uri, manifest)

    def finish_tuning(self, step_name: str, properties: Mapping[str, Any]) -> None:
        """Log the tuning step's trials as child runs of its run."""
        run_id = self._step_runs.get(step_name)
        if not run_id:
            return

        def action() -> None:
            log_trials(self._client, self._experiment_id, run_id, properties)

        self._guarded(action, f"recording the trials of {step_name}")

    def model_registered(self, package: ModelPackage, store: ObjectStore) -> None:
        """Mirror the registered package into MLflow's model registry as a version of its model."""

        def action() -> None:
            # The metadata names this execution's prefix; a cached preprocess step left it elsewhere.
            manifests = ((package.customer_metadata or {}).get("DataManifestUri", ""), self._manifest_uri)
            version = register_version(
                self._client, self._experiment_id, self._execution_run, package, store, manifests, self.echo
            )
            self.echo(f"mlflow: registered model {package.group} version {version.version}")

        self._guarded(action, "mirroring the registered model")

    def finish_execution(self, result: ExecutionResult, store: ObjectStore, report: Path | None) -> None:
        """Log durations, test metrics, the record and the report to the execution's run, then end it."""
        if not self._execution_run:
            return

        def action() -> None:
            from mlflow.entities import Metric

            evaluation = read_evaluation(result, store)
            metrics = [
                Metric("seconds", result.seconds, now_ms(), 0),
                Metric("job_seconds", result.job_seconds, now_ms(), 0),
            ]
            if evaluation:
                metrics += [
                    Metric(f"test_{name}", entry["value"], now_ms(), 0)
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
        """Tracking URI, experiment and run id of the execution's run, by label; empty if not started."""
        if not self._execution_run:
            return {}
        return {
            "MLflow tracking URI": self.tracking_uri,
            "MLflow experiment": self.experiment_name,
            "MLflow run": self._execution_run,
        }


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
