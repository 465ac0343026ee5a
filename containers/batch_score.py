"""Processing-job entry point of the batch-scoring pipeline: score every engine with the champion, rank them.

`python3 batch_score.py [--fleet-dir D] [--champion-dir D] [--output-dir D] --threshold-cycles N
[--execution-id ID]` loads the model in service from the champion folder (`model.tar.gz` and
`champion.json` naming its version, as the deploy-on-approval function and `registry approve` leave them;
a folder holding only the placeholder means no model was approved yet, which fails the job with that
message), reads the fleet folder with `rul.fleet.read_fleet`, scores and ranks it, and writes
`fleet_predictions.csv`, `maintenance_list.csv` and `summary.json` to the output folder, each atomically
(a temporary file renamed into place). The folders default to the processing-job paths of
`rul.contract` (`/opt/ml/processing/input/fleet`, `.../input/champion`, `/opt/ml/processing/output`); a
bad row, a unit in two files or an empty fleet exits 1 with a message naming the file and the line.
The file names and the threshold bound are spelled again in `pipeline_steps/batch_names.py`, which
this container cannot import; a test keeps them equal.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from rul.contract import processing_dir, run_entrypoint
from rul.errors import ConfigurationError, ModelArtifactError
from rul.fleet import (
    check_whole_histories,
    fleet_summary,
    fleet_table,
    maintenance_list,
    read_fleet,
    score_fleet,
)
from rul.inference import load_model
from rul.tables import extract_model

PREDICTIONS_FILE = "fleet_predictions.csv"
MAINTENANCE_FILE = "maintenance_list.csv"
SUMMARY_FILE = "summary.json"
MAX_THRESHOLD_CYCLES = 1000
MODEL_FILE = "model.tar.gz"
CHAMPION_FILE = "champion.json"
TOP = 10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, its bounds checked (`ConfigurationError` naming the argument)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleet-dir", type=Path, default=None)
    parser.add_argument("--champion-dir", type=Path, default=None)
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument("--threshold-cycles", type=int, required=True)
    parser.add_argument("--execution-id", default="")
    parser.add_argument("--chunk-units", type=int, default=2000, help="units predicted per block")
    args = parser.parse_args(argv)
    if not 0 <= args.threshold_cycles <= MAX_THRESHOLD_CYCLES:
        raise ConfigurationError(
            f"--threshold-cycles must be 0-{MAX_THRESHOLD_CYCLES}, got {args.threshold_cycles}"
        )
    if args.chunk_units < 1:
        raise ConfigurationError(f"--chunk-units must be at least 1, got {args.chunk_units}")
    return args


def champion_version(champion_dir: Path) -> str:
    """The version champion.json names; a folder without a model means none was approved yet."""
    if not (champion_dir / MODEL_FILE).is_file():
        raise ModelArtifactError(
            f"{champion_dir} holds no {MODEL_FILE}: no model version has been approved yet, "
            "so there is no model in service to score the fleet with"
        )
    described = champion_dir / CHAMPION_FILE
    try:
        return str(json.loads(described.read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelArtifactError(f"{described} does not name the champion's version: {error}") from None


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def top_lines(ranked: pd.DataFrame, count: int = TOP) -> list[str]:
    """The first `count` engines of the maintenance list as a printed table, header first."""
    lines = [f"{'rank':>4} {'unit':>8} {'predicted_rul':>13} {'rul_lower':>9} {'due':>5}"]
    for row in ranked.head(count).itertuples(index=False):
        lower = f"{row.rul_lower:9.1f}" if hasattr(row, "rul_lower") else f"{'-':>9}"
        lines.append(
            f"{row.rank:>4} {row.unit:>8} {row.predicted_rul:13.1f} {lower} {row.due_within_cycles!s:>5}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Score and rank the fleet with the champion and write the three files; 0 on success."""
    args = parse_args(argv)
    champion_dir = args.champion_dir or processing_dir("input", "champion")
    output = args.output_dir or processing_dir("output")
    version = champion_version(champion_dir)
    fleet = read_fleet(args.fleet_dir or processing_dir("input", "fleet"))
    print(
        f"fleet: {fleet.units} units, {len(fleet.frame)} rows, data version {fleet.data_version}", flush=True
    )
    with tempfile.TemporaryDirectory(prefix="champion-") as scratch:
        model = load_model(extract_model(champion_dir / MODEL_FILE, Path(scratch)))
    check_whole_histories(fleet, model)
    table = fleet_table(
        score_fleet(model.predictor, fleet.frame, args.chunk_units), version, fleet.data_version
    )
    ranked = maintenance_list(table, args.threshold_cycles)
    summary = fleet_summary(fleet, table, ranked, args.threshold_cycles)
    summary.update(execution_id=args.execution_id, model_family=model.model_family)
    write_atomically(output / PREDICTIONS_FILE, table.to_csv(index=False))
    write_atomically(output / MAINTENANCE_FILE, ranked.to_csv(index=False))
    write_atomically(output / SUMMARY_FILE, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(
        f"scored {summary['units']} units with model version {version}; {summary['due_units']} due within "
        f"{args.threshold_cycles} cycles (ranked by {summary['ranked_by']})",
        flush=True,
    )
    print("\n".join(top_lines(ranked)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_entrypoint(main))
