"""What a local run shows while it works: one line per step, tuning trials with the best so far, progress.

The executor, the job launcher and the tuner report through one `echo` callable. `emit` sends an event
(`execution_started`, `step_started`, `step_ended`, `trial_started`, `trial_ended`, `job_line`) to an
echo that has an `event` method and the same event's text line to any other echo (`print`, a list's
`append`), so callers that only collect text keep working. `LiveView` is that richer echo, in three
modes: `quiet` shows nothing (the caller prints the summary), `normal` shows the steps, the trials and the
runner's own messages, `verbose` also streams every job's log line. On a terminal, `normal` and `verbose`
keep a compact table of the running steps at the bottom (rich); elsewhere (CI, pipes) they print plain
timestamped lines, no ANSI. Every line is written whole under a lock, so parallel steps never share a
line.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

MODES = ("quiet", "normal", "verbose")
# The staged lines the training script prints: ensemble members and epochs, as "member 2/5", "epoch 3/60".
PROGRESS = re.compile(r"\b(member|epoch) (\d+)/(\d+)")


def emit(echo: Callable[[str], None], kind: str, text: str, **fields: Any) -> None:
    """Report one event: structured to a view with an `event` method, as its text line to any other echo."""
    handler = getattr(echo, "event", None)
    if handler is None:
        echo(text)
    else:
        handler(kind, text, fields)


def shown(path: str | Path) -> str:
    """A path for people: relative to the working folder when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def duration(seconds: float) -> str:
    """Seconds for people: 42s, 3m05s, 1h02m."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class StepState:
    """What the view knows of one step."""

    type: str
    started: float
    status: str = "Executing"
    seconds: float = 0.0
    cache_hit: bool = False
    done: int = 0
    total: int = 0
    unit: str = ""  # "trial", "member" or "epoch"
    best: float | None = None
    metric: str = ""

    def detail(self, now: float) -> str:
        """The step's progress text (units done, best trial, ETA of the trials); empty without a total."""
        if not self.total:
            return ""
        text = (
            f"{self.unit} {self.done}/{self.total}"
            if self.unit != "trial"
            else f"{self.done}/{self.total} trials done"
        )
        if self.unit == "trial" and self.best is not None:
            text += f", best {self.metric} {self.best:.2f}"
        if self.unit == "trial" and 0 < self.done < self.total:
            text += f", ETA {duration((now - self.started) / self.done * (self.total - self.done))}"
        return text


