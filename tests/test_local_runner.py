"""The local runner end to end: the rendered definition executed on small synthetic data.

Trials use tiny static hyperparameters (one small gbm member) so the runs stay fast on a loaded machine;
the data-version tests rerun the same work folder: unchanged data is all cache hits and registers nothing,
a new data version runs fresh steps and registers a new version."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tiny_run import FAST, TINY

from local_runner import jobs
from local_runner.__main__ import exit_code
from local_runner.__main__ import main as cli_main
from local_runner.expressions import Context, resolve
from local_runner.main_job import MainJobOptions, prepare_workspace, run_main_job
from rul.data import read_trajectories, write_trajectories

pytestmark = pytest.mark.slow
JOB_STEPS = {"PreprocessData", "DataQualityBaseline", "TuneModel", "RefitModel", "EvaluateModel"}
REGISTER = "RegisterModel-RegisterModel"


def run(work: Path, data_dir: Path, echo=lambda line: None, **parameters):
    """Run the main job on `data_dir` with tiny trials; (workspace, result)."""
    options = MainJobOptions(
        work_dir=work, data_dir=data_dir, parameters={**FAST, **parameters}, config_overrides=TINY
    )
    return run_main_job(options, echo=echo)


def registered_data_version(workspace) -> str:
    """What a starter passes as RegisteredDataVersion: the DataVersion of the newest package."""
    return workspace.registry.latest_metadata(workspace.config.model_package_group_name, "DataVersion")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, synthetic_dir):
    """One main-job run with DataVersion v1, shared by the tests that build on its registry."""
    work = tmp_path_factory.mktemp("work")
    lines = []
    workspace, result = run(work, synthetic_dir, lines.append, DataVersion="v1")
    return work, workspace, result, lines


def test_the_rendered_definition_runs_end_to_end_and_registers_a_model(first_run):
    """Every step but the Fail step succeeds; the refit model is registered with its baseline, metrics and
    data version."""
    work, workspace, result, lines = first_run
    assert result.status == "Succeeded", result.failure_reason
    statuses = {step.name: step.status for step in result.steps}
    assert statuses["FailQualityGate"] == "NotExecuted"
    assert all(status == "Succeeded" for name, status in statuses.items() if name != "FailQualityGate")
    assert result.step("CheckNewDataVersion").properties == {"Outcome": "False"}
    tuning = result.step("TuneModel").properties
    assert len(tuning["TrainingJobSummaries"]) == 2
    assert any(line.startswith("trial 2/2") for line in lines)
    packages = workspace.registry.list(workspace.config.model_package_group_name)
    assert [package.version for package in packages] == [1]
    # The registered model is the best trial's hyperparameters refit on all units (RefitModel's artifact).
    refit = result.step("RefitModel").properties
    assert packages[0].model_data_url == refit["ModelArtifacts"]["S3ModelArtifacts"]
    assert workspace.store.path_for(packages[0].model_data_url).is_file()
    outputs = result.step("DataQualityBaseline").properties["ProcessingOutputConfig"]["Outputs"]
    baseline = outputs["baseline"]["S3Output"]["S3Uri"] + "/statistics.json"
    assert packages[0].drift_check_baselines["ModelDataQuality"]["Statistics"]["S3Uri"] == baseline
    assert json.loads(workspace.store.read_text(baseline))["dataset"]["item_count"] > 0
    assert packages[0].customer_metadata["DataVersion"] == "v1"
    registry = f"s3://local-artifacts/registry/turbofan-rul/{result.execution_id}/"
    evaluation = packages[0].metrics["ModelQuality"]["Statistics"]["S3Uri"]
    for uri in (baseline, evaluation, packages[0].customer_metadata["DataManifestUri"]):
        assert uri.startswith(registry), uri
    assert json.loads(workspace.store.read_text(evaluation))["gate"]["basis"] == "capped_truth_metrics"
    assert json.loads((work / "definition.json").read_text()) == workspace.definition


def test_unchanged_data_is_all_cache_hits_and_registers_nothing(first_run, synthetic_dir):
    """The same DataVersion as the newest package: every job step is a cache hit and the condition stops
    registration."""
    work, workspace, _, _ = first_run
    assert registered_data_version(workspace) == "v1"
    workspace, result = run(work, synthetic_dir, DataVersion="v1", RegisteredDataVersion="v1")
    assert result.status == "Succeeded", result.failure_reason
    assert {step.name for step in result.steps if step.cache_hit} == JOB_STEPS
    assert result.step("CheckNewDataVersion").properties == {"Outcome": "True"}
    assert result.step(REGISTER).status == "NotExecuted"
    assert [p.version for p in workspace.registry.list(workspace.config.model_package_group_name)] == [1]


def test_a_new_data_version_runs_fresh_steps_and_registers_a_new_version(first_run, synthetic_dir):
    """A new DataVersion misses the cache and registers version 2 carrying it."""
    work, workspace, _, _ = first_run
    workspace, result = run(work, synthetic_dir, DataVersion="v2", RegisteredDataVersion="v1")
    assert result.status == "Succeeded", result.failure_reason
    assert not any(step.cache_hit for step in result.steps)
    packages = workspace.registry.list(workspace.config.model_package_group_name)
    assert [p.version for p in packages] == [2, 1]
    assert packages[0].customer_metadata["DataVersion"] == "v2" == registered_data_version(workspace)


def test_a_failed_gate_ends_in_the_fail_step_and_registers_nothing(first_run, synthetic_dir):
    """An impossible RMSE threshold: the Fail step's message explains the gate and `run` exits 3."""
    work, _, _, _ = first_run
    workspace, result = run(work, synthetic_dir, DataVersion="v2", RmseThreshold=0.5)
    assert result.status == "Failed"
    assert result.step(REGISTER).status == "NotExecuted"
    assert result.step("CheckNewDataVersion").status == "NotExecuted"
    message = result.step("FailQualityGate").failure_reason
    assert message.startswith(
        "Quality gate failed (official evaluation protocol, "
        "on the truth capped at the training cap): test RMSE "
    )
    assert "(threshold 0.5)" in message and "exceeds the threshold 0.5" in message
    assert exit_code(result, signal_code=143) == 3  # what `run` returns: CI tells a rejection from a crash
    before = len(workspace.registry.list(workspace.config.model_package_group_name))
    assert before == 2  # the two earlier registrations, nothing new


