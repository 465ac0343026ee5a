"""A tuning step of the executor: the tuner's trials as local training jobs, finished trials reused.

Each trial is a CreateTrainingJob request built from the step's `TrainingJobDefinition` and the tuned
hyperparameters. With step caching on, a finished trial is kept in the step cache under a key made of
the step's cache key, the trial's number and its whole training request; a stopped or killed execution
resumed later gets the same suggestions from the seeded sampler and reuses those trials instead of
training them again, then continues with the rest of the budget. SageMaker's tuning jobs cannot resume;
this is a convenience of the local runner. A stop request ends the step with `StopRequested`.
"""

from __future__ import annotations

from collections.abc import Callable

from local_runner.jobs import JobResult
from local_runner.signals import StopRequested
from local_runner.step_cache import StepCache, digest
from local_runner.tuner import Trial

# Managed spot: each trial gets the checkpoint folder and the stopping condition of the definition.
SPOT_FIELDS = ("CheckpointConfig", "EnableManagedSpotTraining", "StoppingCondition")


def trial_request(definition: dict, tuned: dict[str, str]) -> dict:
    """The CreateTrainingJob request of one trial."""
    return {
        "AlgorithmSpecification": definition["AlgorithmSpecification"],
        "HyperParameters": {**definition.get("StaticHyperParameters", {}), **tuned},
        "InputDataConfig": definition.get("InputDataConfig", []),
        "OutputDataConfig": definition["OutputDataConfig"],
        "Environment": definition.get("Environment", {}),
        **{key: definition[key] for key in SPOT_FIELDS if key in definition},
    }


def trial_runner(
    step: dict,
    definition: dict,
    step_key: str | None,
    cache: StepCache,
    execution_id: str,
    launch: Callable[[str, dict], JobResult],
    echo: Callable[[str], None],
) -> Callable[[int, dict[str, str]], tuple[str, str, str]]:
    """The tuner's `run_trial`: reuse a finished trial of an earlier execution, else launch its job."""

    def run_trial(number: int, tuned: dict[str, str]) -> tuple[str, str, str]:
        request = trial_request(definition, tuned)
        key = digest([step_key, number, request]) if step_key else None
        cached = cache.lookup_trial(step, key) if key else None
        if cached is not None:
            echo(f"trial {number}: reusing finished job {cached['job_name']} (a resumed tuning step)")
            return cached["job_name"], cached["status"], cached["log_text"]
        job_name = f"{execution_id}-{step['Name']}-{number:03d}"
        result = launch(job_name, request)
        if result.status == "Stopped":
            raise StopRequested(f"trial {number} ({job_name}) was stopped")
        if result.ok and key:
            trial = {"job_name": job_name, "status": result.status, "log_text": result.log_text}
            cache.store_trial(step, key, trial, execution_id)
        return job_name, result.status, result.log_text if result.ok else result.failure_reason

    return run_trial


def tuning_properties(job_name: str, metric: str, trials: list[Trial]) -> dict:
    """The DescribeHyperParameterTuningJob-like properties of a finished tuning step, best trial first."""
    summaries = [
        {
            "TrainingJobName": trial.job_name,
            "TrainingJobStatus": trial.status,
            "TunedHyperParameters": trial.hyperparameters,
            "FinalHyperParameterTuningJobObjectiveMetric": (
                {"MetricName": metric, "Value": trial.objective} if trial.objective is not None else None
            ),
            "FailureReason": trial.failure_reason,
        }
        for trial in trials
    ]
    return {
        "HyperParameterTuningJobName": job_name,
        "BestTrainingJob": summaries[0],
        "TrainingJobSummaries": summaries,
    }
