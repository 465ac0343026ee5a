"""Benchmark of the production model: k-fold cross-validation by whole units, then fit cost by fleet size.

For each subset, units are dealt into k folds by a hash of the unit number. Each fold fits the model to
register (`rul.models.fit_final_predictor`: 15% of the other folds' units calibrate the prediction
intervals, then a refit on all of them), cuts every held-out unit at a random cycle drawn like the official
test set's (at least the window length kept, true RUL at most the subset's official maximum), predicts
the RUL and its interval at the cut and compares them with the true, uncapped RUL. Each fold runs in a
fresh process so that its peak memory is its own.

Prints per subset and family the mean and spread over folds of RMSE (uncapped and capped truth), the
PHM08 score per 100 units, the coverage and mean width of the intervals, the fit time and peak memory.
Then, unless `--fleet-sizes` is empty, the fit time and peak memory of the same final fit on synthetic
fleets of growing size, each in a child process stopped after `--fleet-timeout` seconds. `--markdown`
writes both tables as the README's benchmark block.

    python bench/bench_models.py --subsets FD001 FD004 --hp FD004:rul_cap=130 --markdown bench.md
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Largest true RUL at the cut in each official test set (data/cmapss/README.md).
MAX_TEST_RUL = {"FD001": 145, "FD002": 194, "FD003": 145, "FD004": 195, "SYNTHETIC": 150}
CALIBRATION_SHARE = 0.15
# The literature's capped yardstick: truth and prediction both capped at 125 whatever the model's cap.
LITERATURE_CAP = 125.0
HEADER = (
    f"{'subset':<9} {'model':<5} {'RMSE':>11} {'RMSE capped':>11} {'capped 125':>11} {'score/100u':>11} "
    f"{'coverage %':>10} {'width':>6} {'fit s':>6} {'cpu s':>6} {'peak MB':>7}"
)


def load_training_units(subset: str, data_dir: Path):
    """The training trajectories of a C-MAPSS subset, or of the synthetic default fleet."""
    from rul.data import read_trajectories
    from rul.synthetic import SyntheticSpec, generate

    if subset == "SYNTHETIC":
        return generate(SyntheticSpec()).train
    return read_trajectories(data_dir / f"train_{subset}.txt")


def split_rest(rest, seed: int):
    """The other folds' units: (training units, calibration units) by a hash of the unit."""
    from rul.splits import unit_uniform

    calibration = rest["unit"].map(
        lambda unit: unit_uniform(unit, seed, "early-stopping") < CALIBRATION_SHARE
    )
    return rest[~calibration].reset_index(drop=True), rest[calibration].reset_index(drop=True)


def run_fold(job: dict) -> dict:
    """Fit on all folds but one and score the cut units of the held-out fold (runs in a child process)."""
    sys.path[:0] = [str(PROJECT_ROOT / "containers"), str(PROJECT_ROOT / "bench")]
    from rul.hyperparameters import Hyperparameters
    from rul.intervals import coverage
    from rul.metrics import phm08_score, rmse
    from rul.models import fit_final_predictor, fit_predictor
    from rul.splits import CutProtocol, cut_units, unit_uniform

    if job.get("learner", "sklearn") == "lightgbm":
        importlib.import_module("lightgbm_learner").install()
    frame = load_training_units(job["subset"], Path(job["data_dir"]))
    hp = Hyperparameters.from_dict({"seed": job["seed"], **job["hyperparameters"]})
    fold_of = {
        unit: int(unit_uniform(unit, job["seed"], "fold") * job["folds"]) for unit in frame["unit"].unique()
    }
    folds = frame["unit"].map(fold_of)
    train, calibration = split_rest(frame[folds != job["fold"]], job["seed"])
    # As the pipeline's refit can: the tuning trial (this same fit on the training units) calibrates.
    trial_started = time.process_time()
    trial = fit_predictor(train, calibration, hp) if job.get("reuse_trial") else None
    trial_cpu_seconds = time.process_time() - trial_started
    started, cpu_started = time.perf_counter(), time.process_time()
    predictor = fit_final_predictor(train, calibration, None, hp, trial=trial)
    fit_seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    protocol = CutProtocol(min_cycles=hp.window, max_rul=MAX_TEST_RUL[job["subset"]])
    cut, truth = cut_units(frame[folds == job["fold"]], job["seed"] + job["fold"], protocol)
    predicted = predictor.predict_last(cut).merge(truth, on="unit")
    y_true, y_pred = predicted["rul"].to_numpy(float), predicted["predicted_rul"].to_numpy()
    lower, upper = predicted["rul_lower"].to_numpy(), predicted["rul_upper"].to_numpy()
    return {
        "rmse": rmse(y_true, y_pred),
        "rmse_capped": rmse(np.minimum(y_true, predictor.hyperparameters.rul_cap), y_pred),
        "rmse_capped_125": rmse(np.minimum(y_true, LITERATURE_CAP), np.minimum(y_pred, LITERATURE_CAP)),
        "resolved": {
            k: predictor.hyperparameters.as_dict()[k] for k in ("feature_set", "rul_cap", "inner_cap")
        },
        "learner": job.get("learner", "sklearn"),
        "score_per_100": phm08_score(y_true, y_pred) * 100 / len(y_true),
        "coverage": 100 * coverage(y_true, lower, upper),
        "width": float(np.mean(upper - lower)),
        "fit_seconds": fit_seconds,
        "fit_cpu_seconds": cpu_seconds,
        "trial_cpu_seconds": trial_cpu_seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "units": len(y_true),
    }


