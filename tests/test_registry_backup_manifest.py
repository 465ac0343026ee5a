"""`registry import` checks the shape of an export's documents before it touches anything: each wrong key,
type, version number or duplicate is named, the command exits 2 and the work dir's registry, object store
and champion stay byte for byte as they were (`local_runner.backup_manifest`)."""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from local_runner.backup_manifest import (
    ENDPOINT_JSON,
    MANIFEST_FILE,
    REGISTRY_JSON,
    manifest_problems,
)
from local_runner.champion import publish_champion
from local_runner.object_store import ObjectStore
from local_runner.registry import APPROVED, PENDING, LocalRegistry
from local_runner.registry_backup import ExportInvalid, export_registry, import_registry
from local_runner.registry_cli import add_registry_parser, run_registry_command
from pipeline_steps.config import local_config

GROUP = "turbofan-rul"
CHAMPION = local_config().champion_uri


@pytest.fixture()
def work_dir(tmp_path) -> Path:
    """v1 approved (and champion), v2 pending."""
    work = tmp_path / "work"
    store = ObjectStore(work / "s3")
    registry = LocalRegistry(work / "registry.sqlite")
    registry.create_group(GROUP)
    store.put_text("s3://artifacts/models/v1/model.tar.gz", "model one bytes")
    first = registry.register(GROUP, "s3://artifacts/models/v1/model.tar.gz", "img")
    registry.register(GROUP, "s3://artifacts/models/v2/model.tar.gz", "img", approval_status=PENDING)
    registry.update_approval(GROUP, 1, APPROVED, "good enough")
    publish_champion(store, CHAMPION, registry.get(GROUP, first.version))
    return work


@pytest.fixture()
def backup(work_dir, tmp_path) -> Path:
    """An export of `work_dir`, after which the work dir's registry changes (v1 rejected)."""
    export_registry(work_dir, tmp_path / "backup", CHAMPION)
    LocalRegistry(work_dir / "registry.sqlite").update_approval(GROUP, 1, "Rejected", "after the export")
    return tmp_path / "backup"


def snapshot(work: Path) -> dict[str, bytes]:
    """Every file of a work dir and its bytes."""
    return {
        str(path.relative_to(work)): path.read_bytes() for path in sorted(work.rglob("*")) if path.is_file()
    }


def edit(folder: Path, name: str, change: Callable) -> None:
    """Change a JSON document of an export (its checksum follows, so only its shape is wrong)."""
    path = folder / name
    document = json.loads(path.read_text())
    changed = change(document)
    path.write_text(json.dumps(document if changed is None else changed))
    if name != MANIFEST_FILE:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        data = path.read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest))


def run_import(folder: Path, work: Path) -> tuple[int, list[str]]:
    parser = argparse.ArgumentParser()
    add_registry_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["registry", "import", str(folder), "--work-dir", str(work), "--replace"])
    said: list[str] = []
    return run_registry_command(args, echo=said.append), said


def _first_package(change: Callable[[dict], None]) -> Callable[[list], None]:
    return lambda listed: change(listed[0])


CASES = [
    (MANIFEST_FILE, lambda m: m.update(extra=1), "manifest.json: unknown key(s) 'extra'"),
    (MANIFEST_FILE, lambda m: m.__delitem__("created_at"), "manifest.json: missing key(s) 'created_at'"),
    (MANIFEST_FILE, lambda m: m.update(packages="2"), "packages must be a whole number >= 0 (got '2')"),
    (
        MANIFEST_FILE,
        lambda m: m.update(served_version=0),
        "served_version must be null or a version number >= 1",
    ),
    (
        MANIFEST_FILE,
        lambda m: m.update(served_version=True),
        "served_version must be null or a version number",
    ),
    (MANIFEST_FILE, lambda m: m.update(groups=GROUP), "groups must be a list of distinct names"),
    (MANIFEST_FILE, lambda m: m.update(created_at="yesterday"), "created_at must be an ISO 8601 time"),
    (MANIFEST_FILE, lambda m: m.update(missing_objects=None), "missing_objects must be a list of URIs"),
    (MANIFEST_FILE, lambda m: ["not", "an", "object"], "manifest.json must be a JSON object (got list)"),
    (
        MANIFEST_FILE,
        lambda m: m["files"][REGISTRY_JSON].update(size="12"),
        "files['registry.json']: size must be a whole number >= 0 (got '12')",
    ),
    (
        MANIFEST_FILE,
        lambda m: m["files"][REGISTRY_JSON].update(sha256="abc", extra=1),
        "files['registry.json']: unknown key(s) 'extra'",
    ),
    (
        REGISTRY_JSON,
        lambda listed: listed.append(dict(listed[0])),
        f"registry.json: version 1 of {GROUP} is listed twice",
    ),
    (
        REGISTRY_JSON,
        _first_package(lambda p: p.update(ModelPackageVersion=0)),
        "registry.json[0]: ModelPackageVersion must be a version number >= 1 (got 0)",
    ),
    (
        REGISTRY_JSON,
        _first_package(lambda p: p.update(ModelPackageVersion="2")),
        "registry.json[0]: ModelPackageVersion must be a version number >= 1 (got '2')",
    ),
    (
        REGISTRY_JSON,
        _first_package(lambda p: p.update(ModelApprovalStatus="Maybe")),
        "registry.json[0]: ModelApprovalStatus must be one of Approved, Rejected, PendingManualApproval",
    ),
    (REGISTRY_JSON, lambda listed: {"packages": listed}, "registry.json must be a JSON list (got dict)"),
    (ENDPOINT_JSON, lambda e: e.update(port=8080), "endpoint.json: unknown key(s) 'port'"),
    (
        ENDPOINT_JSON,
        lambda e: e.update(served_version=-3),
        "endpoint.json: served_version must be null or a version number >= 1 (got -3)",
    ),
    (ENDPOINT_JSON, lambda e: e.update(served_version=1), "endpoint.json says version 1 was served"),
]


@pytest.mark.parametrize(("document", "change", "problem"), CASES)
def test_a_malformed_export_exits_2_naming_the_problem_and_changes_nothing(
    work_dir, backup, document, change, problem
):
    edit(backup, document, change)
    before = snapshot(work_dir)
    code, said = run_import(backup, work_dir)
    assert code == 2
    assert any(problem in line for line in said), said
    assert all(line.startswith("error: import: ") for line in said)
    assert snapshot(work_dir) == before


def test_the_shape_error_is_raised_before_the_work_dir_is_created(backup, tmp_path):
    edit(backup, MANIFEST_FILE, lambda m: m.update(packages=-1))
    with pytest.raises(ExportInvalid) as caught:
        import_registry(backup, tmp_path / "new", CHAMPION)
    assert caught.value.exit_code == 2
    assert "packages must be a whole number >= 0 (got -1)" in caught.value.problems[0]
    assert not (tmp_path / "new").exists()


def test_a_valid_export_still_imports(work_dir, backup):
    code, said = run_import(backup, work_dir)
    assert code == 0, said
    assert LocalRegistry(work_dir / "registry.sqlite").get(GROUP, 1).approval_status == APPROVED


def test_another_format_version_is_named_alone():
    assert manifest_problems({"format_version": 2, "anything": "else"}) == [
        "manifest.json: format_version must be 1 (got 2)"
    ]
