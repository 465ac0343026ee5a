"""The local model mirror against a real S3-compatible server on the loopback (moto in server mode).

`registry approve` mirrors the approved version (model archive, evaluation report, data manifest, index) and
every object reads back from the server with the sha256 its metadata names; a second mirror writes nothing;
a changed object at the destination is replaced. Failure modes keep the approval: the server down, keys the
server refuses (moto with IAM authentication on), keys missing. `registry mirror VERSION` retries.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import socket
import tarfile
from pathlib import Path

import pytest
from moto.core.authorization import enable_iam_authentication
from moto.server import ThreadedMotoServer

from lambdas.mirror_model.mirror import INDEX_FILE, MirrorError
from lambdas.mirror_model.store import Destination, make_client, put_verified
from local_runner.champion import ChampionTarget, published_version
from local_runner.object_store import ObjectStore
from local_runner.registry import APPROVED, LocalRegistry
from local_runner.registry_cli import add_registry_parser, approve_version, run_registry_command
from pipeline_steps.config import local_config

GROUP = "turbofan-rul"
BUCKET = "rul-models"
KEY_ID, SECRET = "AKIAMIRRORTEST000001", "mirror-secret-value-never-printed"
IMAGE = "000000000000.dkr.ecr.us-east-1.amazonaws.com/rul:2026-12-03"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_url():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def store_client(server_url):
    """The test's own view of the server (creates the bucket, reads objects back)."""
    client = make_client(server_url, "us-east-1", KEY_ID, SECRET)
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])


def _archive(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    with tarfile.open(path, "w:gz") as bundle:
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        bundle.addfile(info, io.BytesIO(data))


def register(work: Path, version_text: str = "v1") -> LocalRegistry:
    """A registered version with its model archive, evaluation report and two data manifest files."""
    store = ObjectStore(work / "s3")
    base = f"s3://local-artifacts/registry/exec-{version_text}"
    _archive(store.path_for(f"s3://local-artifacts/models/{version_text}/model.tar.gz"), version_text)
    store.put_text(f"{base}/evaluation/evaluation.json", json.dumps({"rmse": {"value": 14.2}}))
    for host in ("algo-1", "algo-2"):
        store.put_text(f"{base}/manifest/manifest-{host}.json", json.dumps({"host": host}))
    registry = LocalRegistry(work / "registry.sqlite")
    registry.create_group(GROUP)
    registry.register(
        GROUP,
        f"s3://local-artifacts/models/{version_text}/model.tar.gz",
        IMAGE,
        model_metrics={
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"{base}/evaluation/evaluation.json",
                }
            }
        },
        customer_metadata={"DataManifestUri": f"{base}/manifest"},
    )
    return registry


def configure(work: Path, endpoint_url: str, **extra) -> None:
    settings = {"enabled": True, "endpoint_url": endpoint_url, "bucket": BUCKET, "prefix": "mirror/", **extra}
    (work / "mirror.json").write_text(json.dumps(settings))


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_MIRROR_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("MODEL_MIRROR_SECRET_ACCESS_KEY", SECRET)
    register(tmp_path)
    return tmp_path


def champion(work: Path) -> ChampionTarget:
    return ChampionTarget(
        ObjectStore(work / "s3"), local_config().champion_uri, lambda _folder: (True, "stub")
    )


def approve(work: Path, version: int = 1):
    return approve_version(LocalRegistry(work / "registry.sqlite"), GROUP, version, champion=champion(work))


def cli(work: Path, *words: str) -> tuple[int, list[str]]:
    parser = argparse.ArgumentParser()
    add_registry_parser(parser.add_subparsers(dest="verb"))
    lines: list[str] = []
    code = run_registry_command(
        parser.parse_args(["registry", *words, "--work-dir", str(work)]), lines.append
    )
    return code, lines


def stored(client, key: str) -> tuple[bytes, dict]:
    answer = client.get_object(Bucket=BUCKET, Key=key)
    return answer["Body"].read(), answer["Metadata"]


def test_approve_mirrors_every_artifact_verifiably(work, server_url, store_client, capsys):
    configure(work, server_url)
    package = approve(work)
    assert package.approval_status == APPROVED
    assert "mirrored turbofan-rul version 1" in capsys.readouterr().out
    index_body, _ = stored(store_client, f"mirror/{GROUP}/v1/{INDEX_FILE}")
    index = json.loads(index_body)
    assert index["model_package_arn"] == package.arn
    names = sorted(entry["name"] for entry in index["files"])
    assert names == [
        "evaluation.json",
        "manifest/manifest-algo-1.json",
        "manifest/manifest-algo-2.json",
        "model.tar.gz",
    ]
    store = ObjectStore(work / "s3")
    for entry in index["files"]:
        body, metadata = stored(store_client, entry["key"])
        local = store.path_for(entry["source"]).read_bytes()
        assert body == local
        assert hashlib.sha256(body).hexdigest() == entry["sha256"] == metadata["sha256"]
        assert metadata["model-version"] == "1" and metadata["model-package-arn"] == package.arn


