"""Benchmark of batch scoring: engines per second of `rul.fleet` scoring and ranking a large fleet.

Generates `--engines` in-service engines (default 10,000) with the synthetic generator (`rul.synthetic`:
test units, i.e. trajectories cut part-way through life, as a fleet in service is), trains a gradient-
boosting model on `--train-units` run-to-failure units (the pipeline's default hyperparameters unless
`--quick`), or loads `--model DIR`, then times `score_fleet` + `fleet_table` + `maintenance_list` (what
the batch job does after reading the files) `--repeats` times on `--cores` cores (CPU affinity and the
OpenMP thread count, set before scikit-learn loads). It prints the median and best engines per second
and the process's peak resident memory. `--read` also writes the fleet into 10 files and times
`read_fleet` once (parsing and validation, the job's other cost). The peak memory printed before scoring
includes the training; `--save-model DIR` once, then `--model DIR`, isolates the scoring's.

    python bench/bench_batch.py --engines 10000 --repeats 3 --cores 2
    python bench/bench_batch.py --engines 2000 --quick --read
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "containers"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's command-line options (fleet size, repeats, cores, model to load or train)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-units", type=int, default=2000)
    parser.add_argument("--train-units", type=int, default=100)
    parser.add_argument("--model", type=Path, default=None, help="a model folder (default: train one)")
    parser.add_argument("--save-model", type=Path, default=None, help="save the trained model here")
    parser.add_argument("--quick", action="store_true", help="train a one-member, 50-iteration model")
    parser.add_argument("--read", action="store_true", help="also time read_fleet on 10 written files")
    return parser.parse_args(argv)


def pin_cores(cores: int) -> list[int]:
    """Run on the first `cores` CPUs, with as many OpenMP threads (before scikit-learn is imported)."""
    chosen = sorted(os.sched_getaffinity(0))[:cores]
    os.sched_setaffinity(0, chosen)
    os.environ["OMP_NUM_THREADS"] = str(len(chosen))
    return chosen


def peak_mb() -> float:
    """The process's peak resident memory so far, in megabytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def load_or_train(args: argparse.Namespace):
    """The `RulPredictor` of `--model`, or one trained on synthetic units (smaller with `--quick`)."""
    from rul.hyperparameters import Hyperparameters
    from rul.models import RulPredictor, fit_predictor
    from rul.synthetic import SyntheticSpec, generate

    if args.model is not None:
        return RulPredictor.load(args.model)
    quick = {"feature_set": "stats", "ensemble_size": 1, "max_iter": 50} if args.quick else {}
    train = generate(SyntheticSpec(n_train_units=args.train_units, n_test_units=1, seed=args.seed + 1)).train
    return fit_predictor(train, None, Hyperparameters.from_dict(quick))


def time_read(frame, folder: Path) -> float:
    """Seconds `read_fleet` takes to read `frame` after it is written into 10 files under `folder`."""
    from rul.data import write_trajectories
    from rul.fleet import read_fleet

    units = sorted(frame["unit"].unique())
    for index in range(10):
        part = units[index::10]
        write_trajectories(frame[frame["unit"].isin(part)], folder / f"part-{index}.txt")
    started = time.perf_counter()
    read_fleet(folder)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Time fleet scoring and ranking `--repeats` times and print the engines per second; return 0."""
    args = parse_args(argv)
    cpus = pin_cores(args.cores)
    from rul.fleet import fleet_table, maintenance_list, score_fleet
    from rul.synthetic import SyntheticSpec, generate

    started = time.perf_counter()
    fleet = generate(SyntheticSpec(n_train_units=1, n_test_units=args.engines, seed=args.seed)).test
    assert fleet is not None  # a synthetic subset always has its test units
    made = time.perf_counter() - started
    print(f"fleet: {args.engines} engines, {len(fleet)} rows in {made:.1f}s; peak RSS {peak_mb():.0f} MB")
    started = time.perf_counter()
    predictor = load_or_train(args)
    if args.save_model is not None and args.model is None:
        predictor.save(args.save_model)
    family = predictor.hyperparameters.model_family
    ready = time.perf_counter() - started
    print(f"model: {family}, window {predictor.transformer.window}, ready in {ready:.1f}s")
    print(f"cores: {cpus}; peak RSS before scoring {peak_mb():.0f} MB")
    rates = []
    for repeat in range(args.repeats):
        started = time.perf_counter()
        table = fleet_table(score_fleet(predictor, fleet, args.chunk_units), "bench", "bench")
        ranked = maintenance_list(table, 30)
        seconds = time.perf_counter() - started
        rates.append(args.engines / seconds)
        due = int(ranked["due_within_cycles"].sum())
        print(f"repeat {repeat + 1}: {seconds:.2f}s, {rates[-1]:.0f} engines/s, {due} due")
    print(
        f"median {statistics.median(rates):.0f} engines/s, best {max(rates):.0f} engines/s "
        f"(of {args.repeats}); peak RSS {peak_mb():.0f} MB"
    )
    if args.read:
        with tempfile.TemporaryDirectory(prefix="bench-fleet-") as scratch:
            seconds = time_read(fleet, Path(scratch))
        rate = args.engines / seconds
        print(f"read_fleet of 10 files: {seconds:.1f}s ({rate:.0f} engines/s); peak RSS {peak_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
