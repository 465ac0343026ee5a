"""Sharded preprocessing: 1, 2 and 5 instances over one and several files give the same dataset.

Each instance runs `preprocess.main` in this process on the objects the runner's own distribution
(`local_runner.jobs.shard_objects`) gives it, with the resource config SageMaker writes; one test runs
the rendered PreprocessData request through the runner's job launcher on more instances than files.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

import preprocess
from local_runner import jobs
from local_runner.expressions import Context, resolve
from local_runner.main_job import prepare_workspace
from rul.contract import run_entrypoint
from rul.data import write_trajectories
from rul.errors import DataFormatError
from rul.lineage import read_manifest
from rul.splits import check_unique_units
from rul.synthetic import SyntheticSpec, generate
from rul.tables import read_table

TABLES = [
    ("train", "trajectories"),
    ("validation", "trajectories"),
    ("test", "trajectories"),
    ("test", "truth"),
]
TABLES += [("baseline", "baseline")]


@pytest.fixture(scope="module")
def several_files(tmp_path_factory, synthetic_dir) -> Path:
    """The subset's own file plus two more whose units are numbered from 1 again, one in a sub-folder."""
    folder = tmp_path_factory.mktemp("several")
    shutil.copy(synthetic_dir / "train_FD001.txt", folder / "train_FD001.txt")
    write_trajectories(
        generate(SyntheticSpec(n_train_units=9, n_test_units=1, seed=11)).train, folder / "train_FD001_b.txt"
    )
    write_trajectories(
        generate(SyntheticSpec(n_train_units=5, n_test_units=1, seed=12)).train,
        folder / "new" / "train_FD001_c.txt",
    )
    return folder


def objects_of(folder: Path) -> list[tuple[str, Path]]:
    """(key relative to the prefix, file) in key order, as the object store lists a prefix."""
    return [
        (path.relative_to(folder).as_posix(), path) for path in sorted(folder.rglob("*")) if path.is_file()
    ]


def run_shards(objects, count: int, work: Path, monkeypatch, *args: str) -> list[Path]:
    """Run preprocess once per instance on its shard; return each instance's output folder."""
    hosts = [f"algo-{index + 1}" for index in range(count)]
    outputs = []
    for index, host in enumerate(hosts):
        base = work / host / "opt_ml"
        (base / "config").mkdir(parents=True)
        (base / "config" / "resourceconfig.json").write_text(
            json.dumps({"current_host": host, "hosts": hosts})
        )
        (base / "processing" / "input").mkdir(parents=True)
        for relative, source in jobs.shard_objects(objects, index, count, "ShardedByS3Key"):
            (base / "processing" / "input" / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, base / "processing" / "input" / relative)
        monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert run_entrypoint(preprocess.main, list(args)) == 0, (base / "output" / "failure").read_text()
        outputs.append(base / "processing")
    return outputs


def union(outputs: list[Path], folder: str, stem: str) -> pd.DataFrame:
    """Every instance's part of one table, concatenated and sorted row by row."""
    parts = [
        pd.read_csv(path) for output in outputs for path in sorted((output / folder).glob(f"{stem}-*.csv"))
    ]
    frame = pd.concat([part for part in parts if len(part)], ignore_index=True)
    return frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)


def gather_manifests(outputs: list[Path], into: Path) -> dict:
    into.mkdir()
    for output in outputs:
        for path in (output / "manifest").glob("manifest-*.json"):
            shutil.copy(path, into / path.name)
    return read_manifest(into)


@pytest.mark.parametrize("layout", ["one file", "several files"])
def test_one_two_and_five_instances_give_the_same_dataset(
    layout, synthetic_dir, several_files, tmp_path, monkeypatch
):
    folder = several_files if layout == "several files" else synthetic_dir
    objects = [item for item in objects_of(folder) if item[0].rsplit("/", 1)[-1].startswith("train_")]
    runs = {
        count: run_shards(objects, count, tmp_path / str(count), monkeypatch, "--seed", "3")
        for count in (1, 2, 5)
    }
    single = {table: union(runs[1], *table) for table in TABLES}
    assert all(len(single[table]) for table in TABLES)
    for count in (2, 5):
        for table in TABLES:
            pd.testing.assert_frame_equal(
                union(runs[count], *table), single[table], obj=f"{table} on {count}"
            )
    manifests = {count: gather_manifests(runs[count], tmp_path / f"manifests-{count}") for count in (1, 2, 5)}
    for count in (2, 5):
        assert manifests[count]["version"] == manifests[1]["version"]
        assert manifests[count]["splits"] == manifests[1]["splits"]
        assert manifests[count]["files"] == manifests[1]["files"]
    train = union(runs[5], "train", "trajectories")
    check_unique_units(train, "train")
    assert train["source"].nunique() == len(objects)


