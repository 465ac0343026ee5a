"""`registry export|import` (`local_runner.registry_backup`): what an export holds, the checks an import makes
before it writes anything, and the refusal to overwrite a registry. No model is served here (the restore
drill in test_restore_drill.py serves one)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from local_runner.champion import current_champion, publish_champion
from local_runner.object_store import ObjectStore
from local_runner.registry import APPROVED, PENDING, LocalRegistry
from local_runner.registry_backup import (
    MANIFEST_FILE,
    BackupError,
    export_registry,
    import_registry,
    verify_export,
)
from local_runner.registry_cli import add_registry_parser, run_registry_command
from pipeline_steps.config import local_config

GROUP = "turbofan-rul"
CHAMPION = local_config().champion_uri
REPORT = "s3://artifacts/registry/exec-1/evaluation/evaluation.json"


@pytest.fixture()
def work_dir(tmp_path) -> Path:
    """v1 approved and champion (archive and report in the store), v2 pending whose archive is gone."""
    work = tmp_path / "work"
    store = ObjectStore(work / "s3")
    registry = LocalRegistry(work / "registry.sqlite")
    registry.create_group(GROUP)
    store.put_text("s3://artifacts/models/v1/model.tar.gz", "model one bytes")
    store.put_text(REPORT, json.dumps({"regression_metrics": {"rmse": {"value": 17.5}}}))
    metrics = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": REPORT}}}
    first = registry.register(GROUP, "s3://artifacts/models/v1/model.tar.gz", "img", model_metrics=metrics)
    registry.register(GROUP, "s3://artifacts/models/v2/model.tar.gz", "img", approval_status=PENDING)
    registry.update_approval(GROUP, 1, APPROVED, "good enough")
    publish_champion(store, CHAMPION, registry.get(GROUP, first.version))
    return work


def rows(work: Path) -> list[tuple]:
    registry = LocalRegistry(work / "registry.sqlite")
    return [
        (p.version, p.approval_status, p.approval_description, p.created_at, p.updated_at, p.metrics)
        for p in registry.list(GROUP)
    ]


def test_export_holds_registry_objects_champion_and_checksums(work_dir, tmp_path):
    summary = export_registry(work_dir, tmp_path / "backup", CHAMPION)
    assert summary.packages == 2 and summary.served_version is None
    assert summary.missing_objects == ("s3://artifacts/models/v2/model.tar.gz",)
    manifest = json.loads((tmp_path / "backup" / MANIFEST_FILE).read_text())
    assert "objects/artifacts/models/v1/model.tar.gz" in manifest["files"]
    assert any(name.endswith("champion.json") for name in manifest["files"])
    assert verify_export(tmp_path / "backup") == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_export_refuses_a_non_empty_folder_and_writes_nothing(work_dir, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        export_registry(work_dir, tmp_path / "taken", CHAMPION)
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["file"]


def test_import_restores_the_registry_exactly(work_dir, tmp_path):
    export_registry(work_dir, tmp_path / "backup", CHAMPION)
    before = rows(work_dir)
    restored = tmp_path / "restored"
    summary = import_registry(tmp_path / "backup", restored, CHAMPION)
    assert summary.packages == 2 and summary.served_version is None
    assert rows(restored) == before
    store = ObjectStore(restored / "s3")
    assert store.read_text("s3://artifacts/models/v1/model.tar.gz") == "model one bytes"
    assert current_champion(store, CHAMPION)["version"] == 1


def test_import_names_every_problem_and_writes_nothing(work_dir, tmp_path):
    export_registry(work_dir, tmp_path / "backup", CHAMPION)
    objects = tmp_path / "backup" / "objects" / "artifacts"
    (objects / "models" / "v1" / "model.tar.gz").write_text("tampered")
    (objects / "registry" / "exec-1" / "evaluation" / "evaluation.json").unlink()
    (tmp_path / "backup" / "stray.txt").write_text("?")
    with pytest.raises(BackupError) as caught:
        import_registry(tmp_path / "backup", tmp_path / "restored", CHAMPION)
    problems = "\n".join(caught.value.problems)
    assert "models/v1/model.tar.gz: checksum mismatch" in problems
    assert "evaluation.json: listed in the manifest but missing" in problems
    assert "stray.txt: not listed in the manifest" in problems
    assert not (tmp_path / "restored").exists()


def test_import_checks_the_manifest(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "manifest.json does not exist" in verify_export(tmp_path / "empty")[0]
    (tmp_path / "empty" / MANIFEST_FILE).write_text(json.dumps({"format_version": 99}))
    assert "format_version must be 1 (got 99)" in verify_export(tmp_path / "empty")[0]


def test_import_refuses_a_registry_with_models_unless_replace(work_dir, tmp_path):
    export_registry(work_dir, tmp_path / "backup", CHAMPION)
    registry = LocalRegistry(work_dir / "registry.sqlite")
    registry.update_approval(GROUP, 1, "Rejected", "changed after the export")
    with pytest.raises(BackupError, match="already holds turbofan-rul; pass --replace"):
        import_registry(tmp_path / "backup", work_dir, CHAMPION)
    assert registry.get(GROUP, 1).approval_status == "Rejected"
    import_registry(tmp_path / "backup", work_dir, CHAMPION, replace=True)
    assert registry.get(GROUP, 1).approval_status == APPROVED


def run_cli(*argv: str) -> tuple[int, list[str]]:
    parser = argparse.ArgumentParser()
    add_registry_parser(parser.add_subparsers(dest="verb"))
    said: list[str] = []
    return run_registry_command(parser.parse_args(["registry", *argv]), echo=said.append), said


def test_cli_export_then_import(work_dir, tmp_path):
    code, said = run_cli("export", str(tmp_path / "backup"), "--work-dir", str(work_dir))
    assert code == 0 and said[0].startswith("exported 2 model package(s)")
    assert "was already missing" in said[1]
    code, said = run_cli("import", str(tmp_path / "backup"), "--work-dir", str(work_dir))
    path = work_dir / "registry.sqlite"
    assert code == 1 and said == [
        f"error: import: {path} already holds turbofan-rul; pass --replace to overwrite it"
    ]
    code, said = run_cli("import", str(tmp_path / "backup"), "--work-dir", str(tmp_path / "new"))
    assert code == 0 and said[-1] == "endpoint: served nothing"
