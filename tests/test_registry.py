"""The local model registry: versions, approval, boto3-shaped views, status-change hooks, headline metrics."""

from __future__ import annotations

import json
import threading
from datetime import datetime

import botocore.loaders
import pytest
from registry_helpers import IMAGE, model_url

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
    approve_version,
    headline_metrics,
)

GROUP = "turbofan-rul-models"


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


# --- status-change hooks and headline metrics ----------------------------------------------------


def test_on_change_runs_only_when_the_status_changes(registry):
    register(registry)
    calls: list[int] = []
    approve_version(registry, GROUP, 1, "first", on_change=lambda package: calls.append(package.version))
    approve_version(registry, GROUP, 1, "again", on_change=lambda package: calls.append(package.version))
    assert calls == [1]
    assert registry.get(GROUP, 1).approval_description == "again"


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
