"""Hyperparameter tuning, locally: the search of a CreateHyperParameterTuningJob request, run with Optuna.

The ranges, the strategy (Bayesian -> Optuna's TPE sampler, Random -> random sampling), the objective and
the job limits come from the request. Each trial is a training job; its objective is read from the job's
log with the definition's own metric regex, as SageMaker reads it from CloudWatch. Trials run in rounds
of at most MaxParallelTrainingJobs. Like SageMaker, the summaries list the best trial first. The sampler
is seeded, so a search told the same results asks the same trials: a resumed tuning step
(`local_runner.tuning_step`) gets its finished trials back from the cache and continues with the rest of
the budget.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


class TuningError(RuntimeError):
    """The tuning request cannot be run, or no trial produced the objective metric."""


@dataclass(frozen=True)
class Trial:
    number: int
    job_name: str
    hyperparameters: dict[str, str]
    objective: float | None
    status: str  # "Completed" or "Failed"
    failure_reason: str = ""


def read_metric(log_text: str, regex: str) -> float | None:
    """The last value the metric regex captures in a job's log, as SageMaker keeps the final one."""
    values = re.findall(regex, log_text)
    if not values:
        return None
    value = values[-1] if isinstance(values[-1], str) else values[-1][0]
    number = float(value)
    return number if math.isfinite(number) else None


def objective_regex(definition: dict, metric_name: str) -> str:
    for metric in definition.get("AlgorithmSpecification", {}).get("MetricDefinitions", []):
        if metric["Name"] == metric_name:
            return metric["Regex"]
    raise TuningError(f"the objective metric {metric_name!r} has no metric definition (regex)")


def _suggest(trial: optuna.Trial, ranges: dict) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in ranges.get("ContinuousParameterRanges", []):
        low, high = float(item["MinValue"]), float(item["MaxValue"])
        log = item.get("ScalingType") in ("Logarithmic", "ReverseLogarithmic")
        values[item["Name"]] = repr(trial.suggest_float(item["Name"], low, high, log=log and low > 0))
    for item in ranges.get("IntegerParameterRanges", []):
        low, high = int(float(item["MinValue"])), int(float(item["MaxValue"]))
        log = item.get("ScalingType") == "Logarithmic"
        values[item["Name"]] = str(trial.suggest_int(item["Name"], low, high, log=log and low > 0))
    for item in ranges.get("CategoricalParameterRanges", []):
        values[item["Name"]] = str(trial.suggest_categorical(item["Name"], list(item["Values"])))
    return values


def tune(
    request: dict,
    run_trial: Callable[[int, dict[str, str]], tuple[str, str, str]],
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> list[Trial]:
    """Run the search; `run_trial(number, hyperparameters)` returns (job name, status, log text or reason).

    Returns the trials, best first (failed trials last).
    """
    config = request["HyperParameterTuningJobConfig"]
    definition = request["TrainingJobDefinition"]
    objective = config["HyperParameterTuningJobObjective"]
    regex = objective_regex(definition, objective["MetricName"])
    direction = "minimize" if objective["Type"] == "Minimize" else "maximize"
    limits = config["ResourceLimits"]
    total = int(limits["MaxNumberOfTrainingJobs"])
    parallel = max(1, int(limits.get("MaxParallelTrainingJobs", 1)))
    strategy = config.get("Strategy", "Bayesian")
    if strategy not in ("Bayesian", "Random"):
        raise TuningError(f"tuning strategy {strategy!r} is not supported locally (Bayesian, Random)")
    sampler = (
        optuna.samplers.TPESampler(seed=seed)
        if strategy == "Bayesian"
        else optuna.samplers.RandomSampler(seed)
    )
    study = optuna.create_study(direction=direction, sampler=sampler)
    trials: list[Trial] = []
    while len(trials) < total:
        batch = [study.ask() for _ in range(min(parallel, total - len(trials)))]
        for optuna_trial in batch:
            number = len(trials) + 1
            hyperparameters = _suggest(optuna_trial, config.get("ParameterRanges", {}))
            echo(
                f"trial {number}/{total}: "
                + ", ".join(f"{k}={v}" for k, v in sorted(hyperparameters.items()))
            )
            job_name, status, text = run_trial(number, hyperparameters)
            value = read_metric(text, regex) if status == "Completed" else None
            if value is None:
                reason = text if status != "Completed" else f"no {objective['MetricName']} in the job's log"
                study.tell(optuna_trial, state=optuna.trial.TrialState.FAIL)
                trials.append(Trial(number, job_name, hyperparameters, None, "Failed", reason[-500:]))
                echo(f"trial {number}/{total} failed: {reason.splitlines()[-1] if reason else ''}")
                continue
            study.tell(optuna_trial, value)
            trials.append(Trial(number, job_name, hyperparameters, value, "Completed"))
            echo(f"trial {number}/{total}: {objective['MetricName']}={value:.4f}")
    completed = [trial for trial in trials if trial.objective is not None]
    if not completed:
        raise TuningError(f"all {total} training jobs failed; first reason: {trials[0].failure_reason}")
    completed.sort(key=lambda trial: trial.objective, reverse=direction == "maximize")
    return completed + [trial for trial in trials if trial.objective is None]
