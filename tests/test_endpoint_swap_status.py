"""`endpoint swap N` and the registry status of N: a version that is not Approved is refused unless
`--force`, and a forced one is announced on standard error with its status. No model is served here: the
versions' archives do not exist, so a swap that gets past the status check stops at the archive check."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from local_runner.endpoint import EndpointError, EndpointPaths, check_servable, current_release
from local_runner.endpoint_cli import add_endpoint_parser, run_endpoint_command
from local_runner.registry import APPROVED, PENDING, REJECTED, LocalRegistry

GROUP = "turbofan-rul"
STATUSES = {1: APPROVED, 2: REJECTED, 3: PENDING}


@pytest.fixture()
def work_dir(tmp_path) -> Path:
    """Versions 1 (Approved), 2 (Rejected), 3 (PendingManualApproval), none with a model archive."""
    registry = LocalRegistry(tmp_path / "registry.sqlite")
    registry.create_group(GROUP)
    for version, status in STATUSES.items():
        url = f"s3://artifacts/models/v{version}/output/model.tar.gz"
        registry.register(GROUP, url, "local/turbofan-rul:local", approval_status=status)
    return tmp_path


def swap(work_dir: Path, *words: str) -> int:
    parser = argparse.ArgumentParser()
    add_endpoint_parser(parser.add_subparsers(dest="verb", required=True))
    return run_endpoint_command(parser.parse_args(["endpoint", "swap", *words, "--work-dir", str(work_dir)]))


@pytest.mark.parametrize("version", [2, 3])
def test_a_version_that_is_not_approved_is_refused_without_force(work_dir, capsys, version):
    assert swap(work_dir, str(version)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"error: version {version} is {STATUSES[version]}, not Approved; approve it first, or pass --force "
        "to serve it anyway\n"
    )
    assert current_release(EndpointPaths.of(work_dir)) is None


@pytest.mark.parametrize("version", [2, 3])
def test_force_warns_on_stderr_naming_the_status_then_swaps(work_dir, capsys, version):
    assert swap(work_dir, str(version), "--force") == 1  # gets past the status; the archive is missing
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == ""
    assert (
        lines[0] == f"warning: serving version {version} although its registry status is {STATUSES[version]}"
    )
    assert lines[1].startswith("endpoint: swap refused: model archive ") and "does not exist" in lines[1]


def test_an_approved_version_needs_no_force_and_gets_no_warning(work_dir, capsys):
    assert swap(work_dir, "1") == 1  # the archive is missing: the status check said nothing
    err = capsys.readouterr().err
    assert "warning" not in err and err.startswith("endpoint: swap refused: model archive ")


def test_check_servable_lets_only_approved_versions_through_unforced(work_dir):
    registry = LocalRegistry(work_dir / "registry.sqlite")
    approved, rejected = registry.get(GROUP, 1), registry.get(GROUP, 2)
    assert check_servable(approved) is None and check_servable(approved, force=True) is None
    with pytest.raises(EndpointError, match="version 2 is Rejected, not Approved"):
        check_servable(rejected)
    assert (
        check_servable(rejected, force=True) == "serving version 2 although its registry status is Rejected"
    )


def test_serve_applies_the_same_rule_to_an_explicit_version(work_dir, capsys):
    parser = argparse.ArgumentParser()
    add_endpoint_parser(parser.add_subparsers(dest="verb", required=True))
    words = ["endpoint", "serve", "--model-version", "2", "--port", "9", "--work-dir", str(work_dir)]
    assert run_endpoint_command(parser.parse_args(words)) == 1
    _, err = capsys.readouterr()
    assert "version 2 is Rejected, not Approved" in err and "--force" in err
    assert parser.parse_args([*words, "--force"]).force


def test_a_relative_work_dir_names_absolute_endpoint_files(tmp_path, monkeypatch):
    """The server runs in the containers folder, so a relative `.work` must not reach it as relative."""
    monkeypatch.chdir(tmp_path)
    paths = EndpointPaths.of(".work")
    assert paths.root == tmp_path / ".work" / "endpoint" and paths.pid_file.is_absolute()