def test_mirroring_again_skips_identical_objects_and_replaces_changed_ones(work, server_url, store_client):
    configure(work, server_url)
    approve(work)
    code, lines = cli(work, "mirror", "1")
    assert code == 0 and "0 of 5 objects uploaded" in lines[0]
    model_key = f"mirror/{GROUP}/v1/model.tar.gz"
    store_client.put_object(Bucket=BUCKET, Key=model_key, Body=b"tampered")
    code, lines = cli(work, "mirror", "1")
    assert code == 0 and "1 of 5 objects uploaded" in lines[0]
    body, metadata = stored(store_client, model_key)
    assert hashlib.sha256(body).hexdigest() == metadata["sha256"]


def test_sha256_checksum_mode_stores_the_flexible_checksum(work, server_url, store_client):
    configure(work, server_url, checksum="sha256")
    approve(work)
    key = f"mirror/{GROUP}/v1/model.tar.gz"
    head = store_client.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    body, _ = stored(store_client, key)
    assert base64.b64decode(head["ChecksumSHA256"]) == hashlib.sha256(body).digest()


def test_a_server_that_is_down_keeps_the_approval_and_the_retry_mirrors(
    work, server_url, store_client, capsys
):
    configure(work, f"http://127.0.0.1:{free_port()}", timeout_seconds=1)
    package = approve(work)
    out, err = capsys.readouterr()
    assert "mirror" not in out  # a warning, on standard error
    assert "approved, but the mirror failed" in err and "cannot reach the store" in err
    assert f"python -m local_runner registry mirror 1 --work-dir {work}" in err
    assert (
        LocalRegistry(work / "registry.sqlite").get(GROUP, 1).approval_status
        == APPROVED
        == package.approval_status
    )
    assert published_version(champion(work)) == (True, 1)
    configure(work, server_url)
    code, lines = cli(work, "mirror", "1")
    assert code == 0 and "5 of 5 objects uploaded" in lines[0]


def test_refused_keys_are_a_clear_error_that_never_shows_the_secret(work, server_url, store_client, capsys):
    configure(work, server_url)
    with enable_iam_authentication():
        approve(work)
        code, lines = cli(work, "mirror", "1")
    out, err = capsys.readouterr()
    assert code == 1 and "refused the credentials" in lines[0]
    assert "refused the credentials" in err
    assert SECRET not in out + err + lines[0]
    assert LocalRegistry(work / "registry.sqlite").get(GROUP, 1).approval_status == APPROVED


def test_missing_keys_name_the_variables(work, server_url, monkeypatch):
    configure(work, server_url)
    monkeypatch.delenv("MODEL_MIRROR_SECRET_ACCESS_KEY")
    code, lines = cli(work, "mirror", "1")
    assert code == 1 and "set MODEL_MIRROR_SECRET_ACCESS_KEY" in lines[0]


def test_credentials_file_must_be_private(work, server_url, store_client, monkeypatch):
    keys = work / "keys.json"
    keys.write_text(json.dumps({"access_key_id": KEY_ID, "secret_access_key": SECRET}))
    keys.chmod(0o644)
    configure(work, server_url, credentials_file=str(keys))
    monkeypatch.delenv("MODEL_MIRROR_ACCESS_KEY_ID")
    approve(work)
    code, lines = cli(work, "mirror", "1")
    assert code == 1 and "readable by others" in lines[0]
    keys.chmod(0o600)
    code, lines = cli(work, "mirror", "1")
    assert code == 0, lines


def test_only_approved_versions_are_mirrored(work, server_url, store_client):
    configure(work, server_url)
    code, lines = cli(work, "mirror", "1")
    assert code == 1 and "PendingManualApproval, not Approved" in lines[0]
    assert "Contents" not in store_client.list_objects_v2(Bucket=BUCKET)


def test_mirror_off_means_approve_does_nothing_more(work, capsys):
    (work / "mirror.json").write_text(json.dumps({"enabled": False}))
    approve(work)
    assert "mirror" not in capsys.readouterr().out
    code, lines = cli(work, "mirror", "1")
    assert code == 1 and "the mirror is off" in lines[0]


def test_cli_mirror_errors_go_to_stderr_and_exit_1(work, capsys):
    (work / "mirror.json").write_text(json.dumps({"enabled": False}))
    parser = argparse.ArgumentParser()
    add_registry_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["registry", "mirror", "1", "--work-dir", str(work)])
    assert run_registry_command(args) == 1  # the CLI's own echo: print
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        err.startswith(f"error: mirror {GROUP} version 1 failed: the mirror is off") and err.count("\n") == 1
    )


def test_invalid_mirror_file_is_named(work):
    (work / "mirror.json").write_text(json.dumps({"enabled": True, "endpoint_url": "http://example.com"}))
    code, lines = cli(work, "mirror", "1")
    assert code == 1 and "mirror.json is not valid mirror settings" in lines[0] and "https" in lines[0]


def test_a_missing_bucket_is_named(server_url):
    client = make_client(server_url, "us-east-1", KEY_ID, SECRET)
    destination = Destination(client, server_url, "no-such-bucket", "")
    with pytest.raises(MirrorError, match="bucket 'no-such-bucket' does not exist"):
        put_verified(destination, "k", b"body", {}, "application/json")


def test_the_client_signs_v4_path_style_without_default_crc_trailers():
    client = make_client("https://abc.supabase.co/storage/v1/s3", "eu-west-1", KEY_ID, SECRET)
    config = client.meta.config
    assert config.signature_version == "s3v4" and config.s3["addressing_style"] == "path"
    assert config.request_checksum_calculation == "when_required"
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == "https://abc.supabase.co/storage/v1/s3"
