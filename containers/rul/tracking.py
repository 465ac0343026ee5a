"""Optional MLflow tracking of a container job: parameters, metrics by step, final metrics and artifacts.

Tracking is on only when `MLFLOW_TRACKING_URI` is set; otherwise `tracked_run` yields a `Tracker` whose
methods do nothing, and MLflow is never imported (the SageMaker image need not have it). When on, the job
logs into the existing run `MLFLOW_RUN_ID` when given (the local runner's run of the job's step, so a step
is one run; the run's owner ends it, the job leaves its status alone; on a multi-instance job each
instance gets a run of its own nested under that one instead, since their parameters differ). Otherwise it
starts a run in the experiment `MLFLOW_EXPERIMENT_NAME` (MLflow's default experiment when unset; created
as a model-development experiment when missing), named by `MLFLOW_RUN_NAME` (else the script's name),
nested under `MLFLOW_PARENT_RUN_ID` when given (a tuning trial under its tuning step's run). Either way the
run gets the tags of the JSON object in `MLFLOW_RUN_TAGS`. The local runner sets these variables; a
SageMaker job gets them from its `Environment`.

MLflow is imported, connected to and written to on a background thread: the job starts its work at once
and logging never blocks it (metrics are sent in batches); `close` waits for the queue to drain. Tracking
is a side channel, so a tracking failure is reported once on stdout and disables tracking: it never fails
the job.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
PARENT_RUN_ENV = "MLFLOW_PARENT_RUN_ID"
RUN_NAME_ENV = "MLFLOW_RUN_NAME"
RUN_TAGS_ENV = "MLFLOW_RUN_TAGS"
RUN_ID_ENV = "MLFLOW_RUN_ID"
# MLflow 3's UI opens an experiment without this tag on its GenAI (traces) view.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# MLflow's own limits: 1000 metrics and 100 params per log_batch call, 6000 characters per param value.
_METRICS_PER_BATCH = 1000
_PARAMS_PER_BATCH = 100
_PARAM_LENGTH = 6000
# How long `close` waits for the queue to drain before giving up on the rest.
CLOSE_TIMEOUT_SECONDS = 120.0


def _log(message: str) -> None:
    print(message, flush=True)


class Tracker:
    """A run that records nothing: what a job gets when tracking is off."""

    enabled = False

    @property
    def run_id(self) -> str | None:
        """None: a run that records nothing has no id."""
        return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Parameters of the run (values become strings)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Numeric metrics, optionally at a step (epoch, iteration, member); non-finite values are skipped."""

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Tags of the run (values become strings)."""

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """A file, or every file of a folder, copied into the run's artifacts."""

    def log_dict(self, content: Mapping[str, Any], artifact_file: str) -> None:
        """A JSON document saved as an artifact (serialized now, so later changes do not leak in)."""

    def log_dataset(self, name: str, digest: str, source: str, profile: Mapping[str, Any]) -> None:
        """A dataset input of the run, shown by MLflow as the data the run used."""

    def close(self, status: str = "FINISHED") -> None:
        """End the run with `status` (FINISHED or FAILED) after everything queued was sent."""


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


