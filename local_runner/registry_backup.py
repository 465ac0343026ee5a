"""Export and import the local model registry: `python -m local_runner registry export|import DIR`.

An export folder holds everything needed to bring a work dir's registry back as it was:

    registry.sqlite     a consistent copy of `<work>/registry.sqlite` (SQLite's online backup), so versions,
                        statuses, reasons and timestamps come back unchanged
    registry.json       the same packages in the boto3 DescribeModelPackage shape, for people and diffs
    objects/<bucket>/<key>  every local-store object the packages point at (model archives, evaluation
                        reports, baselines) and the champion prefix (model, champion.json, baselines)
    endpoint.json       the version the local endpoint served (its `current` release), or null
    manifest.json       format, time, and the sha256 and size of every file above; written last

`export_registry` assembles the folder under a hidden sibling name and renames it into place, under the
registry lock, so a concurrent approval cannot tear it and a killed export leaves no half folder. An object
a package names but the store lacks is listed in the manifest (`missing_objects`) instead of failing: the
export restores the registry exactly as it was. `import_registry` first checks the whole folder (the shape
of manifest.json, registry.json and endpoint.json (`local_runner.backup_manifest`), every checksum, no
unlisted file, the database's integrity and its agreement with registry.json) and names every problem at
once (`ExportInvalid`, exit 2); it refuses a work dir whose registry already holds a model package group
unless `replace` is given, and a running endpoint always (exit 1). Then it restores the objects, the
database (`local_runner.sqlite_replace`: a crash at any instant leaves the old registry or the new one)
and the endpoint's `current` release (health-checked, as `endpoint swap` does).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local_runner.atomic import write_json_atomic
from local_runner.backup_manifest import (
    ENDPOINT_JSON,
    FORMAT_VERSION,
    MANIFEST_FILE,
    REGISTRY_JSON,
    endpoint_json_problems,
    manifest_problems,
    registry_json_problems,
)
from local_runner.champion import package_baselines
from local_runner.endpoint import (
    DEFAULT_GROUP,
    EndpointPaths,
    current_release,
    release_version,
    running_pid,
    swap_model,
)
from local_runner.errors import RunnerError
from local_runner.object_store import IN_FLIGHT, ObjectStore, ObjectStoreError, copy_file_atomically
from local_runner.registry import LocalRegistry, ModelPackage, RegistryError, describe_shape
from local_runner.registry_cli import registry_lock
from local_runner.sqlite_replace import SettleError, install_database, settled
from local_runner.work_layout import REGISTRY_FILE, STORE_FOLDER

OBJECTS_FOLDER = "objects"


class BackupError(RunnerError, RuntimeError):
    """An export or import that cannot proceed; `problems` lists every reason, `exit_code` is the CLI's."""

    exit_code = 1

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class ExportInvalid(BackupError):
    """The folder given to an import is no valid export (a usage error: nothing was touched)."""

    exit_code = 2


@dataclass(frozen=True)
class BackupSummary:
    """What an export wrote or an import restored."""

    folder: Path
    packages: int
    objects: int
    served_version: int | None
    missing_objects: tuple[str, ...] = ()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _all_packages(registry: LocalRegistry) -> list[ModelPackage]:
    return [package for group in registry.groups() for package in reversed(registry.list(group))]


def _package_uris(package: ModelPackage) -> list[str]:
    quality = ((package.metrics or {}).get("ModelQuality") or {}).get("Statistics") or {}
    uris = [package.model_data_url, quality.get("S3Uri"), *package_baselines(package).values()]
    return [uri for uri in uris if isinstance(uri, str) and uri.startswith("s3://")]


def _store_files(store: ObjectStore, uris: list[str]) -> tuple[list[Path], list[str]]:
    """The local files of every object under `uris`, and the URIs that name nothing."""
    files: dict[Path, None] = {}
    missing: list[str] = []
    for uri in dict.fromkeys(uris):
        try:
            objects = store.objects(uri)
        except ObjectStoreError:
            objects = []
        if not objects:
            missing.append(uri)
        files.update((path, None) for _, path in objects)
    return list(files), missing


def _copy_database(source: Path, target: Path) -> None:
    reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    writer = sqlite3.connect(target)
    try:
        reader.backup(writer)
    finally:
        writer.close()
        reader.close()


def _check_destination(destination: Path) -> None:
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise BackupError([f"export folder {destination} exists and is not empty; name a new folder"])


