"""Processing-job entry point: score a trained model on the evaluation units of the preprocess step.

Inputs: the model (model.tar.gz or a model folder) under --model-dir, test/trajectories-*.csv with
test/truth-*.csv and test/protocol-*.json under --test-dir, and under --champion-dir the model now in
service (model.tar.gz with champion.json naming its version; the folder holds only a placeholder until a
first model is approved). Both models predict at each unit's last observed cycle, as the official C-MAPSS
protocol does. The test units are the official test set when the input held test/RUL files, else
held-out training units (`rul.official`); `protocol` in evaluation.json says which produced every number
(and `gate.protocol`), and lists the units shorter than the model's window, which are scored from a
window padded as serving pads it. When the model gives prediction intervals (`rul_lower`, `rul_upper`),
`prediction_intervals` holds their empirical coverage and mean width on these units.

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
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from rul.contract import processing_dir, run_entrypoint
from rul.errors import DataFormatError
from rul.metrics import evaluation_report, flat_metrics, format_metrics
from rul.models import RulPredictor, log
from rul.official import read_protocol
from rul.plots import write_evaluation_plots
from rul.tables import extract_model, read_table, read_trajectory_table
from rul.tracking import Tracker, tracked_run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The evaluation job's options: model, test, output and champion folders and the thresholds."""
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
        "protocol": report.get("protocol", {}).get("name"),  # None: a report made without a protocol
    }


def interval_section(predicted: pd.DataFrame, predictor: RulPredictor, cap: float) -> dict | None:
    """Empirical coverage and mean width of the predicted intervals on these units (None without them)."""
    if not {"rul_lower", "rul_upper"} <= set(predicted.columns):
        return None
    lower, upper = predicted["rul_lower"].to_numpy(), predicted["rul_upper"].to_numpy()
    truth = predicted["rul"].to_numpy(dtype=np.float64)
    capped = np.minimum(truth, cap)
    return {
        "nominal_coverage": getattr(predictor.hyperparameters, "interval_level", None),
        "coverage": float(np.mean((lower <= truth) & (truth <= upper))),
        "coverage_capped_truth": float(np.mean((lower <= capped) & (capped <= upper))),
        "mean_width": float(np.mean(upper - lower)),
        "n_units": len(predicted),
    }


def protocol_section(test_dir: Path, predicted: pd.DataFrame, window: int) -> dict:
    """Which protocol the test units follow, and which units were scored from a padded window."""
    protocol = read_protocol(test_dir)
    padded = sorted(int(unit) for unit in predicted.loc[predicted["padded"].astype(bool), "unit"])
    protocol |= {"n_units": len(predicted), "model_window": window, "padded_units": padded}
    if padded:
        log(
            f"{len(padded)} test unit(s) have fewer than {window} cycles: scored from a padded window, "
            f"as serving does: {padded[:10]}"
        )
    log(f"evaluation protocol: {protocol['name']} ({len(predicted)} units)")
    return protocol


def model_section(predictor: RulPredictor) -> dict:
    """The model's family, hyperparameters and the units it was fitted on (per channel, as counts)."""
    fitted = predictor.metadata.get("fitted_on", {})
    return {
        "model_family": predictor.hyperparameters.model_family,
        "hyperparameters": predictor.hyperparameters.as_dict(),
        "final_refit": "final_refit" in predictor.metadata,
        "training_units": {name: len(units) for name, units in fitted.items()},
    }


def write_json(path: Path, document: dict) -> None:
    """Write `document` atomically: the gate reads this file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2))
    os.replace(temporary, path)


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
    if report["prediction_intervals"]:
        intervals = report["prediction_intervals"]
        metrics |= {f"test_interval_{name}": intervals[name] for name in ("coverage", "mean_width")}
    tracker.log_metrics(
        {**metrics, "test_units": report["n_units"], "gate_passed": int(report["gate"]["passed"])}
    )
    tracker.set_tags(
        {
            "gate.passed": report["gate"]["passed"],
            "gate.summary": report["gate"]["summary"],
            "evaluation.protocol": report["protocol"]["name"],
        }
    )
    tracker.log_artifact(output_dir / "evaluation.json")
    tracker.log_artifact(output_dir / "plots", "plots")


def score(predictor: RulPredictor, test_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The test trajectories, their truth and the predictions at each unit's last cycle with the truth."""
    test = read_trajectory_table(test_dir, "trajectories")
    truth = read_table(test_dir, "truth")
    predicted = predictor.predict_last(test).merge(truth, on="unit", how="left")
    if predicted["rul"].isna().any():
        missing = predicted.loc[predicted["rul"].isna(), "unit"].tolist()
        raise DataFormatError(test_dir, None, f"no true RUL for test unit(s) {missing[:10]}")
    return test, truth, predicted


def evaluate(args: argparse.Namespace, tracker: Tracker) -> None:
    """Score the model and the champion on the test units; write evaluation.json and the plots."""
    test_dir = args.test_dir or processing_dir("test")
    output_dir = args.output_dir or processing_dir("evaluation")
    with tempfile.TemporaryDirectory() as scratch:
        predictor = RulPredictor.load(extract_model(args.model_dir or processing_dir("model"), scratch))
    test, truth, predicted = score(predictor, test_dir)
    cap = predictor.hyperparameters.rul_cap
    y_true = predicted["rul"].to_numpy(dtype=np.float64)
    report = evaluation_report(
        y_true, predicted["predicted_rul"].to_numpy(), cap=cap, units=predicted["unit"]
    )
    report["protocol"] = protocol_section(test_dir, predicted, predictor.transformer.window)
    report["prediction_intervals"] = interval_section(predicted, predictor, cap)
    report["model"] = model_section(predictor)
    champion_dir = args.champion_dir or processing_dir("champion")
    comparison = champion_section(champion_dir, test, truth, args.champion_tolerance, cap)
    report["champion"] = comparison.pop("champion")
    report["champion_comparison"] = comparison
    report["gate"] = gate_verdict(report, comparison, args.rmse_threshold, args.score_threshold)
    log(f"quality gate ({report['protocol']['name']} protocol): {report['gate']['summary']}")
    write_json(output_dir / "evaluation.json", report)
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
    """Evaluate the model (and the champion) in a tracked run and write the evaluation report; return 0."""
    args = parse_args(argv)
    with tracked_run("evaluate") as tracker:
        evaluate(args, tracker)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_entrypoint(main))
