"""Shared by the pipeline-definition tests: the network guard, the cached default render, JSON helpers.

`guarded_render` renders under a guard that refuses sockets and records any botocore request, so every
test on a render also proves rendering is offline; `default_render` does it once per session for the
default config. The rest reads the parsed definition: steps by name (also inside condition branches),
`Get` references, a processing step's inputs and outputs, and the expressions the builder writes.
"""

from __future__ import annotations

import contextlib
import functools
import socket

import boto3
import botocore.endpoint
import pytest

from pipeline_steps import names
from pipeline_steps.config import PipelineConfig, local_config
from pipeline_steps.render import render_definition

KMS_KEY = "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555"
SECURE = {
    "kms_key_arn": KMS_KEY,
    "subnet_ids": ("subnet-0aaa", "subnet-0bbb"),
    "security_group_ids": ("sg-0ccc",),
}
JOB_STEPS = (
    names.PREPROCESS_STEP,
    names.BASELINE_STEP,
    names.TUNE_STEP,
    names.REFIT_STEP,
    names.EVALUATE_STEP,
)
PROCESSING_STEPS = (names.PREPROCESS_STEP, names.BASELINE_STEP, names.EVALUATE_STEP)
REGISTER_JSON_NAME = names.REGISTER_STEP_JSON_NAME


@contextlib.contextmanager
def network_guard():
    """Refuse sockets and record any botocore request; yields the list of attempted calls."""
    attempts: list[str] = []

    def refuse(*args, **_kwargs):
        attempts.append(f"socket {args[1:] if len(args) > 1 else args}")
        raise OSError("network access during rendering")

    def record_send(request, **_kwargs):
        attempts.append(f"before-send {request.method} {request.url}")
        raise RuntimeError("AWS API call during rendering")

    real_make_request = botocore.endpoint.Endpoint.make_request

    def record_request(self, operation_model, request_dict):
        attempts.append(f"make_request {operation_model.name}")
        return real_make_request(self, operation_model, request_dict)

    real_session = boto3.Session

    def hooked_session(*args, **kwargs):
        session = real_session(*args, **kwargs)
        session.events.register("before-send", record_send)
        return session

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        patch.setattr(botocore.endpoint.Endpoint, "make_request", record_request)
        patch.setattr(boto3, "Session", hooked_session)
        yield attempts


def guarded_render(config: PipelineConfig) -> tuple[str, list[str]]:
    """The definition of `config` and the network or AWS calls attempted while rendering it (none)."""
    with network_guard() as attempts:
        text = render_definition(config)
    return text, attempts


@functools.cache
def default_render() -> tuple[str, list[str]]:
    """The default definition's text and any network attempts, rendered once per test session."""
    return guarded_render(local_config())


def all_steps(definition: dict) -> dict[str, dict]:
    """Every step by name, including those nested in a condition's branches."""
    found = {}
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop()
        found[step["Name"]] = step
        if step["Type"] == "Condition":
            pending += step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"]
    return found


def gets(value) -> set[str]:
    """All `{"Get": ...}` references inside a JSON value."""
    if isinstance(value, dict):
        found = {value["Get"]} if isinstance(value.get("Get"), str) else set()
        return found.union(*(gets(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(gets(item) for item in value))
    return set()


def step_refs(step: dict) -> set[str]:
    """Names of the steps whose properties `step` reads."""
    return {ref.split(".")[1] for ref in gets(step) if ref.startswith("Steps.")}


def inputs_by_name(step: dict) -> dict[str, dict]:
    """A processing step's S3 inputs by input name."""
    return {item["InputName"]: item["S3Input"] for item in step["Arguments"]["ProcessingInputs"]}


def outputs_by_name(step: dict) -> dict[str, dict]:
    """A processing step's S3 outputs by output name."""
    outputs = step["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    return {item["OutputName"]: item["S3Output"] for item in outputs}


def output_get(output: str) -> dict:
    """The property reference of a PreprocessData output's S3 URI."""
    return {"Get": f"Steps.{names.PREPROCESS_STEP}.ProcessingOutputConfig.Outputs['{output}'].S3Output.S3Uri"}


def report_get(path: str) -> dict:
    """The JsonGet of a value in the evaluation report."""
    file_ref = {"Get": f"Steps.{names.EVALUATE_STEP}.PropertyFiles.{names.EVALUATION_PROPERTY_FILE}"}
    return {"Std:JsonGet": {"Path": path, "PropertyFile": file_ref}}


def execution_join(step: str, *parts: str) -> dict:
    """The per-execution scratch URI the builder joins for `step`'s output."""
    values = ["s3:/", "local-artifacts", "turbofan-rul", {"Get": "Execution.PipelineExecutionId"}, step]
    return {"Std:Join": {"On": "/", "Values": [*values, *parts]}}


def registry_join(step: str, *parts: str) -> dict:
    """The kept registry URI the builder joins for `step`'s output."""
    values = ["s3:/", "local-artifacts", "registry", "turbofan-rul", {"Get": "Execution.PipelineExecutionId"}]
    return {"Std:Join": {"On": "/", "Values": [*values, step, *parts]}}


# The model evaluated, registered and served: the refit of the best trial on all training units.
REFIT_MODEL = {"Get": f"Steps.{names.REFIT_STEP}.ModelArtifacts.S3ModelArtifacts"}
