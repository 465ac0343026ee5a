"""Lambda steps, run by a local Python handler in place of the Lambda function.

The lambda map (`--lambda-map FILE`, JSON) maps each function ARN (or function name) of the definition to
a handler, `path/to/file.py:function` (a path relative to the map file) or `package.module:function`:

    {"arn:aws:lambda:us-east-1:111122223333:function:score": "lambdas/score.py:handler"}

The handler is called as Lambda calls it, `handler(event, context)`, with the step's resolved `Arguments`
as the event. The step's `OutputParameters` are read from the returned dict and cast to their declared
types (String, Integer, Float, Boolean); they are the step's properties `OutputParameters['name']`. A
handler that raises fails the step with its error, as a function error fails the step on AWS.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from local_runner.execution_record import StepRecord
from local_runner.graph import ExecutionError

Handler = Callable[[dict, Any], Any]


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of Lambda's context object that handlers commonly read."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str
    memory_limit_in_mb: int = 128

    def get_remaining_time_in_millis(self) -> int:
        """Fifteen minutes in milliseconds, Lambda's longest timeout: a local call never times out."""
        return 900_000


def load_lambda_map(path: Path) -> dict[str, str]:
    """The function -> handler entries of a lambda map file, handler paths made absolute."""
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ExecutionError(f"cannot read the lambda map {path}: {error}") from None
    if not isinstance(entries, dict) or not all(
        isinstance(value, str) and ":" in value for value in entries.values()
    ):
        raise ExecutionError(f"{path}: expected a JSON object of function ARN -> 'file.py:function'")
    resolved = {}
    for function, target in entries.items():
        location, _, name = target.rpartition(":")
        if location.endswith(".py"):
            location = str((Path(path).parent / location).resolve())
        resolved[function] = f"{location}:{name}"
    return resolved


def _module(location: str) -> ModuleType:
    if not location.endswith(".py"):
        return importlib.import_module(location)
    spec = importlib.util.spec_from_file_location(f"local_lambda_{Path(location).stem}", location)
    if spec is None or spec.loader is None or not Path(location).is_file():
        raise ExecutionError(f"lambda handler file {location} does not exist")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def find_handler(function_arn: str, lambda_map: Mapping[str, str]) -> Handler:
    """The handler mapped to the function (by ARN, else by its name)."""
    name = function_arn.rsplit(":function:", 1)[-1].split(":")[0]
    target = lambda_map.get(function_arn) or lambda_map.get(name)
    if target is None:
        known = ", ".join(sorted(lambda_map)) or "none"
        raise ExecutionError(
            f"no local handler for Lambda function {function_arn}: add it to the --lambda-map file "
            f"(mapped now: {known})"
        )
    location, _, attribute = target.rpartition(":")
    handler = getattr(_module(location), attribute, None)
    if not callable(handler):
        raise ExecutionError(f"{location} has no function {attribute!r} (Lambda function {function_arn})")
    return handler


def cast_output(value: Any, output_type: str, name: str) -> Any:
    """An output parameter cast to its declared type (String, Integer, Float, Boolean)."""
    try:
        if output_type == "Integer":
            return int(value)
        if output_type == "Float":
            return float(value)
        if output_type == "Boolean":
            return value if isinstance(value, bool) else str(value).lower() == "true"
        return value if isinstance(value, str) else json.dumps(value)
    except (TypeError, ValueError):
        raise ExecutionError(f"output {name}={value!r} is not a {output_type}") from None


def output_parameters(declared: list[dict], returned: Any, source: str) -> dict[str, Any]:
    """The declared outputs, read from a dict returned by a handler or sent with a callback."""
    if declared and not isinstance(returned, Mapping):
        raise ExecutionError(f"{source} returned {type(returned).__name__}, not a dict of outputs")
    outputs = {}
    for item in declared:
        name = item["OutputName"]
        if name not in returned:
            raise ExecutionError(f"{source} returned no output {name!r} (got {sorted(returned)})")
        outputs[name] = cast_output(returned[name], item.get("OutputType", "String"), name)
    return outputs


def run_lambda(executor: Any, step: dict, arguments: dict, record: StepRecord) -> None:
    """Run a Lambda step through its mapped local handler."""
    function_arn = step["FunctionArn"]
    handler = find_handler(function_arn, executor.options.lambda_map)
    context = LambdaContext(function_arn.rsplit(":", 1)[-1], function_arn, str(uuid.uuid4()))
    try:
        returned = handler(json.loads(json.dumps(arguments)), context)
    except Exception as error:  # the function's own error fails the step, as on AWS
        record.status, record.failure_reason = (
            "Failed",
            f"Lambda {function_arn}: {type(error).__name__}: {error}",
        )
        return
    source = f"Lambda {function_arn}"
    record.properties = {
        "OutputParameters": output_parameters(step.get("OutputParameters", []), returned, source)
    }
