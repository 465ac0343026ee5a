"""The live view in its three modes, fed synthetic runner events, and the aligned closing summary."""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path

from local_runner.__main__ import human, step_table
from local_runner.execution_record import ExecutionResult, StepRecord
from local_runner.live_view import LiveView, duration, emit, shown

STAMP = re.compile(r"^\d\d:\d\d:\d\d ")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def feed(view: LiveView, clock: Clock) -> None:
    """A short run: preprocessing, then tuning with two trials whose jobs print staged lines."""
    emit(view, "step_started", "step Prep (Processing) started", step="Prep", type="Processing")
    emit(view, "job_line", "  [e-Prep] reading", job="e-Prep", line="reading")
    clock.now = 12.0
    emit(view, "step_ended", "...", step="Prep", type="Processing", status="Succeeded", seconds=12.0)
    emit(view, "step_started", "step Tune (Tuning) started", step="Tune", type="Tuning")
    emit(view, "trial_started", "trial 1/2: ...", number=1, total=2)
    emit(view, "job_line", "...", job="e-Tune-001", line="gbm member 1/3 fitted in 1.0s")
    clock.now = 72.0
    fields = {"total": 2, "metric": "validation:rmse", "direction": "Minimize"}
    emit(view, "trial_ended", "...", number=1, value=14.123456, **fields)
    view("a message of the runner")


def test_quiet_prints_nothing():
    stream, clock = io.StringIO(), Clock()
    view = LiveView("quiet", stream, tty=False, clock=clock)
    feed(view, clock)
    view.close()
    assert stream.getvalue() == ""


def test_normal_without_a_terminal_prints_plain_timestamped_lines_and_no_job_logs():
    stream, clock = io.StringIO(), Clock()
    view = LiveView("normal", stream, tty=False, clock=clock)
    feed(view, clock)
    lines = stream.getvalue().splitlines()
    assert "\x1b" not in stream.getvalue()
    assert all(STAMP.match(line) for line in lines)
    bodies = [STAMP.sub("", line) for line in lines]
    assert bodies == [
        "Prep (Processing) started",
        "Prep succeeded in 12s",
        "Tune (Tuning) started",
        "trial 1/2: validation:rmse 14.12 (best 14.12)",
        "a message of the runner",
    ]


def test_verbose_streams_the_job_logs():
    stream, clock = io.StringIO(), Clock()
    view = LiveView("verbose", stream, tty=False, clock=clock)
    feed(view, clock)
    out = stream.getvalue()
    assert "  [e-Prep] reading" in out and "  [e-Tune-001] gbm member 1/3 fitted in 1.0s" in out


def test_the_running_rows_show_trials_with_the_best_so_far_and_an_eta():
    stream, clock = io.StringIO(), Clock()
    view = LiveView("normal", stream, tty=False, clock=clock)
    feed(view, clock)
    # Tuning started at 12 s, one trial of two done at 72 s: one more minute to go.
    assert view.rows() == [
        ("Tune", "Executing", "1m00s", "1/2 trials done, best validation:rmse 14.12, ETA 1m00s")
    ]
    fields = {"total": 2, "metric": "validation:rmse", "direction": "Minimize"}
    emit(view, "trial_ended", "...", number=2, value=15.0, **fields)
    assert view.steps["Tune"].best == 14.123456  # minimised: the worse second trial is not the best


def test_ensemble_members_and_epochs_are_progress_of_their_step():
    view, clock = LiveView("normal", io.StringIO(), tty=False), Clock()
    emit(view, "step_started", "", step="RefitModel", type="Training")
    emit(view, "job_line", "", job="local-1-abc-RefitModel", line="epoch 14/60 loss=0.1")
    assert view.rows()[0][3] == "epoch 14/60"
    emit(view, "job_line", "", job="local-1-abc-RefitModel", line="gbm member 2/5 fitted in 3.0s")
    assert view.rows()[0][3] == "member 2/5"
    del clock


def test_without_a_terminal_members_and_every_fifth_of_the_epochs_get_a_line():
    stream = io.StringIO()
    view = LiveView("normal", stream, tty=False)
    emit(view, "step_started", "", step="RefitModel", type="Training")
    for epoch in range(1, 11):
        emit(view, "job_line", "", job="e-RefitModel", line=f"epoch {epoch}/10 loss=0.1")
    emit(view, "job_line", "", job="e-RefitModel", line="lstm member 1/3 fitted in 9.0s")
    lines = [STAMP.sub("", line) for line in stream.getvalue().splitlines()][1:]
    assert lines == [f"RefitModel epoch {n}/10" for n in (2, 4, 6, 8, 10)] + ["RefitModel member 1/3"]


def test_parallel_steps_never_share_a_line():
    stream = io.StringIO()
    view = LiveView("verbose", stream, tty=False)

    def chatter(step: str) -> None:
        emit(view, "step_started", "", step=step, type="Processing")
        for index in range(200):
            emit(view, "job_line", "", job=f"e-{step}", line=f"{step} line {index}")
        emit(view, "step_ended", "", step=step, type="Processing", status="Succeeded", seconds=1.0)

    threads = [threading.Thread(target=chatter, args=(name,)) for name in ("Left", "Right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = [STAMP.sub("", line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2 * 202
    assert all(
        re.fullmatch(r"(\w+ \(Processing\) started|\w+ succeeded in 1s|  \[e-(\w+)\] \2 line \d+)", x)
        for x in lines
    )


def test_a_terminal_gets_the_live_table_and_keeps_the_step_lines():
    stream, clock = io.StringIO(), Clock()
    view = LiveView("normal", stream, tty=True, clock=clock)
    feed(view, clock)
    view.close()
    view.close()  # idempotent
    out = stream.getvalue()
    assert "Prep succeeded in 12s" in out and "a message of the runner" in out
    assert "reading" not in out  # job logs stay in their files


def test_a_plain_echo_gets_the_text_line():
    lines: list[str] = []
    emit(lines.append, "step_started", "step A (Fail) started", step="A", type="Fail")
    assert lines == ["step A (Fail) started"]


def test_numbers_and_paths_for_people(tmp_path, monkeypatch):
    assert [duration(s) for s in (4.4, 125, 3725)] == ["4s", "2m05s", "1h02m"]
    assert [human(v) for v in ("0.024443269457417885", "400", "gbm", "1e-05")] == [
        "0.0244",
        "400",
        "gbm",
        "1e-05",
    ]
    monkeypatch.chdir(tmp_path)
    assert shown(tmp_path / "a" / "b.json") == str(Path("a") / "b.json")
    assert shown("/elsewhere/x") == "/elsewhere/x"


def test_the_step_table_is_aligned():
    steps = [
        StepRecord("PreprocessData", "Processing", "Succeeded", seconds=3.25),
        StepRecord("TuneModel", "Tuning", "Succeeded", seconds=1234.5, cache_hit=True),
        StepRecord("FailQualityGate", "Fail", "NotExecuted"),
    ]
    result = ExecutionResult("e", "Succeeded", "", {}, steps, 1.0, Path("r.json"))
    table = step_table(result)
    assert table[0].split() == ["step", "type", "status", "seconds"]
    assert len({len(row) for row in table}) == 1  # every row ends at the seconds column
    assert all(row[17:].startswith(record.type) for row, record in zip(table[1:], steps, strict=True))
    assert table[2].split()[2:] == ["Succeeded", "(cached)", "1234.5"]
