"""Scoring the whole fleet with the model in service, and ranking the engines for inspection.

The batch-scoring job's pure middle. `read_fleet` reads every file of a folder (C-MAPSS rows: unit, cycle,
3 settings, 21 sensors; whitespace- or comma-separated, an optional header line, exactly as
`rul.inference.parse_csv` reads a request), names the file and line of any bad row, refuses a unit whose
rows are split over two files and an empty fleet, and versions the input like the dataset manifest
(`rul.lineage`: names, sizes and SHA-256 of the files). `score_fleet` predicts each unit's RUL at its last
cycle with `RulPredictor.predict_last`, a block of units at a time (each unit's features depend on its own
rows only, so the blocks bound memory without changing a prediction); the interval columns `rul_lower` and
`rul_upper` are kept whenever the model returns them. A unit that starts after cycle 1 must carry the rows
the model reads (`rul.inference.ServingModel.history_cycles`; a model whose features need each unit's whole
history takes units from cycle 1 only): `check_whole_histories` refuses one that does not, naming its
file. `maintenance_list` ranks the engines by the lower bound when there is one, else by the predicted
RUL, ascending, and flags those due within a threshold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rul.data import COLUMNS
from rul.errors import DataFormatError
from rul.inference import (
    INTERVAL_COLUMNS,
    PREDICTION_COLUMNS,
    RequestError,
    RequestLimits,
    ServingModel,
    late_start_problem,
    parse_csv,
)
from rul.lineage import dataset_version, describe_files

# A fleet file is not an HTTP request: no size limits beyond the job's memory.
FILE_LIMITS = RequestLimits(max_bytes=2**62, max_rows=2**62)
DEFAULT_CHUNK_UNITS = 2000
_LINE = re.compile(r"^line (\d+)[,:]\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Fleet:
    """Every engine's recent cycles (`COLUMNS`, units in ascending order), where each unit came from, and
    the files as the manifest describes them (name, bytes, sha256) with their content hash."""

    frame: pd.DataFrame
    unit_files: dict[int, str]
    files: list[dict]
    data_version: str

    @property
    def units(self) -> int:
        """The number of engines (units) in the fleet."""
        return len(self.unit_files)


def fleet_files(folder: str | Path) -> list[Path]:
    """Every file under `folder`, in name order (hidden files, like `.keep`, are not data)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(folder, None, "the fleet folder does not exist")
    paths = [p for p in folder.rglob("*") if p.is_file()]
    return sorted(p for p in paths if not p.relative_to(folder).as_posix().startswith("."))


def parse_fleet_text(text: str, source: str) -> pd.DataFrame:
    """One fleet file's text -> a validated C-MAPSS frame; `DataFormatError(source, line, problem)`."""
    try:
        return parse_csv(text, FILE_LIMITS)
    except RequestError as error:
        found = _LINE.match(error.message)
        if found:
            raise DataFormatError(source, int(found.group(1)), found.group(2)) from None
        raise DataFormatError(source, None, error.message.replace("request body", "file")) from None


def check_units_unique(parts: list[tuple[str, pd.DataFrame]]) -> dict[int, str]:
    """{unit: file}; a unit found in two files is an error naming both (its window would be cut)."""
    owner: dict[int, str] = {}
    for name, frame in parts:
        for unit in pd.unique(frame["unit"]).tolist():
            if unit in owner:
                raise DataFormatError(
                    name,
                    None,
                    f"unit {unit} also appears in {owner[unit]}: each engine's cycles belong in one file",
                )
            owner[int(unit)] = name
    return owner


def read_fleet(folder: str | Path) -> Fleet:
    """All fleet files of `folder`, validated, with their data version."""
    folder = Path(folder)
    paths = fleet_files(folder)
    if not paths:
        raise DataFormatError(folder, None, "the fleet is empty: no file of engine cycles to score")
    parts = []
    for path in paths:
        name = path.relative_to(folder).as_posix()
        text = path.read_bytes().decode("utf-8", errors="replace")
        parts.append((name, parse_fleet_text(text, name)))
    owners = check_units_unique(parts)
    frame = pd.concat([part for _, part in parts], ignore_index=True)
    frame = frame.sort_values(["unit", "cycle"], kind="stable").reset_index(drop=True)
    files = describe_files(paths, folder)
    return Fleet(frame[COLUMNS], owners, files, dataset_version(files))


