"""The runner's module graph: the scheduler, the report and the tracking do not import one another in a
cycle, and only `container_code` edits `sys.path` (to import the container code)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "local_runner"
CORE = ("execution", "report", "tracking")


def _imports(module: str) -> set[str]:
    """The local_runner modules `module` imports anywhere (in functions too), outside TYPE_CHECKING."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for statement in block.body
        for node in ast.walk(statement)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "local_runner":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("local_runner."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("local_runner.")}
    return {name for name in found if (PACKAGE / f"{name}.py").is_file()}


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for name in _imports(todo.pop()) - seen:
            seen.add(name)
            todo.append(name)
    return seen


@pytest.mark.parametrize("module", CORE)
def test_no_core_part_reaches_back_to_itself_or_the_other_parts_cycle(module):
    """Following every import (lazy ones too) from one core part never comes back to it."""
    reachable = _reachable(module)
    assert module not in reachable, f"{module} imports itself through {sorted(reachable)}"
    for other in CORE:
        if other != module and other in reachable:
            assert module not in _reachable(other), f"{module} and {other} import each other"


def test_the_executor_imports_neither_the_report_nor_mlflows_tracker():
    """The scheduler depends on the tracking hooks only, not on the report, readers or MLflow tracker."""
    reachable = _reachable("execution")
    assert not {"report", "report_publish", "tracking", "readers"} & reachable


@pytest.mark.parametrize("module", ["readers", "report", "report_sections", "tracking", "execution"])
def test_no_sys_path_edit_in_the_readers_and_the_core_parts(module):
    """The readers of job outputs and the core parts leave `sys.path` alone."""
    assert "sys.path" not in (PACKAGE / f"{module}.py").read_text()


# Still edit `sys.path` themselves; they are to call `container_code.use_container_code()` instead.
PENDING_SYS_PATH_EDITS: set[str] = set()


def _runner_modules() -> list:
    """Every runner module but `container_code`, the pending ones marked as expected (strict) failures."""
    mark = pytest.mark.xfail(strict=True, reason="edits sys.path; to use container_code")
    return [
        pytest.param(path.stem, marks=[mark] if path.stem in PENDING_SYS_PATH_EDITS else [])
        for path in sorted(PACKAGE.glob("*.py"))
        if path.stem != "container_code"
    ]


@pytest.mark.parametrize("module", _runner_modules())
def test_only_container_code_edits_sys_path(module):
    """One place puts `containers/` on `sys.path`; a second copy of that edit would drift from it."""
    assert "sys.path" not in (PACKAGE / f"{module}.py").read_text()


def test_use_container_code_makes_rul_importable_once_in_a_fresh_interpreter():
    """Without pytest's `pythonpath`, the runner imports the container code through the one helper, and a
    second call does not add `containers/` again."""
    script = (
        "import sys; from local_runner.container_code import CONTAINERS_DIR, use_container_code; "
        "use_container_code(); use_container_code(); import rul.lineage, model_quality; "
        "print(sys.path.count(str(CONTAINERS_DIR)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PACKAGE.parent,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(PACKAGE.parent)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


@pytest.mark.parametrize("module", CORE)
def test_each_core_part_imports_alone_in_a_fresh_interpreter(module):
    """Importing one part first, in a new process, does not hit a partly initialised module."""
    done = subprocess.run(
        [sys.executable, "-c", f"import local_runner.{module}"],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
