"""Retraining keyed by data version in the local runner (`local_runner/data_version.py`, wired into
`run_main_job`): the run's `DataVersion` is the manifest's content hash of its input, `RegisteredDataVersion`
the newest local package's; a rerun on the same data is all cache hits and registers nothing, changed data
runs fresh steps.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from local_runner.data_version import (
    DataVersionError,
    local_data_version,
    registered_data_version,
    with_data_versions,
)
from local_runner.main_job import MainJobOptions, run_main_job
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from pipeline_steps import names
from pipeline_steps.config import local_config
from rul.lineage import dataset_version, describe_files

URI = "s3://local-data/raw/"
GROUP = "turbofan-rul-local-models"
JOB_STEPS = {names.PREPROCESS_STEP, names.BASELINE_STEP, names.TUNE_STEP, names.EVALUATE_STEP}
FAST = {names.TUNING_MAX_JOBS: 1, names.TUNING_MAX_PARALLEL_JOBS: 1}


def _store_with(tmp_path: Path, name: str, files: dict[str, bytes]) -> ObjectStore:
    store = ObjectStore(tmp_path / name)
    for key, body in files.items():
        store.put_text(URI + key, body.decode())
    return store


def test_the_local_version_is_the_manifests_content_hash(tmp_path):
    store = _store_with(
        tmp_path, "a", {"train_FD001.txt": b"1 1 0.1\n", "part/train_FD001_2.txt": b"2 1 0.3\n"}
    )
    root = store.path_for(URI)

    expected = dataset_version(describe_files(sorted(p for p in root.rglob("*") if p.is_file()), root))
    assert local_data_version(store, URI) == expected


def test_the_same_bytes_give_the_same_version_and_a_changed_file_another(tmp_path):
    files = {"train_FD001.txt": b"1 1 0.1\n", "test_FD001.txt": b"1 1 0.2\n"}
    first = local_data_version(_store_with(tmp_path, "a", files), URI)

    assert local_data_version(_store_with(tmp_path, "b", files), URI) == first
    changed = {**files, "train_FD001.txt": b"1 1 0.9\n"}
    assert local_data_version(_store_with(tmp_path, "c", changed), URI) != first


def test_an_empty_input_has_no_version(tmp_path):
    with pytest.raises(DataVersionError, match="no object under s3://local-data/raw/"):
        local_data_version(ObjectStore(tmp_path / "s3"), URI)


def _register(registry: LocalRegistry, metadata: dict[str, str] | None) -> None:
    registry.register(GROUP, "s3://a/model.tar.gz", "rul:1", customer_metadata=metadata)


def test_the_registered_version_is_the_newest_packages(tmp_path):
    registry = LocalRegistry(tmp_path / "registry.sqlite")
    registry.create_group(GROUP)
    assert registered_data_version(registry, GROUP) == ""
    _register(registry, {names.DATA_VERSION_METADATA_KEY: "aaaaaaaaaaaa"})
    _register(registry, {names.DATA_VERSION_METADATA_KEY: "bbbbbbbbbbbb"})
    assert registered_data_version(registry, GROUP) == "bbbbbbbbbbbb"
    _register(registry, None)
    assert registered_data_version(registry, GROUP) == ""


def test_parameters_get_both_versions_unless_the_user_set_them(tmp_path):
    config = local_config(model_package_group_name=GROUP)
    store = _store_with(tmp_path, "s3", {"train_FD001.txt": b"1 1 0.1\n"})
    other = config.data_uri.rstrip("/") + "-other/"
    store.put_text(other + "train_FD001.txt", "1 1 0.5\n")
    registry = LocalRegistry(tmp_path / "registry.sqlite")
    registry.create_group(GROUP)
    _register(registry, {names.DATA_VERSION_METADATA_KEY: "cccccccccccc"})

    computed = with_data_versions({names.INPUT_DATA_URI: other}, store, registry, config)
    assert computed[names.DATA_VERSION] == local_data_version(store, other)
    assert computed[names.REGISTERED_DATA_VERSION] == "cccccccccccc"
    given = {names.DATA_VERSION: "mine", names.REGISTERED_DATA_VERSION: ""}
    assert with_data_versions(given, store, registry, config) == given


# End to end: three local runs of the rendered definition --------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_dir):
    """Run 1 and 2 on the same files, run 3 after one file changed; each run's (result, versions after it)."""
    work = tmp_path_factory.mktemp("work")
    data = tmp_path_factory.mktemp("data")
    shutil.copy(synthetic_dir / "train_FD001.txt", data / "train_FD001.txt")

    def run():
        workspace, result = run_main_job(
            MainJobOptions(work_dir=work, data_dir=data, parameters=FAST, tracking=False), echo=print
        )
        return workspace, result, _versions(workspace)  # the registry as this run left it

    first, second = run(), run()
    path = data / "train_FD001.txt"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # the last cycle of the last unit is gone
    return first, second, run()


def _versions(workspace) -> list[tuple[int, str | None]]:
    packages = workspace.registry.list(workspace.config.model_package_group_name)
    return [(p.version, (p.customer_metadata or {}).get(names.DATA_VERSION_METADATA_KEY)) for p in packages]


@pytest.mark.slow
@pytest.mark.long
def test_the_first_run_registers_its_data_version_which_is_the_manifests(runs):
    (workspace, result, versions), _, _ = runs
    assert result.status == "Succeeded", result.failure_reason
    version = result.parameters[names.DATA_VERSION]
    assert result.parameters[names.REGISTERED_DATA_VERSION] == ""
    assert versions == [(1, version)]
    packages = workspace.registry.list(workspace.config.model_package_group_name)
    (first_package,) = [package for package in packages if package.version == 1]
    manifest_uri = first_package.customer_metadata[names.DATA_MANIFEST_METADATA_KEY]
    (manifest,) = workspace.store.path_for(manifest_uri).glob("manifest-*.json")
    assert json.loads(manifest.read_text())["version"] == version


@pytest.mark.slow
@pytest.mark.long
def test_a_rerun_on_the_same_data_is_all_cache_hits_and_registers_nothing(runs):
    (_, first, _), (_, second, versions), _ = runs
    assert second.status == "Succeeded", second.failure_reason
    assert second.parameters[names.DATA_VERSION] == first.parameters[names.DATA_VERSION]
    assert second.parameters[names.REGISTERED_DATA_VERSION] == first.parameters[names.DATA_VERSION]
    assert {step.name for step in second.steps if step.cache_hit} >= JOB_STEPS
    assert [version for version, _ in versions] == [1]


@pytest.mark.slow
@pytest.mark.long
def test_changed_data_runs_fresh_steps_and_registers_a_new_version_if_the_gate_passes(runs):
    (_, first, _), _, (_, third, versions) = runs
    assert third.parameters[names.DATA_VERSION] != first.parameters[names.DATA_VERSION]
    assert third.parameters[names.REGISTERED_DATA_VERSION] == first.parameters[names.DATA_VERSION]
    assert not third.step(names.PREPROCESS_STEP).cache_hit
    assert not any(step.cache_hit for step in third.steps if step.name in JOB_STEPS)
    if third.status == "Succeeded":
        assert versions == [
            (2, third.parameters[names.DATA_VERSION]),
            (1, first.parameters[names.DATA_VERSION]),
        ]
    else:  # the gate failed on the new data: nothing registered
        assert third.step(names.FAIL_STEP).status == "Failed"
        assert [version for version, _ in versions] == [1]