class LiveView:
    """The echo of a run: renders the runner's events for people in the chosen mode."""

    def __init__(
        self,
        mode: str = "normal",
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if mode not in MODES:
            raise ValueError(f"view mode {mode!r} is not one of {', '.join(MODES)}")
        self.mode, self.stream, self.clock = mode, stream or sys.stdout, clock
        self.tty = self.stream.isatty() if tty is None else tty
        self.steps: dict[str, StepState] = {}
        self._lock = threading.RLock()
        self._live: Any = None
        self._closed = False

    # -- input ----------------------------------------------------------------------------------------------
    def __call__(self, text: str) -> None:
        """A plain message of the runner (data generation, cache notes, warnings)."""
        self._line(text)

    def event(self, kind: str, text: str, fields: dict[str, Any]) -> None:
        """One structured event; `text` is its plain line."""
        with self._lock:
            handler = getattr(self, f"_on_{kind}", None)
            if handler is None:
                self(text)
            else:
                handler(fields)
            if self._live is not None:
                self._live.refresh()

    def close(self) -> None:
        """Stop the live table (idempotent); what was printed stays."""
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None
            self._closed = True

    # -- events ---------------------------------------------------------------------------------------------
    def _on_execution_started(self, fields: dict[str, Any]) -> None:
        self._line(f"execution {fields['execution']}: {fields['steps']} steps")

    def _on_step_started(self, fields: dict[str, Any]) -> None:
        self.steps[fields["step"]] = StepState(fields["type"], self.clock())
        if not self.tty:
            self._line(f"{fields['step']} ({fields['type']}) started")
        self._ensure_live()

    def _on_step_ended(self, fields: dict[str, Any]) -> None:
        state = self.steps.setdefault(fields["step"], StepState(fields.get("type", ""), self.clock()))
        state.status, state.seconds = fields["status"], fields["seconds"]
        state.cache_hit = bool(fields.get("cache_hit"))
        note = " (cached)" if state.cache_hit else ""
        reason = fields.get("reason") or ""
        first = reason.splitlines()[0] if reason else ""
        self._line(
            f"{fields['step']} {state.status.lower()} in {duration(state.seconds)}{note}"
            + (f": {first}" if first else "")
        )

    def _on_trial_started(self, fields: dict[str, Any]) -> None:
        state = self._tuning_step()
        if state is not None:
            state.unit, state.total = "trial", fields["total"]

    def _on_trial_ended(self, fields: dict[str, Any]) -> None:
        state, value = self._tuning_step(), fields.get("value")
        label = f"trial {fields['number']}/{fields['total']}"
        if state is not None:
            state.unit, state.total, state.metric = "trial", fields["total"], fields["metric"]
            state.done += 1
            if value is not None and (state.best is None or _better(value, state.best, fields)):
                state.best = value
        if value is None:
            self._line(f"{label} failed: {fields.get('reason', '')}")
        elif not self.tty or self.mode == "verbose":
            best = f" (best {state.best:.2f})" if state is not None and state.best is not None else ""
            self._line(f"{label}: {fields['metric']} {value:.2f}{best}")

    def _on_job_line(self, fields: dict[str, Any]) -> None:
        match = PROGRESS.search(fields["line"])
        state = self._step_of(fields["job"])
        if match and state is not None and state.unit != "trial":
            state.unit, state.done, state.total = match[1], int(match[2]), int(match[3])
            if not self.tty and self.mode == "normal" and _milestone(state):
                self._line(f"{self._name_of(state)} {state.unit} {state.done}/{state.total}")
        if self.mode == "verbose":
            self._line(f"  [{fields['job']}] {fields['line']}")

    # -- helpers --------------------------------------------------------------------------------------------
    def _tuning_step(self) -> StepState | None:
        return next((s for s in self.steps.values() if s.type == "Tuning" and s.status == "Executing"), None)

    def _step_of(self, job: str) -> StepState | None:
        running = [name for name, s in self.steps.items() if s.status == "Executing" and f"-{name}" in job]
        return self.steps[max(running, key=len)] if running else None

    def _name_of(self, state: StepState) -> str:
        return next(name for name, known in self.steps.items() if known is state)

    def _line(self, text: str) -> None:
        if self.mode == "quiet":
            return
        with self._lock:
            if self._live is not None:
                self._live.console.print(text, markup=False, highlight=False, soft_wrap=True)
                return
            stamp = "" if self.tty else f"{datetime.now():%H:%M:%S} "
            self.stream.write(f"{stamp}{text}\n")  # one write per line: parallel steps never share one
            self.stream.flush()

    def _ensure_live(self) -> None:
        if self._live is not None or not self.tty or self.mode == "quiet" or self._closed:
            return
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self.stream, force_terminal=True)
        self._live = Live(get_renderable=self.render, console=console, transient=True, refresh_per_second=4)
        self._live.start()

    def rows(self) -> list[tuple[str, str, str, str]]:
        """One row per running step: name, status, elapsed, progress."""
        now = self.clock()
        return [
            (name, state.status, duration(now - state.started), state.detail(now))
            for name, state in self.steps.items()
            if state.status == "Executing"
        ]

    def render(self) -> Any:
        """The live table (rich), rebuilt at each refresh."""
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 2))
        for name, status, elapsed, detail in self.rows():
            table.add_row(Text(name, style="bold"), status, elapsed, detail)
        return table


def _better(value: float, best: float, fields: dict[str, Any]) -> bool:
    return value > best if fields.get("direction") == "Maximize" else value < best


def _milestone(state: StepState) -> bool:
    """Worth a plain line: every ensemble member, every fifth of the epochs."""
    return state.unit == "member" or state.done == state.total or state.done % max(1, state.total // 5) == 0
