"""Dataset manifests: which exact files a model was trained on, and how they were split.

The preprocess job writes one manifest per instance (`manifest-<host>.json`): the SHA-256 and size of
each raw input file it read, the row and unit counts of the whole input and of each split (with the unit
numbers), the column layout and the feature columns, the split settings, and a short `version` derived
from the file hashes alone, so the same raw files give the same version whatever the split settings or
the number of instances. `merge_manifests` combines the per-instance manifests of a sharded run into the
manifest of the whole input (same version as a single-instance run on the same files). The manifest
travels with the model into the registry (its URI in the model package's customer metadata).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rul.errors import DataFormatError

MANIFEST_FORMAT = 1
MANIFEST_STEM = "manifest"
VERSION_LENGTH = 12
_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_version(files: Iterable[Mapping[str, Any]]) -> str:
    """A short id of a set of files: the first hex digits of a hash over their sorted names and hashes."""
    lines = sorted(f"{entry['name']}  {entry['sha256']}" for entry in files)
    if not lines:
        raise ValueError("a dataset version needs at least one file")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:VERSION_LENGTH]


def describe_files(paths: Sequence[Path], root: Path) -> list[dict[str, Any]]:
    """Name (relative to `root`), size and SHA-256 of each file, in name order."""
    entries = [
        {"name": path.relative_to(root).as_posix(), "bytes": path.stat().st_size, "sha256": file_sha256(path)}
        for path in paths
    ]
    return sorted(entries, key=lambda entry: entry["name"])


def split_summary(splits: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Rows, unit count and sorted unit numbers of each split (DataFrames with a `unit` column)."""
    summary = {}
    for name, frame in splits.items():
        units = sorted(int(unit) for unit in frame["unit"].unique())
        summary[name] = {"rows": len(frame), "units": len(units), "unit_ids": units}
    return summary


def build_manifest(
    files: Sequence[Mapping[str, Any]],
    subset: str,
    columns: Sequence[str],
    features: Sequence[str],
    splits: Mapping[str, Mapping[str, Any]],
    settings: Mapping[str, Any],
    host: str = "algo-1",
) -> dict[str, Any]:
    """The manifest of one instance's input: `files` from `describe_files`, `splits` from `split_summary`."""
    return {
        "manifest_format": MANIFEST_FORMAT,
        "version": dataset_version(files),
        "subset": subset,
        "files": [dict(entry) for entry in files],
        "rows": sum(split["rows"] for split in splits.values()),
        "units": sum(split["units"] for split in splits.values()),
        "columns": list(columns),
        "features": list(features),
        "splits": {name: dict(split) for name, split in splits.items()},
        "settings": dict(settings),
        "hosts": [host],
    }


def merge_manifests(manifests: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The manifest of a whole sharded input from its instances' manifests (one manifest: itself)."""
    if not manifests:
        raise ValueError("no manifest to merge")
    first = manifests[0]
    for other in manifests[1:]:
        for key in ("manifest_format", "subset", "columns", "features", "settings"):
            if other.get(key) != first.get(key):
                raise ValueError(f"manifests disagree on {key!r}: {first.get(key)!r} vs {other.get(key)!r}")
    files = {entry["name"]: entry for manifest in manifests for entry in manifest["files"]}
    splits: dict[str, dict[str, Any]] = {}
    for manifest in manifests:
        for name, split in manifest["splits"].items():
            merged = splits.setdefault(name, {"rows": 0, "units": 0, "unit_ids": []})
            merged["rows"] += split["rows"]
            merged["unit_ids"] = sorted(set(merged["unit_ids"]) | set(split["unit_ids"]))
            merged["units"] = len(merged["unit_ids"])
    ordered = [files[name] for name in sorted(files)]
    return {
        **first,
        "version": dataset_version(ordered),
        "files": ordered,
        "rows": sum(split["rows"] for split in splits.values()),
        "units": sum(split["units"] for split in splits.values()),
        "splits": splits,
        "hosts": sorted(host for manifest in manifests for host in manifest.get("hosts", [])),
    }


def write_manifest(manifest: Mapping[str, Any], directory: str | Path, host: str) -> Path:
    path = Path(directory) / f"{MANIFEST_STEM}-{host}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2))
    return path


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The merged manifest of every `manifest-*.json` in a folder."""
    paths = sorted(Path(directory).glob(f"{MANIFEST_STEM}-*.json"))
    if not paths:
        raise DataFormatError(directory, None, f"no {MANIFEST_STEM}-*.json file found")
    manifests = []
    for path in paths:
        try:
            manifests.append(json.loads(path.read_text()))
        except json.JSONDecodeError as error:
            raise DataFormatError(path, error.lineno, f"not valid JSON: {error.msg}") from None
    return merge_manifests(manifests)
