"""Command line of the local runner: `python -m local_runner run [options]`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from local_runner.main_job import JobFailed, MainJobOptions, run_main_job


def parse_hyperparameter(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local_runner", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("run", help="run the main job: preprocess -> train -> evaluate")
    run.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get("DATA_DIR") or None,
        help="folder with train_<subset>.txt (default: $DATA_DIR, else synthetic data)",
    )
    run.add_argument("--subset", default=os.environ.get("SUBSET", "FD001"))
    run.add_argument("--work-dir", type=Path, default=Path(".work"))
    run.add_argument("--units", type=int, default=100, help="units of synthetic training data")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--hp",
        type=parse_hyperparameter,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a training hyperparameter (repeatable), e.g. --hp model_family=cnn",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = MainJobOptions(
        work_dir=args.work_dir,
        data_dir=args.data_dir,
        subset=args.subset,
        synthetic_units=args.units,
        seed=args.seed,
        hyperparameters=dict(args.hp),
    )
    started = time.perf_counter()
    try:
        outcome = run_main_job(options)
    except JobFailed as error:
        print(f"main job failed: {error}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - started
    print("\nstep             status      seconds")
    for step in outcome["steps"]:
        print(f"{step.name:<16} {step.status:<11} {step.seconds:7.1f}")
    metrics = outcome["report"]["regression_metrics"]
    capped = outcome["report"]["capped_truth_metrics"]
    print(
        f"\ntest units {outcome['report']['n_units']}: RMSE {metrics['rmse']['value']:.2f} "
        f"(capped truth {capped['rmse']['value']:.2f}), MAE {metrics['mae']['value']:.2f}, "
        f"PHM08 score {metrics['phm08_score']['value']:.1f}"
    )
    print(f"evaluation: {outcome['artifacts'] / 'evaluation' / 'evaluation.json'}")
    print(f"plots: {outcome['artifacts'] / 'evaluation' / 'plots'}")
    print(f"wall time {wall:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
