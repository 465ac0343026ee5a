"""The starter's data version (`lambdas/start_pipeline/data_version.py`) and registered data version
(`registry.py`): what changes a version and what does not, pagination, and the registry requests.

moto serves S3 listings and the model registry; `botocore.stub.Stubber` checks the request shapes
against the service model (pagination tokens, ListModelPackages' filters).
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from lambdas.start_pipeline.data_version import ListedObject, list_data_objects, listing_version
from lambdas.start_pipeline.registry import DATA_VERSION_METADATA_KEY, registered_data_version

REGION = "eu-west-1"
BUCKET = "turbofan-rul-test-data-111111111111-eu-west-1"
GROUP = "turbofan-rul-test-models"
TRAIN = ListedObject("train_FD001.txt", 100, "9b2cf535f27731c974343645a3985328")
TEST = ListedObject("test_FD001.txt", 80, "d41d8cd98f00b204e9800998ecf8427e")


def test_the_same_objects_in_any_order_give_the_same_version():
    assert listing_version([TRAIN, TEST]) == listing_version([TEST, TRAIN])
    assert listing_version([TRAIN]).startswith("s3-") and len(listing_version([TRAIN])) == 19


@pytest.mark.parametrize(
    "changed",
    [
        [ListedObject(TRAIN.name, TRAIN.size, "0" * 32), TEST],  # rewritten (a new ETag)
        [ListedObject(TRAIN.name, TRAIN.size + 1, TRAIN.etag), TEST],  # resized
        [ListedObject("train_FD002.txt", TRAIN.size, TRAIN.etag), TEST],  # renamed
        [TRAIN],  # removed
        [TRAIN, TEST, ListedObject("RUL_FD001.txt", 5, "1" * 32)],  # added
    ],
)
def test_one_changed_object_gives_another_version(changed):
    assert listing_version(changed) != listing_version([TRAIN, TEST])


def test_no_objects_is_an_error():
    with pytest.raises(ValueError, match="at least one object"):
        listing_version([])


@pytest.fixture
def s3(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield client


def _version(s3, prefix: str = "raw/") -> str:
    return listing_version(list_data_objects(s3, BUCKET, prefix, (".txt",)))


def test_listing_keeps_data_files_under_the_prefix_relative_to_it(s3):
    for key in (
        "raw/a/train_FD001.txt",
        "raw/a/TEST_FD001.TXT",
        "raw/a/notes.md",
        "raw/a/sub/",
        "raw/b/x.txt",
    ):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"1 2 3\n")

    listed = list_data_objects(s3, BUCKET, "raw/a/", (".txt",))

    assert sorted(item.name for item in listed) == ["TEST_FD001.TXT", "train_FD001.txt"]
    assert all(item.size == 6 and '"' not in item.etag for item in listed)


def test_two_listings_of_the_same_objects_agree_and_a_changed_object_does_not(s3):
    s3.put_object(Bucket=BUCKET, Key="raw/train_FD001.txt", Body=b"1 1 0.1\n")
    s3.put_object(Bucket=BUCKET, Key="raw/test_FD001.txt", Body=b"1 1 0.3\n")
    first = _version(s3)
    s3.put_object_tagging(
        Bucket=BUCKET, Key="raw/train_FD001.txt", Tagging={"TagSet": [{"Key": "owner", "Value": "ops"}]}
    )
    s3.put_object(Bucket=BUCKET, Key="raw/notes.md", Body=b"not data")

    assert _version(s3) == first  # tags and non-data files do not count
    s3.put_object(Bucket=BUCKET, Key="raw/train_FD001.txt", Body=b"1 1 0.2\n")
    assert _version(s3) != first


def test_every_page_of_the_listing_counts(monkeypatch):
    """Stubber: the second request carries the first page's continuation token."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    client = boto3.client("s3", region_name=REGION)
    pages = [
        ({"Bucket": BUCKET, "Prefix": "raw/"}, [TRAIN], {"IsTruncated": True, "NextContinuationToken": "t1"}),
        ({"Bucket": BUCKET, "Prefix": "raw/", "ContinuationToken": "t1"}, [TEST], {"IsTruncated": False}),
    ]
    with Stubber(client) as stubber:
        for request, objects, more in pages:
            contents = [{"Key": f"raw/{o.name}", "Size": o.size, "ETag": f'"{o.etag}"'} for o in objects]
            stubber.add_response("list_objects_v2", {"Contents": contents, **more}, request)
        listed = list_data_objects(client, BUCKET, "raw/", (".txt",))
        stubber.assert_no_pending_responses()
    assert listing_version(listed) == listing_version([TRAIN, TEST])


@pytest.fixture
def sagemaker(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("sagemaker", region_name=REGION)
        client.create_model_package_group(ModelPackageGroupName=GROUP)
        yield client


def _register(sagemaker, metadata: dict[str, str]) -> None:
    sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        InferenceSpecification={
            "Containers": [
                {"Image": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/rul:1", "ModelDataUrl": "s3://a/m"}
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties=metadata,
    )


def test_registered_data_version_is_the_newest_packages(sagemaker):
    assert registered_data_version(sagemaker, GROUP) == ""  # no package yet
    _register(sagemaker, {DATA_VERSION_METADATA_KEY: "s3-00000000000000aa"})
    _register(sagemaker, {DATA_VERSION_METADATA_KEY: "s3-00000000000000bb", "DataManifestUri": "s3://a/m/"})
    assert registered_data_version(sagemaker, GROUP) == "s3-00000000000000bb"
    _register(sagemaker, {"DataManifestUri": "s3://a/m/"})  # newest, without the key
    assert registered_data_version(sagemaker, GROUP) == ""


def test_registry_requests_have_the_service_shapes(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    client = boto3.client("sagemaker", region_name=REGION)
    arn = f"arn:aws:sagemaker:{REGION}:111111111111:model-package/{GROUP}/7"
    listing = {
        "ModelPackageGroupName": GROUP,
        "ModelPackageType": "Versioned",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 1,
    }
    summary = {
        "ModelPackageArn": arn,
        "CreationTime": "2026-11-02T13:00:00Z",
        "ModelPackageStatus": "Completed",
    }
    described = {
        "ModelPackageName": GROUP,
        "ModelPackageArn": arn,
        "CreationTime": "2026-11-02T13:00:00Z",
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "CustomerMetadataProperties": {DATA_VERSION_METADATA_KEY: "s3-00000000000000cc"},
    }
    with Stubber(client) as stubber:
        stubber.add_response("list_model_packages", {"ModelPackageSummaryList": [summary]}, listing)
        stubber.add_response("describe_model_package", described, {"ModelPackageName": arn})
        assert registered_data_version(client, GROUP) == "s3-00000000000000cc"
        stubber.assert_no_pending_responses()
