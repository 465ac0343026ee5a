"""Checks a run's options and `--param NAME=VALUE` assignments before any work starts.

The declared parameters come from `pipeline_steps.parameters` in the shape the rendered definition
declares them (`Name`, `Type`, `DefaultValue`, `EnumValues`), without rendering the definition, plus the
render-time `ModelFamily`; their bounds are `pipeline_steps.parameters.BOUNDS`. `check_parameters` gives
the typed values or raises `UsageError` naming the parameter, the value and what is allowed; an unknown
name lists the valid ones, and a former name (`names.RENAMED_PARAMETERS`) names the one it became.
Nothing here writes a file or generates data, so a usage error leaves the work folder as it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from local_runner.errors import RunnerError
from pipeline_steps import names

Bounds = Mapping[str, tuple[float | None, float | None]]
TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "String": "a string", "Boolean": "true or false"}
# Chosen at render time (each family has its own search space), so not a parameter of the definition.
MODEL_FAMILY_SPEC = {"Name": names.MODEL_FAMILY, "Type": "String", "EnumValues": list(names.MODEL_FAMILIES)}


class UsageError(RunnerError, ValueError):
    """A command-line value the run cannot accept (exit code 2)."""


def declared_parameters() -> tuple[list[dict], Bounds]:
    """The main pipeline's declared parameters (and `ModelFamily`) with their bounds."""
    from pipeline_steps.config import local_config
    from pipeline_steps.parameters import BOUNDS, declared_requests  # imports the SageMaker SDK

    return [*declared_requests(local_config()), MODEL_FAMILY_SPEC], BOUNDS


def parse_value(spec: Mapping, raw: str) -> object:
    """`raw` as the parameter's declared type, or a UsageError saying what the value is not."""
    name, kind = spec["Name"], spec.get("Type", "String")
    text = raw.strip()
    try:
        if kind == "Integer":
            value: object = int(text)
        elif kind == "Float":
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
        elif kind == "Boolean":
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            value = text.lower() == "true"
        else:
            value = raw
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not {TYPE_WORDS.get(kind, kind)}") from None
    allowed = spec.get("EnumValues")
    if allowed and value not in allowed:
        raise UsageError(f"{name}={raw!r} is not one of {', '.join(map(str, allowed))}")
    return value


def check_bounds(name: str, value: object, bounds: Bounds) -> None:
    """Raise a UsageError when a numeric value lies outside the parameter's declared bounds."""
    low, high = bounds.get(name, (None, None))
    if low is not None and value < low:  # type: ignore[operator]
        raise UsageError(f"{name}={value} is below its minimum {low}")
    if high is not None and value > high:  # type: ignore[operator]
        raise UsageError(f"{name}={value} is above its maximum {high}")


def check_parameters(
    assignments: Iterable[tuple[str, str]], declared: list[dict], bounds: Bounds
) -> dict[str, object]:
    """The typed values of NAME=VALUE assignments, checked against the declared parameters."""
    specs = {spec["Name"]: spec for spec in declared}
    values: dict[str, object] = {}
    for name, raw in assignments:
        if name not in specs and name in names.RENAMED_PARAMETERS:
            raise UsageError(f"parameter {name!r} was renamed: use {names.RENAMED_PARAMETERS[name]}")
        if name not in specs:
            raise UsageError(f"unknown parameter {name!r}; valid parameters: {', '.join(sorted(specs))}")
        if name in values:
            raise UsageError(f"parameter {name} is given twice")
        values[name] = parse_value(specs[name], raw)
        check_bounds(name, values[name], bounds)
    return values


def check_run_options(
    data_dir: Path | None, subset: str, units: int, parameters: Mapping[str, object]
) -> None:
    """The `run` options that decide the data: the subset, the data folder's files, the synthetic units."""
    if subset not in names.SUBSETS:
        raise UsageError(f"--subset {subset!r} is not one of {', '.join(names.SUBSETS)}")
    given = parameters.get(names.SUBSET)
    if given is not None and given != subset:
        raise UsageError(
            f"--param {names.SUBSET}={given} disagrees with --subset {subset}: give --subset only"
        )
    if units < 1:
        raise UsageError(f"--units {units} is below its minimum 1")
    if data_dir is None:
        return
    if not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir {data_dir} is not a folder")
    if not (Path(data_dir) / f"train_{subset}.txt").is_file():
        raise UsageError(f"--data-dir {data_dir} holds no train_{subset}.txt")
