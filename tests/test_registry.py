"""The local model registry (versions, approval, boto3-shaped views) and its `registry` command line."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import tarfile
import threading
from datetime import datetime
from pathlib import Path

import botocore.loaders
import pytest

from local_runner.__main__ import main
from local_runner.champion import PLACEHOLDER, ChampionTarget, current_champion, follow_registry
from local_runner.object_store import ObjectStore
from local_runner.registry import (
    APPROVED,
    PENDING,
    REJECTED,
    LocalRegistry,
    ModelPackage,
    RegistryError,
)
from local_runner.registry_cli import (
    DEFAULT_GROUP,
    add_registry_parser,
    approve_version,
    headline_metrics,
    registry_path,
    reject_version,
    run_registry_command,
)
from pipeline_steps.config import local_config

GROUP = "turbofan-rul-models"
IMAGE = "000000000000.dkr.ecr.us-east-1.amazonaws.com/rul:2026-12-03"


def model_url(version: int) -> str:
    return f"s3://bucket/models/{version}/model.tar.gz"


@pytest.fixture
def registry(tmp_path) -> LocalRegistry:
    registry = LocalRegistry(tmp_path / "registry.sqlite")
    registry.create_group(GROUP, "RUL models")
    return registry


def register(registry: LocalRegistry, group: str = GROUP, **kwargs) -> ModelPackage:
    version = len(registry.list(group)) + 1
    return registry.register(group, model_url(version), IMAGE, **kwargs)


def botocore_shape(name: str) -> dict:
    return botocore.loaders.Loader().load_service_model("sagemaker", "service-2")["shapes"][name]


# --- the registry ----------------------------------------------------------------------------------


def test_versions_count_up_from_one_with_arns(registry):
    first, second = register(registry), register(registry)
    assert (first.version, second.version) == (1, 2)
    assert second.arn == f"arn:aws:sagemaker:us-east-1:000000000000:model-package/{GROUP}/2"
    assert first.approval_status == PENDING
    assert datetime.fromisoformat(first.created_at).utcoffset().total_seconds() == 0


def test_versions_persist_when_the_file_is_reopened(registry, tmp_path):
    register(registry, model_metrics={"ModelQuality": {}}, customer_metadata={"rmse": "15.2"})
    reopened = LocalRegistry(tmp_path / "registry.sqlite")
    assert reopened.register(GROUP, model_url(2), IMAGE).version == 2
    assert reopened.get(GROUP, 1).customer_metadata == {"rmse": "15.2"}
    assert reopened.get(GROUP, 1).metrics == {"ModelQuality": {}}


def test_groups_number_their_versions_independently(registry):
    registry.create_group("other-group")
    register(registry)
    register(registry)
    assert register(registry, "other-group").version == 1
    assert [p.version for p in registry.list(GROUP)] == [2, 1]
    assert [p.version for p in registry.list("other-group")] == [1]


def test_create_group_is_idempotent_and_checks_the_name(registry):
    registry.create_group(GROUP)
    assert registry.groups() == [GROUP]
    with pytest.raises(ValueError, match="bad_name"):
        registry.create_group("bad_name")


def test_concurrent_registrations_get_distinct_versions(registry):
    versions: list[int] = []

    def add() -> None:
        versions.append(registry.register(GROUP, model_url(0), IMAGE).version)

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == list(range(1, 9))


def test_registering_into_a_missing_group_fails(registry):
    with pytest.raises(RegistryError, match="'no-such-group' does not exist"):
        registry.register("no-such-group", model_url(1), IMAGE)


def test_approval_transitions_and_description(registry):
    register(registry)
    approved = registry.update_approval(GROUP, 1, APPROVED, "beats the champion")
    assert (approved.approval_status, approved.approval_description) == (APPROVED, "beats the champion")
    assert approved.updated_at >= approved.created_at
    assert registry.update_approval(GROUP, 1, REJECTED).approval_status == REJECTED
    assert registry.update_approval(GROUP, 1, PENDING).approval_status == PENDING


def test_latest_approved_is_the_newest_approved_version(registry):
    for _ in range(4):
        register(registry)
    assert registry.latest_approved(GROUP) is None
    registry.update_approval(GROUP, 1, APPROVED)
    registry.update_approval(GROUP, 3, APPROVED)
    registry.update_approval(GROUP, 4, REJECTED)
    assert registry.latest_approved(GROUP).version == 3
    assert [p.version for p in registry.list(GROUP, APPROVED)] == [3, 1]


@pytest.mark.parametrize("status", ["approved", "Pending", ""])
def test_an_invalid_status_is_refused_by_name(registry, status):
    register(registry)
    with pytest.raises(ValueError, match=repr(status)):
        registry.update_approval(GROUP, 1, status)
    with pytest.raises(ValueError, match=repr(status)):
        registry.register(GROUP, model_url(2), IMAGE, approval_status=status)


def test_an_unknown_version_names_group_and_version(registry):
    register(registry)
    with pytest.raises(RegistryError) as raised:
        registry.get(GROUP, 7)
    assert isinstance(raised.value, KeyError)
    assert str(raised.value) == f"model package group '{GROUP}' has no version 7"
    with pytest.raises(RegistryError, match="has no version 7"):
        registry.update_approval(GROUP, 7, APPROVED)
    with pytest.raises(RegistryError, match="'missing' does not exist"):
        registry.get("missing", 1)


def test_reads_of_a_missing_file_fail_by_name_and_create_nothing(tmp_path):
    path = tmp_path / "absent" / "registry.sqlite"
    with pytest.raises(RegistryError, match=f"no model registry at {path}"):
        LocalRegistry(path).list(GROUP)
    assert not path.parent.exists()


def test_update_approval_hook_sees_the_outcome_and_a_raise_rolls_back(registry):
    register(registry)
    register(registry)
    registry.update_approval(GROUP, 1, APPROVED, "first")
    seen = []
    registry.update_approval(
        GROUP, 2, APPROVED, None, lambda p, newest: seen.append((p.version, newest.version))
    )
    assert seen == [(2, 2)]

    def refuse(_package, newest):
        assert newest.version == 1  # the transaction already sees version 2 rejected
        raise RuntimeError("publication failed")

    with pytest.raises(RuntimeError, match="publication failed"):
        registry.update_approval(GROUP, 2, REJECTED, "bad", refuse)
    assert (registry.get(GROUP, 2).approval_status, registry.get(GROUP, 2).approval_description) == (
        APPROVED,
        "",
    )


def test_latest_metadata_reads_the_newest_version_of_any_status(registry):
    assert registry.latest_metadata(GROUP, "DataVersion") == ""  # no version yet
    register(registry, customer_metadata={"DataVersion": "aaa"})
    register(registry, customer_metadata={"DataManifestUri": "s3://b/m/"})
    assert registry.latest_metadata(GROUP, "DataVersion") == ""  # the newest has no such key
    register(registry, customer_metadata={"DataVersion": "bbb"})
    registry.update_approval(GROUP, 3, "Rejected")
    assert registry.latest_metadata(GROUP, "DataVersion") == "bbb"
    with pytest.raises(RegistryError):
        registry.latest_metadata("no-such-group", "DataVersion")


def test_customer_metadata_must_be_strings(registry):
    with pytest.raises(ValueError, match="rmse"):
        registry.register(GROUP, model_url(1), IMAGE, customer_metadata={"rmse": 15.2})


# --- boto3-shaped views ----------------------------------------------------------------------------


def test_describe_model_package_has_the_boto3_members(registry):
    metrics = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": "s3://b/e.json"}}}
    baselines = {"ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": "s3://b/s"}}}
    package = register(registry, model_metrics=metrics, drift_check_baselines=baselines, execution_id="run-1")
    described = registry.describe_model_package(package.arn)
    members = botocore_shape("DescribeModelPackageOutput")
    assert set(members["required"]) <= set(described)
    assert set(described) <= set(members["members"])
    assert described["ModelPackageArn"] == package.arn
    assert described["ModelPackageGroupName"] == GROUP
    assert described["ModelPackageVersion"] == 1
    assert described["ModelApprovalStatus"] == PENDING
    assert isinstance(described["CreationTime"], datetime)
    container = described["InferenceSpecification"]["Containers"][0]
    assert container == {"Image": IMAGE, "ModelDataUrl": model_url(1)}
    assert described["ModelMetrics"] == metrics
    assert described["DriftCheckBaselines"] == baselines
    assert described["MetadataProperties"] == {"GeneratedBy": "run-1"}


def test_describe_rejects_foreign_or_malformed_arns(registry):
    register(registry)
    with pytest.raises(RegistryError, match="us-west-2"):
        registry.describe_model_package(f"arn:aws:sagemaker:us-west-2:000000000000:model-package/{GROUP}/1")
    with pytest.raises(ValueError, match="not a versioned model package ARN"):
        registry.describe_model_package(f"arn:aws:sagemaker:us-east-1:000000000000:model-package/{GROUP}")
    with pytest.raises(RegistryError, match="no version 9"):
        registry.describe_model_package(registry.arn(GROUP, 9))


def test_list_model_packages_has_the_boto3_summary_shape(registry):
    for _ in range(3):
        register(registry)
    registry.update_approval(GROUP, 2, APPROVED)
    listed = registry.list_model_packages(GROUP)
    summary_shape = botocore_shape("ModelPackageSummary")
    summaries = listed["ModelPackageSummaryList"]
    assert [s["ModelPackageVersion"] for s in summaries] == [3, 2, 1]
    for summary in summaries:
        assert set(summary_shape["required"]) <= set(summary) <= set(summary_shape["members"])
        assert isinstance(summary["CreationTime"], datetime)
    ascending = registry.list_model_packages(GROUP, sort_order="Ascending")["ModelPackageSummaryList"]
    assert [s["ModelPackageVersion"] for s in ascending] == [1, 2, 3]
    approved = registry.list_model_packages(GROUP, approval_status=APPROVED)["ModelPackageSummaryList"]
    assert [(s["ModelPackageVersion"], s["ModelApprovalStatus"]) for s in approved] == [(2, APPROVED)]
    assert registry.list_model_packages("unknown-group") == {"ModelPackageSummaryList": []}
    with pytest.raises(ValueError, match="'Newest'"):
        registry.list_model_packages(GROUP, sort_order="Newest")


# --- the command line ------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_registry_parser(parser.add_subparsers(dest="verb", required=True))
    return parser.parse_args(["registry", *argv])


def healthy(_model_dir: Path) -> tuple[bool, str]:
    return True, "predicted RUL 42.0 on the canned window"


def pack(archive: Path, files: dict[str, str]) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as bundle:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))


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
        pack(store.path_for(model_url(version)), {"metadata.json": json.dumps({"version": version})})
    metrics = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": report}}}
    registry.register(DEFAULT_GROUP, model_url(1), IMAGE, model_metrics=metrics)
    registry.register(DEFAULT_GROUP, model_url(2), IMAGE, customer_metadata={"rmse": "17.5"})
    registry.register(DEFAULT_GROUP, model_url(3), IMAGE)
    return tmp_path


def target(work_dir: Path, check=healthy) -> ChampionTarget:
    return ChampionTarget(ObjectStore(work_dir / "s3"), local_config().champion_uri, check)


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


def test_on_change_runs_only_when_the_status_changes(registry):
    register(registry)
    calls: list[int] = []
    approve_version(registry, GROUP, 1, "first", on_change=lambda package: calls.append(package.version))
    approve_version(registry, GROUP, 1, "again", on_change=lambda package: calls.append(package.version))
    assert calls == [1]
    assert registry.get(GROUP, 1).approval_description == "again"


def test_follow_registry_swaps_in_the_newest_approved_version(work_dir):
    store, registry = ObjectStore(work_dir / "s3"), LocalRegistry(registry_path(work_dir))
    follow = follow_registry(store, local_config().champion_uri, registry, DEFAULT_GROUP)
    approve_version(registry, DEFAULT_GROUP, 2, on_change=follow)
    assert champion_version(work_dir) == 2
    reject_version(registry, DEFAULT_GROUP, 2, on_change=follow)
    assert champion_version(work_dir) is None
    assert [key for key, _ in store.objects(local_config().champion_uri)] == [PLACEHOLDER]


def test_headline_metrics_read_s3_statistics_through_the_store_only(registry, tmp_path):
    store = ObjectStore(tmp_path / "s3")
    remote = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": "s3://b/e.json"}}}
    package = register(registry, model_metrics=remote, customer_metadata={"phm08_score": "250"})
    assert headline_metrics(package) == {"rmse": None, "phm08_score": 250.0}
    assert headline_metrics(package, store) == {"rmse": None, "phm08_score": 250.0}  # no such object
    store.put_text("s3://b/e.json", json.dumps({"regression_metrics": {"rmse": {"value": 12.5}}}))
    assert headline_metrics(package, store) == {"rmse": 12.5, "phm08_score": 250.0}
    local = tmp_path / "evaluation.json"
    local.write_text(json.dumps({"regression_metrics": {"phm08_score": {"value": 99.0}}}))
    file_metrics = {"ModelQuality": {"Statistics": {"S3Uri": local.as_uri()}}}
    assert headline_metrics(register(registry, model_metrics=file_metrics))["phm08_score"] == 99.0
