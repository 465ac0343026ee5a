"""The runner's errors share one base, `RunnerError`, and keep the built-in base their callers catch."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from local_runner.errors import RunnerError
from local_runner.object_store import ObjectStore, ObjectStoreError
from local_runner.registry import LocalRegistry, RegistryError

PACKAGE = Path(__file__).resolve().parent.parent / "local_runner"


def _error_classes() -> dict[str, tuple[str, list[str]]]:
    """class -> (module, bases) of every exception class local_runner defines (a base named *Error etc.)."""
    found = {}
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.ClassDef):
                continue
            bases = [ast.unparse(base) for base in node.bases]
            if any(base.endswith(("Error", "Exception", "Busy", "Failed", "Requested")) for base in bases):
                found[node.name] = (path.stem, bases)
    return found


ERRORS = _error_classes()


def test_the_scan_finds_the_runners_errors():
    """The source scan is not vacuous: it finds the errors every part defines."""
    assert {"RegistryError", "ObjectStoreError", "StopRequested", "ExecutionError", "JobError"} <= set(ERRORS)


@pytest.mark.parametrize("name", sorted(set(ERRORS) - {"RunnerError"}))
def test_every_runner_error_derives_from_runner_error(name):
    """Read from the source (importing every CLI module would load the SageMaker SDK): the first base is
    `RunnerError` or another of the runner's errors."""
    module, bases = ERRORS[name]
    assert bases[0] == "RunnerError" or (bases[0] in ERRORS and bases[0] != name), f"{module}.{name}{bases}"


@pytest.mark.parametrize("module", ["graph", "jobs", "signals", "tuner", "registry", "object_store"])
def test_the_core_errors_are_runner_errors_once_imported(module):
    """The imported classes, not just their source, derive from `RunnerError`."""
    classes = [name for name, (defined, _) in ERRORS.items() if defined == module]
    loaded = importlib.import_module(f"local_runner.{module}")
    assert classes and all(issubclass(getattr(loaded, name), RunnerError) for name in classes)


def test_the_second_base_is_kept_for_the_callers_that_catch_it(tmp_path):
    """Callers catching `KeyError` or `LookupError` still catch the registry's and the store's errors."""
    with pytest.raises(KeyError) as raised:
        LocalRegistry(tmp_path / "r.sqlite").get("nope", 1)
    assert isinstance(raised.value, RegistryError | RunnerError)
    with pytest.raises(LookupError, match="no S3 objects"):
        ObjectStore(tmp_path / "s3").download("s3://b/none", tmp_path / "x")
    assert issubclass(ObjectStoreError, RunnerError)