def test_approving_a_version_makes_it_the_champion(first_run, capsys):
    """`registry approve` publishes champion.json; `registry reject` withdraws it."""
    work, workspace, _, _ = first_run
    assert cli_main(["registry", "approve", "1", "--work-dir", str(work), "--reason", "looks good"]) == 0
    champion = json.loads(workspace.store.read_text(workspace.config.champion_uri + "champion.json"))
    assert champion["version"] == 1
    assert cli_main(["registry", "list", "--work-dir", str(work)]) == 0
    assert "Approved" in capsys.readouterr().out
    assert cli_main(["registry", "reject", "1", "--work-dir", str(work)]) == 0
    assert not workspace.store.objects(workspace.config.champion_uri + "champion.json")


def test_a_failing_container_script_surfaces_its_error(tmp_path, synthetic_dir, monkeypatch):
    """A malformed data line: the failure names the user's file and line, not the job's copy."""
    broken = tmp_path / "data"
    broken.mkdir()
    text = (synthetic_dir / "train_FD001.txt").read_text().splitlines()
    text[9] = "1 10 0.1 0.2"
    (broken / "train_FD001.txt").write_text("\n".join(text) + "\n")
    monkeypatch.chdir(tmp_path)  # a relative work dir, as `make run` uses
    _, result = run_main_job(MainJobOptions(work_dir=Path("work"), data_dir=broken), echo=lambda line: None)
    assert result.status == "Failed"
    assert result.step("PreprocessData").status == "Failed"
    # Named as the user's file, not as the job's copy under its /opt/ml folder.
    user_file = broken.resolve() / "train_FD001.txt"
    assert f"{user_file}, line 10: expected 26 columns, found 4" in result.failure_reason
    assert "opt_ml" not in result.failure_reason.split("log tail:")[0]
    assert "is s3://local-data/raw/train_FD001.txt in the local object store" in result.failure_reason
    assert result.step("TuneModel").status == "NotExecuted"


def test_sharded_preprocessing_equals_the_single_instance_run(tmp_path, synthetic_dir):
    """Two preprocessing instances on sharded input give the same train, validation and test splits as one."""
    frame = read_trajectories(synthetic_dir / "train_FD001.txt")
    parts = tmp_path / "parts"
    for index, units in enumerate([frame["unit"] <= 20, frame["unit"] > 20]):
        write_trajectories(frame[units], parts / f"train_FD001_part{index}.txt")
    workspace = prepare_workspace(tmp_path / "work")
    store = workspace.store
    store.upload(parts, "s3://local-data/sharded/")
    step = next(step for step in workspace.definition["Steps"] if step["Name"] == "PreprocessData")
    outputs = {}
    for count in (1, 2):
        context = Context(
            parameters={
                "InputDataUri": "s3://local-data/sharded/",
                "Subset": "FD001",
                "DataVersion": "unversioned",
                "ProcessingInstanceType": "ml.m5.large",
                "ProcessingInstanceCount": count,
            },
            execution={"PipelineExecutionId": f"shards-{count}"},
        )
        request = resolve(step["Arguments"], context)
        result = jobs.run_processing_job(
            f"preprocess-{count}", request, store, tmp_path / "work", lambda line: None
        )
        assert result.ok, result.failure_reason
        outputs[count] = {
            name: pd.concat([pd.read_csv(path) for key, path in store.objects(uri) if key.endswith(".csv")])
            .sort_values(["unit", "cycle"])
            .reset_index(drop=True)
            for name, uri in result.outputs.items()
            if name in ("train", "validation", "test")
        }
    assert len(list(store.objects(request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]))) == 2
    for name in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(outputs[1][name], outputs[2][name])


@pytest.mark.chaos
def test_a_truncated_data_file_fails_naming_the_users_file_and_its_last_line(tmp_path, synthetic_dir):
    """A file cut mid-line fails in preprocessing with the user's path and the last line's number."""
    data = tmp_path / "data"
    data.mkdir()
    text = (synthetic_dir / "train_FD001.txt").read_text()
    (data / "train_FD001.txt").write_text(text[:-5])  # the last number cut, no final newline
    options = MainJobOptions(work_dir=tmp_path / "work", data_dir=data, tracking=False)
    _, result = run_main_job(options, echo=lambda line: None)
    assert result.status == "Failed" and result.step("PreprocessData").status == "Failed"
    first_line = result.failure_reason.splitlines()[0]
    lines = len(text.splitlines())
    assert f"{data / 'train_FD001.txt'}, line {lines}: the file ends without a newline" in first_line
    assert "opt_ml" not in result.failure_reason.split("log tail:")[0]
