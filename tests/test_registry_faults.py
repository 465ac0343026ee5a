"""Faults around the registry commands: concurrency, corrupt and missing archives, kill -9 half way.

Each case ends with `assert_consistent`: SQLite's integrity check passes, the champion folder is whole and
serves the registry's newest approved version (byte for byte its archive), and no staging folder is left.
Kills are deterministic: the command runs in a subprocess with `RUL_REGISTRY_CRASH_AT=<point>` and
SIGKILLs itself there. The always-on cases take a few seconds; the `chaos` one kills at every point
(`test_registry_faults_cli.py` runs the real CLI in parallel processes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from registry_helpers import (
    CHAMPION_URI,
    MIXED_VERBS,
    PROJECT_ROOT,
    assert_consistent,
    healthy,
    make_work_dir,
    model_url,
    parse,
    target,
)

from local_runner import champion as champion_module
from local_runner.champion import (
    CRASH_HOOK,
    change_status,
    published_version,
)
from local_runner.object_store import ObjectStore, replace_atomically
from local_runner.registry import APPROVED, PENDING, REJECTED, LocalRegistry
from local_runner.registry_cli import (
    DEFAULT_GROUP,
    approve_version,
    registry_path,
    run_registry_command,
)

# A status change in a fresh process, with a stub health check (the kill tests are about the commit).
CHANGE_SCRIPT = """
import sys
from pathlib import Path
from local_runner.champion import ChampionTarget
from local_runner.object_store import ObjectStore, replace_atomically
from local_runner.registry import LocalRegistry
from local_runner.registry_cli import approve_version, registry_path, reject_version
work, verb, version = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
target = ChampionTarget(ObjectStore(work / "s3"), sys.argv[4], lambda folder: (True, "stub"))
change = approve_version if verb == "approve" else reject_version
change(LocalRegistry(registry_path(work)), "turbofan-rul", version, None, None, target)
"""


def command(work: Path, *argv: str, check=healthy) -> tuple[int, list[str]]:
    lines: list[str] = []
    args = parse(*argv, "--work-dir", str(work))
    return run_registry_command(args, echo=lines.append, champion=target(work, check)), lines


def change_in_subprocess(work: Path, verb: str, version: int, crash_at: str) -> int:
    environ = {**os.environ, CRASH_HOOK: crash_at, "PYTHONPATH": str(PROJECT_ROOT)}
    argv = [sys.executable, "-c", CHANGE_SCRIPT, str(work), verb, str(version), CHAMPION_URI]
    return subprocess.run(argv, env=environ, cwd=PROJECT_ROOT, timeout=120).returncode


def run_parallel(calls) -> list:
    results: list = [None] * len(calls)

    def run(index: int) -> None:
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


# --- always on ---------------------------------------------------------------------------------------------


def test_concurrent_approves_and_rejects_serialise_and_stay_consistent(tmp_path):
    work = make_work_dir(tmp_path)
    ObjectStore(work / "s3").delete(model_url(4))  # one approval must fail cleanly
    results = run_parallel([lambda verb=verb: command(work, *verb.split()) for verb in MIXED_VERBS])
    for verb, (code, lines) in zip(MIXED_VERBS, results, strict=True):
        if verb == "approve 4":
            assert code == 1 and "model archive" in lines[0] and "does not exist" in lines[0]
        else:
            assert code == 0, lines
            assert lines[-1].endswith("Approved" if verb.startswith("approve") else "Rejected")
    assert LocalRegistry(registry_path(work)).get(DEFAULT_GROUP, 4).approval_status == PENDING
    assert_consistent(work)


def test_parallel_lists_during_approvals_all_succeed(tmp_path):
    work = make_work_dir(tmp_path)
    calls = [lambda: command(work, "list")] * 16 + [
        lambda v=v: command(work, "approve", str(v)) for v in (1, 2)
    ]
    results = run_parallel(calls)
    assert [code for code, _ in results] == [0] * len(calls)
    assert all(lines[0].split()[0] == "VERSION" for _, lines in results[:16])
    assert_consistent(work)


def test_kill_9_between_swap_and_commit_rolls_back_and_the_next_command_recovers(tmp_path):
    work = make_work_dir(tmp_path)
    assert command(work, "approve", "1")[0] == 0
    assert change_in_subprocess(work, "approve", 2, "swapped") == -signal.SIGKILL
    assert registry_path(work).with_name("registry.sqlite-journal").is_file(), "killed inside the transaction"
    assert published_version(target(work)) == (True, 2), "the champion was swapped before the commit"
    code, lines = command(work, "list")
    assert code == 0 and lines[1].split()[:2] == ["4", PENDING] and lines[3].split()[:2] == ["2", PENDING]
    assert command(work, "approve", "3")[0] == 0
    assert_consistent(work)
    assert published_version(target(work)) == (True, 3)


def test_a_failure_inside_the_transaction_swaps_the_champion_back(tmp_path, monkeypatch):
    work = make_work_dir(tmp_path)
    assert command(work, "approve", "1")[0] == 0

    def fail(name: str) -> None:
        if name == "swapped":
            raise OSError("disk full")

    monkeypatch.setattr(champion_module, "crash_point", fail)
    code, lines = command(work, "approve", "2")
    assert code == 1 and "disk full" in lines[0]
    assert LocalRegistry(registry_path(work)).get(DEFAULT_GROUP, 2).approval_status == PENDING
    assert published_version(target(work)) == (True, 1)
    assert_consistent(work)


def test_a_corrupt_archive_is_refused_before_anything_changes(tmp_path):
    work = make_work_dir(tmp_path, versions=2)
    assert command(work, "approve", "1")[0] == 0
    ObjectStore(work / "s3").path_for(model_url(2)).write_bytes(b"\x1f\x8b not really gzip")
    code, lines = command(work, "approve", "2")
    assert code == 1 and len(lines) == 1
    assert f"approve {DEFAULT_GROUP} version 2 refused: version 2: model archive" in lines[0]
    assert "is not a readable tar.gz" in lines[0]
    assert LocalRegistry(registry_path(work)).get(DEFAULT_GROUP, 2).approval_status == PENDING
    assert_consistent(work)


@pytest.mark.slow
def test_the_real_health_check_refuses_a_model_that_does_not_load(tmp_path):
    """`serve.py check` in a fresh process: the archive unpacks, but holds no model to load."""
    work = make_work_dir(tmp_path, versions=1)
    lines: list[str] = []
    code = run_registry_command(parse("approve", "1", "--work-dir", str(work)), echo=lines.append)
    assert code == 1 and len(lines) == 1 and "version 1: the health check failed" in lines[0]
    assert LocalRegistry(registry_path(work)).get(DEFAULT_GROUP, 1).approval_status == PENDING
    assert_consistent(work)


def test_object_store_writes_are_atomic_and_in_flight_files_invisible(tmp_path):
    store = ObjectStore(tmp_path / "s3")
    store.put_text("s3://b/k/a.txt", "old")

    def torn(_temporary: Path) -> None:
        raise OSError("killed mid-write")

    with pytest.raises(OSError, match="mid-write"):
        replace_atomically(store.path_for("s3://b/k/a.txt"), torn)
    assert store.read_text("s3://b/k/a.txt") == "old"
    assert [name for name, _ in store.objects("s3://b/k/")] == ["a.txt"]
    (store.path_for("s3://b/k/") / ".tmp-123-abc-b.txt").write_text("half")
    assert [name for name, _ in store.objects("s3://b/k/")] == ["a.txt"], "in-flight files are not objects"
    assert (
        not (tmp_path / "elsewhere").exists() and ObjectStore(tmp_path / "elsewhere").objects("s3://b/") == []
    )
    assert not (tmp_path / "elsewhere").exists(), "a store is created by its first write only"


def test_change_status_refuses_when_the_newest_approved_moved_underneath(tmp_path, monkeypatch):
    """A writer outside the lock (a pipeline registering an approved version) makes the commit refuse."""
    work = make_work_dir(tmp_path)
    registry = LocalRegistry(registry_path(work))
    approve_version(registry, DEFAULT_GROUP, 1, champion=target(work))
    original = champion_module.stage

    def stage_then_interfere(*args):
        staged = original(*args)
        registry.update_approval(DEFAULT_GROUP, 4, APPROVED)
        return staged

    monkeypatch.setattr(champion_module, "stage", stage_then_interfere)
    with pytest.raises(champion_module.ChampionError, match="registry changed during the command"):
        change_status(target(work), registry, DEFAULT_GROUP, 2, APPROVED)
    assert registry.get(DEFAULT_GROUP, 2).approval_status == PENDING
    assert published_version(target(work)) == (True, 1)


def test_a_fallback_that_fails_verification_blocks_the_reject_and_changes_nothing(tmp_path):
    work = make_work_dir(tmp_path)
    for version in (1, 2):
        assert command(work, "approve", str(version))[0] == 0
    ObjectStore(work / "s3").delete(model_url(1))
    code, lines = command(work, "reject", "2")
    assert code == 1 and "reject turbofan-rul version 2 refused: version 1: model archive" in lines[0]
    assert LocalRegistry(registry_path(work)).get(DEFAULT_GROUP, 2).approval_status == APPROVED
    assert_consistent(work)
    assert command(work, "reject", "1")[0] == 0 and command(work, "reject", "2")[0] == 0
    assert published_version(target(work)) == (True, None)
    assert_consistent(work)


def test_without_an_atomic_exchange_the_two_rename_swap_still_commits_and_rolls_back(tmp_path, monkeypatch):
    work = make_work_dir(tmp_path)
    monkeypatch.setattr(champion_module, "_exchange", lambda first, second: False)
    for version in (1, 2):
        assert command(work, "approve", str(version))[0] == 0
    assert published_version(target(work)) == (True, 2)
    assert command(work, "reject", "2")[0] == 0
    assert published_version(target(work)) == (True, 1)

    def fail(name: str) -> None:
        if name == "swapped":
            raise OSError("disk full")

    monkeypatch.setattr(champion_module, "crash_point", fail)
    assert command(work, "approve", "3")[0] == 1
    assert published_version(target(work)) == (True, 1)
    assert_consistent(work)


def test_a_torn_champion_is_republished_from_the_registry_by_the_next_change(tmp_path):
    work = make_work_dir(tmp_path)
    assert command(work, "approve", "2")[0] == 0
    (target(work).folder / "champion.json").write_text("{not json")
    assert published_version(target(work)) == (False, None)
    assert command(work, "reject", "3")[0] == 0
    assert published_version(target(work)) == (True, 2)
    assert_consistent(work)


# --- chaos -------------------------------------------------------------------------------------------------


@pytest.mark.chaos
@pytest.mark.parametrize("crash_at", champion_module.CRASH_POINTS)
@pytest.mark.parametrize("verb", ["approve", "reject"])
def test_kill_9_at_every_point_leaves_a_recoverable_registry(tmp_path, crash_at, verb):
    """approve 3 over champion 2, or reject champion 2 (falling back to 1), killed at each point."""
    work = make_work_dir(tmp_path)
    for version in (1, 2):
        assert command(work, "approve", str(version))[0] == 0
    version = 3 if verb == "approve" else 2
    assert change_in_subprocess(work, verb, version, crash_at) == -signal.SIGKILL
    status = LocalRegistry(registry_path(work)).get(DEFAULT_GROUP, version).approval_status
    committed = crash_at == "committed"
    before, after = (PENDING, APPROVED) if verb == "approve" else (APPROVED, REJECTED)
    assert status == (after if committed else before)
    assert command(work, "list")[0] == 0
    assert command(work, "reject", "4")[0] == 0, "the next status change works (and recovers)"
    assert_consistent(work)
