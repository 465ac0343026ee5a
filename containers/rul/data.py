"""Reading and validating the C-MAPSS text format.

A trajectory file (train_FD00x.txt, test_FD00x.txt) has 26 space-separated numeric columns and no header:
unit number, time in cycles, 3 operational settings and 21 sensors, with trailing spaces at line ends.
Each unit's rows form one contiguous block with cycles increasing by one from 1. A RUL file
(RUL_FD00x.txt) has one integer per line: the true remaining useful life of each test unit, in unit order.

Every reader validates and raises `DataFormatError` naming the file, the line and the problem; nothing is
silently dropped. The files end with a newline; a last line without one (a copy or download cut short, its
last number possibly cut) is rejected as truncated rather than read as a smaller number.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rul.errors import DataFormatError

SETTING_COLUMNS = [f"setting_{i}" for i in range(1, 4)]
SENSOR_COLUMNS = [f"sensor_{i}" for i in range(1, 22)]
COLUMNS = ["unit", "cycle", *SETTING_COLUMNS, *SENSOR_COLUMNS]
SUBSETS = ("FD001", "FD002", "FD003", "FD004")


@dataclass(frozen=True)
class Subset:
    """One C-MAPSS subset: run-to-failure training units, cut test units and their true RUL."""

    name: str
    train: pd.DataFrame
    test: pd.DataFrame | None = None
    test_rul: pd.DataFrame | None = None


def _check_complete(path: Path, number: int, text: str) -> None:
    """The last line must end with a newline: without one the file was probably cut short."""
    if text.strip() and not text.endswith("\n"):
        raise DataFormatError(
            path, number, f"the file ends without a newline, so it looks truncated: {text.strip()!r}"
        )


def _parse_line(path: Path, number: int, text: str) -> list[float]:
    fields = text.split()
    if len(fields) != len(COLUMNS):
        raise DataFormatError(path, number, f"expected {len(COLUMNS)} columns, found {len(fields)}")
    values = []
    for position, field in enumerate(fields):
        try:
            value = float(field)
        except ValueError:
            raise DataFormatError(
                path, number, f"column {position + 1} ({COLUMNS[position]}) is not numeric: {field!r}"
            ) from None
        if not math.isfinite(value):
            raise DataFormatError(path, number, f"column {position + 1} ({COLUMNS[position]}) is {field}")
        values.append(value)
    for position in (0, 1):
        if values[position] != int(values[position]) or values[position] < 1:
            raise DataFormatError(
                path, number, f"{COLUMNS[position]} must be a positive integer, found {fields[position]!r}"
            )
    return values


def _parse_fast(text: str) -> np.ndarray | None:
    """Every value of a well-formed file in one C-level parse; None when any line needs the checks of
    `_parse_line` (blank lines, a wrong field count, a non-numeric, non-finite or non-integer value)."""
    if not text.endswith("\n"):
        return None  # maybe truncated: `_check_complete` names the last line
    try:
        values = np.loadtxt(io.StringIO(text), dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        return None
    if len(values) != text.count("\n"):
        return None  # blank lines were skipped: the slow path keeps the line numbers errors name
    ids = values[:, :2]
    if values.shape[1] != len(COLUMNS) or not np.isfinite(values).all() or (ids != np.floor(ids)).any():
        return None
    return values if (ids >= 1).all() else None


def _parse_slow(path: Path, text: str) -> tuple[list[list[float]], list[int]]:
    """Line by line, raising `DataFormatError` at the first bad line."""
    rows: list[list[float]] = []
    line_numbers: list[int] = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if not line.strip():
            continue
        _check_complete(path, number, line)
        rows.append(_parse_line(path, number, line))
        line_numbers.append(number)
    return rows, line_numbers


def read_trajectories(path: str | Path) -> pd.DataFrame:
    """Read a train or test trajectory file into a frame with `COLUMNS`; unit and cycle are integers."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "file not found")
    text = path.read_text(encoding="ascii", errors="replace")
    values = _parse_fast(text) if text.strip() else None
    line_numbers: list[int] | None = None
    if values is None:
        rows, line_numbers = _parse_slow(path, text)
        if not rows:
            raise DataFormatError(path, None, "the file is empty")
        values = np.asarray(rows, dtype=np.float64)
    frame = pd.DataFrame(values, columns=COLUMNS)
    frame["unit"] = frame["unit"].astype(np.int64)
    frame["cycle"] = frame["cycle"].astype(np.int64)
    check_trajectory_order(frame, path, line_numbers)
    return frame