def _write_export(work_dir: Path, staging: Path, champion_uri: str, group: str) -> BackupSummary:
    registry = LocalRegistry(work_dir / REGISTRY_FILE)
    _copy_database(registry.path, staging / REGISTRY_FILE)
    packages = _all_packages(registry)
    described = [describe_shape(package) for package in packages]
    (staging / REGISTRY_JSON).write_text(json.dumps(described, indent=1, sort_keys=True, default=str))
    store = ObjectStore(work_dir / STORE_FOLDER)
    uris = [uri for package in packages for uri in _package_uris(package)]
    found, missing = _store_files(store, [*uris, champion_uri])
    missing = [uri for uri in missing if uri != champion_uri]  # no champion yet: nothing to keep
    for path in found:
        target = staging / OBJECTS_FOLDER / path.relative_to(store.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    served = release_version(current_release(EndpointPaths.of(work_dir)))
    (staging / ENDPOINT_JSON).write_text(json.dumps({"served_version": served, "group": group}))
    files = {
        str(path.relative_to(staging)): {"sha256": _sha256(path), "size": path.stat().st_size}
        for path in sorted(staging.rglob("*"))
        if path.is_file()
    }
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "groups": registry.groups(),
        "packages": len(packages),
        "served_version": served,
        "missing_objects": missing,
        "files": files,
    }
    write_json_atomic(staging / MANIFEST_FILE, manifest)
    return BackupSummary(staging, len(packages), len(found), served, tuple(missing))


