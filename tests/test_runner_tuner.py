"""The tuner (`local_runner.tuner`, `local_runner.tuning_step`): metric parsing, the trial budget, ranking,
side-by-side rounds and the trial requests."""

from __future__ import annotations

import threading
import time

import pytest

from local_runner.threads import RUNNING
from local_runner.tuner import read_metric, tune
from local_runner.tuning_step import trial_request


def test_read_metric_takes_the_last_value():
    """The last match of the metric regex in a job's log, None when there is none."""
    log = "epoch\nvalidation:rmse=15.5\nmore\nvalidation:rmse=12.25\n"
    assert read_metric(log, r"validation:rmse=([-0-9.eE+]+)") == 12.25
    assert read_metric("nothing", r"validation:rmse=([-0-9.eE+]+)") is None


def tuning_request(max_jobs=6, parallel=2, strategy="Bayesian"):
    """A tuning request with one continuous and one integer range and a validation:rmse metric."""
    return {
        "HyperParameterTuningJobConfig": {
            "HyperParameterTuningJobObjective": {"MetricName": "validation:rmse", "Type": "Minimize"},
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {"Name": "x", "MinValue": "0.0", "MaxValue": "4.0", "ScalingType": "Auto"}
                ],
                "IntegerParameterRanges": [
                    {"Name": "n", "MinValue": "1", "MaxValue": "5", "ScalingType": "Auto"}
                ],
                "CategoricalParameterRanges": [],
            },
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": parallel},
            "Strategy": strategy,
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {
                "MetricDefinitions": [{"Name": "validation:rmse", "Regex": r"validation:rmse=([-0-9.eE+]+)"}]
            }
        },
    }


@pytest.mark.parametrize("strategy", ["Bayesian", "Random"])
def test_tuner_honours_the_budget_and_ranks_best_first(strategy):
    """Every trial within the ranges, the failed one last, the rest by objective."""
    seen = []

    def run_trial(number, hyperparameters):
        x, n = float(hyperparameters["x"]), int(hyperparameters["n"])
        assert 0 <= x <= 4 and 1 <= n <= 5
        seen.append(number)
        if number == 3:
            return f"job-{number}", "Failed", "boom"
        return f"job-{number}", "Completed", f"validation:rmse={(x - 1) ** 2 + n}"

    trials = tune(tuning_request(max_jobs=6, strategy=strategy), run_trial, echo=lambda line: None)
    assert sorted(seen) == [1, 2, 3, 4, 5, 6]
    objectives = [trial.objective for trial in trials if trial.objective is not None]
    assert objectives == sorted(objectives) and len(objectives) == 5
    assert trials[-1].status == "Failed" and trials[-1].failure_reason == "boom"


def test_tuner_runs_a_rounds_trials_side_by_side_and_tells_them_in_order():
    """Both trials of a round must be running at once (a barrier of two would time out otherwise), and
    the search must not depend on which trial finished first."""
    barrier = threading.Barrier(2, timeout=10)

    def searched(finish_late: int) -> list[dict[str, str]]:
        def run_trial(number, hyperparameters):
            barrier.wait()
            if number % 2 == finish_late % 2:
                time.sleep(0.05)
            return f"job-{number}", "Completed", f"validation:rmse={float(hyperparameters['x'])}"

        trials = tune(tuning_request(max_jobs=6, parallel=2), run_trial, echo=lambda line: None)
        return sorted((trial.number, trial.hyperparameters["x"]) for trial in trials)

    assert searched(finish_late=1) == searched(finish_late=2)


def test_a_trial_request_keeps_the_spot_and_checkpoint_fields_of_the_definition():
    """Spot training, checkpoint config and the wait limit pass from the definition to each trial."""
    definition = {
        "AlgorithmSpecification": {"TrainingImage": "x"},
        "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
        "CheckpointConfig": {"S3Uri": "s3://b/checkpoints/TuneModel/", "LocalPath": "/opt/ml/checkpoints"},
        "EnableManagedSpotTraining": True,
        "StoppingCondition": {"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 120},
    }
    request = trial_request(definition, {"learning_rate": "0.1"})
    assert request["CheckpointConfig"] == definition["CheckpointConfig"]
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"]["MaxWaitTimeInSeconds"] == 120


def test_every_trial_of_a_round_sees_the_whole_round_running():
    """The thread budget each trial gets must count its siblings, even the ones not started yet."""
    seen = []
    before = RUNNING.concurrent

    def run_trial(number, hyperparameters):
        seen.append(RUNNING.concurrent)
        return f"job-{number}", "Completed", "validation:rmse=1.0"

    tune(tuning_request(max_jobs=4, parallel=2), run_trial, echo=lambda line: None)
    assert min(seen) >= before + 1 and len(seen) == 4
    assert RUNNING.concurrent == before
