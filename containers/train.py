"""Training-job entry point: fit the model family named by the hyperparameters, in tuning or refit mode.

Tuning mode (a trial of TuneModel): channels `train` and `validation`, each holding trajectories-*.csv of
whole run-to-failure units (the preprocess step's outputs). The model is fitted on the train units; the
validation units are cut like the official test set (several seeded cuts per unit) and scored at the cut
against the uncapped truth; the figures are printed as `validation:<metric>=<value>` lines for the
tuner's metric regexes and saved to validation_metrics.json.

Refit mode (RefitModel, hyperparameter `final_refit=true`): channels `train`, `validation`,
`holdout` (whole held-out units, or no rows) and `trial` (the best tuning trial's model.tar.gz, which
spares the calibration fit when it was fitted on the same train units with the same hyperparameters);
`rul.models.fit_final_predictor` fits on all of their units (calibrating prediction
intervals on out-of-sample whole-unit residuals first), so the registered model
has seen every training unit. No validation figure is printed: no unit is left out.

Either way the model's metadata.json lists, per channel, the units it was fitted on (`fitted_on`).
With a checkpoint folder (a `CheckpointConfig`, i.e. managed spot training) every fit checkpoints as it
goes, per ensemble member (gbm) or per epoch (cnn, lstm), and a restarted job resumes from those
checkpoints (`rul.checkpoints`); once the model is saved, the job's checkpoints are removed.
With MLFLOW_TRACKING_URI set, the hyperparameters, the training curves (`rul.models`), the validation
metrics and validation_metrics.json are also logged to MLflow (`rul.tracking`).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from rul.checkpoints import checkpointing
from rul.contract import TrainingContext, run_entrypoint
from rul.errors import ConfigurationError
from rul.hyperparameters import Hyperparameters
from rul.metrics import evaluation_report, flat_metrics, format_metrics
from rul.models import RulPredictor, checked_trial, fit_final_predictor, fit_predictor, log
from rul.splits import CutProtocol, cut_units
from rul.tables import extract_model, read_table, read_trajectory_table
from rul.tracking import Tracker, tracked_run

REFIT = "final_refit"
TRAIN, VALIDATION, HOLDOUT, TRIAL = "train", "validation", "holdout", "trial"


def refit_mode(raw: dict[str, object]) -> bool:
    """Pop `final_refit` (not a model hyperparameter) from `raw`; true or false, anything else is an error."""
    value = raw.pop(REFIT, False)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise ConfigurationError(f"hyperparameter {REFIT}={value!r} must be true or false")
    return value


def read_optional_units(directory: Path) -> pd.DataFrame | None:
    """The trajectories of a channel that may hold none (holdout, outside the official protocol)."""
    if not any(directory.glob("trajectories-*.csv")) or read_table(directory, "trajectories").empty:
        return None
    return read_trajectory_table(directory, "trajectories")


def fitted_on(frames: dict[str, pd.DataFrame | None]) -> dict[str, list[int]]:
    """Per channel, the sorted unit ids a model was fitted on."""
    return {
        name: sorted(int(unit) for unit in frame["unit"].unique()) if frame is not None else []
        for name, frame in frames.items()
    }


def validation_metrics(predictor, validation: pd.DataFrame, hyperparameters: Hyperparameters) -> dict:
    """Scores of `predictor` at official-style cuts of the validation units (uncapped truth)."""
    protocol = CutProtocol(min_cycles=hyperparameters.window)
    cut, truth = cut_units(validation, hyperparameters.seed, protocol, draws=hyperparameters.validation_draws)
    predicted = predictor.predict_last(cut).merge(truth, on="unit")
    return evaluation_report(
        predicted["rul"].to_numpy(),
        predicted["predicted_rul"].to_numpy(),
        cap=predictor.hyperparameters.rul_cap,  # as the fit resolved it (`auto` settings)
    )


def tune_trial(context: TrainingContext, hyperparameters: Hyperparameters, tracker: Tracker):
    """Fit on the train units, score on the validation units, print the tuner's metric lines."""
    train = read_trajectory_table(context.channel(TRAIN), "trajectories")
    validation = read_trajectory_table(context.channel(VALIDATION), "trajectories")
    started = time.perf_counter()
    curves = tracker.log_metrics if tracker.enabled else None  # staged scores cost a little
    predictor = fit_predictor(train, validation, hyperparameters, on_metrics=curves)
    fit_seconds = time.perf_counter() - started
    report = validation_metrics(predictor, validation, hyperparameters)
    metrics = {**flat_metrics(report), "fit_seconds": fit_seconds}
    for line in format_metrics("validation", metrics):
        print(line, flush=True)
    tracker.log_metrics({f"validation_{name}": value for name, value in metrics.items()})
    predictor.metadata["validation_metrics"] = metrics
    predictor.metadata["fitted_on"] = fitted_on({TRAIN: train})
    context.output_data_dir.mkdir(parents=True, exist_ok=True)
    (context.output_data_dir / "validation_metrics.json").write_text(json.dumps(report, indent=2))
    tracker.log_artifact(context.output_data_dir / "validation_metrics.json")
    return predictor


