"""Configuration of the publish-model-metrics function: its environment-variable names and their validation.

Every variable the function reads is named here (`ENV_*`), so the CDK construct that sets them imports the
names. `load_config` reads the training pipeline's settings; the optional MLflow target
(`mlflow_log.load_target`) and monitoring pipeline (`monitoring.load_monitoring_config`) read theirs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from lambdas.common.config import PIPELINE_NAME_PATTERN, EnvReader
from lambdas.common.config import ConfigError as ConfigError  # raised by load_config, caught by callers

ENV_PIPELINE = "PIPELINE_NAME"
ENV_NAMESPACE = "METRICS_NAMESPACE"
ENV_EVALUATE_STEP = "EVALUATE_STEP_NAME"
ENV_REGISTER_STEP = "REGISTER_STEP_NAME"
# Optional: log each execution to a SageMaker MLflow tracking server (`mlflow_log`).
ENV_TRACKING_SERVER_ARN = "MLFLOW_TRACKING_SERVER_ARN"
ENV_EXPERIMENT = "MLFLOW_EXPERIMENT_NAME"
ENV_TRACKING_URL = "MLFLOW_TRACKING_URL"
# Optional: publish the monitoring pipeline's metrics too (`monitoring`).
ENV_MONITORING_PIPELINE = "MONITORING_PIPELINE_NAME"
ENV_MONITORING_BUCKET = "MONITORING_REPORTS_BUCKET"
ENV_MONITORING_PREFIX = "MONITORING_REPORTS_PREFIX"
ENV_MONITORING_NAMESPACES = "MONITORING_NAMESPACES"

STEP_NAME_PATTERN = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")
# CloudWatch: 1-255 characters, not starting with ':'; the AWS/ prefix is reserved for AWS services.
NAMESPACE_PATTERN = re.compile(r"^(?!AWS/)[^:][^\s]{0,254}$")


@dataclass(frozen=True)
class PublishConfig:
    """The validated environment: the training pipeline, its metric namespace and its step names."""

    pipeline_name: str
    namespace: str
    evaluate_step: str
    register_step: str


def load_config(environ: Mapping[str, str]) -> PublishConfig:
    """Validate the environment into a `PublishConfig`; `ConfigError` names every bad variable."""
    read = EnvReader(environ)
    pipeline = read.text(ENV_PIPELINE, PIPELINE_NAME_PATTERN, expect="a SageMaker pipeline name")
    namespace = read.text(ENV_NAMESPACE, NAMESPACE_PATTERN, expect="a custom CloudWatch namespace")
    evaluate = read.text(ENV_EVALUATE_STEP, STEP_NAME_PATTERN, "EvaluateModel", expect="a pipeline step name")
    register = read.text(ENV_REGISTER_STEP, STEP_NAME_PATTERN, "RegisterModel", expect="a pipeline step name")
    read.check("publish-model-metrics")
    return PublishConfig(pipeline, namespace, evaluate, register)
