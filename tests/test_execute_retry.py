"""Step retry policies: the policy arithmetic, the classification of failures, and a flaky processing step
rendered with the SageMaker SDK retried until it succeeds (waits capped)."""

from __future__ import annotations

import pytest
from sagemaker.workflow.retry import (
    SageMakerJobExceptionTypeEnum,
    SageMakerJobStepRetryPolicy,
    StepExceptionTypeEnum,
    StepRetryPolicy,
)
from test_execute_support import BUCKET, execute, processing_step, render, steps_of, write_script

from local_runner.execution_record import StepRecord
from local_runner.graph import ExecutionError
from local_runner.retry import RetryPolicy, classify_failure, with_retries

FLAKY = """
import os, pathlib
counter = pathlib.Path(os.environ["COUNTER"])
runs = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(runs))
if runs < int(os.environ["SUCCEED_ON"]):
    failure = pathlib.Path("/opt/ml/output/failure")
    failure.parent.mkdir(parents=True, exist_ok=True)
    failure.write_text(os.environ["REASON"] + f": run {runs}")
    raise SystemExit(1)
pathlib.Path("/opt/ml/processing/out/runs.txt").write_text(str(runs))
"""


def test_a_policy_rendered_by_the_sdk_has_its_waits_and_limits():
    policy = RetryPolicy.from_definition(
        StepRetryPolicy(
            [StepExceptionTypeEnum.SERVICE_FAULT], interval_seconds=3, backoff_rate=2.0, max_attempts=2
        ).to_request(),
        "S",
    )
    assert policy.exception_types == {"Step.SERVICE_FAULT"}
    assert [policy.wait_seconds(n) for n in (1, 2, 3)] == [3, 6, 12]
    assert policy.allows(1, 0) and not policy.allows(2, 0)
    expiring = RetryPolicy.from_definition(
        SageMakerJobStepRetryPolicy(
            failure_reason_types=[SageMakerJobExceptionTypeEnum.CAPACITY_ERROR], expire_after_mins=1
        ).to_request(),
        "S",
    )
    assert expiring.allows(100, 59) and not expiring.allows(0, 61)
    with pytest.raises(ExecutionError, match="step S: a retry policy names no ExceptionType"):
        RetryPolicy.from_definition({"MaxAttempts": 1}, "S")


def test_failures_are_classified_as_sagemaker_reports_them():
    assert classify_failure("InternalServerError: we hit a snag") == "SageMaker.JOB_INTERNAL_ERROR"
    assert classify_failure("CapacityError: no ml.p4d") == "SageMaker.CAPACITY_ERROR"
    assert classify_failure("ResourceLimitExceeded: quota") == "SageMaker.RESOURCE_LIMIT"
    assert classify_failure("AlgorithmError: ValueError in train.py") is None


def test_a_runner_exception_is_retried_as_a_service_fault_with_backoff_capped():
    step = {
        "Name": "S",
        "Type": "Processing",
        "RetryPolicies": [{"ExceptionType": ["Step.SERVICE_FAULT"], "IntervalSeconds": 10, "MaxAttempts": 5}],
    }
    calls, waits = [], []

    def flaky(step, arguments, record):
        calls.append(1)
        if len(calls) < 3:
            raise OSError("disk hiccup")
        record.properties = {"ok": True}

    record = StepRecord("S", "Processing")
    with_retries(step, flaky, lambda line: None, max_wait=15, sleep=waits.append)(step, {}, record)

    assert record.status == "Executing" and record.properties == {"ok": True, "AttemptCount": 3}
    assert waits == [10, 15]  # 10, then 20 capped at 15


@pytest.mark.parametrize(
    ("reason", "status", "attempts"),
    [("InternalServerError", "Succeeded", 3), ("AlgorithmError", "Failed", 1)],
)
def test_a_flaky_job_is_retried_only_for_the_types_its_policy_names(tmp_path, reason, status, attempts):
    def build(session) -> list:
        policy = SageMakerJobStepRetryPolicy(
            failure_reason_types=[SageMakerJobExceptionTypeEnum.INTERNAL_ERROR],
            max_attempts=3,
            interval_seconds=30,
        )
        environment = {"COUNTER": str(tmp_path / "counter"), "SUCCEED_ON": "3", "REASON": reason}
        return [
            processing_step(
                session,
                "Flaky",
                "flaky.py",
                outputs=[("out", f"{BUCKET}/out")],
                env=environment,
                retry_policies=[policy],
            )
        ]

    definition = render(build)
    assert definition["Steps"][0]["RetryPolicies"][0]["ExceptionType"] == ["SageMaker.JOB_INTERNAL_ERROR"]

    code, record = execute(
        tmp_path, definition, "--object", write_script(tmp_path, "flaky.py", FLAKY), "--max-retry-wait", "0"
    )

    step = steps_of(record)["Flaky"]
    assert step["status"] == status and step["properties"]["AttemptCount"] == attempts
    assert (tmp_path / "counter").read_text() == str(attempts)
    jobs = sorted(
        path.name.removeprefix(record["execution_id"] + "-")
        for path in (tmp_path / "work" / "jobs").iterdir()
    )
    assert jobs == ["Flaky", "Flaky-attempt2", "Flaky-attempt3"][:attempts]
    assert code == (0 if status == "Succeeded" else 1)