def test_an_instance_without_files_writes_an_empty_manifest_and_no_table(
    synthetic_dir, tmp_path, monkeypatch, capsys
):
    outputs = run_shards(objects_of(synthetic_dir)[-1:], 2, tmp_path, monkeypatch, "--data-version", "abc")
    assert "no train_FD001*.txt file on this instance: writing empty outputs" in capsys.readouterr().out
    empty = outputs[1]
    manifest = json.loads((empty / "manifest" / "manifest-algo-2.json").read_text())
    assert manifest["files"] == [] and manifest["version"] is None and manifest["rows"] == 0
    assert manifest["declared_version"] == "abc"
    assert json.loads((empty / "metadata" / "metadata-algo-2.json").read_text())["instances"] == 2
    assert all((empty / folder).is_dir() and not any((empty / folder).iterdir()) for folder, _ in TABLES)
    assert len(read_table(outputs[0] / "train", "trajectories")) > 0


def test_alone_an_instance_without_files_still_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    (tmp_path / "processing" / "input").mkdir(parents=True)
    assert run_entrypoint(preprocess.main, []) == 1
    assert "no train_FD001*.txt file found" in (tmp_path / "output" / "failure").read_text()


def test_a_file_uploaded_twice_is_named_where_the_shards_meet(synthetic_dir, tmp_path, monkeypatch):
    folder = tmp_path / "raw"
    for prefix in ("2024", "2025"):
        (folder / prefix).mkdir(parents=True)
        shutil.copy(synthetic_dir / "train_FD001.txt", folder / prefix / "train_FD001.txt")
    outputs = run_shards(objects_of(folder), 2, tmp_path / "work", monkeypatch)
    train = pd.concat([read_table(output / "train", "trajectories") for output in outputs])
    both = re.escape("occurs in both 2024/train_FD001.txt and 2025/train_FD001.txt")
    with pytest.raises(DataFormatError, match=both):
        check_unique_units(train, "train")
    with pytest.raises(
        DataFormatError, match=re.escape("2025/train_FD001.txt: has the same contents as 2024/")
    ):
        gather_manifests(outputs, tmp_path / "manifests")
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "alone"))
    shutil.copytree(folder, tmp_path / "alone" / "processing" / "input")
    assert run_entrypoint(preprocess.main, []) == 1
    assert re.search(both, (tmp_path / "alone" / "output" / "failure").read_text())


@pytest.mark.slow
def test_the_runner_runs_preprocessing_on_more_instances_than_files(tmp_path, synthetic_dir):
    workspace = prepare_workspace(tmp_path / "work")
    workspace.store.upload(synthetic_dir / "train_FD001.txt", "s3://local-data/one/train_FD001.txt")
    step = next(step for step in workspace.definition["Steps"] if step["Name"] == "PreprocessData")
    parameters = {item["Name"]: item.get("DefaultValue") for item in workspace.definition["Parameters"]}
    parameters |= {"InputDataUri": "s3://local-data/one/", "Subset": "FD001", "ProcessingInstanceCount": 3}
    context = Context(parameters=parameters, execution={"PipelineExecutionId": "three"})
    request = resolve(step["Arguments"], context)
    result = jobs.run_processing_job(
        "preprocess-3", request, workspace.store, tmp_path / "work", lambda line: None
    )
    assert result.ok, result.failure_reason
    manifests = workspace.store.objects(result.outputs["manifest"])
    assert [relative for relative, _ in manifests] == [f"manifest-algo-{index}.json" for index in (1, 2, 3)]
    assert len(workspace.store.objects(result.outputs["train"])) == 1
