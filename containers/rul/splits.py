"""Naming units across files, splitting by whole units and cutting held-out units like the official test set.

C-MAPSS numbers units from 1 in every file, so a unit is identified by its file and its number: the
dataset unit id is `file_key(stem) * UNIT_SPAN + number`, where the subset's own file (`train_FD001`) has
key 0 and keeps its numbers, and any other file's key is drawn from a hash of its stem. Units are assigned
to splits, and held-out units cut, by a hash of (seed, purpose, dataset unit id), so the assignment of a
unit depends neither on the other units present nor on which instance read its file: any sharding gives
the same dataset. Held-out units are cut at a random cycle drawn like the official test set's (true RUL
mostly in the low-to-mid range, at least `min_cycles` cycles observed), and the model is scored at the
cut. `check_unique_units` names the files of a unit that reached a table twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rul.errors import ConfigurationError, DataFormatError

# Units within one file: C-MAPSS files hold at most 260. Keys stay below 10**6 so that ids (< 10**10),
# even renumbered for several cuts (x 1000), stay exact in the float64 that CSV readers may produce.
UNIT_SPAN = 10_000
FILE_KEYS = 1_000_000
SOURCE_COLUMNS = ["source", "source_unit"]


@dataclass(frozen=True)
class CutProtocol:
    """How held-out units are cut.

    The official FD001 test set keeps at least 31 cycles, its true RUL runs 7..145 (median 86) and the
    elapsed life fraction has quartiles 0.45/0.62/0.83. Drawing the true RUL uniformly in
    [min_rul, max_rul] and limiting it by the unit's life reproduces that shape.
    """

    min_cycles: int = 30
    min_rul: int = 6
    max_rul: int = 150


def file_key(stem: str, subset: str) -> int:
    """0 for the subset's own training file, else a number in [1, FILE_KEYS) drawn from the stem."""
    if stem == f"train_{subset}":
        return 0
    digest = hashlib.sha256(stem.encode()).digest()
    return 1 + int.from_bytes(digest[:8], "big") % (FILE_KEYS - 1)


def label_units(frame: pd.DataFrame, source: str, subset: str) -> pd.DataFrame:
    """A trajectory frame read from `source` with dataset unit ids, its file and the units' own numbers."""
    too_large = frame.loc[frame["unit"] >= UNIT_SPAN, "unit"]
    if len(too_large):
        raise DataFormatError(
            source, None, f"unit {too_large.iloc[0]} exceeds the {UNIT_SPAN - 1} units a file may hold"
        )
    labelled = frame.copy()
    labelled["source"] = source
    labelled["source_unit"] = frame["unit"]
    labelled["unit"] = file_key(_stem(source), subset) * UNIT_SPAN + frame["unit"]
    return labelled


def check_unique_units(frame: pd.DataFrame, where: str) -> None:
    """Raise if a unit's cycles occur twice (two files with one stem, or one file read by two instances)."""
    repeated = frame.duplicated(["unit", "cycle"], keep=False)
    if not repeated.any():
        return
    unit = frame.loc[repeated, "unit"].iloc[0]
    rows = frame[frame["unit"] == unit]
    if "source" not in frame.columns:
        raise DataFormatError(where, None, f"unit {unit} occurs twice")
    sources = sorted(rows["source"].unique())
    number = rows["source_unit"].iloc[0]
    if len(sources) == 1:
        raise DataFormatError(
            where, None, f"unit {number} of {sources[0]} occurs twice: was the file read by two instances?"
        )
    same_name = len({_stem(source) for source in sources}) == 1
    reason = "files of the same name hold the same units" if same_name else "their names share a file key"
    raise DataFormatError(
        where,
        None,
        f"unit {number} occurs in both {' and '.join(sources)} (dataset unit id {unit}): "
        f"{reason}; rename or remove one",
    )


def _stem(source: str) -> str:
    return source.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def unit_uniform(unit: int, seed: int, purpose: str) -> float:
    """A uniform number in [0, 1) that depends only on the unit, the seed and the purpose."""
    digest = hashlib.sha256(f"{seed}:{purpose}:{int(unit)}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / 2**53


def assign_splits(units, seed: int, validation_fraction: float, test_fraction: float) -> dict[int, str]:
    """Map each unit number to "train", "validation" or "test"."""
    if not 0 <= validation_fraction < 1 or not 0 <= test_fraction < 1:
        raise ConfigurationError("validation and test fractions must lie in [0, 1)")
    if validation_fraction + test_fraction >= 1:
        raise ConfigurationError(
            f"validation_fraction + test_fraction must be below 1, got {validation_fraction + test_fraction}"
        )
    splits = {}
    for unit in units:
        draw = unit_uniform(unit, seed, "split")
        if draw < test_fraction:
            splits[int(unit)] = "test"
        elif draw < test_fraction + validation_fraction:
            splits[int(unit)] = "validation"
        else:
            splits[int(unit)] = "train"
    return splits


def split_by_unit(
    frame: pd.DataFrame, seed: int, validation_fraction: float, test_fraction: float
) -> dict[str, pd.DataFrame]:
    """Split a trajectory frame into train/validation/test frames of whole units."""
    splits = assign_splits(pd.unique(frame["unit"]), seed, validation_fraction, test_fraction)
    labels = frame["unit"].map(splits)
    return {name: frame[labels == name].reset_index(drop=True) for name in ("train", "validation", "test")}


def cut_point(life: int, draw: float, protocol: CutProtocol) -> int:
    """Number of cycles kept for a unit of `life` cycles, given a uniform draw."""
    highest_rul = min(protocol.max_rul, life - protocol.min_cycles)
    if highest_rul < protocol.min_rul:
        return life - max(0, min(protocol.min_rul, life - 1))
    rul = protocol.min_rul + int(draw * (highest_rul - protocol.min_rul + 1))
    return life - rul


def cut_units(
    frame: pd.DataFrame, seed: int, protocol: CutProtocol = CutProtocol(), draws: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cut each run-to-failure unit; return the cut trajectories and the truth (unit, rul).

    With `draws` > 1 each unit is cut several times and the copies are renumbered unit * 1000 + draw.
    """
    if not 1 <= draws < 1000:
        raise ConfigurationError(f"draws must lie in [1, 999], got {draws}")
    if frame.empty:
        raise ConfigurationError("no units to cut")
    units, cycles = frame["unit"].to_numpy(), frame["cycle"].to_numpy()
    ids, inverse = np.unique(units, return_inverse=True)
    lives = np.zeros(len(ids), dtype=np.int64)
    np.maximum.at(lives, inverse, cycles)
    # Each unit's rows in their order in `frame` (a stable sort keeps it), units in ascending order.
    order = np.argsort(inverse, kind="stable")
    ends = np.cumsum(np.bincount(inverse, minlength=len(ids)))
    pieces, new_units, truth = [], [], []
    for index, unit in enumerate(ids.tolist()):
        rows = order[ends[index - 1] if index else 0 : ends[index]]
        life = int(lives[index])
        for draw in range(draws):
            kept = cut_point(life, unit_uniform(unit, seed, f"cut-{draw}"), protocol)
            pieces.append(rows[cycles[rows] <= kept])
            new_units.append(unit if draws == 1 else unit * 1000 + draw)
            truth.append((new_units[-1], life - kept))
    taken = np.concatenate(pieces)
    cut = frame.iloc[taken].reset_index(drop=True)
    cut["unit"] = np.repeat(np.asarray(new_units, dtype=units.dtype), [len(piece) for piece in pieces])
    return cut, pd.DataFrame(truth, columns=["unit", "rul"])