def export_registry(
    work_dir: str | Path, destination: str | Path, champion_uri: str, group: str = DEFAULT_GROUP
) -> BackupSummary:
    """Write the registry, its objects, the champion and the endpoint state of `work_dir` to `destination`
    (`group`: the model package group the local endpoint serves from)."""
    work_dir, destination = Path(work_dir), Path(destination)
    if not (work_dir / REGISTRY_FILE).is_file():
        raise BackupError([f"no model registry at {work_dir / REGISTRY_FILE}; nothing to export"])
    _check_destination(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = destination.parent / f"{IN_FLIGHT}export-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        with registry_lock(work_dir):
            summary = _write_export(work_dir, staging, champion_uri, group)
        if destination.is_dir():
            destination.rmdir()  # empty, checked above
        os.rename(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BackupSummary(
        destination, summary.packages, summary.objects, summary.served_version, summary.missing_objects
    )


# --- import -------------------------------------------------------------------------------------------------


def _read_manifest(source: Path) -> tuple[dict[str, Any] | None, list[str]]:
    path = source / MANIFEST_FILE
    if not path.is_file():
        return None, [f"{path} does not exist: not an export folder, or an unfinished one"]
    try:
        manifest = json.loads(path.read_text())
    except ValueError as error:
        return None, [f"{path} is not JSON ({error})"]
    problems = manifest_problems(manifest)
    if problems:
        return None, [f"{source}{os.sep}{problem}" for problem in problems]
    return manifest, []


def _file_problems(source: Path, files: dict[str, Any]) -> list[str]:
    problems = []
    for name, expected in sorted(files.items()):
        path = source / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            problems.append(f"{name}: a listed file must stay inside the export folder")
        elif not path.is_file():
            problems.append(f"{name}: listed in the manifest but missing")
        elif path.stat().st_size != expected.get("size") or _sha256(path) != expected.get("sha256"):
            problems.append(f"{name}: checksum mismatch (the file changed or is corrupt)")
    listed = set(files) | {MANIFEST_FILE}
    for path in sorted(source.rglob("*")):
        if path.is_file() and str(path.relative_to(source)) not in listed:
            problems.append(f"{path.relative_to(source)}: not listed in the manifest")
    for required in (REGISTRY_FILE, REGISTRY_JSON, ENDPOINT_JSON):
        if required not in files:
            problems.append(f"{required}: missing from the manifest")
    return problems


def _document_problems(source: Path, manifest: dict[str, Any]) -> list[str]:
    """The shape of registry.json and endpoint.json, and their agreement with the manifest."""
    try:
        listed = json.loads((source / REGISTRY_JSON).read_text())
        state = json.loads((source / ENDPOINT_JSON).read_text())
    except ValueError as error:
        return [f"{REGISTRY_JSON} or {ENDPOINT_JSON} is not JSON ({error})"]
    problems = registry_json_problems(listed, manifest)
    return problems or endpoint_json_problems(state, listed, manifest)


def _database_problems(source: Path) -> list[str]:
    """The database opens, passes SQLite's integrity check and holds the packages registry.json lists."""
    try:
        reader = sqlite3.connect(f"{(source / REGISTRY_FILE).resolve().as_uri()}?mode=ro", uri=True)
        try:
            (verdict,) = reader.execute("PRAGMA integrity_check").fetchone()
        finally:
            reader.close()
        if verdict != "ok":
            return [f"{REGISTRY_FILE}: SQLite integrity check failed ({verdict})"]
        packages = _all_packages(LocalRegistry(source / REGISTRY_FILE))
    except (sqlite3.Error, RegistryError) as error:
        return [f"{REGISTRY_FILE}: not a readable registry ({error})"]
    listed = json.loads((source / REGISTRY_JSON).read_text())
    stored = [(p.group, p.version, p.approval_status) for p in packages]
    described = [
        (d["ModelPackageGroupName"], d["ModelPackageVersion"], d["ModelApprovalStatus"]) for d in listed
    ]
    if stored != described:
        return [f"{REGISTRY_FILE} and {REGISTRY_JSON} disagree: {stored} vs {described}"]
    return []


def verify_export(source: str | Path) -> list[str]:
    """Every problem of an export folder; empty when it can be imported."""
    source = Path(source)
    if not source.is_dir():
        return [f"export folder {source} does not exist"]
    manifest, problems = _read_manifest(source)
    if manifest is None:
        return problems
    problems = _file_problems(source, manifest["files"])
    problems = problems or _document_problems(source, manifest)
    return problems or _database_problems(source)


def _target_problems(work_dir: Path, replace: bool) -> list[str]:
    problems = []
    pid = running_pid(EndpointPaths.of(work_dir))
    if pid is not None:
        problems.append(f"the local endpoint runs from {work_dir} (pid {pid}); stop it before an import")
    path = work_dir / REGISTRY_FILE
    if path.is_file() and not replace:
        try:
            groups = LocalRegistry(path).groups()
        except (sqlite3.Error, RegistryError) as error:
            groups = [f"an unreadable registry ({error})"]
        if groups:
            problems.append(f"{path} already holds {', '.join(groups)}; pass --replace to overwrite it")
    return problems


def _objects(source: Path) -> Iterator[Path]:
    folder = source / OBJECTS_FOLDER
    return (path for path in sorted(folder.rglob("*")) if path.is_file()) if folder.is_dir() else iter(())


def _restore_endpoint(source: Path, work_dir: Path) -> int | None:
    """Point the endpoint's `current` at the version it served, health-checked; None when it served none."""
    state = json.loads((source / ENDPOINT_JSON).read_text())
    served = state.get("served_version")
    if served is None:
        return None
    package = LocalRegistry(work_dir / REGISTRY_FILE).get(state.get("group") or DEFAULT_GROUP, int(served))
    result = swap_model(work_dir, package)
    if not result.ok:
        raise BackupError(
            [f"the registry is restored, but the endpoint cannot serve version {served}: {result.reason}"]
        )
    return served


def _checked_import(source: Path, work_dir: Path, replace: bool) -> dict[str, Any]:
    """The export's manifest once the folder and the work dir pass every check; else every problem."""
    invalid = verify_export(source)
    refused = _target_problems(work_dir, replace)
    if invalid:
        raise ExportInvalid(invalid + refused)
    if refused:
        raise BackupError(refused)
    return json.loads((source / MANIFEST_FILE).read_text())


def import_registry(
    source: str | Path, work_dir: str | Path, champion_uri: str, replace: bool = False
) -> BackupSummary:
    """Restore an export into `work_dir`: objects, champion, registry, then the endpoint's served version."""
    source, work_dir = Path(source), Path(work_dir)
    manifest = _checked_import(source, work_dir, replace)
    store = ObjectStore(work_dir / STORE_FOLDER)
    work_dir.mkdir(parents=True, exist_ok=True)
    database = work_dir / REGISTRY_FILE
    try:
        with registry_lock(work_dir), settled(database):
            store.delete(champion_uri.rstrip("/"))  # replaced whole: no stale file of another champion stays
            objects = 0
            for path in _objects(source):
                copy_file_atomically(path, store.root / path.relative_to(source / OBJECTS_FOLDER))
                objects += 1
            install_database(source / REGISTRY_FILE, database)
    except SettleError as error:
        raise BackupError([str(error)]) from None
    served = _restore_endpoint(source, work_dir)
    return BackupSummary(work_dir, manifest["packages"], objects, served, tuple(manifest["missing_objects"]))