def fleet_fit(job: dict, results) -> None:
    """Fit the final model to a synthetic fleet of `units` units; its cost goes to `results` (a child)."""
    sys.path.insert(0, str(PROJECT_ROOT / "containers"))
    from rul.hyperparameters import Hyperparameters
    from rul.models import fit_final_predictor
    from rul.synthetic import SyntheticSpec, generate

    frame = generate(SyntheticSpec(n_train_units=job["units"], n_test_units=1, seed=job["seed"])).train
    train, calibration = split_rest(frame, job["seed"])
    started = time.perf_counter()
    fit_final_predictor(train, calibration, None, Hyperparameters.from_dict(job["hyperparameters"]))
    results.put(
        {
            "fit_seconds": time.perf_counter() - started,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rows": len(frame),
        }
    )


def fleet_curve(sizes: list[int], hyperparameters: dict, seed: int, timeout: float) -> list[dict]:
    """One child process per fleet size; a fit still running after `timeout` seconds is stopped."""
    context = multiprocessing.get_context("spawn")
    rows = []
    for units in sizes:
        results = context.Queue()
        job = {"units": units, "seed": seed, "hyperparameters": hyperparameters}
        child = context.Process(target=fleet_fit, args=(job, results))
        child.start()
        child.join(timeout)
        if child.is_alive():
            child.terminate()
            child.join()
            rows.append({"units": units, "status": f"stopped after {timeout:.0f} s"})
        elif child.exitcode != 0:
            rows.append({"units": units, "status": f"failed (exit code {child.exitcode})"})
        else:
            rows.append({"units": units, "status": "ok", **results.get(timeout=10)})
        print(f"  fleet of {units} units: {fleet_line(rows[-1])}", flush=True)
    return rows


