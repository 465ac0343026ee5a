"""Splitting by whole units and cutting held-out units the way the official C-MAPSS test set does.

Units are assigned to splits by a hash of (seed, purpose, unit number), so the assignment of a unit does
not depend on which other units are present: sharded preprocessing gives the same split as one job.
Held-out units are cut at a random cycle drawn like the official test set's (true RUL mostly in the
low-to-mid range, at least `min_cycles` cycles observed), and the model is scored at the cut.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from rul.errors import ConfigurationError


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
    pieces, truth = [], []
    for unit, rows in frame.groupby("unit", sort=True):
        life = int(rows["cycle"].max())
        for draw in range(draws):
            kept = cut_point(life, unit_uniform(unit, seed, f"cut-{draw}"), protocol)
            piece = rows[rows["cycle"] <= kept].copy()
            new_unit = int(unit) if draws == 1 else int(unit) * 1000 + draw
            piece["unit"] = new_unit
            pieces.append(piece)
            truth.append((new_unit, life - kept))
    cut = pd.concat(pieces, ignore_index=True)
    return cut, pd.DataFrame(truth, columns=["unit", "rul"])
