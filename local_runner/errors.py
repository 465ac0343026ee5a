"""The base of every error the local runner raises on purpose: `RunnerError`.

Each part of the runner keeps its own error class (a registry error, a job error, a stop request...) and
derives it from `RunnerError`, with the built-in base its callers already catch (`KeyError`,
`ValueError`, `LookupError`, `RuntimeError`) as the second base. An entry point can thus catch the
runner's own failures in one clause and still let a programming error (a plain `TypeError`) surface.
"""

from __future__ import annotations


class RunnerError(Exception):
    """A failure the local runner detected and can name; the message says what and where."""
