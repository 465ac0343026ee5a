"""Shared by the registry tests: image and model URIs, a health check that passes, the `registry` command's
parser, model archives, a work folder of pending versions and the consistency check of the fault tests."""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
import tarfile
from pathlib import Path

from local_runner.champion import ChampionTarget, published_version
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from local_runner.registry_cli import DEFAULT_GROUP, add_registry_parser, registry_path
from pipeline_steps.config import local_config

IMAGE = "000000000000.dkr.ecr.us-east-1.amazonaws.com/rul:2026-12-03"


def model_url(version: int) -> str:
    """Where a training job of version `version` leaves its model archive."""
    return f"s3://local-artifacts/models/v{version}/output/model.tar.gz"


def healthy(_model_dir: Path) -> tuple[bool, str]:
    """A champion health check that passes without loading the model."""
    return True, "predicted RUL 42.0 on the canned window"


def parse(*argv: str) -> argparse.Namespace:
    """`registry *argv` parsed as the runner's command line parses it."""
    parser = argparse.ArgumentParser()
    add_registry_parser(parser.add_subparsers(dest="verb", required=True))
    return parser.parse_args(["registry", *argv])


def pack_texts(archive: Path, files: dict[str, str]) -> Path:
    """A tar.gz at `archive` holding `files` (name -> text); the archive."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as bundle:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return archive


PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHAMPION_URI = local_config().champion_uri
# Eight status changes of versions 1 to 4 in an order that makes approvals and rejections interleave.
MIXED_VERBS = (
    "approve 1",
    "approve 2",
    "reject 1",
    "approve 3",
    "reject 2",
    "approve 4",
    "reject 3",
    "approve 2",
)


def pack(archive: Path, folder: Path | None = None, leave_out: str = "") -> None:
    """A model archive of `folder`'s files (but `leave_out`), or of one small file."""
    if folder is None:
        pack_texts(archive, {"metadata.json": json.dumps({"archive": str(archive)})})
        return
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as bundle:
        for path in sorted(folder.iterdir()):
            if path.name != leave_out:
                bundle.add(path, arcname=path.name)


def make_work_dir(work: Path, versions: int = 4, folder: Path | None = None) -> Path:
    """A work folder whose registry holds `versions` pending versions, each with its archive."""
    store = ObjectStore(work / "s3")
    registry = LocalRegistry(registry_path(work))
    registry.create_group(DEFAULT_GROUP)
    for version in range(1, versions + 1):
        pack(store.path_for(model_url(version)), folder)
        registry.register(DEFAULT_GROUP, model_url(version), IMAGE)
    return work


def target(work: Path, check=healthy) -> ChampionTarget:
    """The champion prefix of `work`'s object store, verified with `check`."""
    return ChampionTarget(ObjectStore(work / "s3"), CHAMPION_URI, check)


def assert_consistent(work: Path) -> None:
    """SQLite's integrity check passes, the champion folder is whole and serves the newest approved
    version byte for byte, and no staging folder is left."""
    with sqlite3.connect(registry_path(work)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    registry = LocalRegistry(registry_path(work))
    newest = registry.latest_approved(DEFAULT_GROUP)
    intact, served = published_version(target(work))
    assert intact or (newest is None and not target(work).folder.exists()), "the champion folder is whole"
    assert served == (None if newest is None else newest.version)
    store = ObjectStore(work / "s3")
    if newest is not None:
        published = store.path_for(CHAMPION_URI + "model.tar.gz").read_bytes()
        assert published == store.path_for(newest.model_data_url).read_bytes()
    staging = target(work).staging
    assert not staging.is_dir() or not list(staging.iterdir()), "no staging folder is left"
