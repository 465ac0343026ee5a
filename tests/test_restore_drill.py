"""The restore drill: serve an approved model, export, lose the registry, the store and the endpoint, import,
serve again — the endpoint serves the same version with byte-identical predictions for the same request.

The model is the session's small gbm model (conftest `model_dir`); the approval goes through the registry
CLI's path (archive verified, champion published) and the endpoint through `endpoint.start_endpoint`, so
the drill runs what a user runs. The quick variant wipes the registry, the store and the endpoint folder;
the long one also restores into a fresh work dir with the export moved elsewhere (a lost machine).
"""

from __future__ import annotations

import http.client
import shutil
import socket
import tarfile
from pathlib import Path

import pytest

from local_runner.endpoint import EndpointOptions, EndpointPaths, resolve_package, start_endpoint
from local_runner.object_store import ObjectStore
from local_runner.registry import PENDING, LocalRegistry
from local_runner.registry_backup import export_registry, import_registry
from local_runner.registry_cli import approve_version, local_champion
from rul.data import COLUMNS
from rul.inference import canned_window

GROUP = "turbofan-rul"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def predict(port: int) -> tuple[bytes, str]:
    """The raw response body to the canned window, and the model version header-free from the body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = canned_window()[COLUMNS].to_csv(index=False)
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv"})
        response = connection.getresponse()
        payload = response.read()
        assert response.status == 200, payload
        return payload, response.getheader("Content-Type", "")
    finally:
        connection.close()


def serve_once(work: Path) -> bytes:
    """Start the endpoint on the newest approved version, predict once, stop it."""
    options = EndpointOptions(port=free_port(), workers=1)
    with start_endpoint(work, resolve_package(work, None), options) as server:
        server.wait_ready(120)
        body, _ = predict(server.port)
    return body


@pytest.fixture()
def served(tmp_path, model_dir) -> tuple[Path, bytes]:
    """A work dir with v1 pending and v2 approved (the champion), served once: (work dir, response)."""
    work = tmp_path / "work"
    store = ObjectStore(work / "s3")
    registry = LocalRegistry(work / "registry.sqlite")
    registry.create_group(GROUP)
    for version in (1, 2):
        archive = store.path_for(f"s3://artifacts/models/v{version}/output/model.tar.gz")
        archive.parent.mkdir(parents=True)
        with tarfile.open(archive, "w:gz") as bundle:
            for path in sorted(model_dir.iterdir()):
                bundle.add(path, arcname=path.name)
        registry.register(
            GROUP, f"s3://artifacts/models/v{version}/output/model.tar.gz", "img", approval_status=PENDING
        )
    approve_version(registry, GROUP, 2, "drill", champion=local_champion(work))
    return work, serve_once(work)


def _drill(work: Path, restored: Path, backup: Path, before: bytes) -> None:
    champion = local_champion(work).uri
    summary = export_registry(work, backup, champion)
    assert summary.served_version == 2
    for lost in ("registry.sqlite", "s3", "endpoint"):
        target = work / lost
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    assert not (restored / "registry.sqlite").exists()
    imported = import_registry(backup, restored, champion)
    assert imported.served_version == 2
    assert LocalRegistry(restored / "registry.sqlite").latest_approved(GROUP).version == 2
    after = serve_once(restored)
    assert b'"model_version": "2"' in after or b'"model_version":"2"' in after
    assert after == before, "the restored endpoint must answer the same request with the same bytes"
    assert EndpointPaths.of(restored).current.exists()


@pytest.mark.slow
def test_restore_drill_same_work_dir(served, tmp_path):
    work, before = served
    _drill(work, work, tmp_path / "backup", before)


@pytest.mark.long
def test_restore_drill_onto_a_new_machine(served, tmp_path):
    work, before = served
    backup = tmp_path / "backup"
    export_registry(work, backup, local_champion(work).uri)
    moved = tmp_path / "usb-stick" / "backup"
    moved.parent.mkdir()
    shutil.move(backup, moved)
    _drill(work, tmp_path / "new-machine", tmp_path / "second-backup", before)
    # The first export, moved, restores the same state into yet another work dir.
    third = tmp_path / "third-machine"
    import_registry(moved, third, local_champion(third).uri)
    assert serve_once(third) == before
