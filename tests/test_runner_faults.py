"""Faults of the local runner: stops, kills, corrupt caches and records, resumed tuning, truncated data.

The always-on cases run tiny definitions whose Processing steps are one-line Python commands (a sleeping
job that also starts a grandchild, to prove the whole process group goes), in a small driver process
that imports only the executor; they take a few seconds. The `chaos` cases run the real command line on
the rendered pipeline with tiny trials, killed when a given job's folder appears: kill -9 then SIGTERM,
the second run resuming from the step cache and reusing the finished trial. Orphans are looked for in
/proc by a marker in the command line (a unique token, or the test's work folder). The truncated data
file case is in tests/test_local_runner.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tiny_run import TINY

from local_runner import jobs
from local_runner.atomic import write_text_atomic
from local_runner.execution import PipelineExecutor
from local_runner.execution_record import LOCK_NAME, mark_abandoned
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from local_runner.signals import StopController, StopRequested
from local_runner.step_cache import StepCache
from local_runner.tuner import tune
from local_runner.tuning_step import trial_runner

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DRIVER = """
import json, sys
from pathlib import Path
from local_runner.execution import PipelineExecutor
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from local_runner.signals import StopController, install_handlers

work, definition, execution_id = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), sys.argv[3]
stop = StopController(grace=2.0)
install_handlers(stop)
store, registry = ObjectStore(work / "s3"), LocalRegistry(work / "registry.sqlite")
result = PipelineExecutor(definition, work, store, registry, stop=stop).start(execution_id=execution_id)
sys.exit(stop.exit_code if result.status == "Stopped" else 0 if result.status == "Succeeded" else 1)
"""


# -- helpers ------------------------------------------------------------------------------------------------
def processing_step(name: str, code: str, depends: tuple[str, ...] = ()) -> dict:
    arguments = {"AppSpecification": {"ContainerEntrypoint": ["python3", "-c", code]}}
    cache = {"Enabled": True, "ExpireAfter": "P1D"}
    step = {"Name": name, "Type": "Processing", "DependsOn": list(depends)}
    return {**step, "CacheConfig": cache, "Arguments": arguments}


def sleeper_definition(marker: str) -> dict:
    """Quick (cached) -> Sleep (a job and its grandchild, both sleeping) -> After."""
    sleeper = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)  # {marker}'])\n"
        "print('ready', flush=True)\n"
        f"time.sleep(120)  # {marker}"
    )
    quick, after = processing_step("Quick", "print('quick')"), processing_step("After", "pass", ("Sleep",))
    return {"Parameters": [], "Steps": [quick, processing_step("Sleep", sleeper, ("Quick",)), after]}


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds `marker` (zombies have an empty command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_record(work: Path, execution_id: str) -> dict:
    return json.loads((work / "executions" / execution_id / "execution.json").read_text())


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_runner_left():
    """Kill (by pid) the runners a failing test left alive; their jobs' guards end the jobs."""
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait(10)


def start_driver(tmp_path: Path, work: Path, marker: str, execution_id: str) -> subprocess.Popen:
    definition = tmp_path / "definition.json"
    definition.write_text(json.dumps(sleeper_definition(marker)))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    log = (tmp_path / f"{execution_id}.out").open("w")
    command = [sys.executable, str(driver), str(work), str(definition), execution_id]
    STARTED.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path))
    return STARTED[-1]


def wait_until_sleeping(work: Path, execution_id: str, process: subprocess.Popen) -> None:
    log = work / "jobs" / f"{execution_id}-Sleep" / "algo-1.log"

    def ready() -> bool:
        assert process.poll() is None, f"the driver ended early with {process.returncode}"
        return log.is_file() and "ready" in log.read_text()

    wait_for(ready, 60, "the sleeping job")


