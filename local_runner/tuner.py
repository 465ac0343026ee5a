"""Hyperparameter tuning, locally: the search of a CreateHyperParameterTuningJob request, run with Optuna.

The ranges, the strategy (Bayesian -> Optuna's TPE sampler, Random -> random sampling), the objective and
the job limits come from the request. Each trial is a training job; its objective is read from the job's
log with the definition's own metric regex, as SageMaker reads it from CloudWatch. Trials run in rounds
of at most MaxParallelTrainingJobs, the trials of a round side by side (each with its share of the cores,
`local_runner.threads`). Like SageMaker, the summaries list the best trial first. The sampler is seeded
and told each round's results in trial order, so a search told the same results asks the same trials: a
resumed tuning step (`local_runner.tuning_step`) gets its finished trials back from the cache and
continues with the rest of the budget.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Literal, cast

import optuna

from local_runner.errors import RunnerError
from local_runner.live_view import emit
from local_runner.threads import RUNNING

optuna.logging.set_verbosity(optuna.logging.WARNING)


class TuningError(RunnerError, RuntimeError):
    """The tuning request cannot be run, or no trial produced the objective metric."""


@dataclass(frozen=True)
class Trial:
    """One tuning trial: its training job, hyperparameters, objective value and status."""

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
    """The regex of the training job's metric definition named `metric_name`."""
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


def _study(strategy: str, direction: Literal["minimize", "maximize"], seed: int) -> optuna.Study:
    """An optuna study whose sampler plays SageMaker's search strategy (Bayesian: TPE; Random)."""
    if strategy not in ("Bayesian", "Random"):
        raise TuningError(f"tuning strategy {strategy!r} is not supported locally (Bayesian, Random)")
    sampler = (
        optuna.samplers.TPESampler(seed=seed)
        if strategy == "Bayesian"
        else optuna.samplers.RandomSampler(seed)
    )
    return optuna.create_study(direction=direction, sampler=sampler)


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
    direction: Literal["minimize", "maximize"] = "minimize" if objective["Type"] == "Minimize" else "maximize"
    limits = config["ResourceLimits"]
    total = int(limits["MaxNumberOfTrainingJobs"])
    parallel = max(1, int(limits.get("MaxParallelTrainingJobs", 1)))
    study = _study(config.get("Strategy", "Bayesian"), direction, seed)
    trials: list[Trial] = []
    while len(trials) < total:
        batch = [study.ask() for _ in range(min(parallel, total - len(trials)))]
        suggested = []
        for offset, optuna_trial in enumerate(batch):
            number = len(trials) + 1 + offset
            hyperparameters = _suggest(optuna_trial, config.get("ParameterRanges", {}))
            chosen = ", ".join(f"{k}={v}" for k, v in sorted(hyperparameters.items()))
            emit(echo, "trial_started", f"trial {number}/{total}: {chosen}", number=number, total=total)
            suggested.append((number, hyperparameters))
        for optuna_trial, (number, hyperparameters), outcome in zip(
            batch, suggested, _run_round(run_trial, suggested), strict=True
        ):
            trial = _told(
                study, optuna_trial, number, hyperparameters, outcome, regex, objective["MetricName"]
            )
            trials.append(trial)
            if trial.objective is None:
                last = trial.failure_reason.splitlines()[-1] if trial.failure_reason else ""
                text = f"trial {number}/{total} failed: {last}"
                emit(echo, "trial_ended", text, number=number, total=total, value=None, reason=last)
            else:
                metric, value = objective["MetricName"], trial.objective
                text = f"trial {number}/{total}: {metric}={value:.4f}"
                fields = {"number": number, "total": total, "metric": metric, "direction": objective["Type"]}
                emit(echo, "trial_ended", text, value=value, **fields)
    completed = [trial for trial in trials if trial.objective is not None]
    if not completed:
        raise TuningError(f"all {total} training jobs failed; first reason: {trials[0].failure_reason}")
    completed.sort(key=lambda trial: cast(float, trial.objective), reverse=direction == "maximize")
    return completed + [trial for trial in trials if trial.objective is None]


def _run_round(
    run_trial: Callable[[int, dict[str, str]], tuple[str, str, str]],
    suggested: list[tuple[int, dict[str, str]]],
) -> list[tuple[str, str, str]]:
    """Run one round's trials side by side, as SageMaker runs up to MaxParallelTrainingJobs at once.

    The results come back in trial order, so the sampler is told the same history whatever finished
    first (a resumed search asks the same trials). The first error is raised once every trial has ended.
    """
    if len(suggested) == 1:
        return [run_trial(*suggested[0])]
    # The round's other trials count as running from the start, so the first trial to start does not take
    # every core before its siblings' processes exist (an OpenMP fit then stalls for minutes).
    extra = len(suggested) - 1
    for _ in range(extra):
        RUNNING.reserve_step()
    try:
        with ThreadPoolExecutor(max_workers=len(suggested), thread_name_prefix="trial") as pool:
            futures = [pool.submit(run_trial, number, values) for number, values in suggested]
            wait(futures)
    finally:
        for _ in range(extra):
            RUNNING.release_step()
    return [future.result() for future in futures]


def _told(
    study: optuna.Study,
    optuna_trial: optuna.Trial,
    number: int,
    hyperparameters: dict[str, str],
    outcome: tuple[str, str, str],
    regex: str,
    metric_name: str,
) -> Trial:
    """Tell the sampler one trial's outcome and return the trial."""
    job_name, status, text = outcome
    value = read_metric(text, regex) if status == "Completed" else None
    if value is None:
        reason = text if status != "Completed" else f"no {metric_name} in the job's log"
        study.tell(optuna_trial, state=optuna.trial.TrialState.FAIL)
        return Trial(number, job_name, hyperparameters, None, "Failed", reason[-500:])
    study.tell(optuna_trial, value)
    return Trial(number, job_name, hyperparameters, value, "Completed")
