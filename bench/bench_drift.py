"""Benchmark of the drift detector: detection rate on drifted batches, false-positive rate on clean ones.

A batch stands for one day of captured requests: `--units` engines (default 50) each sending its last
`--window` cycles (default 30, the models' window), i.e. 1500 rows, taken from the test units of the
synthetic generator (`rul.synthetic`), which are cut part-way through their life as served engines are.
The baseline is what the pipeline's `DataQualityBaseline` step writes (`rul.monitoring` statistics, whose
KLL sketch is the reference sample) of `--baseline training` rows (whole run-to-failure trajectories of
100 units of seed `--seed`, as in the pipeline) or of `--baseline served` rows (the last windows of
`--baseline-units` cut units of that seed, what the endpoint sees). Clean batches come from the same
generator with other seeds and no drift; drifted batches add a `DriftSpec` (offset, noise or a new
operating condition, several sizes) to the test units. Half the batches are clean, the other half are
dealt round-robin over the drift cases.

`--requests whole` has each engine send its whole history instead of its last window; the drift job
compares only the rows the model read (`rul.model_window.model_rows`), so the rates equal those of
windows. `--compare sent` compares every row sent instead, as the drift job did before, to show why.

    python bench/bench_drift.py --batches 400 --units 50 --baseline training
    python bench/bench_drift.py --batches 200 --baseline served --requests whole --compare sent
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "containers"))

from rul.data import SENSOR_COLUMNS, SETTING_COLUMNS  # noqa: E402
from rul.drift_stats import Baseline, DriftSettings, baseline_from_statistics, compare_features  # noqa: E402
from rul.model_window import model_rows  # noqa: E402
from rul.monitoring import compute_statistics, suggest_constraints  # noqa: E402
from rul.synthetic import DriftSpec, SyntheticSpec, generate  # noqa: E402

FEATURES = [*SETTING_COLUMNS, *SENSOR_COLUMNS]
# (kind, magnitude, sensors): offsets in noise standard deviations, noise as a relative increase of its
# standard deviation, new_condition as the fraction of the way to the unseen operating condition.
DRIFT_CASES = (
    ("offset", 0.5, ()),
    ("offset", 1.0, ()),
    ("offset", 2.0, ("sensor_4", "sensor_11", "sensor_15")),
    ("offset", 3.0, ("sensor_11",)),
    ("noise", 0.5, ()),
    ("noise", 1.0, ()),
    ("noise", 2.0, ()),
    ("new_condition", 0.05, ()),
    ("new_condition", 0.2, ()),
)


def windows(spec: SyntheticSpec, window: int):
    """The last `window` rows of each test unit (one request per unit)."""
    return model_rows(generate(spec).test, window)


def baseline_of(frame) -> Baseline:
    """The drift `Baseline` (statistics and suggested constraints) of the `FEATURES` columns of `frame`."""
    statistics = compute_statistics(frame[FEATURES])
    return baseline_from_statistics(statistics, suggest_constraints(frame[FEATURES], statistics))


def run_batch(baseline: Baseline, batch, settings: DriftSettings) -> tuple[bool, float, int]:
    """Compare `batch` to `baseline`: (any feature drifted, the largest PSI, the drifted feature count)."""
    features = compare_features(baseline, batch, settings)
    drifted = sum(f["drifted"] for f in features)
    return drifted > 0, max(f["psi"] for f in features), drifted


def describe(case: tuple) -> tuple[str, str, str]:
    """The table's (kind, size, sensors) labels of a `DRIFT_CASES` entry."""
    kind, magnitude, sensors = case
    size = {"offset": f"{magnitude:g} sd", "noise": f"+{magnitude:.0%} sd", "new_condition": f"{magnitude:g}"}
    chosen = (
        "all 21" if kind == "new_condition" else (",".join(s[7:] for s in sensors) if sensors else "all 14")
    )
    return kind, size[kind], chosen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's command-line options; fewer than 200 batches is an error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=400, help="total batches, half clean (>= 200)")
    parser.add_argument("--units", type=int, default=50, help="engines per batch")
    parser.add_argument("--window", type=int, default=30, help="cycles per request")
    parser.add_argument("--conditions", type=int, choices=(1, 6), default=1)
    parser.add_argument("--baseline-units", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0, help="seed of the baseline units")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--correction", choices=("bh", "holm"), default="bh")
    parser.add_argument("--psi-threshold", type=float, default=0.1)
    parser.add_argument("--baseline", choices=("training", "served"), default="training")
    parser.add_argument(
        "--requests", choices=("windows", "whole"), default="windows", help="what engines send"
    )
    parser.add_argument(
        "--compare", choices=("model", "sent"), default="model", help="rows the model read, or every row sent"
    )
    args = parser.parse_args(argv)
    if args.batches < 200:
        parser.error("--batches must be at least 200")
    return args


