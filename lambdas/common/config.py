"""Configuration from a function's environment: `ConfigError` and a reader that collects every problem.

Each function validates its environment once per invocation (never at import time) and raises one
`ConfigError` naming every bad variable with its value, so one failed invocation shows them all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# S3 bucket names (3-63 characters, lower case, digits, dots and hyphens).
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# SageMaker resource names of at most 63 characters (model package groups, endpoints, schedules).
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
PIPELINE_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")


class ConfigError(ValueError):
    """Missing or invalid environment variables; the message names each with its value."""


class EnvReader:
    """Reads variables, collecting every problem instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def text(
        self,
        name: str,
        pattern: re.Pattern[str] | None = None,
        default: str | None = None,
        expect: str | None = None,
    ) -> str:
        """The stripped value; a problem when absent or not matching `pattern` (worded `expect` if given)."""
        value = self.environ.get(name, default)
        stripped = "" if value is None else value.strip()
        if expect is not None:
            if stripped == "" or (pattern is not None and not pattern.match(stripped)):
                self.problems.append(f"{name}: must be {expect} (got {stripped!r})")
            return stripped
        if stripped == "":
            self.problems.append(f"{name}: required (got {value!r})")
            return ""
        if pattern is not None and not pattern.match(stripped):
            self.problems.append(f"{name}: does not match {pattern.pattern} (got {stripped!r})")
        return stripped

    def integer(self, name: str, low: int, high: int, default: int | None = None) -> int:
        """An integer in [low, high]; `default` when unset or blank (a problem if there is none)."""
        raw = self.environ.get(name)
        if raw is None or raw.strip() == "":
            if default is not None:
                return default
            self.problems.append(f"{name}: required integer in [{low}, {high}] (got {raw!r})")
            return low
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name}: not an integer (got {raw!r})")
            return low
        if not low <= value <= high:
            self.problems.append(f"{name}: must be in [{low}, {high}] (got {value})")
        return value

    def items(self, name: str, pattern: re.Pattern[str], low: int, high: int) -> tuple[str, ...]:
        """Comma-separated values, `low` to `high` of them, each matching `pattern`."""
        raw = self.environ.get(name, "")
        values = tuple(part.strip() for part in raw.split(",") if part.strip())
        if not low <= len(values) <= high:
            self.problems.append(f"{name}: needs {low} to {high} comma-separated values (got {raw!r})")
        for value in values:
            if not pattern.match(value):
                self.problems.append(f"{name}: {value!r} does not match {pattern.pattern}")
        return values

    def flag(self, name: str, default: bool) -> bool:
        """`true` or `false` (any case); `default` when unset or blank."""
        value = self.environ.get(name, "").strip().lower()
        if value == "":
            return default
        if value not in ("true", "false"):
            self.problems.append(f"{name}: must be true or false (got {value!r})")
        return value == "true"

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        """One of `options` (lower-cased); `default` when unset."""
        value = self.environ.get(name, default).strip().lower()
        if value not in options:
            self.problems.append(f"{name}: must be one of {', '.join(options)} (got {value!r})")
        return value

    def check(self, what: str) -> None:
        """Raise one `ConfigError` listing every problem, e.g. `invalid <what> configuration: A; B`."""
        raise_problems(self.problems, what)


def raise_problems(problems: list[str], what: str) -> None:
    """Raise `ConfigError("invalid <what> configuration: ...")` when `problems` is not empty."""
    if problems:
        raise ConfigError(f"invalid {what} configuration: " + "; ".join(problems))
