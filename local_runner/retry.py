"""Step retry policies, as SageMaker Pipelines applies a step's `RetryPolicies`.

A policy names exception types, the wait before the first retry (`IntervalSeconds`, default 1), its growth
per retry (`BackoffRate`, default 2) and a limit: `MaxAttempts` retries or retries for `ExpireAfterMin`
minutes. Locally, a failed job is classified by the start of its failure reason, the way SageMaker's
FailureReason starts (`InternalServerError` -> `SageMaker.JOB_INTERNAL_ERROR`, `CapacityError` ->
`SageMaker.CAPACITY_ERROR`, `ResourceLimitExceeded` -> `SageMaker.RESOURCE_LIMIT`): a script's own error
is not retried, as on AWS. An unexpected exception inside the runner while running a step (a file system
error, for instance) is `Step.SERVICE_FAULT`. Like SageMaker, a tuning step never retries
`SageMaker.JOB_INTERNAL_ERROR`. The waits can be capped (`max_wait`) so that tests do not sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from local_runner.execution_record import StepRecord
from local_runner.expressions import ExpressionError
from local_runner.graph import ExecutionError
from local_runner.jobs import JobError
from local_runner.signals import StopRequested

StepRunner = Callable[[dict, dict, StepRecord], None]
SERVICE_FAULT = "Step.SERVICE_FAULT"
FAILURE_PREFIXES = {
    "InternalServerError": "SageMaker.JOB_INTERNAL_ERROR",
    "CapacityError": "SageMaker.CAPACITY_ERROR",
    "InsufficientCapacityError": "SageMaker.CAPACITY_ERROR",
    "ResourceLimitExceeded": "SageMaker.RESOURCE_LIMIT",
}
# Problems of the definition or the request: running the step again cannot help.
_NOT_TRANSIENT = (ExecutionError, ExpressionError, JobError, StopRequested)


@dataclass(frozen=True)
class RetryPolicy:
    """One entry of a step's RetryPolicies: which errors, how long to wait, how often."""

    exception_types: frozenset[str]
    interval_seconds: float = 1.0
    backoff_rate: float = 2.0
    max_attempts: int | None = None
    expire_after_minutes: float | None = None

    @classmethod
    def from_definition(cls, item: dict, step_name: str) -> RetryPolicy:
        """One entry of a step's `RetryPolicies`; an entry without exception types is an error."""
        types = item.get("ExceptionType") or item.get("FailureReasonType")
        if not types:
            raise ExecutionError(f"step {step_name}: a retry policy names no ExceptionType")
        return cls(
            frozenset(types),
            float(item.get("IntervalSeconds", 1)),
            float(item.get("BackoffRate", 2.0)),
            int(item["MaxAttempts"]) if "MaxAttempts" in item else None,
            float(item["ExpireAfterMin"]) if "ExpireAfterMin" in item else None,
        )

    def allows(self, retries_done: int, elapsed_seconds: float) -> bool:
        """Whether one more retry is allowed after `retries_done` retries of this policy."""
        if self.max_attempts is not None:
            return retries_done < self.max_attempts
        if self.expire_after_minutes is not None:
            return elapsed_seconds < 60 * self.expire_after_minutes
        return retries_done < 1

    def wait_seconds(self, retry_number: int) -> float:
        """The wait before retry number `retry_number` (1 = the first retry)."""
        return self.interval_seconds * self.backoff_rate ** (retry_number - 1)


def classify_failure(reason: str) -> str | None:
    """The SageMaker job exception type of a failed job's reason, None for the job's own error."""
    for prefix, exception_type in FAILURE_PREFIXES.items():
        if reason.startswith(prefix):
            return exception_type
    return None


def _attempt(runner: StepRunner, step: dict, arguments: dict, record: StepRecord) -> str | None:
    """Run the step once; the exception type of a retryable failure, else None."""
    record.status, record.failure_reason, record.properties = "Executing", "", {}
    try:
        runner(step, arguments, record)
    except _NOT_TRANSIENT:
        raise
    except Exception as error:
        record.status, record.failure_reason = "Failed", f"{type(error).__name__}: {error}"
        return SERVICE_FAULT
    if record.status != "Failed":
        return None
    exception_type = classify_failure(record.failure_reason)
    if step["Type"] == "Tuning" and exception_type == "SageMaker.JOB_INTERNAL_ERROR":
        return None
    return exception_type


def with_retries(
    step: dict,
    runner: StepRunner,
    echo: Callable[[str], None],
    max_wait: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int], None] = lambda attempt: None,
) -> StepRunner:
    """`runner`, retried as the step's RetryPolicies say; the attempts are counted in `AttemptCount`.

    `on_retry(attempt)` is called before attempt 2, 3, ... (the executor names the attempt's jobs).
    """
    policies = [RetryPolicy.from_definition(item, step["Name"]) for item in step.get("RetryPolicies", [])]
    if not policies:
        return runner

    def run(step: dict, arguments: dict, record: StepRecord) -> None:
        started, retries = time.monotonic(), [0] * len(policies)
        attempts = 1
        while True:
            exception_type = _attempt(runner, step, arguments, record)
            index = next((i for i, p in enumerate(policies) if exception_type in p.exception_types), None)
            if index is None or not policies[index].allows(retries[index], time.monotonic() - started):
                break
            retries[index] += 1
            wait = policies[index].wait_seconds(retries[index])
            wait = wait if max_wait is None else min(wait, max_wait)
            echo(f"step {step['Name']}: {exception_type}, retry {retries[index]} in {wait:.1f}s")
            sleep(wait)
            attempts += 1
            on_retry(attempts)
        record.properties = {**record.properties, "AttemptCount": attempts}

    return run
