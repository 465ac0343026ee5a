"""The thread budget of local jobs: side-by-side jobs share the cores instead of each taking all of them.

OpenMP (scikit-learn's gradient boosting), OpenBLAS, MKL and TensorFlow each start one thread per core
by default; two jobs side by side (DataQualityBaseline beside TuneModel) then run twice as many busy
threads as cores, and on 2 cores an 8-second fit took 98 s. When a job starts it gets
max(1, cores // jobs running at that moment, itself included) threads through the variables those
libraries read; a user-set `OMP_NUM_THREADS` caps the budget. Jobs running is the larger of the job
processes alive and the job steps the executor has scheduled (two steps scheduled together count as two
even if one's process starts a moment later).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
)
# TensorFlow's pool that runs independent ops side by side; one keeps a small model's job to its budget.
TF_INTEROP_VARIABLE = "TF_NUM_INTEROP_THREADS"


def thread_budget(cores: int, concurrent_jobs: int, user_limit: str | None = None) -> int:
    """Threads for one job: the cores shared by the running jobs, at least one, at most the user's limit."""
    budget = max(1, cores // max(1, concurrent_jobs))
    if user_limit:
        with contextlib.suppress(ValueError):  # OpenMP ignores a malformed value too
            budget = min(budget, max(1, int(user_limit)))
    return budget


def thread_environment(
    concurrent_jobs: int, environ: Mapping[str, str] | None = None, cores: int | None = None
) -> dict[str, str]:
    """The variables to add to a job's environment when `concurrent_jobs` jobs run, this one included."""
    environ = os.environ if environ is None else environ
    cores = cores or os.cpu_count() or 1
    budget = thread_budget(cores, concurrent_jobs, environ.get("OMP_NUM_THREADS"))
    return {**{name: str(budget) for name in THREAD_VARIABLES}, TF_INTEROP_VARIABLE: "1"}


class JobCounter:
    """How many jobs run now in this process: job processes alive and job steps scheduled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes = 0
        self._steps = 0

    @property
    def concurrent(self) -> int:
        """The jobs running now: the larger of job processes alive and job steps scheduled."""
        with self._lock:
            return max(self._processes, self._steps)

    def reserve_step(self) -> None:
        """Count one more job step as scheduled."""
        with self._lock:
            self._steps += 1

    def release_step(self) -> None:
        """Count one job step fewer once it ended."""
        with self._lock:
            self._steps -= 1

    @contextmanager
    def process(self) -> Iterator[int]:
        """Count a job process while it runs; yields the jobs running, this one included."""
        with self._lock:
            self._processes += 1
            running = max(self._processes, self._steps)
        try:
            yield running
        finally:
            with self._lock:
                self._processes -= 1


RUNNING = JobCounter()
