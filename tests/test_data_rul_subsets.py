"""Tests of rul.data: the RUL files, whole subsets, writing and round trips, and the real C-MAPSS files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from data_text import UNIT_AGAIN_TEXT, VALID_TEXT, trajectory_text, write_ascii

from rul.data import COLUMNS, SUBSETS, load_subset, read_rul, read_trajectories, write_rul, write_trajectories
from rul.errors import DataFormatError

# Counts from ../shared/data/cmapss/README.md.
REAL_COUNTS = {
    "FD001": (20631, 100),
    "FD002": (53759, 260),
    "FD003": (24720, 100),
    "FD004": (61249, 249),
}


def test_read_rul_with_and_without_test(tmp_path):
    path = write_ascii(tmp_path / "RUL_FD001.txt", "112\n98 \n\n69\n")
    alone = read_rul(path)
    assert alone["unit"].tolist() == [1, 2, 3]
    assert alone["rul"].tolist() == [112, 98, 69]
    assert alone["rul"].dtype == np.int64
    test = read_trajectories(write_ascii(tmp_path / "test.txt", trajectory_text([(4, 2), (9, 1), (7, 3)])))
    paired = read_rul(path, test)
    assert paired["unit"].tolist() == [4, 9, 7]
    assert paired["rul"].tolist() == [112, 98, 69]
    assert paired["unit"].dtype == np.int64


RUL_MALFORMED = {
    "fractional": ("10\n12.5\n", 2, "RUL must be a non-negative integer, found '12.5'"),
    "negative": ("-3\n", 1, "RUL must be a non-negative integer, found '-3'"),
    "nan": ("5\n6\nnan\n", 3, "RUL must be a non-negative integer, found 'nan'"),
    "inf": ("inf\n", 1, "RUL must be a non-negative integer, found 'inf'"),
    "text": ("5\nabc\n", 2, "RUL is not numeric: 'abc'"),
    "two columns": ("5 6\n", 1, "expected 1 column, found 2"),
}


@pytest.mark.parametrize("case", list(RUL_MALFORMED), ids=list(RUL_MALFORMED))
def test_malformed_rul(tmp_path, case):
    text, line, problem = RUL_MALFORMED[case]
    path = write_ascii(tmp_path / "RUL_FD003.txt", text)
    with pytest.raises(DataFormatError) as caught:
        read_rul(path)
    assert caught.value.line == line
    assert str(caught.value) == f"{path}, line {line}: {problem}"


def test_empty_rul_file(tmp_path):
    path = write_ascii(tmp_path / "RUL_FD001.txt", " \n\n")
    with pytest.raises(DataFormatError) as caught:
        read_rul(path)
    assert str(caught.value) == f"{path}: the file is empty"


@pytest.mark.parametrize("values", [[10], [10, 20, 30]], ids=["fewer", "more"])
def test_rul_count_must_match_test_units(tmp_path, values):
    test = read_trajectories(write_ascii(tmp_path / "test.txt", VALID_TEXT))
    path = write_ascii(tmp_path / "RUL_FD001.txt", "".join(f"{value}\n" for value in values))
    with pytest.raises(DataFormatError) as caught:
        read_rul(path, test)
    assert caught.value.path == str(path)
    assert f"has {len(values)} RUL values but the test file has 2 units" in str(caught.value)


def _subset_blocks(index: int) -> list[tuple[int, int]]:
    return [(unit, 3 + unit + index) for unit in range(1, 3 + index)]


@pytest.mark.parametrize("index", range(4), ids=list(SUBSETS))
def test_load_subset_train_only(tmp_path, index):
    name = SUBSETS[index]
    blocks = _subset_blocks(index)
    write_ascii(tmp_path / f"train_{name}.txt", trajectory_text(blocks))
    # Files of another subset in the same folder are not picked up.
    other = SUBSETS[(index + 1) % 4]
    write_ascii(tmp_path / f"test_{other}.txt", VALID_TEXT)
    subset = load_subset(tmp_path, name)
    assert subset.name == name
    assert subset.test is None
    assert subset.test_rul is None
    assert list(subset.train.columns) == COLUMNS
    assert len(subset.train) == sum(length for _, length in blocks)
    assert subset.train["unit"].nunique() == len(blocks)


@pytest.mark.parametrize("index", range(4), ids=list(SUBSETS))
def test_load_subset_with_test_and_rul(tmp_path, index):
    name = SUBSETS[index]
    write_ascii(tmp_path / f"train_{name}.txt", trajectory_text(_subset_blocks(index)))
    write_ascii(tmp_path / f"test_{name}.txt", trajectory_text([(1, 2), (2, 4), (3, 1)]))
    write_ascii(tmp_path / f"RUL_{name}.txt", f"{index}\n{10 + index}\n{20 + index}\n")
    subset = load_subset(str(tmp_path), name)
    assert subset.name == name
    assert subset.test is not None and subset.test_rul is not None
    assert subset.test["unit"].tolist() == [1, 1, 2, 2, 2, 2, 3]
    assert subset.test_rul["unit"].tolist() == [1, 2, 3]
    assert subset.test_rul["rul"].tolist() == [index, 10 + index, 20 + index]


@pytest.mark.parametrize("name", SUBSETS)
def test_load_subset_test_without_rul_names_missing_file(tmp_path, name):
    write_ascii(tmp_path / f"train_{name}.txt", VALID_TEXT)
    write_ascii(tmp_path / f"test_{name}.txt", VALID_TEXT)
    with pytest.raises(DataFormatError) as caught:
        load_subset(tmp_path, name)
    assert caught.value.path == str(tmp_path / f"RUL_{name}.txt")
    assert f"RUL_{name}.txt: file not found" in str(caught.value)


def test_load_subset_rul_without_test_names_missing_file(tmp_path):
    write_ascii(tmp_path / "train_FD003.txt", VALID_TEXT)
    write_ascii(tmp_path / "RUL_FD003.txt", "1\n2\n")
    with pytest.raises(DataFormatError) as caught:
        load_subset(tmp_path, "FD003")
    assert caught.value.path == str(tmp_path / "test_FD003.txt")
    assert "file not found" in str(caught.value)


def test_load_subset_missing_train(tmp_path):
    with pytest.raises(DataFormatError) as caught:
        load_subset(tmp_path, "FD004")
    assert caught.value.path == str(tmp_path / "train_FD004.txt")
    assert "file not found" in str(caught.value)


def test_load_subset_rul_count_mismatch(tmp_path):
    write_ascii(tmp_path / "train_FD002.txt", VALID_TEXT)
    write_ascii(tmp_path / "test_FD002.txt", VALID_TEXT)
    write_ascii(tmp_path / "RUL_FD002.txt", "1\n2\n3\n")
    with pytest.raises(DataFormatError, match="has 3 RUL values but the test file has 2 units"):
        load_subset(tmp_path, "FD002")


def test_load_subset_malformed_test_file_names_it(tmp_path):
    write_ascii(tmp_path / "train_FD001.txt", VALID_TEXT)
    write_ascii(tmp_path / "test_FD001.txt", UNIT_AGAIN_TEXT)
    write_ascii(tmp_path / "RUL_FD001.txt", "1\n2\n")
    with pytest.raises(DataFormatError) as caught:
        load_subset(tmp_path, "FD001")
    assert caught.value.path == str(tmp_path / "test_FD001.txt")
    assert caught.value.line == 5


@pytest.mark.parametrize("name", ["FD005", "fd001", "", "train_FD001"])
def test_load_subset_unknown_name(tmp_path, name):
    with pytest.raises(DataFormatError) as caught:
        load_subset(tmp_path, name)
    assert f"unknown subset {name!r}" in str(caught.value)
    assert "FD001, FD002, FD003, FD004" in str(caught.value)


def _frame(blocks: list[tuple[int, int]], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(unit, cycle) for unit, length in blocks for cycle in range(1, length + 1)]
    values = np.round(rng.normal(0.0, 500.0, size=(len(rows), 24)), 4)
    frame = pd.DataFrame(values, columns=COLUMNS[2:])
    frame.insert(0, "cycle", np.array([cycle for _, cycle in rows], dtype=np.int64))
    frame.insert(0, "unit", np.array([unit for unit, _ in rows], dtype=np.int64))
    return frame


def test_write_trajectories_layout(tmp_path):
    frame = _frame([(1, 2)])
    path = tmp_path / "nested" / "dir" / "train_FD001.txt"
    write_trajectories(frame, path)
    lines = path.read_text(encoding="ascii").split("\n")
    assert lines[-1] == ""
    assert len(lines) == 3
    first = lines[0]
    assert first.endswith("  ")
    fields = first.split()
    assert len(fields) == 26
    assert fields[:2] == ["1", "1"]
    assert fields[2] == f"{frame.loc[0, 'setting_1']:.4f}"


def test_trajectory_round_trip(tmp_path):
    frame = _frame([(1, 5), (2, 3), (7, 4)], seed=3)
    path = tmp_path / "train_FD003.txt"
    write_trajectories(frame, path)
    back = read_trajectories(path)
    pd.testing.assert_frame_equal(back, frame, check_exact=False, rtol=0, atol=1e-9)


def test_trajectory_round_trip_reorders_columns(tmp_path):
    frame = _frame([(1, 2)])
    shuffled = frame[list(reversed(COLUMNS))].assign(extra=1.0)
    path = tmp_path / "t.txt"
    write_trajectories(shuffled, path)
    pd.testing.assert_frame_equal(read_trajectories(path), frame, check_exact=False, rtol=0, atol=1e-9)


def test_rul_round_trip(tmp_path):
    test = _frame([(1, 2), (2, 3), (3, 1)])
    rul = pd.DataFrame({"unit": [3, 1, 2], "rul": [7, 145, 0]})
    path = tmp_path / "out" / "RUL_FD001.txt"
    write_rul(rul, path)
    assert path.read_text(encoding="ascii") == "145\n0\n7\n"
    back = read_rul(path, test)
    assert back["unit"].tolist() == [1, 2, 3]
    assert back["rul"].tolist() == [145, 0, 7]


def test_subset_round_trip_through_load_subset(tmp_path):
    train = _frame([(1, 6), (2, 4)], seed=1)
    test = _frame([(1, 3), (2, 2)], seed=2)
    rul = pd.DataFrame({"unit": [1, 2], "rul": [12, 40]})
    write_trajectories(train, tmp_path / "train_FD004.txt")
    write_trajectories(test, tmp_path / "test_FD004.txt")
    write_rul(rul, tmp_path / "RUL_FD004.txt")
    subset = load_subset(tmp_path, "FD004")
    pd.testing.assert_frame_equal(subset.train, train, check_exact=False, rtol=0, atol=1e-9)
    pd.testing.assert_frame_equal(subset.test, test, check_exact=False, rtol=0, atol=1e-9)
    pd.testing.assert_frame_equal(subset.test_rul, rul)


@pytest.mark.real_data
@pytest.mark.parametrize("name", SUBSETS)
def test_real_training_files_match_readme_counts(real_data_dir, name):
    path = real_data_dir / f"train_{name}.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    frame = read_trajectories(path)
    rows, units = REAL_COUNTS[name]
    assert len(frame) == rows
    assert frame["unit"].nunique() == units
    assert frame["unit"].tolist() == sorted(frame["unit"].tolist())
    assert frame["unit"].min() == 1 and frame["unit"].max() == units
    grouped = frame.groupby("unit")["cycle"]
    assert (grouped.min() == 1).all()
    assert int(grouped.max().sum()) == rows
    assert np.isfinite(frame[COLUMNS[2:]].to_numpy()).all()


@pytest.mark.real_data
def test_real_load_subset_fd001_train_only(real_data_dir):
    subset = load_subset(real_data_dir, "FD001")
    assert subset.test is None
    assert subset.train.shape == (20631, 26)
    first = subset.train.iloc[0]
    assert first["unit"] == 1 and first["cycle"] == 1
    assert first["setting_1"] == -0.0007
    assert first["sensor_21"] == 23.4190