def fleet_line(row: dict) -> str:
    """One row of the fleet-size table."""
    if row["status"] != "ok":
        return f"{row['units']:>6} {row['status']}"
    return f"{row['units']:>6} {row['rows']:>9} {row['fit_seconds']:>7.1f} {row['peak_mb']:>8.0f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "cmapss")
    parser.add_argument("--subsets", nargs="*", default=["FD001", "FD002", "FD003", "FD004"])
    parser.add_argument("--families", nargs="+", default=["gbm"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", action="store_true", help="also run the synthetic default")
    parser.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="[SUBSET:]NAME=VALUE",
        help="extra hyperparameter, for every subset or (SUBSET:) one",
    )
    parser.add_argument(
        "--reuse-trial",
        action="store_true",
        help="fit the tuning trial first, untimed, and let the final fit calibrate on it (no second fit)",
    )
    parser.add_argument(
        "--learner",
        choices=("sklearn", "lightgbm"),
        default="sklearn",
        help="the gbm family's boosting library (lightgbm: bench/lightgbm_learner.py)",
    )
    parser.add_argument("--fleet-sizes", nargs="*", type=int, default=[100, 400, 1600, 6400])
    parser.add_argument("--fleet-timeout", type=float, default=900.0, help="seconds per fleet size")
    parser.add_argument("--json", type=Path, help="also write every fold's figures to this file")
    parser.add_argument("--markdown", type=Path, help="also write the README benchmark block here")
    parser.add_argument(
        "--render", nargs="+", type=Path, metavar="JSON", help="only print (and --markdown) saved --json runs"
    )
    return parser.parse_args(argv)


def rendered_runs(paths: list[Path]) -> tuple[list[str], list[dict], str]:
    """Summary lines, fleet rows and fold counts ("3", or "2/3" when they differ) of runs saved with
    `--json` (several runs may be merged)."""
    lines, fleet, folds = [HEADER], [], set()
    groups: dict[tuple[str, str], list[dict]] = {}
    for path in paths:
        saved = json.loads(path.read_text())
        fleet += saved["fleet"]
        for record in saved["folds"]:
            reuse, learner = record.get("reuse_trial", False), record.get("learner", "sklearn")
            settings = json.dumps([record["hyperparameters"], reuse, learner], sort_keys=True)
            groups.setdefault((record["subset"], settings), []).append(record)
            folds.add(record["folds"])
    for (subset, _), records in groups.items():
        hp = records[0]["hyperparameters"]
        label = " ".join(f"{k}={v}" for k, v in hp.items() if k not in ("model_family", "cut_max_rul"))
        label += run_notes(records[0].get("learner", "sklearn"), records[0].get("reuse_trial", False))
        lines.append(summary_line(subset, hp["model_family"], records, label + resolved_note(records)))
    return lines, sorted(fleet, key=lambda row: row["units"]), "/".join(map(str, sorted(folds)))


def resolved_note(results: list[dict]) -> str:
    """The feature set and caps the fit resolved (`auto` defaults), as the first fold recorded them."""
    resolved = results[0].get("resolved")
    if not resolved:
        return ""
    return f" [used {resolved['feature_set']}, cap {resolved['rul_cap']:g}/{resolved['inner_cap']:g}]"


def run_notes(learner: str, reuse_trial: bool) -> str:
    """The label's tail: a learner other than scikit-learn's, and whether the refit reused the trial."""
    notes = f" learner={learner}" if learner != "sklearn" else ""
    return notes + (" (refit reuses the trial)" if reuse_trial else "")


def subset_hyperparameters(items: list[str], subset: str) -> dict[str, str]:
    """`--hp` values for one subset: general ones, then the subset's own (`FD004:rul_cap=130`)."""
    general: dict[str, str] = {}
    specific: dict[str, str] = {}
    for item in items:
        target, _, assignment = item.rpartition(":")
        name, _, value = assignment.partition("=")
        if target in ("", subset):
            (specific if target else general)[name] = value
    return {**general, **specific}


def summary_line(subset: str, family: str, results: list[dict], label: str = "") -> str:
    """One row of the CV table: mean and spread over folds, median seconds, largest peak."""

    def spread(key: str, digits: int = 1) -> str:
        values = np.array([result.get(key, np.nan) for result in results])
        return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"

    coverage = np.mean([result["coverage"] for result in results])
    width = np.mean([result["width"] for result in results])
    fit = np.median([result["fit_seconds"] for result in results])
    # CPU seconds (every thread of the fold's process) are less sensitive to the machine's load than wall.
    cpu = np.median([result.get("fit_cpu_seconds", np.nan) for result in results])
    peak = np.max([result["peak_mb"] for result in results])
    line = (
        f"{subset:<9} {family:<5} {spread('rmse'):>11} {spread('rmse_capped'):>11} "
        f"{spread('rmse_capped_125'):>11} "
        f"{spread('score_per_100', 0):>11} {coverage:>10.1f} {width:>6.1f} "
        f"{fit:>6.1f} {cpu:>6.1f} {peak:>7.0f}"
    )
    return f"{line}   {label}" if label else line


def bench_command(folds: int | str, hp: list[str]) -> str:
    """The command line quoted above a rendered table."""
    return " ".join(["python bench/bench_models.py", f"--folds {folds}", *(f"--hp {item}" for item in hp)])


def markdown_block(command: str, folds: int | str, lines: list[str], fleet: list[dict]) -> str:
    """The README/docs block: both tables with the date and the command that measured them."""
    day = datetime.now(UTC).date().isoformat()
    text = [
        f"Measured {day} with `{command}`",
        f"({folds}-fold CV by units; RMSE against the uncapped truth and against truth capped at the model's",
        "cap; PHM08 score per 100 units; coverage and mean width of the 90 % intervals; median wall and CPU",
        "seconds of a fold's final fit and peak MB of the fold's process):",
        "",
        "```",
        *lines,
        "```",
    ]
    if fleet:
        text += ["", "Cost of the same final fit by synthetic fleet size (rows before thinning):", "", "```"]
        text += [f"{'units':>6} {'rows':>9} {'fit s':>7} {'peak MB':>8}", *map(fleet_line, fleet), "```"]
    return "\n".join(text) + "\n"


def run_subset(args, context, subset: str, family: str, records: list[dict]) -> str:
    """Every fold of one subset and family, each in a fresh process; its summary line."""
    hyperparameters = {"model_family": family, **subset_hyperparameters(args.hp, subset)}
    hyperparameters.setdefault("cut_max_rul", str(MAX_TEST_RUL[subset]))
    results = []
    for fold in range(args.folds):
        job = {
            "subset": subset,
            "data_dir": str(args.data_dir),
            "fold": fold,
            "folds": args.folds,
            "seed": args.seed,
            "hyperparameters": hyperparameters,
            "reuse_trial": args.reuse_trial,
            "learner": args.learner,
        }
        with context.Pool(1, maxtasksperchild=1) as pool:
            result = pool.apply(run_fold, (job,))
        results.append(result)
        records.append({**job, **result})
        save_json(args.json, records, [])  # so far: a stopped run keeps every fold it measured
        print(
            f"  {subset} {family} fold {fold + 1}/{args.folds}: RMSE {result['rmse']:.2f}, "
            f"score/100u {result['score_per_100']:.0f}, coverage {result['coverage']:.0f}%, "
            f"fit {result['fit_seconds']:.1f}s ({result['fit_cpu_seconds']:.1f} CPU s; "
            f"trial {result['trial_cpu_seconds']:.1f} CPU s)",
            flush=True,
        )
    label = " ".join(
        f"{k}={v}" for k, v in hyperparameters.items() if k not in ("model_family", "cut_max_rul")
    )
    label += run_notes(args.learner, args.reuse_trial)
    return summary_line(subset, family, results, label + resolved_note(results))


def save_json(path: Path | None, records: list[dict], fleet: list[dict]) -> None:
    """Write the folds and fleet rows measured so far (atomically) when `--json` was given."""
    if path is not None:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps({"folds": records, "fleet": fleet}, indent=2))
        temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Run the bench (or `--render` saved runs); the exit code."""
    args = parse_args(argv)
    if args.render:
        lines, fleet, folds = rendered_runs(args.render)
        print("\n".join(lines))
        if args.markdown:
            command = f"{bench_command(folds, args.hp)} --render <runs saved with --json>"
            args.markdown.write_text(markdown_block(command, folds, lines, fleet))
        return 0
    subsets = [*args.subsets, *(["SYNTHETIC"] if args.synthetic else [])]
    missing = [s for s in subsets if s != "SYNTHETIC" and not (args.data_dir / f"train_{s}.txt").is_file()]
    if missing:
        print(f"no train file for {missing} in {args.data_dir}", file=sys.stderr)
        return 1
    context = multiprocessing.get_context("spawn")
    lines = [HEADER]
    records: list[dict] = []
    print(f"{args.folds}-fold CV by units, official-style cuts, seed {args.seed}", flush=True)
    for subset in subsets:
        for family in args.families:
            lines.append(run_subset(args, context, subset, family, records))
            print(lines[-1], flush=True)
            save_json(args.json, records, [])  # so far: a stopped run keeps what it measured
    general = subset_hyperparameters(args.hp, "SYNTHETIC")
    fleet = fleet_curve(args.fleet_sizes, general, args.seed, args.fleet_timeout) if args.fleet_sizes else []
    print("\n" + "\n".join(lines))
    if fleet:
        print(f"\n{'units':>6} {'rows':>9} {'fit s':>7} {'peak MB':>8}\n" + "\n".join(map(fleet_line, fleet)))
    save_json(args.json, records, fleet)
    if args.markdown:
        args.markdown.write_text(markdown_block(bench_command(args.folds, args.hp), args.folds, lines, fleet))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(PROJECT_ROOT / "containers"))
    raise SystemExit(main())
