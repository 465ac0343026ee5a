"""Lambda entry point: publish the evaluation of a finished training-pipeline execution to CloudWatch.

The pipeline's jobs run with network isolation, so EvaluateModel cannot call CloudWatch itself; it writes
`evaluation.json` to its `evaluation` output. This function reads that file when an execution ends and
puts its headline values into the metrics namespace (`TurbofanRul/ModelQuality`), dimension
`PipelineName`, where the operations dashboard shows them.

Trigger: EventBridge "SageMaker Model Building Pipeline Execution Status Change" of our pipeline with status
Succeeded or Failed. A failed quality gate ends the execution in the FailQualityGate step, i.e. Failed, yet
its evaluation is exactly what the team wants to see; so a Failed execution is published too when its
EvaluateModel step succeeded, and `Registered` (0/1: did a RegisterModel step succeed) tells the two apart.

Steps: `list_pipeline_execution_steps` -> the EvaluateModel step's `Metadata.ProcessingJob.Arn` ->
`describe_processing_job` -> the S3Uri of output `evaluation` -> `<S3Uri>/evaluation.json` ->
`put_metric_data` of RMSE, MAE, PHM08Score (uncapped `regression_metrics.*.value`), RMSECappedTruth
(`capped_truth_metrics.rmse.value`) and Registered, timestamped with the event's time.

With `MLFLOW_TRACKING_SERVER_ARN` set, the execution is also logged to that MLflow tracking server as one
run (`mlflow_log`), before the metrics are put, so a retried failure publishes nothing twice.

Executions of the monitoring pipeline (when `MONITORING_PIPELINE_NAME` is set) are handed to
`monitoring.publish_execution`: their jobs' own PutMetricData requests are sent as they are.

Other statuses, other pipelines and malformed events are ignored without any call; an execution without a
succeeded evaluation, or whose evaluation.json is missing or malformed, is skipped with the reason. Every
path returns {"action", "reason", ...} and logs one JSON line; AWS errors are logged, then raised (retried).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lambdas.common.clients import make_clients
from lambdas.common.decisions import DecisionLog, Ignored, Skipped
from lambdas.common.events import PIPELINE_EXECUTION_STATUS_CHANGE as EVENT_DETAIL_TYPE
from lambdas.common.events import SAGEMAKER_SOURCE as EVENT_SOURCE
from lambdas.common.handler import run_logged
from lambdas.common.pipeline_names import EVALUATION_FILE, EVALUATION_OUTPUT
from lambdas.common.s3uri import S3UriError, parse_s3_uri

from .config import ConfigError as ConfigError  # raised by load_config, caught by callers
from .config import PublishConfig, load_config
from .mlflow_log import MlflowRestClient, load_target, log_execution, make_client
from .monitoring import load_monitoring_config, monitoring_execution, publish_execution

DECISIONS = DecisionLog("publish_model_metrics")
decide = DECISIONS.decide

# Failed is published only when EvaluateModel succeeded (the quality gate rejected the model).
HANDLED_STATUSES = ("Succeeded", "Failed")
SUCCEEDED = "Succeeded"
DIMENSION = "PipelineName"
# CloudWatch metric name -> path in evaluation.json.
METRIC_PATHS: dict[str, tuple[str, ...]] = {
    "RMSE": ("regression_metrics", "rmse", "value"),
    "MAE": ("regression_metrics", "mae", "value"),
    "PHM08Score": ("regression_metrics", "phm08_score", "value"),
    "RMSECappedTruth": ("capped_truth_metrics", "rmse", "value"),
    # What the quality gate compares (size-independent, on the capped truth).
    "PHM08ScorePer100Units": ("capped_truth_metrics", "phm08_score_per_100_units", "value"),
}
REGISTERED_METRIC = "Registered"


@dataclass(frozen=True)
class FinishedExecution:
    """A finished execution of the training pipeline, from its status change event."""

    execution_arn: str
    status: str
    time: datetime


def parse_event(event: Any, config: PublishConfig, clock: Callable[[], datetime]) -> FinishedExecution:
    """The finished execution of the configured pipeline in `event`; `Ignored` says why not."""
    if not isinstance(event, dict):
        raise Ignored(f"event is not an object: {type(event).__name__}")
    if event.get("source") != EVENT_SOURCE or event.get("detail-type") != EVENT_DETAIL_TYPE:
        raise Ignored(f"unexpected source/detail-type {event.get('source')!r}/{event.get('detail-type')!r}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise Ignored("event has no detail object")
    pipeline_arn, execution_arn = detail.get("pipelineArn"), detail.get("pipelineExecutionArn")
    status = detail.get("currentPipelineExecutionStatus")
    if not (
        isinstance(pipeline_arn, str)
        and pipeline_arn
        and isinstance(execution_arn, str)
        and execution_arn
        and isinstance(status, str)
        and status
    ):
        raise Ignored("detail lacks pipelineArn, pipelineExecutionArn or currentPipelineExecutionStatus")
    # SageMaker lower-cases the names in its ARNs.
    if not pipeline_arn.lower().endswith(f":pipeline/{config.pipeline_name.lower()}"):
        raise Ignored(f"execution of pipeline {pipeline_arn!r}, not of {config.pipeline_name!r}")
    if status not in HANDLED_STATUSES:
        raise Ignored(f"status {status!r} is not one of {', '.join(HANDLED_STATUSES)}")
    return FinishedExecution(execution_arn, status, _event_time(event.get("time"), clock))


def _event_time(raw: Any, clock: Callable[[], datetime]) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return clock()
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def execution_steps(sagemaker: Any, execution_arn: str) -> list[dict]:
    """Every step of the pipeline execution (all pages)."""
    paginator = sagemaker.get_paginator("list_pipeline_execution_steps")
    return [
        step
        for page in paginator.paginate(PipelineExecutionArn=execution_arn)
        for step in page.get("PipelineExecutionSteps", [])
    ]


def is_registered(steps: list[dict], register_step: str) -> bool:
    """A register step succeeded (a ModelStep runs as `<name>-RegisterModel`, so match the prefix too)."""
    names = {str(step.get("StepName", "")) for step in steps if step.get("StepStatus") == SUCCEEDED}
    return any(name == register_step or name.startswith(register_step + "-") for name in names)


def evaluation_location(sagemaker: Any, steps: list[dict], evaluate_step: str) -> tuple[str, str]:
    """(bucket, key) of evaluation.json of the succeeded evaluation step; `Skipped` when there is none."""
    step = next((s for s in steps if s.get("StepName") == evaluate_step), None)
    if step is None or step.get("StepStatus") != SUCCEEDED:
        status = "no such step" if step is None else f"status {step.get('StepStatus')!r}"
        raise Skipped(f"step {evaluate_step} did not succeed ({status})")
    job_arn = step.get("Metadata", {}).get("ProcessingJob", {}).get("Arn")
    if not isinstance(job_arn, str) or "/" not in job_arn:
        raise Skipped(f"step {evaluate_step} names no processing job")
    job = sagemaker.describe_processing_job(ProcessingJobName=job_arn.rsplit("/", 1)[1])
    outputs = job.get("ProcessingOutputConfig", {}).get("Outputs", [])
    uris = [o.get("S3Output", {}).get("S3Uri") for o in outputs if o.get("OutputName") == EVALUATION_OUTPUT]
    uri = uris[0] if uris else None
    try:
        output = parse_s3_uri(uri)
    except S3UriError:
        problem = f"processing job {job_arn} has no S3 output {EVALUATION_OUTPUT!r} (got {uri!r})"
        raise Skipped(problem) from None
    prefix = output.key.rstrip("/")
    return output.bucket, f"{prefix}/{EVALUATION_FILE}" if prefix else EVALUATION_FILE


def read_evaluation(s3: Any, bucket: str, key: str) -> dict[str, float]:
    """The metric values of evaluation.json, by CloudWatch metric name; `Skipped` when absent or malformed."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey as error:
        raise Skipped(f"s3://{bucket}/{key} does not exist") from error
    try:
        report = json.loads(body)
    except ValueError as error:
        raise Skipped(f"s3://{bucket}/{key} is not JSON: {error}") from error
    values: dict[str, float] = {}
    for metric, path in METRIC_PATHS.items():
        value: Any = report
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise Skipped(f"s3://{bucket}/{key}: {'.'.join(path)} is not a finite number (got {value!r})")
        values[metric] = float(value)
    return values


