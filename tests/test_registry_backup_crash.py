"""`registry import --replace` killed at any point leaves the old registry or the new one, never a mix.

The registry being replaced carries a hot journal: a writer killed mid-transaction (a real process,
`os._exit`) after SQLite spilled half-changed pages into the file. Without that journal the file shows
the torn transaction; with it SQLite rolls the file back. The import is then "killed" (an exception that
no code catches) at each point of the replacement; what the next reader sees must be a sound database
holding exactly the old rows or exactly the exported ones (`local_runner.sqlite_replace`).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from local_runner import registry_backup, sqlite_replace
from local_runner.object_store import ObjectStore
from local_runner.registry import APPROVED, PENDING, REJECTED, LocalRegistry
from local_runner.registry_backup import BackupError, export_registry, import_registry
from pipeline_steps.config import local_config

GROUP = "turbofan-rul"
CHAMPION = local_config().champion_uri
TORN_WRITER = """
import os, sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA cache_size=10")  # a small cache spills changed pages into the file
connection.execute("BEGIN IMMEDIATE")
connection.execute("UPDATE model_packages SET approval_status = 'Torn'")
connection.execute("CREATE TABLE junk (x)")
for _ in range(3000):
    connection.execute("INSERT INTO junk VALUES (?)", ("x" * 500,))
os._exit(0)
"""


class Crash(BaseException):
    """The process dies here: nothing catches it, nothing cleans up."""


def statuses(work: Path) -> list[tuple[int, str]]:
    """(version, status) of every version, after SQLite's integrity check passed."""
    connection = sqlite3.connect(work / "registry.sqlite")
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        connection.close()
    return [(p.version, p.approval_status) for p in LocalRegistry(work / "registry.sqlite").list(GROUP)]


@pytest.fixture()
def scene(tmp_path) -> tuple[Path, Path]:
    """(work dir, export): the export holds v1 Approved and v2 Pending; the work dir's registry then has v1
    Rejected and a hot journal of a torn transaction."""
    work = tmp_path / "work"
    store = ObjectStore(work / "s3")
    registry = LocalRegistry(work / "registry.sqlite")
    registry.create_group(GROUP)
    for version in (1, 2):
        store.put_text(f"s3://artifacts/models/v{version}/model.tar.gz", f"model {version}")
        registry.register(
            GROUP, f"s3://artifacts/models/v{version}/model.tar.gz", "img", approval_status=PENDING
        )
    registry.update_approval(GROUP, 1, APPROVED)
    export_registry(work, tmp_path / "backup", CHAMPION)
    registry.update_approval(GROUP, 1, REJECTED, "after the export")
    subprocess.run([sys.executable, "-c", TORN_WRITER, str(registry.path)], check=True)
    assert (work / "registry.sqlite-journal").stat().st_size > 0
    return work, tmp_path / "backup"


OLD = [(2, PENDING), (1, REJECTED)]
NEW = [(2, PENDING), (1, APPROVED)]


def test_the_scene_has_a_torn_transaction_only_the_journal_undoes(scene, tmp_path):
    work, _ = scene
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "registry.sqlite").write_bytes((work / "registry.sqlite").read_bytes())  # without its journal
    assert {status for _, status in statuses(torn)} == {"Torn"}
    assert statuses(work) == OLD


def _crash_on_replace_of(name: str):
    real = os.replace

    def replace(source, target):
        if Path(target).name == name:
            raise Crash
        return real(source, target)

    return replace


def _crash_on_unlink_of(suffix: str):
    real = Path.unlink

    def unlink(self, missing_ok=False):
        if self.name.endswith(suffix):
            raise Crash
        return real(self, missing_ok=missing_ok)

    return unlink


def _crash(*_args, **_kwargs):
    raise Crash


@pytest.mark.parametrize(
    ("target", "name", "make", "expected"),
    [
        (registry_backup, "copy_file_atomically", lambda: _crash, OLD),  # copying the objects
        (os, "replace", lambda: _crash_on_replace_of("registry.sqlite"), OLD),  # the new file is written
        (sqlite_replace, "sync_folder", lambda: _crash, NEW),  # renamed, leftovers still there
        (Path, "unlink", lambda: _crash_on_unlink_of("-journal"), NEW),  # removing the leftovers
        (registry_backup, "_restore_endpoint", lambda: _crash, NEW),  # the registry is in place
    ],
)
def test_a_crash_at_any_point_leaves_the_old_or_the_new_registry(
    scene, monkeypatch, target, name, make, expected
):
    work, backup = scene
    monkeypatch.setattr(target, name, make())
    with pytest.raises(Crash):
        import_registry(backup, work, CHAMPION, replace=True)
    monkeypatch.undo()
    assert statuses(work) == expected
    import_registry(backup, work, CHAMPION, replace=True)  # the retry after the crash completes
    assert statuses(work) == NEW
    assert not [path.name for path in work.iterdir() if path.name.startswith("registry.sqlite-")]


def test_a_registry_another_process_holds_is_left_alone(scene, monkeypatch):
    work, backup = scene
    monkeypatch.setattr(sqlite_replace, "SETTLE_TIMEOUT", 0.2)
    holder = sqlite3.connect(work / "registry.sqlite", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(BackupError, match=r"cannot settle .*registry.sqlite .*database is locked"):
            import_registry(backup, work, CHAMPION, replace=True)
    finally:
        holder.close()
    assert statuses(work) == OLD


def test_a_file_that_is_no_database_is_named_and_kept(scene):
    work, backup = scene
    (work / "registry.sqlite-journal").unlink()
    (work / "registry.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError, match=r"cannot settle .*file is not a database.*move it"):
        import_registry(backup, work, CHAMPION, replace=True)
    assert (work / "registry.sqlite").read_bytes() == b"not a database at all" * 100