def check_trajectory_order(
    frame: pd.DataFrame, source: str | Path, line_numbers: Sequence[int | str] | None = None
) -> None:
    """Check that each unit is one contiguous block whose cycles increase by one from its first cycle."""
    units = frame["unit"].to_numpy()
    cycles = frame["cycle"].to_numpy()
    lines = line_numbers if line_numbers is not None else list(range(1, len(frame) + 1))
    unit_starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
    seen_units = units[unit_starts]
    seen: set[int] = set()
    for block, unit in enumerate(seen_units.tolist()):
        if unit in seen:
            raise DataFormatError(
                source, lines[unit_starts[block]], f"unit {unit} appears again after other units' rows"
            )
        seen.add(unit)
    same_unit = units[1:] == units[:-1]
    bad_step = same_unit & (cycles[1:] != cycles[:-1] + 1)
    if bad_step.any():
        row = int(np.flatnonzero(bad_step)[0]) + 1
        raise DataFormatError(
            source,
            lines[row],
            f"cycles of unit {units[row]} must increase by one: "
            f"cycle {cycles[row]} follows {cycles[row - 1]}",
        )


def read_rul(path: str | Path, test: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read a RUL file into a frame (unit, rul); units are numbered as the test file's units, in order."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "file not found")
    values: list[int] = []
    with path.open(encoding="ascii", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            _check_complete(path, number, text)
            fields = text.split()
            if len(fields) != 1:
                raise DataFormatError(path, number, f"expected 1 column, found {len(fields)}")
            try:
                value = float(fields[0])
            except ValueError:
                raise DataFormatError(path, number, f"RUL is not numeric: {fields[0]!r}") from None
            if not math.isfinite(value) or value != int(value) or value < 0:
                raise DataFormatError(
                    path, number, f"RUL must be a non-negative integer, found {fields[0]!r}"
                )
            values.append(int(value))
    if not values:
        raise DataFormatError(path, None, "the file is empty")
    if test is not None:
        units = pd.unique(test["unit"])
        if len(units) != len(values):
            raise DataFormatError(
                path, None, f"has {len(values)} RUL values but the test file has {len(units)} units"
            )
        return pd.DataFrame({"unit": units.astype(np.int64), "rul": np.asarray(values, dtype=np.int64)})
    return pd.DataFrame({"unit": np.arange(1, len(values) + 1), "rul": np.asarray(values, dtype=np.int64)})


def load_subset(directory: str | Path, name: str) -> Subset:
    """Load train_<name>.txt and, when both are present, test_<name>.txt with RUL_<name>.txt."""
    if name not in SUBSETS:
        raise DataFormatError(
            directory, None, f"unknown subset {name!r}; expected one of {', '.join(SUBSETS)}"
        )
    directory = Path(directory)
    train = read_trajectories(directory / f"train_{name}.txt")
    test_path, rul_path = directory / f"test_{name}.txt", directory / f"RUL_{name}.txt"
    if test_path.is_file() != rul_path.is_file():
        missing = rul_path if test_path.is_file() else test_path
        raise DataFormatError(missing, None, "file not found (test and RUL files come as a pair)")
    if not test_path.is_file():
        return Subset(name=name, train=train)
    test = read_trajectories(test_path)
    return Subset(name=name, train=train, test=test, test_rul=read_rul(rul_path, test))


def write_trajectories(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a trajectory frame in the C-MAPSS layout (space-separated, trailing spaces, no header)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in frame[COLUMNS].itertuples(index=False):
        unit, cycle, *values = row
        lines.append(f"{int(unit)} {int(cycle)} " + " ".join(f"{value:.4f}" for value in values) + "  ")
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def write_rul(rul: pd.DataFrame, path: str | Path) -> None:
    """Write true RUL values one per line, in unit order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{int(value)}\n" for value in rul.sort_values("unit")["rul"]), encoding="ascii")