def best_trial(
    context: TrainingContext, train: pd.DataFrame, hyperparameters: Hyperparameters
) -> RulPredictor | None:
    """The `trial` channel's model (the best tuning trial's fit on the train units) when it can stand in
    for the calibration fit; None, saying why, when there is none or it cannot."""
    if TRIAL not in context.channels:
        return None
    if hyperparameters.calibration_folds:
        log("the best trial's model is not used: cross-conformal calibration fits every fold anew")
        return None
    with tempfile.TemporaryDirectory(prefix="trial-") as folder:
        try:
            trial = checked_trial(
                RulPredictor.load(extract_model(context.channel(TRIAL), folder)), train, hyperparameters
            )
        # Reusing the trial only saves a fit: any reason it cannot be used means fitting anew, not failing.
        except Exception as error:
            log(f"the best trial's model is not used ({type(error).__name__}: {error}); fitting anew")
            return None
    log("intervals calibrated with the best trial's model (no second fit on the train units)")
    return trial


def final_refit(context: TrainingContext, hyperparameters: Hyperparameters, tracker: Tracker):
    """Fit on the units of every channel (train, validation and, when given, holdout), calibrating the
    intervals with the best trial's model when the `trial` channel holds a usable one."""
    frames = {
        TRAIN: read_trajectory_table(context.channel(TRAIN), "trajectories"),
        VALIDATION: read_trajectory_table(context.channel(VALIDATION), "trajectories"),
        HOLDOUT: read_optional_units(context.channel(HOLDOUT)) if HOLDOUT in context.channels else None,
    }
    units = fitted_on(frames)
    log("final refit on " + ", ".join(f"{len(ids)} {name}" for name, ids in units.items()) + " units")
    started = time.perf_counter()
    curves = tracker.log_metrics if tracker.enabled else None
    trial = best_trial(context, frames[TRAIN], hyperparameters)
    predictor = fit_final_predictor(
        frames[TRAIN], frames[VALIDATION], frames[HOLDOUT], hyperparameters, on_metrics=curves, trial=trial
    )
    seconds = time.perf_counter() - started
    tracker.log_metrics({"refit_seconds": seconds, "refit_units": sum(len(ids) for ids in units.values())})
    predictor.metadata["fitted_on"] = units
    predictor.metadata["final_refit"] = {"fit_seconds": seconds, "reused_best_trial": trial is not None}
    return predictor


def main(argv: list[str] | None = None) -> int:
    """Train the model SageMaker's environment describes (a tuning trial or the final refit); return 0."""
    context = TrainingContext.from_environment()
    raw = dict(context.hyperparameters)
    refit = refit_mode(raw)
    hyperparameters = Hyperparameters.from_dict(raw)
    log(f"hyperparameters: {json.dumps(hyperparameters.as_dict(), sort_keys=True)}, refit {refit}")
    folder = context.checkpoint_dir if context.checkpoints_enabled else None
    with tracked_run("train") as tracker, checkpointing(folder) as checkpoints:
        tracker.log_params(hyperparameters.as_dict() | ({REFIT: True} if refit else {}))
        run = final_refit if refit else tune_trial
        predictor = run(context, hyperparameters, tracker)
        predictor.save(context.model_dir)
        log(f"model saved to {context.model_dir}")
        if checkpoints is not None:
            checkpoints.discard()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_entrypoint(main))