def metric_data(values: Mapping[str, float], pipeline: str, timestamp: datetime) -> list[dict]:
    """PutMetricData entries of the evaluation `values`, one per metric, dimension the pipeline name."""
    dimensions = [{"Name": DIMENSION, "Value": pipeline}]
    return [
        {
            "MetricName": name,
            "Dimensions": dimensions,
            "Timestamp": timestamp,
            "Value": value,
            "Unit": "Count" if name == REGISTERED_METRIC else "None",
        }
        for name, value in values.items()
    ]


def run(
    event: Any,
    config: PublishConfig,
    sagemaker: Any,
    s3: Any,
    cloudwatch: Any,
    clock: Callable[[], datetime],
    mlflow: MlflowRestClient | None = None,
) -> dict[str, Any]:
    """Act on one event with the given clients and clock (the tests call this)."""
    try:
        execution = parse_event(event, config, clock)
    except Ignored as reason:
        return decide("ignored", str(reason))
    fields: dict[str, Any] = {
        "pipeline": config.pipeline_name,
        "execution_arn": execution.execution_arn,
        "execution_status": execution.status,
    }
    steps = execution_steps(sagemaker, execution.execution_arn)
    try:
        bucket, key = evaluation_location(sagemaker, steps, config.evaluate_step)
        fields["evaluation_uri"] = f"s3://{bucket}/{key}"
        values = read_evaluation(s3, bucket, key)
    except Skipped as reason:
        return decide("skipped", str(reason), **fields)
    registered = is_registered(steps, config.register_step)
    values[REGISTERED_METRIC] = 1.0 if registered else 0.0
    if mlflow is not None:  # first: a failure here is retried before anything is published twice
        tags = {"pipeline": config.pipeline_name, "execution_status": execution.status, **fields}
        fields["mlflow_run_id"] = log_execution(
            mlflow,
            execution.execution_arn,
            execution.status,
            values,
            tags,
            int(execution.time.timestamp() * 1000),
        )
    cloudwatch.put_metric_data(
        Namespace=config.namespace, MetricData=metric_data(values, config.pipeline_name, execution.time)
    )
    return decide(
        "published",
        f"{len(values)} metrics of the evaluation to {config.namespace}"
        + ("" if registered else " (no model version registered)"),
        metrics=values,
        registered=registered,
        **fields,
    )


