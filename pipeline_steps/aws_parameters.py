"""Run parameters of `start`, checked against the parameters the deployed pipeline declares.

`declared_parameters` reads the `Parameters` of the definition that DescribePipeline returns (name, type,
default, enum values); `parse_assignments` splits the command line's `Name=Value` items; `build_request`
turns them into StartPipelineExecution's `PipelineParameters`, or raises `ParameterError` listing every
problem at once: names the pipeline does not declare (with the names it does, and the new name of a
renamed one), names given twice, values
that are not of the declared type (Integer, Float, Boolean) or not among a String's enum values. Nothing
here calls AWS: the check runs before any call that changes anything.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from pipeline_steps.names import RENAMED_PARAMETERS

# StartPipelineExecution's limit on a parameter value (botocore's model: String1024).
MAX_VALUE_LENGTH = 1024
_INTEGER = re.compile(r"^[+-]?\d+$")
_BOOLEANS = ("true", "false")


class ParameterError(ValueError):
    """Parameters the deployed pipeline would not accept; the message names each problem."""


@dataclass(frozen=True)
class DeclaredParameter:
    """One parameter the deployed definition declares: name, type, default, allowed values."""

    name: str
    type: str  # String, Integer, Float or Boolean
    default: object
    enum_values: tuple[str, ...] = ()


def declared_parameters(definition: str) -> dict[str, DeclaredParameter]:
    """The definition's parameters by name, in declared order."""
    try:
        parameters = json.loads(definition).get("Parameters", [])
    except (json.JSONDecodeError, AttributeError) as error:
        raise ParameterError(f"the deployed pipeline definition is not a JSON object ({error})") from error
    return {
        item["Name"]: DeclaredParameter(
            name=item["Name"],
            type=item.get("Type", "String"),
            default=item.get("DefaultValue"),
            enum_values=tuple(str(value) for value in item.get("EnumValues", ())),
        )
        for item in parameters
    }


def parse_assignments(items: list[str]) -> list[tuple[str, str]]:
    """`Name=Value` items as (name, value); the value may contain `=` and may be empty."""
    pairs = []
    for item in items:
        name, separator, value = item.partition("=")
        if not separator or not name.strip():
            raise ParameterError(f"parameter {item!r} is not Name=Value")
        pairs.append((name.strip(), value))
    return pairs


def value_problem(declared: DeclaredParameter, value: str) -> str | None:
    """Why `value` is not a valid value of `declared`, or None."""
    if len(value) > MAX_VALUE_LENGTH:
        return f"{declared.name}: value is longer than {MAX_VALUE_LENGTH} characters"
    if declared.type == "Integer" and not _INTEGER.match(value):
        return f"{declared.name}: expected an Integer, got {value!r}"
    if declared.type == "Float":
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            return f"{declared.name}: expected a Float, got {value!r}"
    if declared.type == "Boolean" and value not in _BOOLEANS:
        return f"{declared.name}: expected a Boolean (true or false), got {value!r}"
    if declared.enum_values and value not in declared.enum_values:
        return f"{declared.name}: {value!r} is not one of {', '.join(declared.enum_values)}"
    return None


def build_request(
    assignments: list[tuple[str, str]], declared: dict[str, DeclaredParameter], pipeline: str
) -> list[dict[str, str]]:
    """`PipelineParameters` for StartPipelineExecution; raises `ParameterError` naming every problem."""
    problems = []
    unknown = [name for name, _ in assignments if name not in declared]
    if unknown:
        problems.append(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"pipeline {pipeline} declares: {', '.join(declared) or '(none)'}"
        )
    renamed = [f"{name} is now {RENAMED_PARAMETERS[name]}" for name in unknown if name in RENAMED_PARAMETERS]
    if renamed:
        problems.append("renamed: " + ", ".join(renamed))
    names = [name for name, _ in assignments]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        problems.append(f"given more than once: {', '.join(repeated)}")
    for name, value in assignments:
        problem = value_problem(declared[name], value) if name in declared else None
        if problem:
            problems.append(problem)
    if problems:
        raise ParameterError("invalid pipeline parameters: " + "; ".join(problems))
    return [{"Name": name, "Value": value} for name, value in assignments]
