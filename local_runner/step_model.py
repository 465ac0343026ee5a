"""Model (CreateModel) steps: the model is recorded locally for the transform steps that name it.

A resolved CreateModel request is kept as `<work>/models/<model name>.json`; the model name is the
execution's id and the step's name (SageMaker also generates it at execution time, the SDK leaves it out
of the definition). The properties are DescribeModel's: `ModelName`, `ModelArn`, `PrimaryContainer`
(`Containers` for a multi-container model) and `ExecutionRoleArn`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from local_runner.atomic import write_json_atomic
from local_runner.execution_record import StepRecord
from local_runner.graph import ExecutionError

MODELS = "models"
_UNSAFE = re.compile(r"[^A-Za-z0-9-]")


def model_path(work_dir: Path, model_name: str) -> Path:
    """Where a Model step's model is recorded (its name made safe for a file)."""
    return Path(work_dir) / MODELS / f"{_UNSAFE.sub('-', model_name)}.json"


def primary_container(model: dict, model_name: str) -> dict:
    """The container that serves the model (the first one of a multi-container model)."""
    container = model.get("PrimaryContainer") or next(iter(model.get("Containers", [])), None)
    if not container or not container.get("Image"):
        raise ExecutionError(f"model {model_name} has no container image")
    return container


def load_model(work_dir: Path, model_name: str) -> dict:
    """The CreateModel request of a model created by an earlier Model step."""
    path = model_path(work_dir, model_name)
    if not path.is_file():
        raise ExecutionError(f"model {model_name} was not created by a Model step of this work dir")
    return json.loads(path.read_text())


def run_model(executor: Any, step: dict, arguments: dict, record: StepRecord) -> None:
    """Record the model of a Model step."""
    name = arguments.get("ModelName") or executor._job_name(step["Name"])
    container = primary_container(arguments, name)
    model = {**arguments, "ModelName": name}
    write_json_atomic(model_path(executor.work_dir, name), model)
    record.properties = {
        "ModelName": name,
        "ModelArn": f"arn:aws:sagemaker:local:000000000000:model/{name.lower()}",
        "PrimaryContainer": container,
        "ExecutionRoleArn": arguments.get("ExecutionRoleArn", ""),
    }
    if "Containers" in arguments:
        record.properties["Containers"] = arguments["Containers"]