class MlflowTracker(Tracker):
    """A run in an MLflow tracking store, written by a background thread (see the module docstring)."""

    enabled = True

    def __init__(
        self,
        tracking_uri: str,
        run_name: str,
        experiment_name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        run_id: str | None = None,
    ):
        self._queue: queue.Queue = queue.Queue()
        self._run_id: str | None = None
        self._resumed = bool(run_id)  # a run someone else started: they end it
        self._ready = threading.Event()
        self._failed = False
        target = _resume_run if run_id else _start_run
        details = run_id if run_id else (run_name, experiment_name, parent_run_id)
        self._thread = threading.Thread(
            target=self._work,
            args=(target, tracking_uri, details, dict(tags or {})),
            name="mlflow-tracking",
            daemon=True,
        )
        self._thread.start()

    @property
    def run_id(self) -> str | None:
        """The MLflow run id once the background thread started the run; None if that failed or timed out."""
        self._ready.wait(CLOSE_TIMEOUT_SECONDS)
        return self._run_id

    # -- the public methods only queue ----------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Queue the parameters, values as strings cut to MLflow's length limit."""
        self._queue.put(("params", {str(k): str(v)[:_PARAM_LENGTH] for k, v in params.items()}))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Queue the finite metrics, stamped with the current time and `step` (0 when None)."""
        stamp = int(time.time() * 1000)
        values = [(str(key), _finite(value)) for key, value in metrics.items()]
        entries = [(key, value, stamp, step or 0) for key, value in values if value is not None]
        if entries:
            self._queue.put(("metrics", entries))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Queue the tags, values as strings."""
        self._queue.put(("tags", {str(k): str(v) for k, v in tags.items()}))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Queue the file or folder for upload into the run's artifacts."""
        self._queue.put(("artifact", (str(path), artifact_path)))

    def log_dict(self, content: Mapping[str, Any], artifact_file: str) -> None:
        """Queue the document, serialized to JSON now."""
        self._queue.put(("text", (json.dumps(content, indent=2, default=str), artifact_file)))

    def log_dataset(self, name: str, digest: str, source: str, profile: Mapping[str, Any]) -> None:
        """Queue the dataset input with its profile, serialized to JSON now."""
        self._queue.put(("dataset", (name, digest, source, json.dumps(dict(profile), default=str))))

    def close(self, status: str = "FINISHED") -> None:
        """Queue the end of the run and wait, up to CLOSE_TIMEOUT_SECONDS, for the queue to drain."""
        self._queue.put(("close", status))
        self._thread.join(CLOSE_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            _log(f"mlflow: tracking did not finish within {CLOSE_TIMEOUT_SECONDS:.0f}s; the rest is dropped")

    # -- the background thread ------------------------------------------------------------------------------
    def _work(self, target, uri, details, tags) -> None:
        client: Any = None
        try:
            client, self._run_id = target(uri, details, tags)
        except Exception as error:  # a tracking store that cannot be reached must not fail the job
            self._disable(f"cannot start a run at {uri}: {type(error).__name__}: {error}")
        finally:
            self._ready.set()
        while True:
            operations = [self._queue.get()]
            while not self._queue.empty():
                operations.append(self._queue.get_nowait())
            closing = next((argument for kind, argument in operations if kind == "close"), None)
            if not self._failed:
                try:
                    run_id = self._run_id
                    assert run_id is not None  # set with the client; without them `_failed` is set
                    _apply(client, run_id, [op for op in operations if op[0] != "close"])
                    if closing is not None and not self._resumed:
                        client.set_terminated(run_id, status=closing)
                except Exception as error:
                    self._disable(f"logging to run {self._run_id} failed: {type(error).__name__}: {error}")
            if closing is not None:
                return

    def _disable(self, reason: str) -> None:
        self._failed = True
        _log(f"mlflow: {reason}; tracking is off for the rest of this job")


def _experiment_id(client, experiment_name: str | None) -> str:
    if not experiment_name:
        return "0"
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(experiment_name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except Exception:  # another job created it in the meantime
        return client.get_experiment_by_name(experiment_name).experiment_id


def _start_run(uri, details, tags):
    from mlflow.tracking import MlflowClient

    run_name, experiment_name, parent_run_id = details
    client = MlflowClient(tracking_uri=uri)
    experiment_id = _experiment_id(client, experiment_name)
    run_tags = {"mlflow.source.type": "JOB", "mlflow.source.name": run_name, **tags}
    if parent_run_id:
        run_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id, run_name=run_name, tags=run_tags)
    return client, run.info.run_id


def _resume_run(uri, run_id, tags):
    from mlflow.entities import RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    client.get_run(run_id)  # a run that does not exist fails here, not at the first metric
    if tags:
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    return client, run_id


def _apply(client, run_id: str, operations: list[tuple[str, Any]]) -> None:
    """Send queued operations in order; consecutive params, metrics and tags go in batches."""
    from mlflow.entities import Metric, Param, RunTag

    metrics: list[Any] = []
    params: dict[str, Any] = {}
    tags: dict[str, Any] = {}

    def flush() -> None:
        for start in range(0, len(metrics), _METRICS_PER_BATCH):
            client.log_batch(
                run_id, metrics=[Metric(*m) for m in metrics[start : start + _METRICS_PER_BATCH]]
            )
        items = list(params.items())
        for start in range(0, len(items), _PARAMS_PER_BATCH):
            client.log_batch(
                run_id, params=[Param(k, v) for k, v in items[start : start + _PARAMS_PER_BATCH]]
            )
        if tags:
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        metrics.clear()
        params.clear()
        tags.clear()

    for kind, argument in operations:
        if kind == "metrics":
            metrics.extend(argument)
        elif kind == "params":
            params.update(argument)
        elif kind == "tags":
            tags.update(argument)
        else:
            flush()
            _apply_single(client, run_id, kind, argument)
    flush()


def _apply_single(client, run_id: str, kind: str, argument: Any) -> None:
    """Send one operation that is not batched: an artifact, a text or a dataset input."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    if kind == "artifact":
        path, artifact_path = argument
        if Path(path).is_dir():
            client.log_artifacts(run_id, path, artifact_path)
        else:
            client.log_artifact(run_id, path, artifact_path)
    elif kind == "text":
        client.log_text(run_id, *argument)
    elif kind == "dataset":
        name, digest, source, profile = argument
        dataset = Dataset(name, digest, "local", json.dumps({"uri": source}), profile=profile)
        client.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])])


def tracker_from_environment(script: str, environ: Mapping[str, str] | None = None) -> Tracker:
    """An `MlflowTracker` configured by the MLFLOW_* variables, or a no-op `Tracker` when tracking is off."""
    environ = os.environ if environ is None else environ
    uri = environ.get(TRACKING_URI_ENV, "").strip()
    if not uri:
        return Tracker()
    try:
        tags = json.loads(environ.get(RUN_TAGS_ENV) or "{}")
    except json.JSONDecodeError:
        tags = None
    if not isinstance(tags, dict):
        _log(f"mlflow: {RUN_TAGS_ENV} is not a JSON object; its tags are ignored")
        tags = {}
    run_name = environ.get(RUN_NAME_ENV) or script
    parent_run_id = environ.get(PARENT_RUN_ENV) or None
    run_id = environ.get(RUN_ID_ENV, "").strip() or None
    if run_id:
        host, count = _instance(environ)
        if count > 1:
            run_name, parent_run_id, run_id = f"{run_name}-{host}", run_id, None
    return MlflowTracker(
        uri,
        run_name,
        experiment_name=environ.get(EXPERIMENT_ENV) or None,
        parent_run_id=parent_run_id,
        tags={str(k): str(v) for k, v in tags.items()},
        run_id=run_id,
    )


def _instance(environ: Mapping[str, str]) -> tuple[str, int]:
    """This instance's host name and the job's instance count, from the SageMaker resource config."""
    from rul.contract import base_dir

    base = base_dir(environ)
    for path in (base / "config" / "resourceconfig.json", base / "input" / "config" / "resourceconfig.json"):
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        return str(config.get("current_host", "algo-1")), max(1, len(config.get("hosts") or []))
    return "algo-1", 1


@contextmanager
def tracked_run(script: str, environ: Mapping[str, str] | None = None) -> Iterator[Tracker]:
    """A run for the duration of the block: FINISHED when it ends normally, FAILED when it raises."""
    tracker = tracker_from_environment(script, environ)
    status = "FAILED"
    try:
        yield tracker
        status = "FINISHED"
    finally:
        tracker.close(status)
