"""Replace a SQLite database file (the local registry) so that a crash at any instant leaves the old
database or the new one, never a mix.

SQLite keeps part of a database's state beside it: a killed writer leaves a hot `-journal` whose pages
must be rolled back into the file, and in WAL mode committed pages may live only in `-wal`. Deleting those
files before the database is replaced loses that state if the replacement never happens; leaving them
beside the new file would have SQLite apply the old database's pages to it. So `settled` first makes the
old database whole on its own (its first read rolls a hot journal back, a checkpoint empties a WAL) and
holds it exclusively, so no writer starts a new journal; `install_database` then writes the new copy to a
temporary file, fsyncs it, renames it over the old one and fsyncs the folder, and only after that removes
the leftover files, which by then hold nothing either database needs.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from local_runner.errors import RunnerError
from local_runner.object_store import replace_atomically

LEFTOVERS = ("-journal", "-wal", "-shm")  # SQLite's files beside a database
SETTLE_TIMEOUT = 30.0  # seconds to wait for another process's transaction on the database to end


class SettleError(RunnerError, RuntimeError):
    """The database to replace is locked by another process or is not a SQLite database."""


@contextmanager
def settled(database: Path) -> Iterator[None]:
    """Hold `database` whole on its own and exclusively for the block (nothing when it does not exist);
    `SettleError`, with nothing changed, when it stays locked for `SETTLE_TIMEOUT` or is no database."""
    if not database.is_file():
        yield
        return
    uri = f"{database.resolve().as_uri()}?mode=rw"
    connection = sqlite3.connect(uri, uri=True, timeout=SETTLE_TIMEOUT, isolation_level=None)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        connection.execute("BEGIN EXCLUSIVE")  # taking the lock rolls back a hot journal first
        connection.execute("PRAGMA schema_version").fetchone()  # fails on a file that is no database
    except sqlite3.Error as error:
        connection.close()
        raise SettleError(
            f"cannot settle {database} before replacing it ({error}); nothing was changed (to replace a "
            f"damaged file, move it and its {'/'.join(LEFTOVERS)} files away first)"
        ) from None
    try:
        yield
    finally:
        connection.close()  # ends a transaction that wrote nothing


def _synced_copy(source: Path, target: Path) -> None:
    """Copy `source` to `target` and flush it to disk."""
    shutil.copyfile(source, target)
    with target.open("rb+") as handle:
        os.fsync(handle.fileno())


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def install_database(source: Path, target: Path) -> None:
    """Replace the settled database `target` by a durable copy of `source`, then remove the old one's
    leftover files: a crash before the rename leaves the old database, after it the new one."""
    replace_atomically(target, lambda temporary: _synced_copy(source, temporary))
    sync_folder(target.parent)
    for leftover in LEFTOVERS:
        (target.parent / f"{target.name}{leftover}").unlink(missing_ok=True)