def reference_rows(args: argparse.Namespace):
    """The baseline's rows: whole training trajectories, or served windows of cut units."""
    if args.baseline == "training":
        spec = SyntheticSpec(n_train_units=100, n_test_units=1, n_conditions=args.conditions, seed=args.seed)
        return generate(spec).train
    spec = SyntheticSpec(
        n_train_units=1,
        n_test_units=args.baseline_units,
        n_conditions=args.conditions,
        min_test_cycles=args.window,
        seed=args.seed,
    )
    return windows(spec, args.window)


def batch_rows(args: argparse.Namespace, seed: int, drift: DriftSpec | None = None):
    """One day of requests of `args.units` cut test units, as the drift job compares them."""
    spec = SyntheticSpec(
        n_train_units=1,
        n_test_units=args.units,
        n_conditions=args.conditions,
        min_test_cycles=args.window,
        seed=seed,
        drift=drift,
    )
    sent = windows(spec, args.window) if args.requests == "windows" else generate(spec).test
    return model_rows(sent, args.window) if args.compare == "model" else sent


def print_table(clean: list, results: dict[int, list]) -> None:
    """Print the flagged rate and median PSI and drifted count of the clean batches and each drift case."""
    header = f"{'drift kind':<14} {'size':<10} {'sensors':<12} {'batches':>7} {'flagged':>7} {'rate':>7} "
    print("\n" + header + f"{'med. max PSI':>12} {'med. drifted':>12}")
    rows = [("clean", "-", "-", clean)] + [(*describe(DRIFT_CASES[k]), v) for k, v in results.items()]
    for kind, size, sensors, outcome in rows:
        flags = [flag for flag, _, _ in outcome]
        print(
            f"{kind:<14} {size:<10} {sensors:<12} {len(outcome):>7} {sum(flags):>7} {np.mean(flags):>7.1%} "
            f"{np.median([p for _, p, _ in outcome]):>12.3f} {np.median([d for _, _, d in outcome]):>12.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run clean and drifted batches against one baseline; print detection and false-positive rates."""
    args = parse_args(argv)
    started = time.perf_counter()
    settings = DriftSettings(alpha=args.alpha, correction=args.correction, psi_threshold=args.psi_threshold)
    reference = reference_rows(args)
    baseline = baseline_of(reference)
    clean_count = args.batches // 2
    drifted_count = args.batches - clean_count
    print(
        f"batch: {args.units} units sending {args.requests} (compared: {args.compare} rows, window "
        f"{args.window}); baseline: "
        f"{args.baseline} rows, {len(reference)} of {reference['unit'].nunique()} units (seed {args.seed}); "
        f"{args.conditions} operating condition(s); alpha {args.alpha}, {settings.as_dict()['correction']}, "
        f"PSI >= {args.psi_threshold}"
    )
    clean = [run_batch(baseline, batch_rows(args, 10_000 + i), settings) for i in range(clean_count)]
    results: dict[int, list] = {index: [] for index in range(len(DRIFT_CASES))}
    for i in range(drifted_count):
        index = i % len(DRIFT_CASES)
        batch = batch_rows(args, 20_000 + i, DriftSpec(*DRIFT_CASES[index]))
        results[index].append(run_batch(baseline, batch, settings))
    print_table(clean, results)
    detection = np.mean([flag for outcome in results.values() for flag, _, _ in outcome])
    false_positive = np.mean([flag for flag, _, _ in clean])
    print(
        f"\ndetection rate {detection:.1%} over {drifted_count} drifted batches (target > 90%); "
        f"false-positive rate {false_positive:.1%} over {clean_count} clean batches (target < 5%)"
    )
    print(f"wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