def check_whole_histories(fleet: Fleet, model: ServingModel) -> None:
    """`DataFormatError` naming the file of the first unit that starts after cycle 1 with fewer rows than
    the model reads (`rul.inference.late_start_problem`)."""
    problem = late_start_problem(model, fleet.frame["unit"].to_numpy(), fleet.frame["cycle"].to_numpy())
    if problem is not None:
        unit, message = problem
        raise DataFormatError(fleet.unit_files[unit], None, message)


def score_fleet(predictor, frame: pd.DataFrame, chunk_units: int = DEFAULT_CHUNK_UNITS) -> pd.DataFrame:
    """`predict_last` over blocks of `chunk_units` units: one row per unit, in ascending unit order."""
    if frame.empty:
        raise DataFormatError("fleet", None, "the fleet is empty: no engine to score")
    if chunk_units < 1:
        raise ValueError(f"chunk_units must be at least 1, got {chunk_units}")
    units = np.sort(pd.unique(frame["unit"]))
    results = []
    for start in range(0, len(units), chunk_units):
        block = units[start : start + chunk_units]
        rows = frame[frame["unit"].between(block[0], block[-1])]
        results.append(predictor.predict_last(rows))
    scores = pd.concat(results, ignore_index=True).sort_values("unit", kind="stable")
    return scores.reset_index(drop=True)


def interval_columns(frame: pd.DataFrame) -> list[str]:
    """The interval columns (`rul_lower`, `rul_upper`) that `frame` has."""
    return [name for name in INTERVAL_COLUMNS if name in frame.columns]


def fleet_table(scores: pd.DataFrame, model_version: str, data_version: str) -> pd.DataFrame:
    """The fleet predictions file: unit, predicted_rul, [rul_lower, rul_upper,] cycles_used, padded,
    model_version, data_version."""
    unit, predicted, *rest = PREDICTION_COLUMNS
    columns = [unit, predicted, *interval_columns(scores), *rest]
    return scores[columns].assign(model_version=str(model_version), data_version=data_version)


def ranking_basis(table: pd.DataFrame) -> str:
    """The column the engines are ranked by: the interval's lower bound when present."""
    return "rul_lower" if "rul_lower" in table.columns else "predicted_rul"


def maintenance_list(table: pd.DataFrame, threshold_cycles: float) -> pd.DataFrame:
    """Engines by ascending ranking basis (ties by unit), `rank` from 1, `due_within_cycles` when the basis
    is at most `threshold_cycles`."""
    basis = ranking_basis(table)
    ranked = table.sort_values([basis, "unit"], kind="stable").reset_index(drop=True)
    columns = ["unit", "predicted_rul", *interval_columns(table), "cycles_used", "padded"]
    ranked = ranked[columns].assign(due_within_cycles=ranked[basis].to_numpy() <= threshold_cycles)
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    return ranked


def fleet_summary(fleet: Fleet, table: pd.DataFrame, ranked: pd.DataFrame, threshold_cycles: float) -> dict:
    """What the run scored: counts, the ranking rule, the model and data versions, the files."""
    return {
        "units": len(table),
        "rows": len(fleet.frame),
        "padded_units": int(table["padded"].sum()),
        "due_units": int(ranked["due_within_cycles"].sum()),
        "threshold_cycles": threshold_cycles,
        "ranked_by": ranking_basis(table),
        "intervals": bool(interval_columns(table)),
        "model_version": str(table["model_version"].iloc[0]),
        "data_version": fleet.data_version,
        "predicted_rul": {
            "min": float(table["predicted_rul"].min()),
            "median": float(table["predicted_rul"].median()),
            "max": float(table["predicted_rul"].max()),
        },
        "files": fleet.files,
    }
