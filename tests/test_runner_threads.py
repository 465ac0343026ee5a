"""The thread budget (`local_runner.threads`): side-by-side jobs share the cores; a user limit caps them."""

from __future__ import annotations

import pytest

from local_runner.threads import JobCounter, thread_budget, thread_environment


@pytest.mark.parametrize(
    ("cores", "jobs_running", "user", "expected"),
    [(2, 1, None, 2), (2, 2, None, 1), (2, 3, None, 1), (8, 3, None, 2), (8, 2, "3", 3), (8, 1, "x", 8)],
)
def test_the_thread_budget_shares_the_cores_and_a_user_limit_caps_it(cores, jobs_running, user, expected):
    """Cores divided among running jobs (at least one each); a numeric user limit wins, "x" is ignored."""
    assert thread_budget(cores, jobs_running, user) == expected
    environ = {"OMP_NUM_THREADS": user} if user else {}
    variables = thread_environment(jobs_running, environ, cores)
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
    assert variables == {**dict.fromkeys(names, str(expected)), "TF_NUM_INTEROP_THREADS": "1"}


def test_job_counter_counts_processes_and_scheduled_steps():
    """Reserved steps count as running before their process starts."""
    counter = JobCounter()
    counter.reserve_step()
    counter.reserve_step()
    with counter.process() as running:
        assert running == 2  # the sibling step's process has not started yet
    counter.release_step()
    counter.release_step()
    with counter.process() as first, counter.process() as second:
        assert (first, second) == (1, 2)
    assert counter.concurrent == 0
