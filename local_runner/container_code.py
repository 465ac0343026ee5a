"""The container code (`containers/`: the `rul` package and the job scripts), as the runner imports it.

The runner runs the container scripts in subprocesses and does not import them at module level; the few
things it shares with them (the synthetic generator, the dataset manifest, the quality job's join, the
model's prediction) it imports on first use, after `use_container_code()`. That call is the one place in
the runner that puts `containers/` on `sys.path` (in the image it is the working directory; under pytest
and mypy, `pyproject.toml` already puts it there).
"""

from __future__ import annotations

import sys

from pipeline_steps.code import CONTAINERS_DIR

__all__ = ["CONTAINERS_DIR", "use_container_code"]


def use_container_code() -> None:
    """Make the container code importable (`import rul...`, `import model_quality`); idempotent."""
    if str(CONTAINERS_DIR) not in sys.path:
        sys.path.append(str(CONTAINERS_DIR))
