"""Render the pipeline definition offline and deterministically, for the CDK app and the local runner.

`render_definition(config)` disables SDK telemetry, builds the offline session (also the boto3 default
while it renders) and returns the
definition JSON with its one clock-dependent field fixed: the SDK puts
`sagemaker_job_name="<base>-<timestamp>"` into the tuning job's static hyperparameters and the refit
training job's hyperparameters (script mode writes it there), so two renders would differ. It is
replaced by the stable base name; SageMaker names each job itself, and the training toolkit only uses
the value as a label.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pipeline_steps.config import PipelineConfig
from pipeline_steps.job_settings import JOB_NAME_BASE
from pipeline_steps.pipeline import get_pipeline
from pipeline_steps.session import definition_offline

JOB_NAME_HYPERPARAMETER = "sagemaker_job_name"
STABLE_JOB_NAME = json.dumps(f"{JOB_NAME_BASE}-train")  # the tuning trials'
_TIMESTAMPED = re.compile(r"-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-\d{3}$")


def normalise_definition(definition: dict[str, Any]) -> dict[str, Any]:
    """Replace clock-dependent values (timestamped job names) with stable ones, in place; return it."""
    for step in definition.get("Steps", []):
        arguments = step.get("Arguments", {})
        for hyperparameters in (
            arguments.get("TrainingJobDefinition", {}).get("StaticHyperParameters", {}),
            arguments.get("HyperParameters", {}),
        ):
            name = hyperparameters.get(JOB_NAME_HYPERPARAMETER)
            if isinstance(name, str):
                hyperparameters[JOB_NAME_HYPERPARAMETER] = json.dumps(_TIMESTAMPED.sub("", json.loads(name)))
    return definition


def find_timestamped_values(value: Any) -> list[str]:
    """Strings that still end in an SDK timestamp (`-YYYY-MM-DD-HH-MM-SS-mmm`, maybe JSON-quoted)."""
    if isinstance(value, dict):
        return [hit for item in value.values() for hit in find_timestamped_values(item)]
    if isinstance(value, list):
        return [hit for item in value for hit in find_timestamped_values(item)]
    if isinstance(value, str) and _TIMESTAMPED.search(value.strip('"')):
        return [value]
    return []


def render_definition(config: PipelineConfig) -> str:
    """The pipeline definition JSON (stable key order, no timestamps) for `config`, made offline."""
    definition = definition_offline(config, get_pipeline)
    return json.dumps(normalise_definition(definition), indent=2, sort_keys=True)
