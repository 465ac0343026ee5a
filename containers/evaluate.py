"""Processing-job entry point: score a trained model on the held-out test units.

Inputs: the model (model.tar.gz or a model folder) under --model-dir, test/trajectories-*.csv with
test/truth-*.csv under --test-dir, and under --champion-dir the model now in service (model.tar.gz with
champion.json naming its version; the folder holds only a placeholder until a first model is approved).
Both models predict at each unit's last observed cycle, as the official C-MAPSS protocol does.

Outputs under --output-dir: evaluation.json (SageMaker's model-quality regression shape plus capped-truth
metrics, error by RUL bucket, per-unit predictions, the champion's metrics on the same units and the
quality-gate verdict that the pipeline's condition step re-checks) and plots/*.png. The gate is
size-independent and fair on every subset: it compares the RMSE and the PHM08 score per 100 units, both
against the true RUL capped at the training cap (a model trained on capped labels cannot predict above the
cap; uncapped FD004 has an RMSE floor near 19.5 for that reason alone); the uncapped figures and the
summed score are reported beside them. `gate.basis` and `gate.description` state this in the report. With
MLFLOW_TRACKING_URI set, the test metrics, the gate verdict, evaluation.json and the plots are also logged to
MLflow (`rul.tracking`).
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
from rul.tracking import Tracker, tracked_run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--test-dir", type=Path, default=None)
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument("--champion-dir", type=Path, default=None)
    parser.add_argument("--rmse-threshold", type=float, default=20.0)
    parser.add_argument("--score-threshold", type=float, default=500.0)
    parser.add_argument("--champion-tolerance", type=float, default=1.0, help="allowed RMSE increase")
    return parser.parse_args(argv)


# Stands for "no limit" when there is no champion: the condition step compares numbers only.
NO_CHAMPION_LIMIT = 1e12
GATE_BASIS = "capped_truth_metrics"
GATE_DESCRIPTION = (
    "The gate compares, against the true RUL capped at the training cap (rul_cap), the RMSE with "
    "rmse_threshold, the PHM08 score per 100 units with score_threshold (the sum over the units grows with "
    "their number) and the RMSE with the champion's RMSE on the same units plus the tolerance."
)


def champion_section(
    champion_dir: Path, test: pd.DataFrame, truth: pd.DataFrame, tolerance: float, cap: float
) -> dict:
    """The champion's metrics on the same test units and the (capped-truth) RMSE a challenger may not
    exceed; `cap` is the challenger's, so both are measured against the same truth."""
    archive = champion_dir / "model.tar.gz"
    if not archive.is_file():
        log(f"no champion model in {champion_dir}: the champion rule passes")
        return {"champion": None, "allowed_rmse": NO_CHAMPION_LIMIT, "tolerance": tolerance}
    described = champion_dir / "champion.json"
    description = json.loads(described.read_text()) if described.is_file() else {}
    with tempfile.TemporaryDirectory() as scratch:
        champion = RulPredictor.load(extract_model(archive, scratch))
    predicted = champion.predict_last(test).merge(truth, on="unit")
    report = evaluation_report(
        predicted["rul"].to_numpy(dtype=np.float64), predicted["predicted_rul"].to_numpy(), cap=cap
    )
    champion_rmse = report[GATE_BASIS]["rmse"]["value"]
    log(f"champion (version {description.get('version', 'unknown')}) RMSE on these units {champion_rmse:.3f}")
    return {
        "champion": {
            **description,
            "regression_metrics": report["regression_metrics"],
            GATE_BASIS: report[GATE_BASIS],
        },
        "allowed_rmse": champion_rmse + tolerance,
        "tolerance": tolerance,
    }


def gate_verdict(report: dict, comparison: dict, rmse_threshold: float, score_threshold: float) -> dict:
    """Which quality rules pass; the pipeline's ConditionStep applies the same rules to these numbers.

    Only size-independent figures on the capped truth are compared, so the verdict does not depend on how
    many test units there are."""
    metrics = report[GATE_BASIS]
    rmse, score = metrics["rmse"]["value"], metrics["phm08_score_per_100_units"]["value"]
    failed = []
    if not rmse <= rmse_threshold:
        failed.append(f"RMSE {rmse:.2f} exceeds the threshold {rmse_threshold:g}")
    if not score <= score_threshold:
        failed.append(f"PHM08 score per 100 units {score:.1f} exceeds the threshold {score_threshold:g}")
    if not rmse <= comparison["allowed_rmse"]:
        failed.append(
            f"RMSE {rmse:.2f} is worse than the champion's by more than {comparison['tolerance']:g} "
            f"(allowed {comparison['allowed_rmse']:.2f})"
        )
    summary = "all quality rules pass" if not failed else "; ".join(failed)
    return {
        "passed": not failed,
        "failed_rules": failed,
        "summary": summary,
        "basis": GATE_BASIS,
        "rul_cap": report["rul_cap"],
        "rmse": rmse,
        "phm08_score_per_100_units": score,
        "rmse_threshold": rmse_threshold,
        "score_threshold": score_threshold,
        "description": GATE_DESCRIPTION,
    }


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


def track_evaluation(tracker: Tracker, args: argparse.Namespace, report: dict, output_dir: Path) -> None:
    """Log the thresholds, the test metrics, the gate verdict and the written files."""
    thresholds = ("rmse_threshold", "score_threshold", "champion_tolerance")
    tracker.log_params(
        {name: getattr(args, name) for name in thresholds} | report["model"]["hyperparameters"]
    )
    metrics = {f"test_{name}": value for name, value in flat_metrics(report).items()}
    metrics |= {
        f"test_capped_{name}": entry["value"] for name, entry in report["capped_truth_metrics"].items()
    }
    if report["champion"]:
        champion = report["champion"]["regression_metrics"]
        metrics |= {f"champion_{name}": entry["value"] for name, entry in champion.items()}
    tracker.log_metrics(
        {**metrics, "test_units": report["n_units"], "gate_passed": int(report["gate"]["passed"])}
    )
    tracker.set_tags({"gate.passed": report["gate"]["passed"], "gate.summary": report["gate"]["summary"]})
    tracker.log_artifact(output_dir / "evaluation.json")
    tracker.log_artifact(output_dir / "plots", "plots")


def evaluate(args: argparse.Namespace, tracker: Tracker) -> None:
    """Score the model and the champion on the test units; write evaluation.json and the plots."""
    model_dir = args.model_dir or processing_dir("model")
    test_dir = args.test_dir or processing_dir("test")
    output_dir = args.output_dir or processing_dir("evaluation")
    champion_dir = args.champion_dir or processing_dir("champion")
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
    comparison = champion_section(champion_dir, test, truth, args.champion_tolerance, cap)
    report["champion"] = comparison.pop("champion")
    report["champion_comparison"] = comparison
    report["gate"] = gate_verdict(report, comparison, args.rmse_threshold, args.score_threshold)
    log(f"quality gate: {report['gate']['summary']}")
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
    track_evaluation(tracker, args, report, output_dir)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tracked_run("evaluate") as tracker:
        evaluate(args, tracker)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_entrypoint(main))
