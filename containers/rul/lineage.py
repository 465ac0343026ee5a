"""Dataset manifests: which exact files a model was trained on, and how they were split.

The preprocess job writes one manifest per instance (`manifest-<host>.json`): the SHA-256, size and
dataset unit ids of each raw input file it read, the row and unit counts of each split (with the unit
ids), the column layout and the feature columns, the split settings, a short `version` derived from the
file hashes alone (the same raw files give the same version whatever the split settings or the number of
instances; null on an instance that received no file) and the `declared_version` the pipeline was
started with (`--data-version`, computed by the starter from the object listing; null when not given).
`merge_manifests` combines the per-instance manifests of a sharded run into the manifest of the whole
input (same version as a single-instance run on the same files) and names any file, content or unit that
two instances both read. The manifest travels with the model into the registry (its URI in the model
package's customer metadata).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rul.errors import DataFormatError

# The DataVersion pipeline parameter's default (pipeline_steps.names.DEFAULT_DATA_VERSION; a test keeps
# them equal): a run started without a data version.
UNVERSIONED = "unversioned"

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


def describe_files(
    paths: Sequence[Path], root: Path, unit_ids: Mapping[str, Sequence[int]] | None = None
) -> list[dict[str, Any]]:
    """Name (relative to `root`), size and SHA-256 of each file, and its dataset unit ids when given."""
    entries = []
    for path in paths:
        name = path.relative_to(root).as_posix()
        entry = {"name": name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
        if unit_ids is not None:
            entry["unit_ids"] = sorted(int(unit) for unit in unit_ids.get(name, ()))
        entries.append(entry)
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
    declared_version: str | None = None,
) -> dict[str, Any]:
    """The manifest of one instance's input: `files` from `describe_files`, `splits` from `split_summary`."""
    check_distinct_files([(host, entry) for entry in files])
    return {
        "manifest_format": MANIFEST_FORMAT,
        "version": dataset_version(files) if files else None,
        "declared_version": declared_version,
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
        for key in ("manifest_format", "subset", "columns", "features", "settings", "declared_version"):
            if other.get(key) != first.get(key):
                raise ValueError(f"manifests disagree on {key!r}: {first.get(key)!r} vs {other.get(key)!r}")
    hosts = [",".join(manifest.get("hosts", [])) for manifest in manifests]
    check_distinct_files(
        [
            (host, entry)
            for host, manifest in zip(hosts, manifests, strict=True)
            for entry in manifest["files"]
        ]
    )
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
        "version": dataset_version(ordered) if ordered else None,
        "files": ordered,
        "rows": sum(split["rows"] for split in splits.values()),
        "units": sum(split["units"] for split in splits.values()),
        "splits": splits,
        "hosts": sorted(host for manifest in manifests for host in manifest.get("hosts", [])),
    }


def check_distinct_files(entries: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Raise naming the two files (and hosts) when a file, its contents or one of its units is read twice."""
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for host, entry in entries:
        name = entry["name"]
        claims = [("name", name), ("sha256", entry["sha256"])]
        claims += [("unit", str(unit)) for unit in entry.get("unit_ids", ())]
        for kind, value in claims:
            if (kind, value) in seen:
                other_host, other = seen[(kind, value)]
                raise DataFormatError(name, None, _duplicate_problem(kind, value, other, other_host, host))
            seen[(kind, value)] = (host, name)


def _duplicate_problem(kind: str, value: str, other: str, other_host: str, host: str) -> str:
    where = f"({other_host} and {host})" if other_host != host else f"(both on {host})"
    if kind == "name":
        return f"read by two instances {where}: was the input replicated instead of sharded?"
    if kind == "sha256":
        return f"has the same contents as {other} {where}: the same data would be trained on twice"
    return f"holds dataset unit {value}, as {other} does {where}: rename or remove one of the files"


def version_note(manifest: Mapping[str, Any]) -> str | None:
    """A line for the log when the declared data version differs from the content hash, else None."""
    declared, computed = manifest.get("declared_version"), manifest.get("version")
    if declared is None or declared == computed:
        return None
    return (
        f"declared data version {declared} (from the object listing) differs from the content hash "
        f"{computed} of {len(manifest['files'])} file(s)"
    )


def write_manifest(manifest: Mapping[str, Any], directory: str | Path, host: str) -> Path:
    """Write `manifest` as `<MANIFEST_STEM>-<host>.json` in `directory`; the file's path."""
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
    merged = merge_manifests(manifests)
    if not merged["files"]:
        raise DataFormatError(
            directory, None, f"no instance of {', '.join(merged['hosts'])} read an input file"
        )
    return merged
