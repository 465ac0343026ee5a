"""Atomic file writes for the runner's caches and records.

A runner can be killed at any instant (Ctrl-C, SIGTERM, kill -9, a full disk). A cache entry or an
execution record written in place can then be left half-written and poison every later run, so each is
written to a temporary file in the same folder (same file system, so the rename is atomic) and moved over
the target with `os.replace`: readers see the old content or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` to `path` so that `path` never holds a partial content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: Path, content: Any) -> Path:
    """Write `content` as indented JSON to `path` atomically (`default=str`); the path."""
    return write_text_atomic(path, json.dumps(content, indent=2, default=str))
