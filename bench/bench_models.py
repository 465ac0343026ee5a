"""Benchmark of the model families: k-fold cross-validation by whole units, official-style test cuts.

For each subset, units are dealt into k folds by a hash of the unit number. Each fold trains on the other
folds (15% of those units held back for early stopping and the ensemble's progress line), cuts every
held-out unit at a random cycle drawn like the official test set's (at least the window length kept, true
RUL at most the subset's official maximum), predicts the RUL at the cut and compares it with the true,
uncapped RUL. Each fold runs in a fresh process so that its peak memory is its own.

Prints one line per subset and family: mean and spread over folds of RMSE (uncapped and capped truth) and
of the PHM08 score per 100 units (the official test sets have ~100 units per 100), the fit time, the peak
memory and the inference time per unit.

    python bench/bench_models.py --subsets FD001 FD004 --families gbm cnn lstm --folds 5 --synthetic
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Largest true RUL at the cut in each official test set (data/cmapss/README.md).
MAX_TEST_RUL = {"FD001": 145, "FD002": 194, "FD003": 145, "FD004": 195, "SYNTHETIC": 150}


def load_training_units(subset: str, data_dir: Path):
    from rul.data import read_trajectories
    from rul.synthetic import SyntheticSpec, generate

    if subset == "SYNTHETIC":
        return generate(SyntheticSpec()).train
    return read_trajectories(data_dir / f"train_{subset}.txt")


def run_fold(job: dict) -> dict:
    """Train on all folds but one and score the cut units of the held-out fold (runs in a child process)."""
    sys.path.insert(0, str(PROJECT_ROOT / "containers"))
    from rul.hyperparameters import Hyperparameters
    from rul.metrics import phm08_score, rmse
    from rul.models import fit_predictor
    from rul.splits import CutProtocol, cut_units, unit_uniform

    frame = load_training_units(job["subset"], Path(job["data_dir"]))
    hp = Hyperparameters.from_dict({"seed": job["seed"], **job["hyperparameters"]})
    fold_of = {
        unit: int(unit_uniform(unit, job["seed"], "fold") * job["folds"]) for unit in frame["unit"].unique()
    }
    folds = frame["unit"].map(fold_of)
    held_out = frame[folds == job["fold"]]
    rest = frame[folds != job["fold"]]
    early = rest["unit"].map(lambda unit: unit_uniform(unit, job["seed"], "early-stopping") < 0.15)
    started = time.perf_counter()
    predictor = fit_predictor(rest[~early].reset_index(drop=True), rest[early].reset_index(drop=True), hp)
    fit_seconds = time.perf_counter() - started
    protocol = CutProtocol(min_cycles=hp.window, max_rul=MAX_TEST_RUL[job["subset"]])
    cut, truth = cut_units(held_out, job["seed"] + job["fold"], protocol)
    started = time.perf_counter()
    predicted = predictor.predict_last(cut).merge(truth, on="unit")
    infer_ms = (time.perf_counter() - started) * 1000 / len(predicted)
    y_true, y_pred = predicted["rul"].to_numpy(float), predicted["predicted_rul"].to_numpy()
    return {
        "rmse": rmse(y_true, y_pred),
        "rmse_capped": rmse(np.minimum(y_true, hp.rul_cap), y_pred),
        "score_per_100": phm08_score(y_true, y_pred) * 100 / len(y_true),
        "fit_seconds": fit_seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "infer_ms_per_unit": infer_ms,
        "units": len(y_true),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "cmapss")
    parser.add_argument("--subsets", nargs="+", default=["FD001", "FD004"])
    parser.add_argument("--families", nargs="+", default=["gbm", "cnn", "lstm"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", action="store_true", help="also run the synthetic default")
    parser.add_argument(
        "--hp", action="append", default=[], metavar="NAME=VALUE", help="extra hyperparameter"
    )
    parser.add_argument("--json", type=Path, help="also write every fold's figures to this file")
    return parser.parse_args(argv)


def summary_line(subset: str, family: str, results: list[dict]) -> str:
    def spread(key: str, digits: int = 1) -> str:
        values = np.array([result[key] for result in results])
        return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"

    fit = np.mean([result["fit_seconds"] for result in results])
    peak = np.max([result["peak_mb"] for result in results])
    infer = np.mean([result["infer_ms_per_unit"] for result in results])
    return (
        f"{subset:<9} {family:<5} {spread('rmse'):>13} {spread('rmse_capped'):>13} "
        f"{spread('score_per_100', 0):>13} {fit:>7.1f} {peak:>8.0f} {infer:>9.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.hp)
    subsets = [*args.subsets, *(["SYNTHETIC"] if args.synthetic else [])]
    missing = [s for s in subsets if s != "SYNTHETIC" and not (args.data_dir / f"train_{s}.txt").is_file()]
    if missing:
        print(f"no train file for {missing} in {args.data_dir}", file=sys.stderr)
        return 1
    context = multiprocessing.get_context("spawn")
    header = f"{'subset':<9} {'model':<5} {'RMSE':>13} {'RMSE capped':>13} {'score/100u':>13} {'fit s':>7} "
    header += f"{'peak MB':>8} {'ms/unit':>9}"
    lines, records = [header], []
    print(f"{args.folds}-fold CV by units, official-style cuts, seed {args.seed}", flush=True)
    for subset in subsets:
        for family in args.families:
            results = []
            for fold in range(args.folds):
                job = {
                    "subset": subset,
                    "data_dir": str(args.data_dir),
                    "fold": fold,
                    "folds": args.folds,
                    "seed": args.seed,
                    "hyperparameters": {"model_family": family, **extra},
                }
                with context.Pool(1, maxtasksperchild=1) as pool:
                    result = pool.apply(run_fold, (job,))
                results.append(result)
                records.append({**job, **result})
                print(
                    f"  {subset} {family} fold {fold + 1}/{args.folds}: RMSE {result['rmse']:.2f}, "
                    f"score/100u {result['score_per_100']:.0f}, fit {result['fit_seconds']:.1f}s",
                    flush=True,
                )
            lines.append(summary_line(subset, family, results))
            print(lines[-1], flush=True)
    print("\n" + "\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(records, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(PROJECT_ROOT / "containers"))
    raise SystemExit(main())
