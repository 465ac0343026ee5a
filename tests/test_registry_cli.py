"""The `registry` command: list, show, approve and reject on a work folder, and the champion they publish."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

import pytest
from registry_helpers import IMAGE, healthy, model_url, pack_texts, parse, target

from local_runner.__main__ import main
from local_runner.champion import PLACEHOLDER, current_champion, follow_registry
from local_runner.object_store import ObjectStore
from local_runner.registry import (
    APPROVED,
    PENDING,
    REJECTED,
    LocalRegistry,
    ModelPackage,
)
from local_runner.registry_cli import (
    DEFAULT_GROUP,
    approve_version,
    registry_path,
    reject_version,
    run_registry_command,
)
from pipeline_steps.config import local_config


@pytest.fixture
def work_dir(tmp_path):
    """Versions 1 (metrics in the local store's evaluation.json) and 2 (RMSE in its metadata), both with a
    small model archive, and version 3 whose archive is missing; all pending."""
    store = ObjectStore(tmp_path / "s3")
    registry = LocalRegistry(registry_path(tmp_path))
    registry.create_group(DEFAULT_GROUP)
    report = "s3://local-artifacts/evaluation/1/evaluation.json"
    store.put_text(
        report,
        json.dumps({"regression_metrics": {"rmse": {"value": 14.25}, "phm08_score": {"value": 321.5}}}),
    )
    for version in (1, 2):
        pack_texts(store.path_for(model_url(version)), {"metadata.json": json.dumps({"version": version})})
    metrics = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": report}}}
    registry.register(DEFAULT_GROUP, model_url(1), IMAGE, model_metrics=metrics)
    registry.register(DEFAULT_GROUP, model_url(2), IMAGE, customer_metadata={"rmse": "17.5"})
    registry.register(DEFAULT_GROUP, model_url(3), IMAGE)
    return tmp_path


def run(args: argparse.Namespace, check=healthy, **kwargs) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = run_registry_command(args, echo=lines.append, champion=target(args.work_dir, check), **kwargs)
    return code, lines


def champion_version(work_dir: Path) -> int | None:
    found = current_champion(ObjectStore(work_dir / "s3"), local_config().champion_uri)
    return None if found is None else found["version"]


def statuses(work_dir: Path) -> dict[int, str]:
    return {p.version: p.approval_status for p in LocalRegistry(registry_path(work_dir)).list(DEFAULT_GROUP)}


def test_parser_defaults_and_handler():
    args = parse("list")
    assert (args.group, str(args.work_dir), args.status) == (DEFAULT_GROUP, ".work", None)
    assert args.handler is run_registry_command
    assert parse("approve", "3", "--reason", "ok", "--group", "g").version == 3
    assert parse("reject", "3").reason is None
    with pytest.raises(SystemExit):
        parse("list", "--status", "approved")


def test_list_prints_a_table_with_metrics_from_the_local_store(work_dir, capsys):
    code = run_registry_command(parse("list", "--work-dir", str(work_dir)))
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].split() == ["VERSION", "STATUS", "RMSE", "PHM08", "CREATED", "MODEL", "DATA"]
    assert out[2].split()[:4] == ["2", PENDING, "17.50", "-"]
    assert out[3].split()[:4] == ["1", PENDING, "14.25", "321.5"]
    assert out[3].endswith(model_url(1))


def test_approve_publishes_the_champion_then_list_by_status_and_show(work_dir):
    changed: list[ModelPackage] = []
    code, lines = run(
        parse("approve", "1", "--work-dir", str(work_dir), "--reason", "good"), on_change=changed.append
    )
    assert code == 0
    assert lines == [f"{DEFAULT_GROUP} version 1 is now {APPROVED}"]
    assert [(p.version, p.approval_status) for p in changed] == [(1, APPROVED)]
    assert champion_version(work_dir) == 1
    store = ObjectStore(work_dir / "s3")
    published = store.path_for(local_config().champion_uri + "model.tar.gz")
    assert published.read_bytes() == store.path_for(model_url(1)).read_bytes()
    code, lines = run(parse("list", "--work-dir", str(work_dir), "--status", APPROVED))
    assert code == 0 and len(lines) == 2 and lines[1].split()[:2] == ["1", APPROVED]
    code, lines = run(parse("show", "1", "--work-dir", str(work_dir)))
    assert code == 0
    assert "status:           Approved" in lines
    assert "reason:           good" in lines
    assert "RMSE:             14.250" in lines


def test_a_reason_is_kept_unless_a_new_one_is_given(work_dir):
    assert run(parse("approve", "1", "--work-dir", str(work_dir), "--reason", "beats v0"))[0] == 0
    assert run(parse("approve", "1", "--work-dir", str(work_dir)))[0] == 0
    assert LocalRegistry(registry_path(work_dir)).get(DEFAULT_GROUP, 1).approval_description == "beats v0"
    assert run(parse("reject", "1", "--work-dir", str(work_dir)))[0] == 0
    assert LocalRegistry(registry_path(work_dir)).get(DEFAULT_GROUP, 1).approval_description == "beats v0"
    assert run(parse("approve", "1", "--work-dir", str(work_dir), "--reason", "retried"))[0] == 0
    assert LocalRegistry(registry_path(work_dir)).get(DEFAULT_GROUP, 1).approval_description == "retried"


def test_rejecting_the_champion_falls_back_to_the_newest_approved_left(work_dir):
    for argv in (("approve", "1"), ("approve", "2")):
        assert run(parse(*argv, "--work-dir", str(work_dir)))[0] == 0
    assert champion_version(work_dir) == 2
    code, lines = run(parse("reject", "2", "--work-dir", str(work_dir), "--reason", "too slow"))
    assert (code, lines) == (0, [f"{DEFAULT_GROUP} version 2 is now {REJECTED}"])
    assert champion_version(work_dir) == 1
    assert run(parse("reject", "1", "--work-dir", str(work_dir)))[0] == 0
    assert champion_version(work_dir) is None
    champion = ObjectStore(work_dir / "s3").objects(local_config().champion_uri)
    assert [key for key, _ in champion] == [PLACEHOLDER]
    code, lines = run(parse("list", "--work-dir", str(work_dir), "--status", APPROVED))
    assert (code, lines) == (
        0,
        [f"no versions with status {APPROVED} in model package group {DEFAULT_GROUP}"],
    )


@pytest.mark.parametrize(
    ("version", "check", "problem"),
    [
        (3, healthy, "model archive .* does not exist"),
        (
            1,
            lambda _d: (False, "KeyError: estimator.joblib\nis missing"),
            "the health check failed: KeyError",
        ),
    ],
    ids=["missing-archive", "failed-health-check"],
)
def test_a_failed_verification_changes_nothing(work_dir, version, check, problem):
    assert run(parse("approve", "2", "--work-dir", str(work_dir)))[0] == 0
    before = statuses(work_dir)
    changed: list[ModelPackage] = []
    args = parse("approve", str(version), "--work-dir", str(work_dir))
    code, lines = run(args, check=check, on_change=changed.append)
    assert code == 1 and len(lines) == 1
    assert re.match(
        f"error: approve {DEFAULT_GROUP} version {version} refused: version {version}: {problem}", lines[0]
    )
    assert lines[0].endswith("the registry is unchanged")
    assert (statuses(work_dir), champion_version(work_dir), changed) == (before, 2, [])
    assert run(parse("approve", "1", "--work-dir", str(work_dir)))[0] == 0, "later commands still work"


def test_unknown_version_or_group_exits_1_with_a_message(work_dir):
    for argv in (("show", "9"), ("approve", "9"), ("reject", "9")):
        code, lines = run(parse(*argv, "--work-dir", str(work_dir)))
        assert code == 1
        assert lines == [f"error: model package group '{DEFAULT_GROUP}' has no version 9"]
    code, lines = run(parse("list", "--work-dir", str(work_dir), "--group", "nope"))
    assert code == 1 and "'nope' does not exist" in lines[0]


@pytest.mark.parametrize("verb", [("list",), ("show", "1"), ("approve", "1"), ("reject", "1")])
def test_a_missing_work_dir_or_registry_is_an_error_that_creates_nothing(tmp_path, verb):
    absent = tmp_path / "absent"
    code, lines = run(parse(*verb, "--work-dir", str(absent)))
    assert (code, lines) == (
        1,
        [f"error: work dir {absent} does not exist; a pipeline run (python -m local_runner run) creates it"],
    )
    assert not absent.exists()
    code, lines = run(parse(*verb, "--work-dir", str(tmp_path)))
    assert code == 1 and lines[0].startswith(f"error: no model registry at {registry_path(tmp_path)}")
    assert list(tmp_path.iterdir()) == []


def tree_state(root: Path) -> dict[str, tuple[float, str]]:
    return {
        str(path.relative_to(root)): (
            path.stat().st_mtime,
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir",
        )
        for path in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("verb", [("list",), ("show", "1")])
def test_read_only_commands_write_nothing_under_the_work_dir(work_dir, verb, capsys):
    """Through the real entry point: nothing is built, published, created or touched."""
    assert run(parse("approve", "1", "--work-dir", str(work_dir)))[0] == 0
    before = tree_state(work_dir)
    assert main(["registry", *verb, "--work-dir", str(work_dir)]) == 0
    assert "14.25" in capsys.readouterr().out
    assert tree_state(work_dir) == before


def test_follow_registry_swaps_in_the_newest_approved_version(work_dir):
    store, registry = ObjectStore(work_dir / "s3"), LocalRegistry(registry_path(work_dir))
    follow = follow_registry(store, local_config().champion_uri, registry, DEFAULT_GROUP)
    approve_version(registry, DEFAULT_GROUP, 2, on_change=follow)
    assert champion_version(work_dir) == 2
    reject_version(registry, DEFAULT_GROUP, 2, on_change=follow)
    assert champion_version(work_dir) is None
    assert [key for key, _ in store.objects(local_config().champion_uri)] == [PLACEHOLDER]
