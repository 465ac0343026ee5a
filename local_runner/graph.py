"""The pure part of reading a pipeline definition: parameters, step dependencies, condition branches.

`cast_parameters` gives the declared parameters their defaults, overrides and types; `flatten_steps`
lists every step (condition branches included) with the steps it waits for, from `DependsOn` and from
every `Steps.X` reference in its arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from local_runner.errors import RunnerError


class ExecutionError(RunnerError, RuntimeError):
    """The definition cannot be executed (unsupported step type, bad parameter, broken reference)."""


def _cast(item: dict, raw: Any) -> Any:
    casts: dict[str, Callable[[Any], Any]] = {
        "String": str,
        "Integer": int,
        "Float": float,
        "Boolean": lambda v: str(v).lower() == "true",
    }
    try:
        value = casts[item.get("Type", "String")](raw)
    except (TypeError, ValueError):
        raise ExecutionError(f"pipeline parameter {item['Name']}={raw!r} is not a {item['Type']}") from None
    if item.get("EnumValues") and value not in item["EnumValues"]:
        raise ExecutionError(f"pipeline parameter {item['Name']}={raw!r} is not one of {item['EnumValues']}")
    return value


def cast_parameters(declared: list[dict], overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults of the declared parameters, overridden and cast to their declared types."""
    names = {item["Name"] for item in declared}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ExecutionError(f"unknown pipeline parameter(s): {', '.join(unknown)}")
    values = {}
    for item in declared:
        raw = overrides.get(item["Name"], item.get("DefaultValue"))
        if raw is None:
            raise ExecutionError(f"pipeline parameter {item['Name']} has no default and no value")
        values[item["Name"]] = _cast(item, raw)
    return values


def step_references(value: Any) -> set[str]:
    """Names of the steps an expression tree refers to."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Get" and isinstance(item, str) and item.startswith("Steps."):
                found.add(item.split(".")[1].split("[")[0])
            else:
                found |= step_references(item)
    elif isinstance(value, list):
        for item in value:
            found |= step_references(item)
    return found


def flatten_steps(steps: list[dict], parent: str | None = None) -> dict[str, tuple[dict, set[str]]]:
    """Every step, condition branches included, with the names of the steps it must wait for."""
    graph: dict[str, tuple[dict, set[str]]] = {}
    for step in steps:
        depends = set(step.get("DependsOn", [])) | step_references(step.get("Arguments", {}))
        if parent:
            depends.add(parent)
        graph[step["Name"]] = (step, depends - {step["Name"]})
        if step["Type"] == "Condition":
            branches = step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", [])
            graph.update(flatten_steps(branches, step["Name"]))
    return graph
