"""The `registry` verb of the local runner: list, show, approve and reject model package versions.

`python -m local_runner registry list|show N|approve N|reject N [--reason TEXT]` works on the registry
file `<work-dir>/registry.sqlite` that local pipeline runs register into; a work dir or registry that does
not exist is an error naming it (only a pipeline run creates them), and `list`/`show` write nothing.
`approve_version`/`reject_version` change a status under an exclusive lock (`<work-dir>/registry.lock`), so
concurrent commands queue. Given a `ChampionTarget` (the CLI always gives one) an approval first verifies
the version's model archive (exists, unpacks, loads, predicts), then status and champion change together
(`champion.change_status`); a failed check changes nothing. A reason is kept unless a new one is given.
Their `on_change` callback runs after a changed status (the CLI swaps the local endpoint there). The table
shows each version's RMSE and PHM08 score, read from the package's customer metadata or from the
model-quality statistics file its ModelMetrics point to (a local path, or an s3:// URI of the local store).
`registry export DIR` and `registry import DIR [--replace]` back the registry up and restore it, with its
model archives, the champion and the endpoint's served version (`local_runner.registry_backup`).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from local_runner.champion import ChampionError, ChampionTarget, change_status, verify_archive
from local_runner.errors import RunnerError
from local_runner.model_mirror import add_mirror_parser, run_mirror_command
from local_runner.object_store import ObjectStore, ObjectStoreError
from local_runner.registry import (
    APPROVAL_STATUSES,
    APPROVED,
    REJECTED,
    LocalRegistry,
    ModelPackage,
    RegistryError,
)
from local_runner.work_layout import REGISTRY_FILE, STORE_FOLDER
from pipeline_steps.config import LOCAL_NAME as DEFAULT_GROUP
from pipeline_steps.config import local_config

DEFAULT_WORK_DIR = Path(".work")
LOCK_FILE = "registry.lock"
LOCK_TIMEOUT = 600.0  # seconds a status change waits for the one before it (each runs a health check)
# Headline metrics: the table column, the customer-metadata key and the key in evaluation.json's
# `regression_metrics` (SageMaker's model-quality regression shape: {"rmse": {"value": ...}}).
HEADLINE_METRICS = (("RMSE", "rmse"), ("PHM08", "phm08_score"))

Echo = Callable[[str], object]
OnChange = Callable[[ModelPackage], object]


class RegistryBusy(RunnerError, RuntimeError):
    """Another command held the registry lock for longer than the timeout."""


def errors_to(echo: Echo) -> Echo:
    """Where error lines go: standard error when `echo` is plain `print`, else `echo` itself."""
    if echo is print:
        return lambda line: print(line, file=sys.stderr)
    return echo


def registry_path(work_dir: Path) -> Path:
    """The registry file of a work dir."""
    return Path(work_dir) / REGISTRY_FILE


@contextmanager
def registry_lock(folder: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the exclusive lock on `<folder>/registry.lock` (released by the kernel if the holder dies)."""
    path = Path(folder) / LOCK_FILE
    deadline = time.monotonic() + timeout
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RegistryBusy(f"another registry command held {path} for {timeout:.0f}s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def add_registry_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `registry` verb and its sub-verbs to `subparsers`; sets `handler=run_registry_command`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--work-dir", type=Path, default=DEFAULT_WORK_DIR, help=f"holds {REGISTRY_FILE} (default: .work)"
    )
    common.add_argument(
        "--group", default=DEFAULT_GROUP, help=f"model package group (default: {DEFAULT_GROUP})"
    )
    registry = subparsers.add_parser("registry", help="list, show, approve or reject registered models")
    actions = registry.add_subparsers(dest="registry_action", required=True)
    listing = actions.add_parser("list", parents=[common], help="the group's versions, newest first")
    listing.add_argument("--status", choices=APPROVAL_STATUSES, default=None, help="only this status")
    actions.add_parser("show", parents=[common], help="one version in full").add_argument("version", type=int)
    for verb in ("approve", "reject"):
        action = actions.add_parser(verb, parents=[common], help=f"{verb} a version")
        action.add_argument("version", type=int)
        action.add_argument(
            "--reason", default=None, help="the approval description (default: keep the stored one)"
        )
    add_mirror_parser(actions, common)
    exporting = actions.add_parser("export", parents=[common], help="back up the registry to a new folder")
    exporting.add_argument("folder", type=Path, help="a new or empty folder")
    importing = actions.add_parser("import", parents=[common], help="restore the registry from an export")
    importing.add_argument("folder", type=Path, help="a folder written by `registry export`")
    importing.add_argument("--replace", action="store_true", help="overwrite a registry that holds models")
    registry.set_defaults(handler=run_registry_command)
    return registry


