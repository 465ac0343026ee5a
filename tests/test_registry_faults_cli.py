"""Many processes at once: parallel `registry` command lines (real health check too) and code publications."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from registry_helpers import (
    MIXED_VERBS,
    PROJECT_ROOT,
    assert_consistent,
    make_work_dir,
    model_url,
)

from local_runner.main_job import publish_code
from local_runner.object_store import ObjectStore
from pipeline_steps.config import local_config

BUCKET = local_config().artifact_bucket


def test_publishing_the_same_code_twice_writes_nothing(tmp_path):
    store = ObjectStore(tmp_path / "s3")
    code_uri = publish_code(store, tmp_path, BUCKET)
    before = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")}
    assert publish_code(store, tmp_path, BUCKET) == code_uri
    assert {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")} == before


def hashes(root: Path) -> dict[str, tuple[int, str]]:
    return {
        str(path.relative_to(root)): (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def cli(work: Path, *argv: str) -> subprocess.Popen:
    environ = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "local_runner", "registry", *argv, "--work-dir", str(work)],
        env=environ,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(processes: list[subprocess.Popen]) -> list[tuple[int, str]]:
    return [(process.wait(timeout=600), process.stdout.read()) for process in processes]


@pytest.mark.chaos
def test_sixteen_parallel_cli_lists_succeed_and_write_nothing(tmp_path):
    work = make_work_dir(tmp_path)
    before = hashes(work)
    outcomes = finish([cli(work, "list") for _ in range(16)])
    assert [code for code, _ in outcomes] == [0] * 16, [out for _, out in outcomes]
    assert all("VERSION" in out and "Traceback" not in out for _, out in outcomes)
    assert hashes(work) == before


@pytest.mark.chaos
def test_eight_concurrent_cli_status_changes_with_the_real_health_check(tmp_path, model_dir):
    work = make_work_dir(tmp_path, versions=4, folder=model_dir)
    ObjectStore(work / "s3").path_for(model_url(4)).write_bytes(b"corrupt")
    outcomes = finish([cli(work, *verb.split()) for verb in MIXED_VERBS])
    for verb, (code, out) in zip(MIXED_VERBS, outcomes, strict=True):
        assert "Traceback" not in out and "EOFError" not in out, out
        if verb == "approve 4":
            assert code == 1 and "is not a readable tar.gz" in out
        else:
            assert code == 0, out
    assert_consistent(work)


@pytest.mark.chaos
def test_concurrent_code_publications_never_tear_the_bundle(tmp_path):
    script = (
        "import sys; from pathlib import Path; from local_runner.main_job import publish_code; "
        "from local_runner.object_store import ObjectStore; w = Path(sys.argv[1]); "
        f"print(publish_code(ObjectStore(w / 's3'), w, {BUCKET!r}))"
    )
    environ = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env=environ, cwd=PROJECT_ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(6)
    ]  # fmt: skip
    outcomes = finish(processes)
    assert [code for code, _ in outcomes] == [0] * 6, [out for _, out in outcomes]
    assert len({out.strip().splitlines()[-1] for _, out in outcomes}) == 1
    store = ObjectStore(tmp_path / "s3")
    code_uri = outcomes[0][1].strip().splitlines()[-1]
    with tarfile.open(store.path_for(code_uri + "sourcedir.tar.gz")) as bundle:
        names = bundle.getnames()
    assert names and all(store.path_for(code_uri + "src/" + name).is_file() for name in names)
