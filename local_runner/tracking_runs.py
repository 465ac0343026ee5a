"""What the runner's tracker writes into the runs of an execution beyond a step's status: data and trials.

`log_manifest` records the dataset manifest of the preprocess step on the execution's run (tags, the
manifest as an artifact and a dataset input that MLflow shows as the data the run used); `log_trials`
records a tuning step's objective per trial (the trial number is the metric's step) and the best value on
the tuning run, and tags the best trial's own run `best_trial`. Both take an `MlflowClient`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any


def now_ms() -> int:
    """The current time in milliseconds since the epoch, as MLflow timestamps metrics."""
    return int(time.time() * 1000)


def log_manifest(client: Any, run_id: str, uri: str, manifest: Mapping[str, Any]) -> None:
    """Tag the run with the data version and log the manifest as an artifact and as a dataset input."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    client.set_tag(run_id, "data.version", manifest["version"])
    client.set_tag(run_id, "data.manifest_uri", uri)
    client.log_dict(run_id, dict(manifest), "data/manifest.json")
    profile = json.dumps({"rows": manifest["rows"], "units": manifest["units"]})
    dataset = Dataset(
        f"cmapss-{manifest['subset']}", manifest["version"], "s3", json.dumps({"uri": uri}), profile=profile
    )
    client.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])])


def log_trials(client: Any, experiment_id: str, run_id: str, properties: Mapping[str, Any]) -> None:
    """Log each trial's objective on the tuning run (step = trial number) and tag the best trial's run."""
    from mlflow.entities import Metric

    best = properties["BestTrainingJob"]
    metrics = []
    for summary in properties["TrainingJobSummaries"]:
        objective = summary["FinalHyperParameterTuningJobObjectiveMetric"]
        number = int(summary["TrainingJobName"].rsplit("-", 1)[-1])
        if objective:
            metrics.append(Metric("trial_objective", objective["Value"], now_ms(), number))
    objective = best["FinalHyperParameterTuningJobObjectiveMetric"]
    metrics.append(Metric("best_objective", objective["Value"], now_ms(), 0))
    client.log_batch(run_id, metrics=metrics)
    client.set_tag(run_id, "tuning.best_job", best["TrainingJobName"])
    client.set_tag(run_id, "tuning.objective_metric", objective["MetricName"])
    trials = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{run_id}'", max_results=1000)
    for trial in trials:
        if trial.info.run_name == best["TrainingJobName"]:
            client.set_tag(trial.info.run_id, "best_trial", "true")