# -- stops and kills of a tiny execution (always on) --------------------------------------------------------
@pytest.mark.parametrize(
    ("signal_number", "code"),
    [(signal.SIGTERM, 143), pytest.param(signal.SIGINT, 130, marks=pytest.mark.chaos)],
)
def test_a_signal_stops_the_job_tree_marks_stopped_and_a_rerun_resumes(tmp_path, signal_number, code):
    work, marker = tmp_path / "work", f"fault-marker-{tmp_path.name}"
    first = start_driver(tmp_path, work, marker, "run-1")
    wait_until_sleeping(work, "run-1", first)
    assert len(processes_with(marker)) >= 3  # the guard, the job and its grandchild
    first.send_signal(signal_number)
    assert first.wait(30) == code
    assert processes_with(marker) == []
    record = read_record(work, "run-1")
    statuses = {step["name"]: step["status"] for step in record["steps"]}
    assert record["status"] == "Stopped"
    assert statuses == {"Quick": "Succeeded", "Sleep": "Stopped", "After": "NotExecuted"}
    stopped_by = f"stopped by {signal_number.name}"
    assert record["steps"][1]["failure_reason"].startswith(f"{stopped_by}: the runner ended")
    assert record["failure_reason"] == stopped_by
    assert not (work / "executions" / "run-1" / LOCK_NAME).exists()

    second = start_driver(tmp_path, work, marker, "run-2")
    wait_until_sleeping(work, "run-2", second)
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 143
    resumed = read_record(work, "run-2")
    assert [step["cache_hit"] for step in resumed["steps"]] == [True, False, False]
    assert not (work / "jobs" / "run-2-Quick").exists()
    assert processes_with(marker) == []


def test_kill_9_of_the_runner_leaves_no_job_and_a_later_run_marks_it_stopped(tmp_path):
    work, marker = tmp_path / "work", f"fault-marker-{tmp_path.name}"
    runner = start_driver(tmp_path, work, marker, "run-9")
    wait_until_sleeping(work, "run-9", runner)
    runner.kill()
    runner.wait(10)
    # Each job's guard notices its parent is gone within a quarter of a second and ends its group.
    wait_for(lambda: not processes_with(marker), 15, "the orphaned job to end")
    assert read_record(work, "run-9")["status"] == "Executing"  # nothing can catch SIGKILL
    lines: list[str] = []
    assert mark_abandoned(work, lines.append) == ["run-9"]
    record = read_record(work, "run-9")
    assert record["status"] == "Stopped" and record["steps"][1]["status"] == "Stopped"
    assert record["steps"][0]["status"] == "Succeeded"
    assert "marked Stopped" in lines[0]


def test_a_live_execution_is_not_marked_abandoned_and_a_bad_record_is_named(tmp_path):
    folder = tmp_path / "executions" / "live"
    folder.mkdir(parents=True)
    (folder / "execution.json").write_text(json.dumps({"execution_id": "live", "status": "Executing"}))
    broken = tmp_path / "executions" / "broken" / "execution.json"
    broken.parent.mkdir()
    broken.write_text('{"status": "Execu')
    with (folder / LOCK_NAME).open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        lines: list[str] = []
        assert mark_abandoned(tmp_path, lines.append) == []
    assert len(lines) == 1
    assert lines[0].startswith(f"ignoring the unreadable execution record {broken} (JSONDecodeError: ")
    assert json.loads((folder / "execution.json").read_text())["status"] == "Executing"


def executor(tmp_path: Path, definition: dict, lines: list[str], stop: StopController | None = None):
    store, registry = ObjectStore(tmp_path / "s3"), LocalRegistry(tmp_path / "registry.sqlite")
    return PipelineExecutor(definition, tmp_path / "work", store, registry, echo=lines.append, stop=stop)


def test_a_stop_request_in_process_ends_the_step_stopped_and_records_it_at_each_step(tmp_path):
    marker, seen = f"fault-marker-{tmp_path.name}", {}
    stop = StopController(grace=1.0)
    log = tmp_path / "work" / "jobs" / "in-process-Sleep" / "algo-1.log"

    def stop_when_sleeping() -> None:
        try:
            wait_for(lambda: log.is_file() and "ready" in log.read_text(), 60, "the sleeping job")
            seen["record"] = read_record(tmp_path / "work", "in-process")
        finally:
            stop.request(signal.SIGINT)

    watcher = threading.Thread(target=stop_when_sleeping)
    watcher.start()
    result = executor(tmp_path, sleeper_definition(marker), [], stop).start(execution_id="in-process")
    watcher.join()
    # Written at the start and rewritten as steps start and end: Quick done, Sleep running.
    assert seen["record"]["status"] == "Executing"
    assert [step["status"] for step in seen["record"]["steps"]] == ["Succeeded", "Executing", "NotStarted"]
    assert [step.status for step in result.steps] == ["Succeeded", "Stopped", "NotExecuted"]
    assert result.step("Sleep").seconds > 0.1  # it ran until the stop
    assert result.status == "Stopped" and stop.exit_code == 130 and processes_with(marker) == []
    with pytest.raises(StopRequested, match="stopped by SIGINT before the job started"):
        jobs.run_command(
            "late", ["python3", "-c", "pass"], tmp_path, {}, tmp_path / "x.log", print, stop=stop
        )


