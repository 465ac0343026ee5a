"""Hand-written C-MAPSS text for the rul.data tests: rows of distinct values, blocks of units, files."""

from __future__ import annotations

from pathlib import Path


def row_values(unit: int, cycle: int) -> list[str]:
    """24 distinct, exactly representable-at-4-decimals values for the settings and sensors of a row."""
    return [f"{unit * 100 + cycle + position / 8:.4f}" for position in range(24)]


def row_line(unit, cycle, values: list[str] | None = None) -> str:
    """One row as the C-MAPSS files write it (two trailing spaces), with `row_values` unless given."""
    values = row_values(int(float(unit)), int(float(cycle))) if values is None else values
    return " ".join([str(unit), str(cycle), *values]) + "  \n"


def trajectory_text(blocks: list[tuple[int, int]]) -> str:
    """Rows for each (unit, number of cycles) block, cycles from 1, in the given order."""
    return "".join(row_line(unit, cycle) for unit, length in blocks for cycle in range(1, length + 1))


def write_ascii(path: Path, text: str) -> Path:
    """`text` written to `path` as ASCII; the path."""
    path.write_text(text, encoding="ascii")
    return path


VALID_TEXT = trajectory_text([(1, 3), (2, 2)])
# Unit 1's rows resume at line 5, after unit 2's: a malformed trajectory file.
UNIT_AGAIN_TEXT = trajectory_text([(1, 2), (2, 2), (1, 1)])
