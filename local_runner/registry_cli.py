"""The `registry` verb of the local runner: list, show, approve and reject model package versions.

`python -m local_runner registry list|show N|approve N|reject N [--reason TEXT]` works on the registry
file `<work-dir>/registry.sqlite` that local pipeline runs register into. Approval goes through
`approve_version`, whose `on_change` callback lets the caller react to a changed status (a later part swaps
the local endpoint's champion there). The table shows each version's RMSE and PHM08 score, read from the
package's customer metadata or from the model-quality statistics file its ModelMetrics point to, when that
file is local.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from local_runner.registry import (
    APPROVAL_STATUSES,
    APPROVED,
    REJECTED,
    LocalRegistry,
    ModelPackage,
    RegistryError,
)

DEFAULT_GROUP = "turbofan-rul"  # the local pipeline config's model package group
DEFAULT_WORK_DIR = Path(".work")
REGISTRY_FILE = "registry.sqlite"
# Headline metrics: the table column, the customer-metadata key and the key in evaluation.json's
# `regression_metrics` (SageMaker's model-quality regression shape: {"rmse": {"value": ...}}).
HEADLINE_METRICS = (("RMSE", "rmse"), ("PHM08", "phm08_score"))

Echo = Callable[[str], object]
OnChange = Callable[[ModelPackage], object]


def registry_path(work_dir: Path) -> Path:
    return Path(work_dir) / REGISTRY_FILE


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
        action.add_argument("--reason", default="", help="the approval description")
    registry.set_defaults(handler=run_registry_command)
    return registry


def _local_file(uri: str) -> Path | None:
    """The file behind a local path or file:// URI; None for remote URIs (s3://)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "":
        return Path(uri)
    return None


def headline_metrics(package: ModelPackage) -> dict[str, float | None]:
    """RMSE and PHM08 score of a version: customer metadata first, then a local model-quality file."""
    values: dict[str, float | None] = {key: None for _, key in HEADLINE_METRICS}
    metadata = package.customer_metadata or {}
    for key in values:
        if key in metadata:
            values[key] = float(metadata[key])
    uri = (((package.metrics or {}).get("ModelQuality") or {}).get("Statistics") or {}).get("S3Uri")
    path = _local_file(uri) if uri else None
    if path is not None and path.is_file() and None in values.values():
        report = json.loads(path.read_text()).get("regression_metrics", {})
        for key, value in values.items():
            if value is None and isinstance(report.get(key), dict) and "value" in report[key]:
                values[key] = float(report[key]["value"])
    return values


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(packages: list[ModelPackage]) -> list[str]:
    """One line per version: version, status, RMSE, PHM08 score, creation time and model data URL."""
    rows = [("VERSION", "STATUS", "RMSE", "PHM08", "CREATED", "MODEL DATA")]
    for package in packages:
        metrics = headline_metrics(package)
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


def format_package(package: ModelPackage) -> list[str]:
    metrics = headline_metrics(package)
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
    registry: LocalRegistry, group: str, version: int, status: str, reason: str, on_change: OnChange | None
) -> ModelPackage:
    before = registry.get(group, version)
    after = registry.update_approval(group, version, status, reason)
    if on_change is not None and before.approval_status != after.approval_status:
        on_change(after)
    return after


def approve_version(
    registry: LocalRegistry, group: str, version: int, reason: str = "", on_change: OnChange | None = None
) -> ModelPackage:
    """Approve a version; `on_change(package)` runs when its status actually changed."""
    return _set_status(registry, group, version, APPROVED, reason, on_change)


def reject_version(
    registry: LocalRegistry, group: str, version: int, reason: str = "", on_change: OnChange | None = None
) -> ModelPackage:
    """Reject a version; `on_change(package)` runs when its status actually changed."""
    return _set_status(registry, group, version, REJECTED, reason, on_change)


def run_registry_command(
    args: argparse.Namespace, echo: Echo = print, on_change: OnChange | None = None
) -> int:
    """Run a parsed `registry` command; 0 on success, 1 with a message for an unknown group or version."""
    path = registry_path(args.work_dir)
    if not path.is_file():
        echo(f"error: no model registry at {path}; a pipeline run creates it when it registers a model")
        return 1
    registry = LocalRegistry(path)
    try:
        if args.registry_action == "list":
            packages = registry.list(args.group, args.status)
            if not packages:
                status = f" with status {args.status}" if args.status else ""
                echo(f"no versions{status} in model package group {args.group}")
                return 0
            for line in format_table(packages):
                echo(line)
        elif args.registry_action == "show":
            for line in format_package(registry.get(args.group, args.version)):
                echo(line)
        else:
            change = approve_version if args.registry_action == "approve" else reject_version
            package = change(registry, args.group, args.version, args.reason, on_change)
            echo(f"{package.group} version {package.version} is now {package.approval_status}")
    except RegistryError as error:
        echo(f"error: {error}")
        return 1
    return 0
