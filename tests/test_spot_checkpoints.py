"""Checkpoints of managed spot training: a job killed after its first checkpoint resumes to the same model.

The always-on cases interrupt gradient-boosting fits in process after a checkpoint; the `long` ones kill a
real train.py process with SIGKILL after its first checkpoint (minutes on a loaded 2-core machine) and
resume the deep families per epoch (TensorFlow).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import botocore.session
import numpy as np
import pandas as pd
import pytest
from botocore.validate import ParamValidator
from pydantic import ValidationError

import preprocess
from local_runner.jobs import mount_checkpoints
from local_runner.object_store import ObjectStore
from pipeline_steps import job_settings
from pipeline_steps.code import CONTAINERS_DIR
from pipeline_steps.config import local_config
from rul import checkpoints
from rul.checkpoints import CheckpointStore, checkpointing, fingerprint, open_store
from rul.contract import TrainingContext, run_entrypoint
from rul.errors import ConfigurationError
from rul.hyperparameters import Hyperparameters
from rul.models import GbmEnsemble, RulPredictor
from settings.ml import PipelineSettings

GBM_HPS = {"feature_set": '"stats"', "ensemble_size": "3", "max_iter": "40", "validation_draws": "2"}


class Interrupted(BaseException):
    """Stands for the Spot interruption: nothing in the training code catches it."""


def interrupt_after(monkeypatch, saves: int) -> list[str]:
    """Make `CheckpointStore.save` raise `Interrupted` once `saves` steps have been written."""
    written: list[str] = []
    original = CheckpointStore.save

    def save(self, step, files):
        original(self, step, files)
        written.append(step)
        if len(written) >= saves:
            raise Interrupted(step)

    monkeypatch.setattr(CheckpointStore, "save", save)
    return written


@pytest.fixture
def tabular():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(300, 6))
    labels = features[:, 0] * 20 + features[:, 1] ** 2 * 5 + rng.normal(size=300)
    return features, labels


def gbm_hp(**values) -> Hyperparameters:
    return Hyperparameters.from_dict({"ensemble_size": 3, "max_iter": 15, **values})


def test_fingerprint_changes_with_hyperparameters_and_data(tabular):
    features, labels = tabular
    base = fingerprint("gbm", {"seed": 0}, (features, labels))
    assert base == fingerprint("gbm", {"seed": 0}, (features.copy(), labels.copy()))
    changed = features.copy()
    changed[0, 0] += 1e-9
    assert base != fingerprint("gbm", {"seed": 0}, (changed, labels))
    assert base != fingerprint("gbm", {"seed": 1}, (features, labels))
    assert base != fingerprint("cnn", {"seed": 0}, (features, labels))
    assert base != fingerprint("gbm", {"seed": 0}, (features.astype(np.float32), labels))


def test_without_an_active_folder_nothing_is_checkpointed(tabular, tmp_path):
    assert open_store("gbm", {}, tabular) is None
    GbmEnsemble(gbm_hp(ensemble_size=1)).fit(*tabular)
    assert not any(tmp_path.iterdir())


def test_an_interrupted_ensemble_resumes_to_the_same_members(tabular, tmp_path, monkeypatch, capsys):
    features, labels = tabular
    expected = GbmEnsemble(gbm_hp()).fit(features, labels).predict(features)
    written = interrupt_after(monkeypatch, saves=2)
    with checkpointing(tmp_path), pytest.raises(Interrupted):
        GbmEnsemble(gbm_hp()).fit(features, labels)
    assert written == ["member-0", "member-1"]
    monkeypatch.undo()
    with checkpointing(tmp_path):
        resumed = GbmEnsemble(gbm_hp()).fit(features, labels)
    output = capsys.readouterr().out
    assert "gbm member 2/3 restored from its checkpoint" in output
    assert "gbm member 3/3 fitted" in output
    np.testing.assert_array_equal(resumed.predict(features), expected)


def test_checkpoints_of_other_inputs_are_ignored_with_a_message(tabular, tmp_path, capsys):
    features, labels = tabular
    with checkpointing(tmp_path):
        GbmEnsemble(gbm_hp(seed=1, ensemble_size=1)).fit(features, labels)
    capsys.readouterr()
    with checkpointing(tmp_path):  # another job (a tuning trial) sharing the checkpoint prefix
        GbmEnsemble(gbm_hp(seed=2, ensemble_size=1)).fit(features, labels)
    output = capsys.readouterr().out
    assert "ignoring 1 folder(s) of other inputs" in output and "restored" not in output
    assert len(list(tmp_path.glob("gbm-*"))) == 2


def test_a_manifest_of_other_inputs_or_unreadable_starts_afresh(tabular, tmp_path, capsys):
    with checkpointing(tmp_path):
        store = open_store("gbm", {"seed": 0}, tabular)
    (store.folder / "manifest.json").write_text(json.dumps({"format": 1, "fingerprint": "x", "steps": ["a"]}))
    assert CheckpointStore.open(tmp_path, "gbm", store.fingerprint).steps == []
    (store.folder / "manifest.json").write_text("{torn")
    assert CheckpointStore.open(tmp_path, "gbm", store.fingerprint).steps == []
    output = capsys.readouterr().out
    assert "is from other inputs" in output and "cannot be read" in output


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "member-000.joblib"
    target.write_text("old")

    def broken(path: Path) -> None:
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        checkpoints.write_atomically(target, broken)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_the_contract_reads_the_checkpoint_config(tmp_path):
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    assert not TrainingContext.from_environment({"SAGEMAKER_BASE_DIR": str(tmp_path)}).checkpoints_enabled
    (config / "checkpointconfig.json").write_text(json.dumps({"LocalPath": "/opt/ml/checkpoints/"}))
    context = TrainingContext.from_environment({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert context.checkpoints_enabled and context.checkpoint_dir == tmp_path / "checkpoints"
    (config / "checkpointconfig.json").write_text(json.dumps({"S3Uri": "s3://b/k/", "LocalPath": "/ckpt"}))
    assert TrainingContext.from_environment({"SAGEMAKER_BASE_DIR": str(tmp_path)}).checkpoint_dir == Path(
        "/ckpt"
    )


# --- settings, rendering and the request shapes SageMaker accepts ---------------------------------------


def test_settings_refuse_a_spot_wait_shorter_than_the_runtime():
    assert PipelineSettings(max_runtime_minutes=180).spot_training is False  # off: the wait is unused
    with pytest.raises(ValidationError, match=r"spot_max_wait_minutes \(120\) is less than max_runtime"):
        PipelineSettings(spot_training=True, max_runtime_minutes=180)
    assert PipelineSettings(spot_training=True, spot_max_wait_minutes=180, max_runtime_minutes=180)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"spot_training": True, "max_runtime_minutes": 180}, r"spot_max_wait_minutes \(120\) is less than"),
        ({"spot_training": True, "spot_max_wait_minutes": 30}, r"spot_max_wait_minutes \(30\) is less than"),
    ],
)
def test_the_pipeline_config_refuses_a_bad_spot_wait(overrides, message):
    with pytest.raises(ValueError, match=message):
        local_config(**overrides)
    assert local_config(spot_max_wait_minutes=30).spot_max_wait_seconds is None  # spot off: unused


def test_spot_requests_match_sagemakers_api_shapes():
    config = local_config(spot_training=True, spot_max_wait_minutes=90, max_runtime_minutes=60)
    assert config.tuning_max_runtime_seconds == 90 * 60 * 3  # a trial is bounded by its wait
    model = botocore.session.get_session().get_service_model("sagemaker")
    job = {
        "EnableManagedSpotTraining": True,
        "StoppingCondition": {
            "MaxRuntimeInSeconds": 3600,
            "MaxWaitTimeInSeconds": config.spot_max_wait_seconds,
        },
        "CheckpointConfig": {
            "S3Uri": job_settings.checkpoint_uri(config, "RefitModel"),
            "LocalPath": job_settings.CHECKPOINT_LOCAL_PATH,
        },
    }
    for operation, shape in (
        ("CreateTrainingJob", model.operation_model("CreateTrainingJob").input_shape),
        ("HyperParameterTrainingJobDefinition", model.shape_for("HyperParameterTrainingJobDefinition")),
    ):
        for name, value in job.items():
            report = ParamValidator().validate(value, shape.members[name])
            assert not report.has_errors(), (operation, name, report.generate_report())


def test_the_job_role_may_delete_exactly_the_rendered_checkpoint_prefix():
    from stacks import iam_job_roles  # imports the CDK (seconds): only here

    config = local_config()
    uri = job_settings.checkpoint_uri(config, "TuneModel")
    assert uri.startswith(
        f"s3://{config.artifact_bucket}/{config.pipeline_name}/{iam_job_roles.CHECKPOINTS_KEY}"
    )


# --- the local runner lays the folder out as SageMaker does -------------------------------------------


def test_the_runner_links_the_checkpoint_folder_to_the_kept_prefix(tmp_path):
    store = ObjectStore(tmp_path / "s3")
    request = {
        "CheckpointConfig": {
            "S3Uri": "s3://art/p/checkpoints/RefitModel/",
            "LocalPath": "/opt/ml/checkpoints",
        }
    }
    first = tmp_path / "jobs" / "run-1" / "opt_ml"
    (first / "input" / "config").mkdir(parents=True)
    kept = mount_checkpoints(request, store, first)
    assert kept == store.path_for("s3://art/p/checkpoints/RefitModel/")
    config = json.loads((first / "input" / "config" / "checkpointconfig.json").read_text())
    assert config == request["CheckpointConfig"]
    (first / "checkpoints" / "gbm-1").mkdir()  # what the killed job wrote
    second = tmp_path / "jobs" / "run-2" / "opt_ml"  # the rerun: another job name, the same URI
    (second / "input" / "config").mkdir(parents=True)
    mount_checkpoints(request, store, second)
    assert [path.name for path in (second / "checkpoints").iterdir()] == ["gbm-1"]
    context = TrainingContext.from_environment({"SAGEMAKER_BASE_DIR": str(second)})
    assert context.checkpoints_enabled and context.checkpoint_dir == second / "checkpoints"
    third = tmp_path / "jobs" / "plain" / "opt_ml"
    assert mount_checkpoints({}, store, third) is None and not third.exists()


# --- train.py as a process, killed by SIGKILL after its first checkpoint -------------------------------


@pytest.fixture
def channels(tmp_path, synthetic_dir, monkeypatch):
    """The preprocess step's train and validation channels of the small synthetic subset."""
    processing = tmp_path / "preprocess"
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(processing))
    (processing / "processing" / "input").mkdir(parents=True)
    shutil.copy(synthetic_dir / "train_FD001.txt", processing / "processing" / "input")
    assert run_entrypoint(preprocess.main, ["--seed", "1"]) == 0
    monkeypatch.delenv("SAGEMAKER_BASE_DIR")
    return processing / "processing"


