"""The local object store (`local_runner.object_store`): S3 prefix semantics, downloads, bad URIs."""

from __future__ import annotations

import pytest

from local_runner.object_store import ObjectStore, ObjectStoreError


@pytest.fixture
def store(tmp_path):
    """An empty object store in the test's folder."""
    return ObjectStore(tmp_path / "s3")


def test_object_store_prefix_semantics(store, tmp_path):
    """A prefix lists what is under it, a key lists itself; downloads copy; errors name the URI."""
    store.put_text("s3://b/data/a.csv", "1")
    store.put_text("s3://b/data/sub/b.csv", "2")
    assert [key for key, _ in store.objects("s3://b/data/")] == ["a.csv", "sub/b.csv"]
    assert [key for key, _ in store.objects("s3://b/data/a.csv")] == ["a.csv"]
    copied = store.download("s3://b/data", tmp_path / "out")
    assert sorted(path.read_text() for path in copied) == ["1", "2"]
    with pytest.raises(ObjectStoreError, match="no S3 objects found under s3://b/none"):
        store.download("s3://b/none", tmp_path / "x")
    with pytest.raises(ObjectStoreError, match="not an S3 URI"):
        store.path_for("/local/path")
