"""Benchmark of the history a request needs: the default model's error from a unit's last N cycles only.

The `rich` features (the `auto` choice for one-condition fleets) look back up to 60 cycles and carry
exponentially weighted means restarted at a unit's first row, so a request holding a unit's last N cycles
gets other features than training saw for the same last cycle. For each subset, units are dealt into k
folds by a hash of the unit, as `bench/bench_models.py` deals them; each fold fits the model to register
(`rul.models.fit_final_predictor`, with the bench's calibration share and default budget) on the other
folds' whole units, cuts every held-out unit at `--cuts` random cycles drawn like the official test
set's, and predicts the RUL at each cut from the whole history (cycle 1 to the cut) and from the last N
cycles before it. The held-out predictions of all folds are pooled.

Prints per history: the cuts whose history was longer than N (the only ones N changes), RMSE against the
uncapped truth and with truth and prediction capped at 125, that RMSE against the whole history's in %,
the PHM08 score per 100 cuts, the mean |prediction - whole-history prediction| and the coverage and mean
width of the intervals; then the smallest N whose RMSE is within `--tolerance` % of the whole history's.

    OMP_NUM_THREADS=1 python bench/bench_history.py --data-dir /work/shared/data/cmapss --subsets FD001 FD003
    OMP_NUM_THREADS=1 python bench/bench_history.py --subsets --synthetic
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "containers")]

from bench.bench_models import LITERATURE_CAP, MAX_TEST_RUL, load_training_units, split_rest  # noqa: E402
from rul.hyperparameters import Hyperparameters  # noqa: E402
from rul.intervals import coverage  # noqa: E402
from rul.metrics import phm08_score, rmse  # noqa: E402
from rul.models import RulPredictor, fit_final_predictor  # noqa: E402
from rul.splits import CutProtocol, cut_units, unit_uniform  # noqa: E402

HISTORY_LENGTHS = (30, 40, 60, 90, 120)
WHOLE = "whole"
HEADER = (
    f"{'subset':<9} {'history':>7} {'cuts':>5} {'trimmed %':>9} {'RMSE':>6} {'capped 125':>10} "
    f"{'vs whole %':>10} {'score/100':>9} {'mean |diff|':>11} {'coverage %':>10} {'width':>6}"
)


def last_cycles(frame: pd.DataFrame, cycles: int) -> pd.DataFrame:
    """Each unit's last `cycles` rows (by cycle), as a client sending only its recent history would."""
    ordered = frame.sort_values(["unit", "cycle"], kind="stable")
    keep = ordered.groupby("unit", sort=False).cumcount(ascending=False) < cycles
    return ordered[keep.to_numpy()].reset_index(drop=True)


def unit_folds(frame: pd.DataFrame, seed: int, folds: int) -> pd.Series:
    """Each row's fold: its unit's hash dealt into `folds` folds (bench_models' fold purpose and seed)."""
    fold_of = {unit: int(unit_uniform(unit, seed, "fold") * folds) for unit in frame["unit"].unique()}
    return frame["unit"].map(fold_of)


def predict_histories(
    predictor: RulPredictor, cut: pd.DataFrame, truth: pd.DataFrame, lengths: tuple[int, ...]
) -> pd.DataFrame:
    """Predictions at every cut from the whole history and from each history length, one row per
    (cut, history): unit, history, rul (truth), predicted_rul, whole (the whole-history prediction),
    trimmed (the cut had more cycles than the history) and, for a calibrated model, rul_lower/rul_upper."""
    observed = cut.groupby("unit")["cycle"].size().rename("observed")
    whole = predictor.predict_last(cut).set_index("unit")["predicted_rul"].rename("whole")
    frames = []
    for length in (None, *lengths):
        sent = cut if length is None else last_cycles(cut, length)
        predicted = predictor.predict_last(sent).merge(truth, on="unit").join(whole, on="unit")
        predicted = predicted.join(observed, on="unit")
        predicted["history"] = WHOLE if length is None else str(length)
        predicted["trimmed"] = False if length is None else predicted["observed"] > length
        frames.append(predicted)
    return pd.concat(frames, ignore_index=True)


def fold_predictions(
    frame: pd.DataFrame, subset: str, hp: Hyperparameters, fold: int, options: dict
) -> pd.DataFrame:
    """Fit on every fold but `fold` (whole units) and predict its cut units from each history."""
    folds = unit_folds(frame, options["seed"], options["folds"])
    train, calibration = split_rest(frame[folds != fold], options["seed"])
    predictor = fit_final_predictor(train, calibration, None, hp)
    protocol = CutProtocol(min_cycles=predictor.hyperparameters.window, max_rul=MAX_TEST_RUL[subset])
    held_out = frame[folds == fold].reset_index(drop=True)
    cut, truth = cut_units(held_out, options["seed"] + fold, protocol, draws=options["cuts"])
    predicted = predict_histories(predictor, cut, truth, options["lengths"])
    predicted["feature_set"] = predictor.hyperparameters.feature_set
    return predicted


