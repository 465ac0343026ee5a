"""Dataset manifests: hashes, counts and versions (rul.lineage), the preprocess output and its wiring."""

from __future__ import annotations

import hashlib
import json
import re
import shutil

import pytest

import preprocess
from pipeline_steps import names
from pipeline_steps.config import local_config
from pipeline_steps.render import render_definition
from rul.contract import run_entrypoint
from rul.data import read_trajectories, write_trajectories
from rul.errors import DataFormatError
from rul.lineage import (
    build_manifest,
    dataset_version,
    describe_files,
    file_sha256,
    merge_manifests,
    read_manifest,
    split_summary,
    version_note,
    write_manifest,
)


def run_preprocess(opt_ml, monkeypatch, data_file, *args: str) -> dict:
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(opt_ml))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    raw = opt_ml / "processing" / "input"
    raw.mkdir(parents=True)
    shutil.copy(data_file, raw / "train_FD001.txt")
    assert run_entrypoint(preprocess.main, list(args)) == 0
    return json.loads((opt_ml / "processing" / "manifest" / "manifest-algo-1.json").read_text())


def test_file_sha256_is_the_hash_of_the_bytes(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * 3_000_000)
    assert file_sha256(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


def test_preprocess_writes_a_manifest_of_the_exact_input(tmp_path, monkeypatch, synthetic_dir):
    source = synthetic_dir / "train_FD001.txt"
    manifest = run_preprocess(tmp_path / "a", monkeypatch, source, "--seed", "1")
    assert manifest["files"] == [
        {
            "name": "train_FD001.txt",
            "bytes": source.stat().st_size,
            "sha256": file_sha256(source),
            "unit_ids": list(range(1, 41)),
        }
    ]
    assert manifest["declared_version"] is None
    assert manifest["version"] == dataset_version(manifest["files"]) and len(manifest["version"]) == 12
    frame = read_trajectories(source)
    assert manifest["rows"] == len(frame) and manifest["units"] == frame["unit"].nunique() == 40
    assert sum(split["units"] for split in manifest["splits"].values()) == 40
    all_ids = [unit for split in manifest["splits"].values() for unit in split["unit_ids"]]
    assert sorted(all_ids) == sorted(frame["unit"].unique().tolist())
    assert manifest["columns"][:2] == ["unit", "cycle"] and "sensor_11" in manifest["features"]
    assert manifest["settings"]["seed"] == 1 and manifest["subset"] == "FD001"


def test_the_version_changes_with_the_data_and_only_with_the_data(tmp_path, monkeypatch, synthetic_dir):
    source = synthetic_dir / "train_FD001.txt"
    first = run_preprocess(tmp_path / "a", monkeypatch, source)
    reseeded = run_preprocess(tmp_path / "b", monkeypatch, source, "--seed", "5")
    assert reseeded["version"] == first["version"]
    assert reseeded["splits"]["test"]["unit_ids"] != first["splits"]["test"]["unit_ids"]
    changed = tmp_path / "changed.txt"
    frame = read_trajectories(source)
    frame.loc[10, "sensor_2"] += 0.01  # one reading of one cycle
    write_trajectories(frame, changed)
    edited = run_preprocess(tmp_path / "c", monkeypatch, changed)
    assert edited["files"][0]["sha256"] != first["files"][0]["sha256"]
    assert edited["version"] != first["version"]
    assert edited["rows"] == first["rows"]


def test_shard_manifests_merge_into_the_single_instance_manifest(tmp_path, synthetic_dir):
    frame = read_trajectories(synthetic_dir / "train_FD001.txt")
    parts = [frame[frame["unit"] <= 20], frame[frame["unit"] > 20]]
    paths = []
    for index, part in enumerate(parts):
        paths.append(tmp_path / f"train_FD001_part{index}.txt")
        write_trajectories(part, paths[-1])
    settings = {"seed": 0}

    def manifest(files, frames, host):
        return build_manifest(
            describe_files(files, tmp_path),
            "FD001",
            ["unit"],
            ["s"],
            split_summary({"train": frames}),
            settings,
            host,
        )

    whole = manifest(paths, frame, "algo-1")
    merged = merge_manifests(
        [manifest([paths[0]], parts[0], "algo-1"), manifest([paths[1]], parts[1], "algo-2")]
    )
    assert merged["version"] == whole["version"]
    assert merged["files"] == whole["files"] and merged["splits"] == whole["splits"]
    assert merged["rows"] == whole["rows"] and merged["hosts"] == ["algo-1", "algo-2"]


def test_merging_refuses_manifests_of_different_runs(tmp_path):
    path = tmp_path / "train_FD001.txt"
    path.write_text("x")
    one = build_manifest(describe_files([path], tmp_path), "FD001", ["unit"], ["s"], {}, {"seed": 0})
    other = {**one, "settings": {"seed": 1}}
    with pytest.raises(ValueError, match="disagree on 'settings'"):
        merge_manifests([one, other])
    with pytest.raises(ValueError, match="no manifest"):
        merge_manifests([])
    with pytest.raises(ValueError, match="at least one file"):
        dataset_version([])


def test_read_manifest_names_the_folder_when_there_is_none(tmp_path):
    with pytest.raises(DataFormatError, match=re.escape("no manifest-*.json file found")):
        read_manifest(tmp_path)
    (tmp_path / "manifest-algo-1.json").write_text("{not json")
    with pytest.raises(DataFormatError, match=re.escape("manifest-algo-1.json, line 1: not valid JSON")):
        read_manifest(tmp_path)


def _all_steps(steps: list[dict]):
    """The steps of a definition, with those inside condition branches."""
    for step in steps:
        yield step
        for branch in ("IfSteps", "ElseSteps"):
            yield from _all_steps(step.get("Arguments", {}).get(branch, []))


def test_the_manifest_is_a_preprocess_output_and_travels_into_the_registry():
    definition = json.loads(render_definition(local_config()))
    preprocess_step = next(step for step in definition["Steps"] if step["Name"] == names.PREPROCESS_STEP)
    outputs = {o["OutputName"]: o for o in preprocess_step["Arguments"]["ProcessingOutputConfig"]["Outputs"]}
    assert outputs[names.MANIFEST_OUTPUT]["S3Output"]["LocalPath"] == "/opt/ml/processing/manifest"
    register = next(step for step in _all_steps(definition["Steps"]) if step["Type"] == "RegisterModel")
    manifest = register["Arguments"]["CustomerMetadataProperties"][names.DATA_MANIFEST_METADATA_KEY]
    outputs_path = f"Steps.{names.PREPROCESS_STEP}.ProcessingOutputConfig.Outputs"
    output = f"{outputs_path}['{names.MANIFEST_OUTPUT}'].S3Output.S3Uri"
    assert manifest == {"Get": output}


def test_a_declared_data_version_is_kept_beside_the_content_hash(
    tmp_path, monkeypatch, synthetic_dir, capsys
):
    manifest = run_preprocess(
        tmp_path / "a", monkeypatch, synthetic_dir / "train_FD001.txt", "--data-version", "v7"
    )
    assert manifest["declared_version"] == "v7" and manifest["version"] != "v7"
    out = capsys.readouterr().out
    assert "declared data version v7 (from the object listing) differs" in out and manifest["version"] in out
    same = run_preprocess(
        tmp_path / "b", monkeypatch, synthetic_dir / "train_FD001.txt", "--data-version", manifest["version"]
    )
    assert same["declared_version"] == same["version"]
    assert "differs" not in capsys.readouterr().out
    assert version_note(same) is None and version_note({**same, "declared_version": None}) is None
    unset = run_preprocess(
        tmp_path / "c", monkeypatch, synthetic_dir / "train_FD001.txt", "--data-version", ""
    )
    assert unset["declared_version"] is None


def _entry(name: str, sha: str, units: list[int]) -> dict:
    return {"name": name, "bytes": 1, "sha256": sha, "unit_ids": units}


def _shard_manifest(host: str, *files: dict) -> dict:
    return build_manifest(list(files), "FD001", ["unit"], ["s"], {}, {"seed": 0}, host)


def test_an_instance_without_files_has_an_empty_manifest_that_merges():
    empty = _shard_manifest("algo-2")
    assert empty["version"] is None and empty["files"] == [] and empty["rows"] == 0
    full = _shard_manifest("algo-1", _entry("train_FD001.txt", "aa", [1, 2]))
    merged = merge_manifests([empty, full])
    assert merged["version"] == full["version"] and merged["hosts"] == ["algo-1", "algo-2"]


def test_read_manifest_refuses_a_run_where_no_instance_read_a_file(tmp_path):
    write_manifest(_shard_manifest("algo-1"), tmp_path, "algo-1")
    write_manifest(_shard_manifest("algo-2"), tmp_path, "algo-2")
    with pytest.raises(DataFormatError, match="no instance of algo-1, algo-2 read an input file"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (
            _entry("a/train_FD001.txt", "aa", [1, 2]),
            _entry("b/train_FD001.txt", "bb", [2, 3]),
            r"b/train_FD001.txt: holds dataset unit 2, as a/train_FD001.txt does \(algo-1 and algo-2\)",
        ),
        (
            _entry("train_FD001_x.txt", "aa", [10001]),
            _entry("train_FD001_y.txt", "aa", [20001]),
            "train_FD001_y.txt: has the same contents as train_FD001_x.txt",
        ),
        (
            _entry("train_FD001.txt", "aa", [1]),
            _entry("train_FD001.txt", "aa", [1]),
            r"train_FD001.txt: read by two instances \(algo-1 and algo-2\)",
        ),
    ],
)
def test_merging_names_files_read_twice(first, second, message):
    with pytest.raises(DataFormatError, match=message):
        merge_manifests([_shard_manifest("algo-1", first), _shard_manifest("algo-2", second)])
    with pytest.raises(DataFormatError, match=message.split(" \\(")[0]):
        _shard_manifest("algo-1", first, second)


def test_merging_refuses_different_declared_versions():
    one = _shard_manifest("algo-1", _entry("a.txt", "aa", [1]))
    with pytest.raises(ValueError, match="disagree on 'declared_version'"):
        merge_manifests([one, {**_shard_manifest("algo-2"), "declared_version": "v2"}])


def test_the_runs_default_data_version_is_the_one_preprocess_ignores() -> None:
    from pipeline_steps.names import DEFAULT_DATA_VERSION
    from rul.lineage import UNVERSIONED

    assert DEFAULT_DATA_VERSION == UNVERSIONED
