"""Processing-job entry point: score a trained model on the held-out test units.

Inputs: the model (model.tar.gz or a model folder) under --model-dir, and test/trajectories-*.csv with
test/truth-*.csv under --test-dir. The model predicts at each unit's last observed cycle, as the official
C-MAPSS protocol does. Outputs under --output-dir: evaluation.json (SageMaker's model-quality regression
shape plus capped-truth metrics, error by RUL bucket and per-unit predictions) and plots/*.png.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from rul.contract import processing_dir, run_entrypoint
from rul.errors import DataFormatError
from rul.metrics import evaluation_report, flat_metrics, format_metrics
from rul.models import RulPredictor, log
from rul.plots import write_evaluation_plots
from rul.tables import extract_model, read_table, read_trajectory_table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--test-dir", type=Path, default=None)
    parser.add_argument("--output-dir", type=Path, default=None)
    return parser.parse_args(argv)


def unit_trajectory(predictor: RulPredictor, test: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Predicted and true RUL over the observed life of the longest test unit."""
    unit = int(test.groupby("unit").size().idxmax())
    rows = test[test["unit"] == unit].reset_index(drop=True)
    final_rul = int(truth.loc[truth["unit"] == unit, "rul"].iloc[0])
    true_rul = final_rul + rows["cycle"].max() - rows["cycle"]
    return {
        "unit": unit,
        "cycles": rows["cycle"].to_numpy(),
        "true_rul": true_rul.to_numpy(),
        "predicted_rul": predictor.predict_rows(rows),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_dir = args.model_dir or processing_dir("model")
    test_dir = args.test_dir or processing_dir("test")
    output_dir = args.output_dir or processing_dir("evaluation")
    with tempfile.TemporaryDirectory() as scratch:
        predictor = RulPredictor.load(extract_model(model_dir, scratch))
    test = read_trajectory_table(test_dir, "trajectories")
    truth = read_table(test_dir, "truth")
    predicted = predictor.predict_last(test).merge(truth, on="unit", how="left")
    if predicted["rul"].isna().any():
        missing = predicted.loc[predicted["rul"].isna(), "unit"].tolist()
        raise DataFormatError(test_dir, None, f"no true RUL for test unit(s) {missing[:10]}")
    cap = predictor.hyperparameters.rul_cap
    y_true = predicted["rul"].to_numpy(dtype=np.float64)
    report = evaluation_report(
        y_true, predicted["predicted_rul"].to_numpy(), cap=cap, units=predicted["unit"]
    )
    report["model"] = {
        "model_family": predictor.hyperparameters.model_family,
        "hyperparameters": predictor.hyperparameters.as_dict(),
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    trajectory = unit_trajectory(predictor, test, truth)
    plots = write_evaluation_plots(
        y_true,
        predicted["predicted_rul"].to_numpy(),
        report["error_by_rul_bucket"],
        trajectory,
        output_dir / "plots",
        cap=cap,
    )
    for line in format_metrics("test", flat_metrics(report)):
        print(line, flush=True)
    capped = {name: entry["value"] for name, entry in report["capped_truth_metrics"].items()}
    for line in format_metrics("test_capped", capped):
        print(line, flush=True)
    log(f"evaluation.json and {len(plots)} plots written to {output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_entrypoint(main))