# -- corrupt files ------------------------------------------------------------------------------------------
CHAOS = pytest.mark.chaos
CORRUPT = ['[{"key": "abc", "pro', pytest.param("", marks=CHAOS), pytest.param("{}", marks=CHAOS), "[1]"]


@pytest.mark.parametrize("content", CORRUPT)  # cut short by a kill, empty, a dict, not cache entries
def test_a_corrupt_cache_file_is_named_and_ignored_and_the_step_runs_again(tmp_path, content):
    definition = {"Parameters": [], "Steps": [processing_step("Quick", "print('quick done')")]}
    lines: list[str] = []
    first = executor(tmp_path, definition, lines).start(execution_id="one")
    assert first.status == "Succeeded" and not first.step("Quick").cache_hit
    cache_file = tmp_path / "work" / "cache" / "Quick.json"
    cache_file.write_text(content)
    lines.clear()
    second = executor(tmp_path, definition, lines).start(execution_id="two")
    assert second.status == "Succeeded" and not second.step("Quick").cache_hit
    named = [line for line in lines if str(cache_file) in line]
    assert len(named) >= 1 and named[0].startswith(f"ignoring the unreadable cache file {cache_file} (")
    third = executor(tmp_path, definition, lines).start(execution_id="three")
    assert third.step("Quick").cache_hit  # the file was rewritten whole by the second run


def test_an_interrupted_atomic_write_keeps_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "cache" / "Step.json"
    write_text_atomic(target, "[1]")

    def crash(source, destination):
        raise KeyboardInterrupt  # a stop arriving between the write and the rename

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, "[2, 3]")
    assert target.read_text() == "[1]"
    assert [path.name for path in target.parent.iterdir()] == ["Step.json"]


# -- resumed tuning -----------------------------------------------------------------------------------------
def tuning_request(max_jobs: int) -> dict:
    ranges = {"ContinuousParameterRanges": [{"Name": "x", "MinValue": "0.0", "MaxValue": "4.0"}]}
    return {
        "HyperParameterTuningJobConfig": {
            "HyperParameterTuningJobObjective": {"MetricName": "rmse", "Type": "Minimize"},
            "ParameterRanges": ranges,
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": 1},
            "Strategy": "Bayesian",
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"MetricDefinitions": [{"Name": "rmse", "Regex": r"rmse=([0-9.]+)"}]},
            "OutputDataConfig": {"S3OutputPath": "s3://b/models"},
        },
    }


def test_a_stopped_tuning_step_reuses_its_finished_trials_and_runs_the_rest(tmp_path):
    request = tuning_request(4)
    step = {"Name": "Tune", "Type": "Tuning", "CacheConfig": {"Enabled": True, "ExpireAfter": "P1D"}}
    cache, lines = StepCache(tmp_path / "cache", print), []
    launched: list[str] = []

    def launcher(stop_at: int | None):
        def launch(job_name: str, trial: dict) -> jobs.JobResult:
            launched.append(job_name)
            if stop_at is not None and job_name.endswith(f"-{stop_at:03d}"):
                return jobs.JobResult(job_name, "Stopped", failure_reason="stopped")
            x = float(trial["HyperParameters"]["x"])
            return jobs.JobResult(job_name, "Completed", log_text=f"rmse={(x - 1) ** 2}")

        return launch

    first = trial_runner(step, request["TrainingJobDefinition"], "k", cache, "e1", launcher(3), lines.append)
    with pytest.raises(StopRequested, match="trial 3"):
        tune(request, first, echo=lines.append)
    assert launched == ["e1-Tune-001", "e1-Tune-002", "e1-Tune-003"]
    launched.clear()
    second = trial_runner(
        step, request["TrainingJobDefinition"], "k", cache, "e2", launcher(None), lines.append
    )
    trials = tune(request, second, echo=lines.append)
    assert launched == ["e2-Tune-003", "e2-Tune-004"]
    assert sorted(trial.job_name for trial in trials) == [
        "e1-Tune-001",
        "e1-Tune-002",
        "e2-Tune-003",
        "e2-Tune-004",
    ]
    assert sum("reusing finished job e1-Tune-00" in line for line in lines) == 2
    other = trial_runner(step, request["TrainingJobDefinition"], "other", cache, "e3", launcher(None), print)
    launched.clear()
    tune(tuning_request(1), other, echo=lines.append)
    assert launched == ["e3-Tune-001"]  # another step key (other data or ranges) reuses nothing


