"""Resolving the expressions of a pipeline definition: `Get`, `Std:Join`, `Std:JsonGet` and conditions.

A definition refers to pipeline parameters (`Parameters.X`), execution variables (`Execution.X`) and the
properties of earlier steps (`Steps.S.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri`), whose
shapes follow SageMaker's Describe* responses. Property files are JSON outputs of a processing step,
read back through the object store as the service does; `Std:JsonGet` also reads a JSON object named
by an S3 URI (`read_object`). `Execution.CurrentDateTime` is the time of evaluation and
`Execution.PipelineArn` derives from the execution's ARN.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local_runner.errors import RunnerError

_TOKEN = re.compile(r"\[(\d+)\]|\['([^']*)'\]|([^.\[\]]+)")
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "GreaterThan": operator.gt,
    "GreaterThanOrEqualTo": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEqualTo": operator.le,
}


class ExpressionError(RunnerError, ValueError):
    """An expression refers to something that does not exist or cannot be evaluated."""


def parse_path(path: str) -> list[str | int]:
    """Split `A.B['x'][0].C` into ["A", "B", "x", 0, "C"]."""
    tokens: list[str | int] = []
    position = 0
    for match in _TOKEN.finditer(path):
        if match.start() not in (position, position + 1):
            raise ExpressionError(f"cannot parse property path {path!r}")
        index, key, name = match.groups()
        tokens.append(int(index) if index is not None else key if key is not None else name)
        position = match.end()
    return tokens


def walk(value: Any, tokens: list[str | int], path: str) -> Any:
    """The item `tokens` lead to inside `value`; a missing key or index is an `ExpressionError`."""
    for token in tokens:
        try:
            value = value[token]
        except (KeyError, IndexError, TypeError):
            raise ExpressionError(f"{path}: no {token!r} in {type(value).__name__}") from None
    return value


@dataclass
class Context:
    """What expressions can refer to during one execution."""

    parameters: dict[str, Any]
    execution: dict[str, Any]
    steps: dict[str, dict] = field(default_factory=dict)  # step name -> properties
    read_property_file: Callable[[str, str], Any] | None = None  # (step, property file) -> parsed JSON
    read_object: Callable[[str], str] | None = None  # S3 URI -> the object's text (JsonGet on an S3 URI)

    def get(self, reference: str) -> Any:
        """The value of a `Parameters.*`, `Execution.*` or `Steps.*` reference; an unknown one is an error."""
        tokens = parse_path(reference)
        root = tokens[0] if tokens else None
        if root == "Parameters" and len(tokens) == 2:
            if tokens[1] not in self.parameters:
                raise ExpressionError(f"unknown pipeline parameter {tokens[1]!r}")
            return self.parameters[str(tokens[1])]
        if root == "Execution" and len(tokens) == 2:
            if tokens[1] == "CurrentDateTime":  # the time of evaluation, unlike StartDateTime
                return datetime.now(UTC).isoformat()
            if tokens[1] == "PipelineArn" and "PipelineExecutionArn" in self.execution:
                return self.execution["PipelineExecutionArn"].split("/execution/")[0]
            if tokens[1] not in self.execution:
                raise ExpressionError(f"unknown execution variable {tokens[1]!r}")
            return self.execution[str(tokens[1])]
        if root == "Steps" and len(tokens) >= 3:
            step = tokens[1]
            if step not in self.steps:
                raise ExpressionError(f"{reference}: step {step!r} has not run")
            return walk(self.steps[str(step)], tokens[2:], reference)
        raise ExpressionError(f"cannot resolve {reference!r}")


def resolve(value: Any, context: Context) -> Any:
    """Replace every expression inside `value` (dicts and lists walked recursively) by its value."""
    if isinstance(value, list):
        return [resolve(item, context) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Get"}:
        return context.get(value["Get"])
    if set(value) == {"Std:Join"}:
        spec = value["Std:Join"]
        return spec["On"].join(_as_text(resolve(item, context)) for item in spec["Values"])
    if set(value) == {"Std:JsonGet"}:
        return _json_get(value["Std:JsonGet"], context)
    return {key: resolve(item, context) for key, item in value.items()}


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _json_get(spec: dict, context: Context) -> Any:
    if "S3Uri" in spec:
        return _json_get_object(spec, context)
    reference = spec["PropertyFile"]["Get"]
    tokens = parse_path(reference)
    if len(tokens) != 4 or tokens[0] != "Steps" or tokens[2] != "PropertyFiles":
        raise ExpressionError(f"unsupported property file reference {reference!r}")
    if context.read_property_file is None:
        raise ExpressionError("property files cannot be read in this context")
    document = context.read_property_file(str(tokens[1]), str(tokens[3]))
    return walk(document, parse_path(spec["Path"]), f"{reference} {spec['Path']}")


def _json_get_object(spec: dict, context: Context) -> Any:
    """`JsonGet(s3_uri=...)`: a value of a JSON object named by its (possibly computed) S3 URI."""
    uri = resolve(spec["S3Uri"], context)
    if context.read_object is None:
        raise ExpressionError(f"S3 objects ({uri}) cannot be read in this context")
    try:
        text = context.read_object(uri)
    except LookupError as error:
        raise ExpressionError(f"JsonGet {uri}: {error}") from None
    return walk(load_json_text(text, uri), parse_path(spec["Path"]), f"{uri} {spec['Path']}")


def evaluate_condition(condition: dict, context: Context) -> bool:
    """Evaluate one condition of a ConditionStep (comparisons, In, Not, Or)."""
    kind = condition["Type"]
    if kind in _COMPARISONS:
        left = resolve(condition["LeftValue"], context)
        right = resolve(condition["RightValue"], context)
        try:
            return bool(_COMPARISONS[kind](_number_or_text(left), _number_or_text(right)))
        except TypeError:
            raise ExpressionError(f"{kind}: cannot compare {left!r} with {right!r}") from None
    if kind == "In":
        query = resolve(condition["QueryValue"], context)
        return query in [resolve(item, context) for item in condition["Values"]]
    if kind == "Not":
        return not evaluate_condition(condition["Condition"], context)
    if kind == "Or":
        return any(evaluate_condition(item, context) for item in condition["Conditions"])
    raise ExpressionError(f"unsupported condition type {kind!r}")


def _number_or_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load_json_text(text: str, source: str) -> Any:
    """The JSON value of `text`; invalid JSON is an `ExpressionError` naming `source`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ExpressionError(f"{source} is not valid JSON: {error}") from None