def _backup(args: argparse.Namespace, echo: Echo, champion: ChampionTarget) -> int:
    from local_runner import registry_backup  # imports this module: loaded on use only

    if args.registry_action == "export":
        done = registry_backup.export_registry(args.work_dir, args.folder, champion.uri, args.group)
        echo(f"exported {done.packages} model package(s) and {done.objects} object(s) to {done.folder}")
    else:
        done = registry_backup.import_registry(args.folder, args.work_dir, champion.uri, args.replace)
        echo(f"imported {done.packages} model package(s) and {done.objects} object(s) into {done.folder}")
    for uri in done.missing_objects:
        echo(f"warning: {uri} was already missing when the export was taken")
    served = done.served_version
    echo(f"endpoint: {f'serves version {served}' if served is not None else 'served nothing'}")
    return 0


def _local_file(uri: str, store: ObjectStore | None = None) -> Path | None:
    """The file behind a local path, a file:// URI or (given the local store) an s3:// URI; else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "":
        return Path(uri)
    if parsed.scheme == "s3" and store is not None:
        try:
            return store.path_for(uri)
        except ObjectStoreError:
            return None
    return None


def headline_metrics(package: ModelPackage, store: ObjectStore | None = None) -> dict[str, float | None]:
    """RMSE and PHM08 score of a version: customer metadata first, then its model-quality file."""
    values: dict[str, float | None] = {key: None for _, key in HEADLINE_METRICS}
    metadata = package.customer_metadata or {}
    for key in values:
        if key in metadata:
            values[key] = float(metadata[key])
    uri = (((package.metrics or {}).get("ModelQuality") or {}).get("Statistics") or {}).get("S3Uri")
    path = _local_file(uri, store) if uri else None
    if path is not None and path.is_file() and None in values.values():
        report = json.loads(path.read_text()).get("regression_metrics", {})
        for key, value in values.items():
            if value is None and isinstance(report.get(key), dict) and "value" in report[key]:
                values[key] = float(report[key]["value"])
    return values


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(packages: list[ModelPackage], store: ObjectStore | None = None) -> list[str]:
    """One line per version: version, status, RMSE, PHM08 score, creation time and model data URL."""
    rows = [("VERSION", "STATUS", "RMSE", "PHM08", "CREATED", "MODEL DATA")]
    for package in packages:
        metrics = headline_metrics(package, store)
        rows.append(
            (
                str(package.version),
                package.approval_status,
                _number(metrics["rmse"], 2),
                _number(metrics["phm08_score"], 1),
                package.created_at[:19].replace("T", " "),
                package.model_data_url,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]


def format_package(package: ModelPackage, store: ObjectStore | None = None) -> list[str]:
    """Every registered field of one version, for `registry show`."""
    metrics = headline_metrics(package, store)
    lines = [
        f"version:          {package.version}",
        f"arn:              {package.arn}",
        f"status:           {package.approval_status}",
        f"reason:           {package.approval_description or '-'}",
        f"RMSE:             {_number(metrics['rmse'], 3)}",
        f"PHM08 score:      {_number(metrics['phm08_score'], 1)}",
        f"created:          {package.created_at}",
        f"updated:          {package.updated_at}",
        f"model data:       {package.model_data_url}",
        f"image:            {package.image_uri}",
        f"execution:        {package.execution_id or '-'}",
    ]
    for title, value in (
        ("model metrics", package.metrics),
        ("drift baselines", package.drift_check_baselines),
        ("customer metadata", package.customer_metadata),
    ):
        if value:
            lines.append(f"{title}:")
            lines.extend(f"  {line}" for line in json.dumps(value, indent=2, sort_keys=True).splitlines())
    return lines


def _set_status(
    registry: LocalRegistry,
    group: str,
    version: int,
    status: str,
    reason: str | None,
    on_change: OnChange | None,
    champion: ChampionTarget | None,
) -> ModelPackage:
    verified = None
    if champion is not None and status == APPROVED:
        # Outside the lock: concurrent approvals check their models side by side.
        verified = verify_archive(champion, registry.get(group, version))
    with registry_lock(registry.path.parent):
        before = registry.get(group, version)
        if champion is None:
            after = registry.update_approval(group, version, status, reason)
        else:
            after = change_status(champion, registry, group, version, status, reason, verified)
    if on_change is not None and before.approval_status != after.approval_status:
        on_change(after)
    return after


def approve_version(
    registry: LocalRegistry,
    group: str,
    version: int,
    reason: str | None = None,
    on_change: OnChange | None = None,
    champion: ChampionTarget | None = None,
) -> ModelPackage:
    """Approve a version (verified and published as champion with `champion`); `on_change(package)` runs
    when its status actually changed."""
    return _set_status(registry, group, version, APPROVED, reason, on_change, champion)


def reject_version(
    registry: LocalRegistry,
    group: str,
    version: int,
    reason: str | None = None,
    on_change: OnChange | None = None,
    champion: ChampionTarget | None = None,
) -> ModelPackage:
    """Reject a version (the champion falls back to the newest approved one left, with `champion`);
    `on_change(package)` runs when its status actually changed."""
    return _set_status(registry, group, version, REJECTED, reason, on_change, champion)


def local_champion(work_dir: Path) -> ChampionTarget:
    """The champion prefix of the local config in the work dir's object store."""
    return ChampionTarget(ObjectStore(Path(work_dir) / STORE_FOLDER), local_config().champion_uri)


