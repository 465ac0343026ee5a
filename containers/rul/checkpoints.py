"""Training checkpoints that survive a managed-spot interruption: written atomically, keyed by the inputs.

With a `CheckpointConfig` SageMaker downloads `S3Uri` into the checkpoint folder (default
`/opt/ml/checkpoints`) when a training job starts or restarts after a Spot interruption, and uploads what
the job writes there while it runs; the training code has to write its own checkpoints and resume from
them. Each fit of a job keeps its files in `<folder>/<kind>-<fingerprint[:16]>/`: the fingerprint is a
SHA-256 of the model kind, the hyperparameters and the training arrays, so a fit never resumes from the
checkpoints of other inputs (another tuning trial sharing the S3 prefix, or changed data). Those are
ignored with a message, never deleted: they may belong to a trial still running. Every file goes to a
temporary name in its folder first and is renamed into place, so a kill leaves the old file or the new
one. `manifest.json`, written last, lists the complete steps; a step that is not listed is not loaded.

`checkpointing(folder)` (the training entry point's `with` block) makes the folder active for the fits
inside it; the model code asks `open_store(kind, hyperparameters, arrays)` for its store, which is None
when no folder is active. `CheckpointSession.discard()` removes this job's own folders once the model is
saved (SageMaker deletes from S3 what the job deletes locally, so a finished job leaves nothing behind).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rul.progress import log

MANIFEST = "manifest.json"
FORMAT = 1
_TEMPORARY = ".tmp-"


def fingerprint(kind: str, hyperparameters: dict, arrays: Sequence[np.ndarray | None]) -> str:
    """SHA-256 of the model kind, the hyperparameters (as JSON) and each array's dtype, shape and bytes."""
    digest = hashlib.sha256(json.dumps([FORMAT, kind, hyperparameters], sort_keys=True).encode())
    for array in arrays:
        if array is None:
            digest.update(b"none")
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        # numpy's stubs give ndarray `__buffer__` only for Python >= 3.12
        digest.update(memoryview(array).cast("B"))  # type: ignore[arg-type]
    return digest.hexdigest()


def write_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """Call `write(temporary)` on a hidden name in the target's folder, then rename it over `target`."""
    temporary = target.parent / f"{_TEMPORARY}{os.getpid()}-{uuid.uuid4().hex[:8]}-{target.name}"
    try:
        write(temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@dataclass
class CheckpointStore:
    """The checkpoint folder of one fit: numbered steps (members, epochs), each a set of files."""

    folder: Path
    fingerprint: str
    steps: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, root: Path, kind: str, value: str, own: frozenset[str] = frozenset()) -> CheckpointStore:
        """The fit's folder under `root`, with the steps a valid manifest lists (none when it is new);
        folders of the same kind that are not this fit's nor in `own` (the job's other fits) are named."""
        folder = root / f"{kind}-{value[:16]}"
        skip = own | {folder.name}
        others = sorted(
            path.name for path in root.glob(f"{kind}-*") if path.is_dir() and path.name not in skip
        )
        if others:
            names = ", ".join(others)
            log(f"checkpoints: ignoring {len(others)} folder(s) of other inputs in {root}: {names}")
        store = cls(folder, value)
        manifest = folder / MANIFEST
        if manifest.is_file():
            store.steps = store._read_manifest(manifest)
        folder.mkdir(parents=True, exist_ok=True)
        return store

    def _read_manifest(self, manifest: Path) -> list[str]:
        try:
            content = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError) as error:
            log(f"checkpoints: {manifest} cannot be read ({error}); starting this fit afresh")
            return []
        if content.get("fingerprint") != self.fingerprint or content.get("format") != FORMAT:
            log(f"checkpoints: {manifest} is from other inputs; starting this fit afresh")
            return []
        return [str(step) for step in content.get("steps", [])]

    def has(self, step: str) -> bool:
        """Whether `step` is complete in this fit's manifest."""
        return step in self.steps

    def path(self, name: str) -> Path:
        """The path of the checkpoint file `name` in the fit's folder."""
        return self.folder / name

    def save(self, step: str, files: dict[str, Callable[[Path], None]]) -> None:
        """Write each file of `step` atomically, then record the step in the manifest (also atomically)."""
        for name, write in files.items():
            write_atomically(self.folder / name, write)
        if step not in self.steps:
            self.steps.append(step)
        content = json.dumps({"format": FORMAT, "fingerprint": self.fingerprint, "steps": self.steps})
        write_atomically(self.folder / MANIFEST, lambda path: path.write_text(content))


def save_arrays(arrays: dict[str, np.ndarray]) -> Callable[[Path], None]:
    """A writer of an `.npz` file (through a buffer: np.savez would append `.npz` to a temporary name)."""

    def write(path: Path) -> None:
        buffer = io.BytesIO()
        # numpy's stub types **kwds as able to fill its `allow_pickle: bool` parameter
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        path.write_bytes(buffer.getvalue())

    return write


@dataclass
class CheckpointSession:
    """The checkpoint folder of one training job and the fit folders it opened."""

    root: Path
    opened: list[CheckpointStore] = field(default_factory=list)

    def discard(self) -> None:
        """Remove this job's own fit folders (called once its model is saved)."""
        for store in self.opened:
            shutil.rmtree(store.folder, ignore_errors=True)
        self.opened.clear()


_ACTIVE: ContextVar[CheckpointSession | None] = ContextVar("rul_checkpoints", default=None)


@contextlib.contextmanager
def checkpointing(root: Path | None) -> Iterator[CheckpointSession | None]:
    """Make `root` the checkpoint folder of the fits inside the block (None: no checkpoints)."""
    session = CheckpointSession(Path(root)) if root is not None else None
    if session is not None:
        session.root.mkdir(parents=True, exist_ok=True)
        log(f"checkpoints: writing to and resuming from {session.root}")
    token = _ACTIVE.set(session)
    try:
        yield session
    finally:
        _ACTIVE.reset(token)


def open_store(
    kind: str, hyperparameters: dict, arrays: Sequence[np.ndarray | None]
) -> CheckpointStore | None:
    """The store of a fit of `kind` on these inputs, or None when no checkpoint folder is active."""
    session = _ACTIVE.get()
    if session is None:
        return None
    own = frozenset(opened.folder.name for opened in session.opened)
    store = CheckpointStore.open(session.root, kind, fingerprint(kind, hyperparameters, arrays), own)
    session.opened.append(store)
    return store
