"""The final refit: train.py's refit mode, the runner resolving the best trial's values, the whole run.

train.py in refit mode fits on the train, validation and holdout channels and records the units per
channel in the model's metadata; the local runner resolves `RefitModel`'s references to the tuning step's
`BestTrainingJob.TunedHyperParameters` and keys the step's cache by the resolved values; a tiny local run
(long) registers the refit's artifact, fitted on every training unit and scored on the official test set.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

import train
from local_runner.expressions import Context, resolve
from local_runner.main_job import MainJobOptions, run_main_job
from local_runner.step_cache import cache_key
from pipeline_steps import names
from pipeline_steps.config import local_config
from pipeline_steps.render import render_definition
from pipeline_steps.tuning import TUNING_RANGES
from rul.contract import run_entrypoint
from rul.official import OFFICIAL
from rul.synthetic import SyntheticSpec, generate

TINY = {"feature_set": '"stats"', "ensemble_size": "1", "max_iter": "20", "validation_draws": "1"}
CHANNELS = {"train": range(1, 11), "validation": range(11, 15), "holdout": range(15, 19)}


@pytest.fixture
def opt_ml(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt_ml"))
    return tmp_path / "opt_ml"


def lay_out_channels(opt_ml: Path, hyperparameters: dict, empty_holdout: bool = False) -> None:
    """18 synthetic units split over the three channels, as preprocess writes them (holdout maybe empty)."""
    units = generate(SyntheticSpec(n_train_units=18, n_test_units=1, seed=2)).train
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps({name: {} for name in CHANNELS}))
    for name, ids in CHANNELS.items():
        folder = opt_ml / "input" / "data" / name
        folder.mkdir(parents=True)
        rows = units[units["unit"].isin(ids)]
        if name == "holdout" and empty_holdout:
            rows = rows.iloc[0:0]
        rows.to_csv(folder / "trajectories-algo-1.csv", index=False)
        (folder / "protocol-algo-1.json").write_text("{}")


@pytest.mark.slow
def test_refit_mode_fits_on_every_channels_units_and_records_them(opt_ml, capsys):
    lay_out_channels(opt_ml, {**TINY, names.REFIT_HYPERPARAMETER: '"true"'})
    assert run_entrypoint(train.main, []) == 0
    metadata = json.loads((opt_ml / "model" / "metadata.json").read_text())
    assert metadata["fitted_on"] == {name: list(ids) for name, ids in CHANNELS.items()}
    assert metadata["training_units"]["count"] == 18
    assert "interval_calibration" in metadata and "fit_seconds" in metadata["final_refit"]
    output = capsys.readouterr().out
    assert "final refit on 10 train, 4 validation, 4 holdout units" in output
    assert "validation:rmse=" not in output  # nothing is left out to validate on


@pytest.mark.slow
def test_an_empty_holdout_channel_refits_on_train_and_validation(opt_ml):
    lay_out_channels(opt_ml, {**TINY, names.REFIT_HYPERPARAMETER: "true"}, empty_holdout=True)
    assert run_entrypoint(train.main, []) == 0
    metadata = json.loads((opt_ml / "model" / "metadata.json").read_text())
    assert metadata["fitted_on"]["holdout"] == [] and metadata["training_units"]["count"] == 14


def pack_trial(opt_ml: Path, hyperparameters: dict) -> None:
    """Fit a tuning trial on the train channel and lay its model.tar.gz out as the trial channel."""
    assert run_entrypoint(train.main, []) == 0
    trial = opt_ml / "input" / "data" / "trial"
    trial.mkdir()
    with tarfile.open(trial / "model.tar.gz", "w:gz") as bundle:
        for path in sorted((opt_ml / "model").iterdir()):
            bundle.add(path, arcname=path.name)
    shutil.rmtree(opt_ml / "model")
    channels = {name: {} for name in [*CHANNELS, "trial"]}
    (opt_ml / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(channels))
    config = opt_ml / "input" / "config" / "hyperparameters.json"
    config.write_text(json.dumps(hyperparameters))


@pytest.mark.slow
def test_the_best_trials_model_spares_the_calibration_fit(opt_ml, capsys):
    lay_out_channels(opt_ml, TINY)
    pack_trial(opt_ml, {**TINY, names.REFIT_HYPERPARAMETER: "true"})
    assert run_entrypoint(train.main, []) == 0
    metadata = json.loads((opt_ml / "model" / "metadata.json").read_text())
    assert metadata["final_refit"]["reused_best_trial"] is True
    assert metadata["training_units"]["count"] == 18
    output = capsys.readouterr().out
    assert "intervals calibrated with the best trial's model" in output
    assert output.count("member 1/1") == 2  # the trial's fit and the final fit, no calibration fit


@pytest.mark.slow
def test_a_trial_with_other_hyperparameters_is_refitted_saying_why(opt_ml, capsys):
    lay_out_channels(opt_ml, TINY)
    pack_trial(opt_ml, {**TINY, "max_iter": "25", names.REFIT_HYPERPARAMETER: "true"})
    assert run_entrypoint(train.main, []) == 0
    metadata = json.loads((opt_ml / "model" / "metadata.json").read_text())
    assert metadata["final_refit"]["reused_best_trial"] is False
    assert "the best trial's model is not used (ConfigurationError" in capsys.readouterr().out


def test_a_refit_flag_that_is_not_true_or_false_is_a_named_error(opt_ml):
    lay_out_channels(opt_ml, {**TINY, names.REFIT_HYPERPARAMETER: '"maybe"'})
    assert run_entrypoint(train.main, []) == 1
    assert "final_refit='maybe' must be true or false" in (opt_ml / "output" / "failure").read_text()


def best_trial(values: dict[str, str]) -> dict:
    """TuneModel's properties as the executor records them (DescribeHyperParameterTuningJob's shape)."""
    summary = {"TrainingJobName": "exec-TuneModel-002", "TunedHyperParameters": values}
    return {"BestTrainingJob": summary, "TrainingJobSummaries": [summary]}


def test_the_runner_resolves_the_best_trials_values_and_keys_the_cache_with_them():
    steps = {step["Name"]: step for step in json.loads(render_definition(local_config()))["Steps"]}
    refit = steps[names.REFIT_STEP]
    output = {"S3Output": {"S3Uri": "s3://local-artifacts/x"}}
    preprocess = {"ProcessingOutputConfig": {"Outputs": {name: output for name in names.PREPROCESS_OUTPUTS}}}
    values = {name: str(index + 2) for index, name in enumerate(sorted(TUNING_RANGES["gbm"]))}
    keys = []
    for learning_rate in ("0.05", "0.1"):
        trial = best_trial({**values, "learning_rate": learning_rate})
        context = Context({"TrainingInstanceType": "ml.m5.xlarge"}, {}, {"PreprocessData": preprocess})
        context.steps[names.TUNE_STEP] = trial
        arguments = resolve(refit["Arguments"], context)
        assert arguments["HyperParameters"]["learning_rate"] == learning_rate
        assert {name: arguments["HyperParameters"][name] for name in values} == trial["BestTrainingJob"][
            "TunedHyperParameters"
        ]
        keys.append(cache_key(refit, arguments))
    assert keys[0] and keys[0] != keys[1]


@pytest.mark.long
def test_a_tiny_run_registers_the_refit_model_trained_on_every_unit(tmp_path, synthetic_dir, small_subset):
    static = tuple((name, value.strip('"')) for name, value in TINY.items())
    options = MainJobOptions(
        work_dir=tmp_path / "work",
        data_dir=synthetic_dir,
        parameters={"TuningMaxJobs": 1, "TuningMaxParallelJobs": 1},
        config_overrides={"static_hyperparameters": static},
        tracking=False,
    )
    workspace, result = run_main_job(options, echo=lambda line: None)
    assert result.status == "Succeeded", result.failure_reason
    (package,) = workspace.registry.list(workspace.config.model_package_group_name)
    artifact = result.step(names.REFIT_STEP).properties["ModelArtifacts"]["S3ModelArtifacts"]
    assert package.model_data_url == artifact
    with tarfile.open(workspace.store.path_for(artifact)) as bundle:
        metadata = json.load(bundle.extractfile("metadata.json"))
    fitted = sorted(unit for units in metadata["fitted_on"].values() for unit in units)
    assert fitted == sorted(small_subset.train["unit"].unique().tolist())  # all 40 training units
    assert metadata["fitted_on"]["holdout"]  # the held-out units too: the official test evaluates
    outputs = result.step(names.EVALUATE_STEP).properties["ProcessingOutputConfig"]["Outputs"]
    evaluation = outputs[names.EVALUATION_OUTPUT]["S3Output"]["S3Uri"] + "/" + names.EVALUATION_FILE
    report = json.loads(workspace.store.read_text(evaluation))
    assert report["protocol"]["name"] == OFFICIAL and report["n_units"] == len(small_subset.test_rul)
    assert report["model"]["final_refit"] is True and report["prediction_intervals"]["n_units"] > 0
    assert metadata["final_refit"]["reused_best_trial"] is True
    page = (Path(result.record_path).parent / "report.html").read_text()
    assert "official test set" in page
    shutil.rmtree(tmp_path / "work" / "jobs", ignore_errors=True)
