"""The batch definition executed by the local runner on a small synthetic fleet with a tiny trained model."""

from __future__ import annotations

import argparse
import io
import json

import pandas as pd
import pytest

from local_runner.batch_run import (
    BatchRunError,
    BatchRunOptions,
    add_batch_parser,
    run_batch,
    run_batch_pipeline,
)
from local_runner.object_store import ObjectStore
from pipeline_steps import batch_names as bnames
from pipeline_steps.batch_config import local_batch_config
from rul.data import write_trajectories
from rul.synthetic import SyntheticSpec, generate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory):
    frame = generate(SyntheticSpec(n_train_units=1, n_test_units=14, seed=9)).test
    folder = tmp_path_factory.mktemp("fleet")
    write_trajectories(frame[frame["unit"] <= 7], folder / "hangar-1.txt")
    write_trajectories(frame[frame["unit"] > 7], folder / "hangar-2.txt")
    return folder


def test_batch_verb_scores_ranks_and_prints_the_top_engines(tmp_path, fleet_dir, model_dir, capsys):
    parser = argparse.ArgumentParser()
    add_batch_parser(parser.add_subparsers(dest="verb"))
    work = tmp_path / "work"
    argv = ["batch", "--work-dir", str(work), "--fleet", str(fleet_dir), "--model", str(model_dir)]
    args = parser.parse_args([*argv, "--threshold-cycles", "200"])
    assert args.handler is run_batch and args.handler(args) == 0
    out = capsys.readouterr().out
    assert "14 engines scored by model version file:model" in out and "14 due within 200 cycles" in out
    assert len(out.split("top 10 engines to inspect:")[1].strip().splitlines()) == 11  # header + 10
    store, config = ObjectStore(work / "s3"), local_batch_config()
    (execution,) = {key.split("/")[0] for key, _ in store.objects(config.output_uri)}
    assert f"fleet table:      {store.path_for(config.output_uri + execution)}/" in out
    prefix = f"{config.output_uri}{execution}/"
    table = pd.read_csv(io.StringIO(store.read_text(prefix + bnames.PREDICTIONS_FILE)))
    assert table["unit"].tolist() == list(range(1, 15))
    assert set(table["model_version"]) == {"file:model"}
    ranked = pd.read_csv(io.StringIO(store.read_text(prefix + bnames.MAINTENANCE_FILE)))
    assert ranked["predicted_rul"].is_monotonic_increasing and ranked["due_within_cycles"].all()
    summary = json.loads(store.read_text(prefix + bnames.SUMMARY_FILE))
    assert summary["units"] == 14 and summary["threshold_cycles"] == 200
    assert [f["name"] for f in summary["files"]] == ["hangar-1.txt", "hangar-2.txt"]
    assert summary["execution_id"] == execution
    # The registry's champion prefix was left alone: the given model was staged beside it.
    assert not store.objects(config.champion_uri + "model.tar.gz")


@pytest.mark.chaos
def test_a_bad_row_fails_the_execution_naming_file_and_line(tmp_path, fleet_dir, model_dir):
    broken = tmp_path / "fleet"
    broken.mkdir()
    lines = (fleet_dir / "hangar-2.txt").read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split()[3], "oops", 1)
    (broken / "hangar-2.txt").write_text("\n".join(lines) + "\n")
    options = BatchRunOptions(work_dir=tmp_path / "work", fleet=broken, model=model_dir)
    _, _, result = run_batch_pipeline(options, echo=lambda _line: None)
    assert result.status == "Failed"
    assert "hangar-2.txt, line 3: column 4 (setting_2) is not a number" in result.failure_reason


def test_without_a_champion_or_a_model_the_run_does_not_start(tmp_path, fleet_dir):
    with pytest.raises(BatchRunError, match=r"no champion model under .*registry approve"):
        run_batch_pipeline(BatchRunOptions(work_dir=tmp_path / "work", fleet=fleet_dir))


@pytest.fixture
def registered(tmp_path, model_dir):
    """A work dir whose registry holds version 1, its archive in the local object store."""
    from local_runner.jobs import pack_model
    from local_runner.registry import LocalRegistry
    from pipeline_steps.config import local_config

    work = tmp_path / "work"
    uri = "s3://local-artifacts/models/run-1/output/model.tar.gz"
    pack_model(model_dir, ObjectStore(work / "s3").path_for(uri))
    registry = LocalRegistry(work / "registry.sqlite")
    group = local_config().model_package_group_name
    registry.create_group(group)
    registry.register(group, uri, "image")
    return work, uri


def test_model_takes_a_version_number_or_an_s3_uri_of_the_local_store(registered):
    from local_runner.batch_run import resolve_model

    work, uri = registered
    archive = ObjectStore(work / "s3").path_for(uri)
    assert resolve_model("1", work) == (archive, 1)
    assert resolve_model(uri, work) == (archive, None)
    assert resolve_model(str(archive), work) == (archive, None)


def test_a_model_staged_by_version_is_labelled_with_it_and_survives_restaging(registered):
    from local_runner.batch_run import stage_model

    work, uri = registered
    store, config = ObjectStore(work / "s3"), local_batch_config()
    staged = stage_model(store, config, store.path_for(uri), 1)
    assert json.loads(store.read_text(staged + "champion.json")) == {"version": 1}
    # Given the staged archive itself: it is copied aside before the staging prefix is emptied.
    again = stage_model(store, config, store.path_for(staged + "model.tar.gz"))
    assert store.path_for(again + "model.tar.gz").stat().st_size > 0


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("7", "batch: --model 7: model package group 'turbofan-rul' has no version 7"),
        (
            "s3://local-artifacts/nothing.tar.gz",
            "batch: --model s3://local-artifacts/nothing.tar.gz: nothing",
        ),
        ("gs://bucket/model.tar.gz", "batch: --model gs://bucket/model.tar.gz: not a location"),
        ("missing.tar.gz", "batch: --model missing.tar.gz does not exist"),
    ],
)
def test_a_model_that_names_nothing_is_a_usage_error_before_any_work(registered, capsys, model, message):
    work, _ = registered
    parser = argparse.ArgumentParser()
    add_batch_parser(parser.add_subparsers(dest="verb"))
    before = sorted(work.rglob("*"))
    assert run_batch(parser.parse_args(["batch", "--work-dir", str(work), "--model", model])) == 2
    error = capsys.readouterr().err
    assert error.startswith(message) and error.count("\n") == 1
    assert sorted(work.rglob("*")) == before  # nothing staged, no fleet generated
