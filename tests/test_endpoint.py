"""The local endpoint (`local_runner.endpoint`): serving a registered model, health-checked swaps, the CLI."""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import tarfile
from pathlib import Path

import psutil
import pytest

from local_runner.endpoint import (
    EndpointError,
    EndpointOptions,
    EndpointPaths,
    check_port_free,
    current_release,
    on_approval_callback,
    release_version,
    resolve_package,
    start_endpoint,
    swap_model,
)
from local_runner.endpoint_cli import add_endpoint_parser, run_endpoint_command
from local_runner.object_store import ObjectStore
from local_runner.registry import APPROVED, PENDING, LocalRegistry
from local_runner.registry_cli import approve_version
from rul.data import COLUMNS
from rul.inference import canned_window

GROUP = "turbofan-rul"


def pack(model_dir: Path, archive: Path, leave_out: str | None = None) -> None:
    """Pack a model folder into `archive` as a training job would, optionally without one file."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as bundle:
        for path in sorted(model_dir.iterdir()):
            if path.name != leave_out:
                bundle.add(path, arcname=path.name)


@pytest.fixture()
def work_dir(tmp_path, model_dir) -> Path:
    """A registry with version 1 (approved), 2 (good, pending), 3 (no estimator.joblib), 4 (no archive)."""
    store = ObjectStore(tmp_path / "s3")
    registry = LocalRegistry(tmp_path / "registry.sqlite")
    registry.create_group(GROUP)
    for version in (1, 2, 3, 4):
        url = f"s3://artifacts/models/v{version}/output/model.tar.gz"
        if version != 4:
            pack(model_dir, store.path_for(url), leave_out="estimator.joblib" if version == 3 else None)
        status = APPROVED if version == 1 else PENDING
        registry.register(GROUP, url, "local/turbofan-rul:local", approval_status=status)
    return tmp_path


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def invoke(port: int) -> dict:
    """POST the canned window to /invocations; the parsed 200 response."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = canned_window()[COLUMNS].to_csv(index=False)
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv"})
        response = connection.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        connection.close()


def test_resolve_package_picks_the_newest_approved_version(work_dir, tmp_path_factory):
    """An explicit version wins; an unknown version or a missing registry is an `EndpointError`."""
    assert resolve_package(work_dir, None).version == 1
    assert resolve_package(work_dir, 3).version == 3
    with pytest.raises(EndpointError, match="has no version 9"):
        resolve_package(work_dir, 9)
    with pytest.raises(EndpointError, match="no model registry"):
        resolve_package(tmp_path_factory.mktemp("empty"), None)


def test_swap_without_a_server_checks_and_repoints_current(work_dir):
    """A good version becomes `current`; a broken or missing archive is refused and its release removed."""
    registry = LocalRegistry(work_dir / "registry.sqlite")
    paths = EndpointPaths.of(work_dir)
    result = swap_model(work_dir, registry.get(GROUP, 2))
    assert result.ok and "will serve on the next start" in result.reason
    assert release_version(current_release(paths)) == 2
    metadata = json.loads((paths.current / "model" / "metadata.json").read_text())
    assert metadata["model_version"] == "2"

    broken = swap_model(work_dir, registry.get(GROUP, 3))
    assert not broken.ok
    assert "estimator.joblib is missing" in broken.reason and "version 2 keeps serving" in broken.reason
    missing = swap_model(work_dir, registry.get(GROUP, 4))
    assert not missing.ok and "does not exist" in missing.reason
    assert release_version(current_release(paths)) == 2
    assert len(list(paths.releases.iterdir())) == 1, "refused releases are removed"


def test_on_approval_does_nothing_without_an_endpoint(work_dir):
    """With no `current` release there is nothing to swap, and the callback says so."""
    said = []
    registry = LocalRegistry(work_dir / "registry.sqlite")
    approve_version(registry, GROUP, 2, on_change=on_approval_callback(work_dir, said.append))
    assert said == ["endpoint: no local endpoint set up; nothing to swap"]