# -- the real pipeline through the command line (chaos) -----------------------------------------------------
CLI_DRIVER = f"""
import functools, sys
from local_runner import __main__ as cli

cli.MainJobOptions = functools.partial(cli.MainJobOptions, config_overrides={TINY!r})
sys.exit(cli.main(sys.argv[1:]))
"""


def start_cli(tmp_path: Path, work: Path, data_dir: Path, name: str) -> tuple[subprocess.Popen, Path]:
    driver = tmp_path / "cli_driver.py"
    driver.write_text(CLI_DRIVER)
    output = tmp_path / f"{name}.out"
    command = [sys.executable, str(driver), "run", "--data-dir", str(data_dir), "--work-dir", str(work)]
    command += ["--no-tracking", "--param", "TuningMaxJobs=3", "--param", "TuningMaxParallelJobs=1"]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    STARTED.append(subprocess.Popen(command, stdout=output.open("w"), stderr=subprocess.STDOUT, env=env))
    return STARTED[-1], output


def job_folder(work: Path, suffix: str, exclude: set[str] = frozenset()) -> Path | None:
    jobs_dir = work / "jobs"
    found = (
        [path for path in jobs_dir.glob(f"*-{suffix}") if path.name not in exclude]
        if jobs_dir.is_dir()
        else []
    )
    return found[0] if found else None


def execution_ids(work: Path) -> list[str]:
    return sorted(path.name for path in (work / "executions").iterdir())


@pytest.mark.chaos
def test_kill_9_then_sigterm_of_the_command_line_resumes_from_the_cache_and_reuses_trials(
    tmp_path, synthetic_dir
):
    work = tmp_path / "work"
    first, _ = start_cli(tmp_path, work, synthetic_dir, "first")
    # Trial 1 has finished when trial 2's job folder appears.
    wait_for(lambda: first.poll() is None and job_folder(work, "TuneModel-002"), 400, "trial 2 of run 1")
    first.kill()
    first.wait(10)
    wait_for(lambda: not processes_with(str(work)), 15, "the first run's jobs to end")
    (first_id,) = execution_ids(work)
    assert read_record(work, first_id)["status"] == "Executing"

    second, output = start_cli(tmp_path, work, synthetic_dir, "second")
    seen = {path.name for path in (work / "jobs").iterdir()}
    wait_for(
        lambda: second.poll() is None and job_folder(work, "TuneModel-002", seen), 400, "trial 2 of run 2"
    )
    second.send_signal(signal.SIGTERM)
    assert second.wait(60) == 143
    assert processes_with(str(work)) == []
    second_id = next(name for name in execution_ids(work) if name != first_id)
    assert read_record(work, first_id)["status"] == "Stopped"  # marked by the second run
    record = read_record(work, second_id)
    steps = {step["name"]: step for step in record["steps"]}
    assert record["status"] == "Stopped" and steps["TuneModel"]["status"] == "Stopped"
    assert steps["PreprocessData"]["cache_hit"] is True
    assert steps["EvaluateModel"]["status"] == "NotExecuted"
    text = output.read_text()
    assert f"trial 1: reusing finished job {first_id}-TuneModel-001" in text
    assert not (work / "jobs" / f"{second_id}-TuneModel-001").exists()
    assert "execution " + second_id + ": Stopped" in text