def _missing(work_dir: Path) -> str | None:
    path = registry_path(work_dir)
    if not Path(work_dir).is_dir():
        return f"work dir {work_dir} does not exist; a pipeline run (python -m local_runner run) creates it"
    if not path.is_file():
        return f"no model registry at {path}; a pipeline run creates it when it registers a model"
    return None


def _run(args: argparse.Namespace, echo: Echo, on_change: OnChange | None, champion: ChampionTarget) -> int:
    if args.registry_action == "mirror":
        return run_mirror_command(args, echo, errors_to(echo))
    if args.registry_action in ("export", "import"):
        return _backup(args, echo, champion)
    registry = LocalRegistry(registry_path(args.work_dir))
    if args.registry_action == "list":
        packages = registry.list(args.group, args.status)
        status = f" with status {args.status}" if args.status else ""
        lines = format_table(packages, champion.store) if packages else []
        for line in lines or [f"no versions{status} in model package group {args.group}"]:
            echo(line)
    elif args.registry_action == "show":
        for line in format_package(registry.get(args.group, args.version), champion.store):
            echo(line)
    else:
        change = approve_version if args.registry_action == "approve" else reject_version
        package = change(registry, args.group, args.version, args.reason, on_change, champion)
        echo(f"{package.group} version {package.version} is now {package.approval_status}")
    return 0


def run_registry_command(
    args: argparse.Namespace,
    echo: Echo = print,
    on_change: OnChange | None = None,
    champion: ChampionTarget | None = None,
) -> int:
    """Run a parsed `registry` command; 0 on success, 1 with a one-line message for a missing work dir or
    registry, an unknown group or version, a model that fails verification or a busy registry, 2 for an
    `import` folder that is no valid export."""
    fail = errors_to(echo)
    missing = None if args.registry_action == "import" else _missing(args.work_dir)
    if missing:
        fail(f"error: {missing}")
        return 1
    try:
        return _run(args, echo, on_change, champion or local_champion(args.work_dir))
    except (RegistryError, RegistryBusy) as error:
        fail(f"error: {error}")
    except ChampionError as error:
        action = f"{args.registry_action} {args.group} version {getattr(args, 'version', '')}"
        fail(f"error: {action} refused: {error}; the registry is unchanged")
    except RuntimeError as error:  # registry_backup.BackupError (not imported here): every problem
        if not hasattr(error, "problems"):
            raise
        for problem in error.problems:
            fail(f"error: {args.registry_action}: {problem}")
        return int(getattr(error, "exit_code", 1))  # 2: the folder given to `import` is no valid export
    except (sqlite3.Error, OSError) as error:
        fail(f"error: {args.registry_action} failed on {registry_path(args.work_dir)}: {error}")
    return 1