def job_base(root: Path, channels: Path, hyperparameters: dict, checkpoint: bool) -> Path:
    """A fresh /opt/ml of a training job, as SageMaker lays it out (with a CheckpointConfig if asked)."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps({"train": {}, "validation": {}}))
    if checkpoint:
        checkpoint_config = {"S3Uri": "s3://bucket/checkpoints/", "LocalPath": "/opt/ml/checkpoints"}
        (config / "checkpointconfig.json").write_text(json.dumps(checkpoint_config))
    for channel in ("train", "validation"):
        shutil.copytree(channels / channel, root / "input" / "data" / channel)
    return root


def start_train(base: Path) -> subprocess.Popen:
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "PYTHONPATH": str(CONTAINERS_DIR)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(
        [sys.executable, str(CONTAINERS_DIR / "train.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_first_checkpoint(process: subprocess.Popen, checkpoint_dir: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for manifest in checkpoint_dir.glob("*/manifest.json"):
            if json.loads(manifest.read_text())["steps"]:
                return
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint appeared (exit code {process.poll()})")


def predictions(model_dir: Path, channels: Path) -> np.ndarray:
    validation = pd.read_csv(channels / "validation" / "trajectories-algo-1.csv")
    return RulPredictor.load(model_dir).predict_last(validation)["predicted_rul"].to_numpy()


@pytest.mark.long
def test_a_killed_training_job_restarts_to_the_same_model(tmp_path, channels):
    uninterrupted = job_base(tmp_path / "plain", channels, GBM_HPS, checkpoint=False)
    assert start_train(uninterrupted).wait(timeout=600) == 0
    spot = job_base(tmp_path / "spot", channels, GBM_HPS, checkpoint=True)
    first = start_train(spot)
    wait_for_first_checkpoint(first, spot / "checkpoints")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL and not (spot / "model" / "metadata.json").exists()
    restarted = start_train(spot)  # same /opt/ml/checkpoints, as SageMaker restores it from S3
    log = restarted.communicate(timeout=600)[0]
    assert restarted.returncode == 0, log
    assert "gbm member 1/3 restored from its checkpoint" in log
    assert "gbm member 3/3 fitted" in log
    expected = predictions(uninterrupted / "model", channels)
    np.testing.assert_array_equal(predictions(spot / "model", channels), expected)
    # A finished job removes its own checkpoints (SageMaker then deletes them from S3 too).
    assert list((spot / "checkpoints").iterdir()) == []


# --- the deep families: per-epoch checkpoints ---------------------------------------------------------


@pytest.mark.long
@pytest.mark.parametrize("family", ["cnn", "lstm"])
def test_an_interrupted_deep_fit_resumes_to_the_same_network(family, tmp_path, monkeypatch, capsys):
    from rul.deep import KerasRegressor

    rng = np.random.default_rng(3)
    windows = rng.normal(size=(300, 30, 6)).astype(np.float32)
    labels = np.clip(windows[:, -1, 0] * 40 + 60, 0, 125)
    validation = (windows[:80], labels[:80])
    hp = Hyperparameters.from_dict(
        {"model_family": family, "epochs": 5, "batch_size": 64, "units": 16, "filters": 8, "patience": 2}
    )
    # `auto` caps (0) are resolved from the training units before a fit; unresolved, labels / cap is inf
    with pytest.raises(ConfigurationError, match="rul_cap must be resolved"):
        KerasRegressor(hp).fit(windows, labels, validation)
    hp = replace(hp, rul_cap=125.0, inner_cap=125.0)
    expected = KerasRegressor(hp).fit(windows, labels, validation).predict(windows)
    written = interrupt_after(monkeypatch, saves=2)
    with checkpointing(tmp_path), pytest.raises(Interrupted):
        KerasRegressor(hp).fit(windows, labels, validation)
    assert written == ["epoch-1", "epoch-2"]
    # Interrupted after epoch 2's manifest, before the older file's removal: epoch 2 is what resumes.
    assert "epoch-0002.npz" in [p.name for p in next(tmp_path.glob(f"{family}-*")).glob("*.npz")]
    monkeypatch.undo()
    with checkpointing(tmp_path):
        resumed = KerasRegressor(hp).fit(windows, labels, validation)
    assert "resumed after epoch 2" in capsys.readouterr().out
    np.testing.assert_allclose(resumed.predict(windows), expected, rtol=0, atol=1e-4)


# --- the local runner executes a spot definition --------------------------------------------------------


@pytest.mark.long
def test_the_runner_runs_a_spot_refit_with_sagemakers_checkpoint_layout(tmp_path, synthetic_dir):
    from local_runner.main_job import MainJobOptions, run_main_job

    tiny = (("feature_set", "stats"), ("ensemble_size", "2"), ("max_iter", "30"), ("validation_draws", "2"))
    options = MainJobOptions(
        work_dir=tmp_path / "work",
        data_dir=synthetic_dir,
        parameters={"TuningMaxJobs": 1, "TuningMaxParallelJobs": 1},
        tracking=False,
        config_overrides={
            "static_hyperparameters": tiny,
            "spot_training": True,
            "spot_max_wait_minutes": 120,
        },
    )
    workspace, _ = run_main_job(options, echo=lambda line: None)
    (refit,) = (tmp_path / "work" / "jobs").glob("*-RefitModel")
    config = json.loads(
        (refit / "algo-1" / "opt_ml" / "input" / "config" / "checkpointconfig.json").read_text()
    )
    assert config["S3Uri"] == "s3://local-artifacts/turbofan-rul/checkpoints/RefitModel/"
    kept = workspace.store.path_for(config["S3Uri"])
    assert (refit / "algo-1" / "opt_ml" / "checkpoints").resolve() == kept.resolve()
    log = (refit / "algo-1.log").read_text()
    assert "checkpoints: writing to and resuming from" in log and "gbm member 2/2 fitted" in log
    assert list(kept.iterdir()) == []  # the finished job removed its own checkpoints
    assert (refit / "model.tar.gz").is_file()
