"""The step cache: SageMaker's step caching, as files under `<work>/cache/`.

A step whose `CacheConfig` is enabled gets a cache key: a hash of the attributes SageMaker compares for
its type (its "default cache keys"). `<work>/cache/<step>.json` keeps the last entries of that step (key,
properties, time, execution); a later step with the same key within `ExpireAfter` reuses the properties
instead of running. Tuning steps also keep one entry per finished trial in
`<work>/cache/<step>.trials.json`, keyed by the step's cache key and the trial's whole training request, so
a stopped tuning step resumes with the trials it had finished (a local-runner convenience: SageMaker's
tuning jobs do not resume). Files are written atomically; a file that cannot be read is named in one line
and ignored (the step runs again), never fatal.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from local_runner.atomic import write_json_atomic
from local_runner.errors import RunnerError

# Attributes of each step type that SageMaker's step caching compares (its "default cache keys").
CACHE_KEYS = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "QualityCheck": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": (
        "AlgorithmSpecification",
        "CheckpointConfig",
        "Environment",
        "HyperParameters",
        "InputDataConfig",
    ),
    "Tuning": ("HyperParameterTuningJobConfig", "TrainingJobDefinition"),
}
KEPT_ENTRIES = 20
KEPT_TRIALS = 200
_DURATION = re.compile(
    r"^P?(?:(\d+)[Yy])?(?:(\d+)[Mm])?(?:(\d+)[Ww])?(?:(\d+)[Dd])?(?:T(?:(\d+)[Hh])?(?:(\d+)[Mm])?)?$"
)


class CacheConfigError(RunnerError, ValueError):
    """A step's CacheConfig cannot be understood (an expiry that is not an ISO 8601 duration)."""


def parse_duration(text: str) -> timedelta:
    """ISO 8601 durations as SageMaker's ExpireAfter takes them: P30D, PT1H, 30d, T16m."""
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        raise CacheConfigError(f"cannot parse cache expiry {text!r}")
    years, months, weeks, days, hours, minutes = (int(value or 0) for value in match.groups())
    return timedelta(days=365 * years + 30 * months + 7 * weeks + days, hours=hours, minutes=minutes)


def digest(value: Any) -> str:
    """The sha256 of a JSON value with sorted keys."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def cache_key(step: dict, arguments: dict) -> str | None:
    """The step's cache key, or None when caching is off or its type is not cached."""
    config = step.get("CacheConfig", {})
    if not config.get("Enabled") or step["Type"] not in CACHE_KEYS:
        return None
    return digest([step["Type"], {name: arguments.get(name) for name in CACHE_KEYS[step["Type"]]}])


class StepCache:
    """Reads and writes the cache files of one work folder; safe to use from the step threads."""

    def __init__(self, directory: Path, echo: Callable[[str], None] = print):
        self.directory = Path(directory)
        self.echo = echo
        self._lock = threading.Lock()

    def path(self, step_name: str, kind: str = "") -> Path:
        """The cache file of step `step_name`; `kind` (such as '.trials') names a second file of the step."""
        return self.directory / f"{step_name}{kind}.json"

    def _entries(self, path: Path) -> list[dict]:
        if not path.is_file():
            return []
        try:
            entries = json.loads(path.read_text())
            if not isinstance(entries, list) or not all(
                isinstance(entry, dict) and {"key", "created_at"} <= set(entry) for entry in entries
            ):
                raise ValueError("not a list of cache entries")
            for entry in entries:
                datetime.fromisoformat(entry["created_at"])
        except (OSError, ValueError) as error:
            self.echo(f"ignoring the unreadable cache file {path} ({type(error).__name__}: {error})")
            return []
        return entries

    def _find(self, path: Path, key: str, expire_after: str) -> dict | None:
        expiry = parse_duration(expire_after)
        now = datetime.now(UTC)
        for entry in reversed(self._entries(path)):
            if entry["key"] == key and now - datetime.fromisoformat(entry["created_at"]) <= expiry:
                return entry
        return None

    def _append(self, path: Path, entry: dict, kept: int) -> None:
        with self._lock:
            entries = self._entries(path)
            entries.append({**entry, "created_at": datetime.now(UTC).isoformat()})
            write_json_atomic(path, entries[-kept:])

    def lookup(self, step: dict, key: str) -> dict | None:
        """The properties of an unexpired earlier run of the step with this key, or None."""
        entry = self._find(self.path(step["Name"]), key, step["CacheConfig"].get("ExpireAfter", "P30D"))
        if entry is None or not isinstance(entry.get("properties"), dict):
            return None
        self.echo(f"step {step['Name']}: cache hit, reusing execution {entry.get('execution_id')}")
        return entry["properties"]

    def store(self, step: dict, key: str, properties: dict, execution_id: str) -> None:
        """Record the step's properties under `key` for later executions, keeping the newest entries."""
        entry = {"key": key, "properties": properties, "execution_id": execution_id}
        self._append(self.path(step["Name"]), entry, KEPT_ENTRIES)

    def lookup_trial(self, step: dict, key: str) -> dict | None:
        """A finished trial of an earlier execution with the same trial key: job name, status, log."""
        entry = self._find(
            self.path(step["Name"], ".trials"), key, step["CacheConfig"].get("ExpireAfter", "P30D")
        )
        if entry is None or not isinstance(entry.get("trial"), dict):
            return None
        return entry["trial"]

    def store_trial(self, step: dict, key: str, trial: dict, execution_id: str) -> None:
        """Record a finished tuning trial under its trial key, keeping the newest entries."""
        entry = {"key": key, "trial": trial, "execution_id": execution_id}
        self._append(self.path(step["Name"], ".trials"), entry, KEPT_TRIALS)