def summary_row(subset: str, history: str, rows: pd.DataFrame, whole_rmse: float) -> dict:
    """The figures of one history length over every pooled cut."""
    y_true, y_pred = rows["rul"].to_numpy(float), rows["predicted_rul"].to_numpy(float)
    error = rmse(y_true, y_pred)
    return {
        "subset": subset,
        "history": history,
        "cuts": len(rows),
        "trimmed_pct": 100 * float(rows["trimmed"].mean()),
        "rmse": error,
        "rmse_capped_125": rmse(np.minimum(y_true, LITERATURE_CAP), np.minimum(y_pred, LITERATURE_CAP)),
        "rmse_vs_whole_pct": 100 * (error / whole_rmse - 1),
        "score_per_100": phm08_score(y_true, y_pred) * 100 / len(y_true),
        "mean_abs_diff": float(np.mean(np.abs(y_pred - rows["whole"].to_numpy(float)))),
        **interval_figures(rows),
    }


def interval_figures(rows: pd.DataFrame) -> dict[str, float]:
    """Coverage in % and mean width of the intervals, NaN for a model without intervals."""
    if "rul_lower" not in rows.columns:
        return {"coverage": float("nan"), "width": float("nan")}
    lower, upper = rows["rul_lower"].to_numpy(float), rows["rul_upper"].to_numpy(float)
    return {
        "coverage": 100 * coverage(rows["rul"].to_numpy(float), lower, upper),
        "width": float(np.mean(upper - lower)),
    }


def history_table(frame: pd.DataFrame, subset: str, hyperparameters: dict, options: dict) -> list[dict]:
    """One summary row per history (the whole history first, then each of `options["lengths"]`) for the
    default model fitted by k-fold on whole units of `frame`. `options`: seed, folds, cuts, lengths."""
    hp = Hyperparameters.from_dict({"seed": options["seed"], **hyperparameters})
    pooled = []
    for fold in range(options["folds"]):
        started = time.perf_counter()
        pooled.append(fold_predictions(frame, subset, hp, fold, options))
        seconds = time.perf_counter() - started
        print(f"  {subset} fold {fold + 1}/{options['folds']}: {seconds:.0f} s", file=sys.stderr, flush=True)
    predictions = pd.concat(pooled, ignore_index=True)
    groups = dict(tuple(predictions.groupby("history", sort=False)))
    whole_rmse = rmse(groups[WHOLE]["rul"].to_numpy(float), groups[WHOLE]["predicted_rul"].to_numpy(float))
    rows = [summary_row(subset, history, group, whole_rmse) for history, group in groups.items()]
    for row in rows:
        row["feature_set"] = predictions["feature_set"].iloc[0]
    return rows


def smallest_sufficient(rows: list[dict], tolerance_pct: float) -> str:
    """The shortest history whose RMSE is within `tolerance_pct` % of the whole history's (else `whole`)."""
    within = [
        int(row["history"])
        for row in rows
        if row["history"] != WHOLE and row["rmse_vs_whole_pct"] <= tolerance_pct
    ]
    return str(min(within)) if within else WHOLE


def table_line(row: dict) -> str:
    """One printed row."""
    return (
        f"{row['subset']:<9} {row['history']:>7} {row['cuts']:>5} {row['trimmed_pct']:>9.0f} "
        f"{row['rmse']:>6.2f} {row['rmse_capped_125']:>10.2f} {row['rmse_vs_whole_pct']:>+10.1f} "
        f"{row['score_per_100']:>9.0f} {row['mean_abs_diff']:>11.2f} {row['coverage']:>10.1f} "
        f"{row['width']:>6.1f}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "cmapss")
    parser.add_argument("--subsets", nargs="*", default=["FD001"])
    parser.add_argument("--synthetic", action="store_true", help="also run the synthetic default fleet")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--cuts", type=int, default=5, help="cuts per held-out unit")
    parser.add_argument("--lengths", nargs="+", type=int, default=list(HISTORY_LENGTHS))
    parser.add_argument("--tolerance", type=float, default=2.0, help="RMSE rise in %% still counted as equal")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def argument_problem(args: argparse.Namespace, subsets: list[str]) -> str | None:
    """What is wrong with the command line, or None."""
    missing = [s for s in subsets if s != "SYNTHETIC" and not (args.data_dir / f"train_{s}.txt").is_file()]
    if missing:
        return f"no train file for {missing} in {args.data_dir}"
    if not subsets:
        return "no subset to run: name --subsets or give --synthetic"
    if min(args.lengths) < 1 or args.folds < 2 or not 1 <= args.cuts < 1000:
        return (
            "need --lengths >= 1, --folds >= 2 and --cuts in [1, 999], "
            f"got {args.lengths}, {args.folds}, {args.cuts}"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the bench for each subset and print its table and the shortest sufficient history."""
    args = parse_args(argv)
    subsets = [*args.subsets, *(["SYNTHETIC"] if args.synthetic else [])]
    problem = argument_problem(args, subsets)
    if problem:
        print(f"bench_history: {problem}", file=sys.stderr)
        return 2
    options = {"seed": args.seed, "folds": args.folds, "cuts": args.cuts, "lengths": tuple(args.lengths)}
    print(
        f"{args.folds}-fold CV by units, {args.cuts} official-style cuts per held-out unit, seed {args.seed}"
    )
    lines = [HEADER]
    for subset in subsets:
        hyperparameters = {"model_family": "gbm", "cut_max_rul": str(MAX_TEST_RUL[subset])}
        rows = history_table(load_training_units(subset, args.data_dir), subset, hyperparameters, options)
        lines += [table_line(row) for row in rows]
        shortest = smallest_sufficient(rows, args.tolerance)
        print(
            f"{subset} ({rows[0]['feature_set']}): shortest history within {args.tolerance:g} % "
            f"of the whole history's RMSE: {shortest}",
            flush=True,
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
