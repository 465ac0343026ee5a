"""The errors the container scripts and the local runner raise on purpose.

Entry points catch `RulError` once at the top, print its message and exit non-zero; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class RulError(Exception):
    """Base class of the errors that carry a message meant for the user."""


class DataFormatError(RulError):
    """A data file breaks the C-MAPSS format; names the file, the line and the problem."""

    def __init__(self, path: str | Path, line: int | str | None, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class ConfigurationError(RulError):
    """A hyperparameter, argument or environment setting is missing or out of range."""


class ModelArtifactError(RulError):
    """A model artifact is missing a file or was written by an incompatible version."""
