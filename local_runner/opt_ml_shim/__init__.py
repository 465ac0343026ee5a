"""The `/opt/ml` path shim of foreign jobs: this folder, put first on a job's `PYTHONPATH`, holds the
`sitecustomize` that maps `/opt/ml` paths to `$SAGEMAKER_BASE_DIR` inside the job's Python."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SHIM_DIR = Path(__file__).resolve().parent


def shim_environment(environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """`PYTHONPATH` with the shim first, then what `environment` (default: this process's) had."""
    current = (environment if environment is not None else os.environ).get("PYTHONPATH", "")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(SHIM_DIR), current]))}
