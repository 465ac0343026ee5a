"""The type checker's configuration matches the code: mypy follows exactly the aws_cdk modules imported."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_cdk_modules(paths: list[str]) -> set[str]:
    """Every `aws_cdk` module the files under `paths` import (`from aws_cdk import aws_x` counts as aws_x)."""
    found: set[str] = set()
    files = [
        p for path in paths for p in ([ROOT / path] if path.endswith(".py") else (ROOT / path).rglob("*.py"))
    ]
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "aws_cdk":
                found.add(node.module)
                if node.module == "aws_cdk":
                    found.update(f"aws_cdk.{a.name}" for a in node.names if a.name.startswith("aws_"))
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.split(".")[0] == "aws_cdk")
    return found


def test_mypy_follows_exactly_the_aws_cdk_modules_the_checked_code_imports():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    followed = {
        module
        for override in config["overrides"]
        if override.get("follow_imports") == "normal"
        for module in override["module"]
    }
    assert followed == imported_cdk_modules(config["files"])
