"""The parent of every local job: ends the job's whole process group when the runner dies.

`python job_guard.py <runner pid> <command...>` runs as the leader of the job's own session and process
group (the runner starts it with `start_new_session`), starts the command in that group and waits for
it. SIGINT/SIGTERM aimed at the group stop the command; the guard outlives them to report its exit code.
When the guard sees its parent change (the runner was killed, even with SIGKILL, which nothing can catch)
it sends SIGTERM to the group, then SIGKILL after a grace period, so no job is left running unowned.
It imports only the standard library and runs with `-I -S`, costing a few milliseconds per job.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

POLL_SECONDS = 0.25
GRACE_SECONDS = 5.0


def end_group(child: subprocess.Popen) -> None:
    """The runner is gone: stop the whole group (this guard included) politely, then for good."""
    os.killpg(0, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=GRACE_SECONDS)
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    """Run the command while the runner `argv[0]` lives (end its group if not); the command's exit code."""
    runner, command = int(argv[0]), argv[1:]
    # A handler, not SIG_IGN: handlers fall back to the default in the command, ignored signals would not.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: None)
    if os.getppid() != runner:
        return 143
    try:
        child = subprocess.Popen(command)
    except OSError as error:
        print(f"cannot start {command[0]}: {error}", flush=True)
        return 127
    while True:
        try:
            code = child.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            if os.getppid() != runner:
                end_group(child)
            continue
        return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
