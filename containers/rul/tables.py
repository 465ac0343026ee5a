"""CSV tables exchanged between pipeline steps, and the model artifact's packaging.

Processing jobs may run on several instances; each writes `<stem>-<host>.csv`, and the next step reads
every part of a folder. Trajectory tables keep the C-MAPSS column names as a header.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pandas as pd

from rul.contract import base_dir
from rul.data import COLUMNS, check_trajectory_order
from rul.errors import DataFormatError, ModelArtifactError
from rul.splits import check_unique_units


def current_host() -> str:
    """This instance's host name in a processing or training job (algo-1 when run alone)."""
    for path in (
        base_dir() / "config" / "resourceconfig.json",
        base_dir() / "input" / "config" / "resourceconfig.json",
    ):
        if path.is_file():
            return json.loads(path.read_text()).get("current_host", "algo-1")
    return os.environ.get("SM_CURRENT_HOST", "algo-1")


def write_table(frame: pd.DataFrame, directory: str | Path, stem: str, host: str | None = None) -> Path:
    """Write `frame` as `<stem>-<host>.csv` in `directory` (created if missing); the file's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}-{host or current_host()}.csv"
    frame.to_csv(path, index=False)
    return path


def read_table(directory: str | Path, stem: str) -> pd.DataFrame:
    """Concatenate every `<stem>-*.csv` part of a folder, in name order."""
    parts = sorted(Path(directory).glob(f"{stem}-*.csv"))
    if not parts:
        raise DataFormatError(directory, None, f"no {stem}-*.csv file found")
    frames = [pd.read_csv(part) for part in parts]
    return pd.concat(frames, ignore_index=True)


def read_trajectory_table(directory: str | Path, stem: str) -> pd.DataFrame:
    """Read trajectory parts, check the columns and the unit/cycle order, sort by unit and cycle."""
    frame = read_table(directory, stem)
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise DataFormatError(directory, None, f"{stem} table lacks columns {missing}")
    if frame[COLUMNS].isna().any().any():
        raise DataFormatError(directory, None, f"{stem} table has missing values")
    check_unique_units(frame, f"{directory}/{stem}")  # a unit from two shards, named with both files
    frame = frame.sort_values(["unit", "cycle"], kind="stable").reset_index(drop=True)
    check_trajectory_order(frame, f"{directory}/{stem}")
    return frame


def extract_model(source: str | Path, destination: str | Path) -> Path:
    """Return a folder holding the model: `source` itself, or `model.tar.gz` in it unpacked."""
    source, destination = Path(source), Path(destination)
    archive = source if source.is_file() else source / "model.tar.gz"
    if not archive.is_file():
        if (source / "metadata.json").is_file():
            return source
        raise ModelArtifactError(f"{source} holds neither model.tar.gz nor a model folder")
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as bundle:
        bundle.extractall(destination, filter="data")
    return destination
