"""Stopping a local execution: what SIGINT and SIGTERM do to the runner and its jobs.

Every job runs in its own session (so its own process group) under `local_runner.job_guard`; the
`StopController` knows the groups that are running. A stop request (the first SIGINT or SIGTERM) sends
SIGTERM to each group and, after `grace` seconds, SIGKILL to those still there; no new job starts after
it. The executor then marks the execution and its running steps `Stopped` (SageMaker's word), writes the
record and the command exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM), the shell
convention. A second signal kills the groups at once. A later run resumes from the step cache.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from local_runner.errors import RunnerError

GRACE_SECONDS = 5.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(RunnerError, RuntimeError):
    """Raised where new work would start after a stop was requested."""


def kill_group(group: int, signal_number: int) -> bool:
    """Signal a whole process group; False when it is already gone."""
    try:
        os.killpg(group, signal_number)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class StopController:
    """The running jobs' process groups, and whether the execution was asked to stop."""

    def __init__(self, grace: float = GRACE_SECONDS):
        self.grace = grace
        self.signal_number: int | None = None
        self._event = threading.Event()
        self._lock = threading.RLock()  # the signal handler may interrupt a holder in the main thread
        self._groups: set[int] = set()

    @property
    def requested(self) -> bool:
        """Whether a stop was requested."""
        return self._event.is_set()

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as shells report a process ended by that signal."""
        return 128 + (self.signal_number or signal.SIGTERM)

    @property
    def reason(self) -> str:
        """Text naming the signal that stopped the execution, for failure reasons."""
        return f"stopped by {signal.Signals(self.signal_number or signal.SIGTERM).name}"

    def check(self) -> None:
        """Raise `StopRequested` if a stop was requested, before a job starts."""
        if self.requested:
            raise StopRequested(f"{self.reason} before the job started")

    def add(self, group: int) -> None:
        """Track a job's group; a job started just after a stop request is stopped at once."""
        with self._lock:
            self._groups.add(group)
            stopping = self.requested
        if stopping:
            kill_group(group, signal.SIGTERM)

    def discard(self, group: int) -> None:
        """Stop tracking a job's group once its job ended."""
        with self._lock:
            self._groups.discard(group)

    def request(self, signal_number: int = signal.SIGTERM) -> None:
        """TERM to every running job's group now, KILL after the grace period (at once if repeated)."""
        with self._lock:
            repeated = self.requested
            self.signal_number = self.signal_number or signal_number
            self._event.set()
            groups = sorted(self._groups)
        for group in groups:
            kill_group(group, signal.SIGKILL if repeated else signal.SIGTERM)
        if not repeated and groups:
            timer = threading.Timer(self.grace, self._kill_remaining, args=(groups,))
            timer.daemon = True
            timer.start()

    def _kill_remaining(self, groups: list[int]) -> None:
        with self._lock:
            remaining = [group for group in groups if group in self._groups]
        for group in remaining:
            kill_group(group, signal.SIGKILL)


def install_handlers(controller: StopController) -> Callable[[], None]:
    """Route SIGINT and SIGTERM to `controller` (main thread only); returns what restores the old ones."""

    def handle(signal_number: int, frame: FrameType | None) -> None:
        controller.request(signal_number)

    previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS}

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    return restore