def test_on_approval_mirrors_the_change_in_mlflow_first(work_dir, monkeypatch):
    """The approval reaches the MLflow mirror with the package's new status."""
    mirrored = []
    monkeypatch.setattr(
        "local_runner.endpoint.mirror_approval", lambda work, package, echo: mirrored.append((work, package))
    )
    registry = LocalRegistry(work_dir / "registry.sqlite")
    approve_version(registry, GROUP, 2, on_change=on_approval_callback(work_dir, lambda _: None))
    assert [(work, package.version, package.approval_status) for work, package in mirrored] == [
        (work_dir, 2, "Approved")
    ]


def test_running_endpoint_keeps_serving_through_a_refused_swap_and_swaps_on_approval(work_dir, tmp_path):
    """A live loopback server: a broken version never serves, an approved one does, captures are written."""
    registry = LocalRegistry(work_dir / "registry.sqlite")
    options = EndpointOptions(port=free_port(), workers=2, capture_dir=tmp_path / "capture")
    with start_endpoint(work_dir, resolve_package(work_dir, None), options) as server:
        server.wait_ready(60)
        assert invoke(server.port)["model_version"] == "1"
        assert server.url == f"http://127.0.0.1:{server.port}"
        listening = psutil.Process(server.process.pid).net_connections("tcp")
        assert {(c.laddr.ip, c.laddr.port) for c in listening if c.status == "LISTEN"} == {
            ("127.0.0.1", server.port)
        }, "the local endpoint listens on loopback only"
        with pytest.raises(EndpointError, match="already runs from"):
            start_endpoint(work_dir, resolve_package(work_dir, None), options)

        refused = swap_model(work_dir, registry.get(GROUP, 3))
        assert not refused.ok and "version 1 keeps serving" in refused.reason
        for _ in range(4):
            assert invoke(server.port)["model_version"] == "1"

        said = []
        approve_version(registry, GROUP, 2, on_change=on_approval_callback(work_dir, said.append))
        assert said[0] == "endpoint: swapping version 1 -> 2 ..."
        assert said[1].startswith("endpoint: swapped: version 2 now serving")
        for _ in range(4):
            assert invoke(server.port)["model_version"] == "2"
        assert server.process.poll() is None
    captured = list((tmp_path / "capture" / "turbofan-rul-local" / "AllTraffic").rglob("*.jsonl"))
    assert captured, "the endpoint captured its invocations"


def test_a_taken_port_is_refused_before_anything_starts(work_dir):
    """The error names the port and host, and no release is prepared."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EndpointError, match=f"port {port} on 127.0.0.1 is already in use"):
            check_port_free("127.0.0.1", port)
        options = EndpointOptions(port=port)
        with pytest.raises(EndpointError, match=f"port {port} on 127.0.0.1 is already in use"):
            start_endpoint(work_dir, resolve_package(work_dir, None), options)
    assert not EndpointPaths.of(work_dir).current.exists(), "no release was prepared"
    check_port_free("127.0.0.1", port)  # free again once closed


def parse(argv: list[str]) -> argparse.Namespace:
    """The `endpoint` verb's arguments, parsed as the command line does."""
    parser = argparse.ArgumentParser()
    add_endpoint_parser(parser.add_subparsers(dest="verb", required=True))
    return parser.parse_args(argv)


def test_cli_swap_and_status(work_dir):
    """`status` without a server, and `swap` of a broken version exiting 1 with the health check's reason."""
    said = []
    assert run_endpoint_command(parse(["endpoint", "status", "--work-dir", str(work_dir)]), said.append) == 0
    assert said[-1] == "server: not running"
    swap_3 = ["endpoint", "swap", "3", "--force", "--work-dir", str(work_dir)]
    assert run_endpoint_command(parse(swap_3), said.append) == 1
    assert said[-2] == "warning: serving version 3 although its registry status is PendingManualApproval"
    assert said[-1].startswith("endpoint: swap refused: health check of version 3 failed")
    assert (
        run_endpoint_command(parse(["endpoint", "swap", "9", "--work-dir", str(work_dir)]), said.append) == 1
    )
    assert said[-1] == f"error: model package group {GROUP!r} has no version 9"
    args = parse(["endpoint", "serve", "--work-dir", str(work_dir), "--model-version", "2", "--port", "9000"])
    assert (args.model_version, args.port, args.workers, args.capture_dir) == (2, 9000, 2, None)
    assert args.host == "127.0.0.1"
    assert args.handler is run_endpoint_command
    with pytest.raises(SystemExit):
        parse(["endpoint", "serve", "--capture-percentage", "120"])
