"""The evaluation protocol: the official C-MAPSS test files when the input has them, else held-out units.

When the input holds `test_<subset>.txt` with `RUL_<subset>.txt` (NASA's test trajectories and the true
RUL at each unit's last cycle, in unit order), the model is scored the official way: every test unit at
its last observed cycle against that RUL, so the numbers compare with the literature. Without them the
pipeline scores its own held-out training units, cut like the official test set. `protocol_record`
describes which protocol produced the numbers (written by preprocess beside the test tables, copied into
evaluation.json). Test units shorter than the model's window are kept and padded as serving pads them
(`short_units` names them); a RUL file whose row count disagrees with the test units raises
`OfficialTestMismatch`, naming both files and both counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rul.data import read_rul, read_trajectories
from rul.errors import DataFormatError

OFFICIAL = "official"
INTERNAL = "internal_holdout"
DESCRIPTIONS = {
    OFFICIAL: (
        "official C-MAPSS test set: each unit of the test file scored at its last observed cycle against "
        "the RUL file (the internal held-out units are then trained on by the final refit)"
    ),
    INTERNAL: (
        "internal held-out training units, cut like the official test set and scored at the cut "
        "(the input holds no test and RUL files)"
    ),
}
# Beside the test tables: protocol-<host>.json.
PROTOCOL_STEM = "protocol"


class OfficialTestMismatch(DataFormatError):
    """The RUL file has a different number of rows than the test file has units."""

    def __init__(self, test: Path, rul: Path, units: int, values: int):
        super().__init__(
            rul,
            None,
            f"{rul.name} has {values} RUL value(s) but {test.name} has {units} test unit(s); "
            "the files must describe the same units, one RUL line per unit in unit order",
        )
        self.units, self.values = units, values


@dataclass(frozen=True)
class OfficialFiles:
    """The official test trajectories and their true RUL, and the folder their names are relative to."""

    test: Path
    rul: Path
    root: Path

    def names(self) -> list[str]:
        """The two files' paths relative to `root`, in POSIX form."""
        return [path.relative_to(self.root).as_posix() for path in (self.test, self.rul)]


def find_official_files(directory: Path, subset: str) -> OfficialFiles | None:
    """test_<subset>.txt and RUL_<subset>.txt under `directory`; None when neither is there."""
    if not directory.is_dir():
        return None
    found = {kind: sorted(directory.rglob(f"{kind}_{subset}.txt")) for kind in ("test", "RUL")}
    for kind, paths in found.items():
        if len(paths) > 1:
            listed = ", ".join(path.relative_to(directory).as_posix() for path in paths)
            raise DataFormatError(directory, None, f"several {kind}_{subset}.txt files: {listed}")
    if not found["test"] and not found["RUL"]:
        return None
    if not found["test"] or not found["RUL"]:
        present, absent = ("test", "RUL") if found["test"] else ("RUL", "test")
        raise DataFormatError(
            found[present][0],
            None,
            f"{absent}_{subset}.txt not found beside it: the official test and RUL files come as a pair",
        )
    return OfficialFiles(found["test"][0], found["RUL"][0], directory)


def load_official_test(files: OfficialFiles) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The test trajectories (units numbered as in the file) and the truth (unit, rul) at their last cycle."""
    test = read_trajectories(files.test)
    rul = read_rul(files.rul)
    units = pd.unique(test["unit"])
    if len(units) != len(rul):
        raise OfficialTestMismatch(files.test, files.rul, len(units), len(rul))
    truth = pd.DataFrame({"unit": units.astype(np.int64), "rul": rul["rul"].to_numpy(dtype=np.int64)})
    return test, truth


def short_units(test: pd.DataFrame, window: int) -> list[int]:
    """Units observed for fewer than `window` cycles: predicted from a padded window, as serving does."""
    if test.empty:
        return []
    counts = test.groupby("unit")["cycle"].size()
    return sorted(int(unit) for unit in counts[counts < window].index)


def protocol_record(name: str, units: int, window: int, short: list[int], files: list[str]) -> dict:
    """What evaluate.py copies into evaluation.json to say which protocol produced the numbers."""
    return {
        "name": name,
        "description": DESCRIPTIONS[name],
        "files": files,
        "units": units,
        "window": window,
        "short_units": short,
    }


def read_protocol(directory: Path) -> dict:
    """The protocol the test tables in `directory` follow (the internal one when no record is there)."""
    records = [json.loads(path.read_text()) for path in sorted(directory.glob(f"{PROTOCOL_STEM}-*.json"))]
    if not records:
        return protocol_record(INTERNAL, 0, 0, [], [])
    names = {record["name"] for record in records}
    if len(names) > 1:
        raise DataFormatError(directory, None, f"the instances disagree on the protocol: {sorted(names)}")
    merged = dict(records[0])
    merged["units"] = sum(record["units"] for record in records)
    merged["short_units"] = sorted({unit for record in records for unit in record["short_units"]})
    merged["files"] = sorted({name for record in records for name in record["files"]})
    return merged