def run_monitoring(event: Any, environ: Mapping[str, str], s3: Any, cloudwatch: Any) -> dict[str, Any] | None:
    """Publish a finished monitoring execution's metrics; None when the event is not one."""
    config = load_monitoring_config(environ)
    execution = monitoring_execution(event, config) if config else None
    if config is None or execution is None:
        return None
    execution_id, status = execution
    fields = {"pipeline": config.pipeline_name, "execution_id": execution_id, "execution_status": status}
    outcome = publish_execution(s3, cloudwatch, config, execution_id)
    if not outcome["requests"]:
        return decide("skipped", "no monitoring metrics to publish", logging.WARNING, **fields, **outcome)
    level = logging.WARNING if outcome["skipped_lines"] else logging.INFO
    reason = f"{outcome['metrics']} monitoring metrics in {outcome['requests']} request(s)"
    return decide("published", reason, level, **fields, **outcome)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda handler: validate the environment, build the clients, run; failures are logged, then raised."""
    return run_logged(DECISIONS, lambda: _invoke(event))


def _invoke(event: Any) -> dict[str, Any]:
    config = load_config(os.environ)
    sagemaker, s3, cloudwatch = make_clients("sagemaker", "s3", "cloudwatch")
    monitored = run_monitoring(event, os.environ, s3, cloudwatch)
    if monitored is not None:
        return monitored
    target = load_target(os.environ)
    mlflow = make_client(target) if target else None
    return run(event, config, sagemaker, s3, cloudwatch, lambda: datetime.now(UTC), mlflow)
