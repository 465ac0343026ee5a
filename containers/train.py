"""Training-job entry point: fit the model family named by the hyperparameters and score it.

Channels: `train` and `validation`, each holding trajectories-*.csv of whole run-to-failure units (the
preprocess step's outputs). The validation units are cut like the official test set (several seeded cuts
per unit) and scored at the cut against the uncapped truth; the figures are printed as
`validation:<metric>=<value>` lines for the tuner's metric regexes and saved to validation_metrics.json.
With MLFLOW_TRACKING_URI set, the hyperparameters, the training curves (`rul.models`), the validation
metrics and validation_metrics.json are also logged to MLflow (`rul.tracking`).
"""

from __future__ import annotations

import json
import time

from rul.contract import TrainingContext, run_entrypoint
from rul.hyperparameters import Hyperparameters
from rul.metrics import evaluation_report, flat_metrics, format_metrics
from rul.models import fit_predictor, log
from rul.splits import CutProtocol, cut_units
from rul.tables import read_trajectory_table
from rul.tracking import tracked_run


def main(argv: list[str] | None = None) -> int:
    context = TrainingContext.from_environment()
    hyperparameters = Hyperparameters.from_dict(context.hyperparameters)
    log(f"hyperparameters: {json.dumps(hyperparameters.as_dict(), sort_keys=True)}")
    with tracked_run("train") as tracker:
        tracker.log_params(hyperparameters.as_dict())
        train = read_trajectory_table(context.channel("train"), "trajectories")
        validation = read_trajectory_table(context.channel("validation"), "trajectories")
        started = time.perf_counter()
        curves = tracker.log_metrics if tracker.enabled else None  # staged scores cost a little
        predictor = fit_predictor(train, validation, hyperparameters, on_metrics=curves)
        fit_seconds = time.perf_counter() - started
        protocol = CutProtocol(min_cycles=hyperparameters.window)
        cut, truth = cut_units(
            validation, hyperparameters.seed, protocol, draws=hyperparameters.validation_draws
        )
        predicted = predictor.predict_last(cut).merge(truth, on="unit")
        report = evaluation_report(
            predicted["rul"].to_numpy(), predicted["predicted_rul"].to_numpy(), cap=hyperparameters.rul_cap
        )
        metrics = {**flat_metrics(report), "fit_seconds": fit_seconds}
        for line in format_metrics("validation", metrics):
            print(line, flush=True)
        tracker.log_metrics({f"validation_{name}": value for name, value in metrics.items()})
        predictor.metadata["validation_metrics"] = metrics
        predictor.save(context.model_dir)
        context.output_data_dir.mkdir(parents=True, exist_ok=True)
        (context.output_data_dir / "validation_metrics.json").write_text(json.dumps(report, indent=2))
        tracker.log_artifact(context.output_data_dir / "validation_metrics.json")
        log(f"model saved to {context.model_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_entrypoint(main))
