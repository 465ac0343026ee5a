"""Tests of rul.data: reading, validating and writing the C-MAPSS text format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rul import data
from rul.data import COLUMNS, SUBSETS, load_subset, read_rul, read_trajectories, write_rul, write_trajectories
from rul.errors import DataFormatError, RulError

# Counts from ../shared/data/cmapss/README.md.
REAL_COUNTS = {
    "FD001": (20631, 100),
    "FD002": (53759, 260),
    "FD003": (24720, 100),
    "FD004": (61249, 249),
}


def _values(unit: int, cycle: int) -> list[str]:
    """24 distinct, exactly representable-at-4-decimals values for the settings and sensors of a row."""
    return [f"{unit * 100 + cycle + position / 8:.4f}" for position in range(24)]


def _line(unit, cycle, values: list[str] | None = None) -> str:
    values = _values(int(float(unit)), int(float(cycle))) if values is None else values
    return " ".join([str(unit), str(cycle), *values]) + "  \n"


def _trajectory_text(blocks: list[tuple[int, int]]) -> str:
    """Rows for each (unit, number of cycles) block, cycles from 1, in the given order."""
    return "".join(_line(unit, cycle) for unit, length in blocks for cycle in range(1, length + 1))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="ascii")
    return path


VALID_TEXT = _trajectory_text([(1, 3), (2, 2)])


# --- valid trajectory files ---------------------------------------------------------------------------


def test_columns_layout():
    assert len(COLUMNS) == 26
    assert COLUMNS[:5] == ["unit", "cycle", "setting_1", "setting_2", "setting_3"]
    assert COLUMNS[5] == "sensor_1"
    assert COLUMNS[-1] == "sensor_21"
    assert SUBSETS == ("FD001", "FD002", "FD003", "FD004")


def test_read_hand_written_file(tmp_path):
    text = (
        "1 1 -0.0007 -0.0004 100.0 518.67 641.82 1589.70 1400.60 14.62 21.61 554.36 2388.06 9046.19 1.30 "
        "47.47 521.66 2388.02 8138.62 8.4195 0.03 392 2388 100.00 39.06 23.4190  \n"
        "1 2 0.0019 -0.0003 100.0 518.67 642.15 1591.82 1403.14 14.62 21.61 553.75 2388.04 9044.07 1.30 "
        "47.49 522.28 2388.07 8131.49 8.4318 0.03 392 2388 100.00 39.00 23.4236  \n"
        "2 1 -0.0043 0.0003 100.0 518.67 642.35 1587.99 1404.20 14.62 21.61 554.26 2388.08 9052.94 1.30 "
        "47.27 522.42 2388.03 8133.23 8.4178 0.03 390 2388 100.00 38.95 23.3442  \n"
    )
    path = _write(tmp_path / "train_FD001.txt", text)
    frame = read_trajectories(path)
    assert list(frame.columns) == COLUMNS
    assert frame.shape == (3, 26)
    assert frame["unit"].dtype == np.int64
    assert frame["cycle"].dtype == np.int64
    assert frame["unit"].tolist() == [1, 1, 2]
    assert frame["cycle"].tolist() == [1, 2, 1]
    assert frame["setting_1"].tolist() == [-0.0007, 0.0019, -0.0043]
    assert frame["sensor_2"].tolist() == [641.82, 642.15, 642.35]
    assert frame["sensor_21"].tolist() == [23.4190, 23.4236, 23.3442]
    for column in COLUMNS[2:]:
        assert frame[column].dtype == np.float64


def test_read_generated_two_unit_file(tmp_path):
    frame = read_trajectories(_write(tmp_path / "t.txt", VALID_TEXT))
    assert frame["unit"].tolist() == [1, 1, 1, 2, 2]
    assert frame["cycle"].tolist() == [1, 2, 3, 1, 2]
    assert frame.loc[4, "sensor_21"] == pytest.approx(202 + 23 / 8)


def test_blank_lines_are_skipped_but_counted(tmp_path):
    lines = VALID_TEXT.splitlines(keepends=True)
    text = "".join([lines[0], "\n", "   \n", *lines[1:]])
    frame = read_trajectories(_write(tmp_path / "t.txt", text))
    assert len(frame) == 5
    # A bad row after the blank lines reports its physical line number.
    bad = "".join([lines[0], "\n", _line(1, 2, ["x"] * 24)])
    with pytest.raises(DataFormatError) as caught:
        read_trajectories(_write(tmp_path / "bad.txt", bad))
    assert caught.value.line == 3


def test_accepts_integer_written_as_float_and_crlf(tmp_path):
    text = _line("1.0", 1).replace("\n", "\r\n") + _line(1, "2.0").replace("\n", "\r\n")
    frame = read_trajectories(_write(tmp_path / "t.txt", text))
    assert frame["unit"].tolist() == [1, 1]
    assert frame["cycle"].tolist() == [1, 2]


# --- malformed trajectory files -----------------------------------------------------------------------


def _replace_line(number: int, new: str) -> str:
    lines = VALID_TEXT.splitlines(keepends=True)
    lines[number - 1] = new
    return "".join(lines)


def _with_field(number: int, position: int, value: str) -> str:
    fields = VALID_TEXT.splitlines()[number - 1].split()
    fields[position] = value
    return _replace_line(number, " ".join(fields) + "  \n")


MALFORMED = {
    "25 columns": (_replace_line(2, _line(1, 2, _values(1, 2)[:-1])), 2, "expected 26 columns, found 25"),
    "27 columns": (
        _replace_line(4, _line(2, 1, [*_values(2, 1), "1.0"])),
        4,
        "expected 26 columns, found 27",
    ),
    "non-numeric": (_with_field(3, 4, "abc"), 3, "column 5 (setting_3) is not numeric: 'abc'"),
    "comma decimal": (_with_field(1, 25, "23,41"), 1, "column 26 (sensor_21) is not numeric: '23,41'"),
    "nan": (_with_field(2, 6, "nan"), 2, "column 7 (sensor_2) is nan"),
    "NaN": (_with_field(2, 6, "NaN"), 2, "column 7 (sensor_2) is NaN"),
    "inf": (_with_field(5, 10, "inf"), 5, "column 11 (sensor_6) is inf"),
    "-inf": (_with_field(1, 2, "-inf"), 1, "column 3 (setting_1) is -inf"),
    "fractional unit": (_with_field(2, 0, "1.5"), 2, "unit must be a positive integer, found '1.5'"),
    "fractional cycle": (_with_field(3, 1, "2.5"), 3, "cycle must be a positive integer, found '2.5'"),
    "zero cycle": (_with_field(1, 1, "0"), 1, "cycle must be a positive integer, found '0'"),
    "negative unit": (_with_field(4, 0, "-2"), 4, "unit must be a positive integer, found '-2'"),
    "skipped cycle": (_with_field(3, 1, "4"), 3, "cycles of unit 1 must increase by one: cycle 4 follows 2"),
    "repeated cycle": (_with_field(3, 1, "2"), 3, "cycles of unit 1 must increase by one: cycle 2 follows 2"),
    "zero cycle as float": (_with_field(5, 1, "0.0"), 5, "cycle must be a positive integer, found '0.0'"),
    "cycle goes back": (
        _trajectory_text([(1, 3)]) + _line(1, 1),
        4,
        "cycles of unit 1 must increase by one: cycle 1 follows 3",
    ),
    "unit again": (
        _trajectory_text([(1, 2), (2, 2), (1, 1)]),
        5,
        "unit 1 appears again after other units' rows",
    ),
    "unit again after two others": (
        _trajectory_text([(3, 1), (1, 2), (2, 1), (3, 1)]),
        5,
        "unit 3 appears again after other units' rows",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_trajectory_raises_naming_file_line_problem(tmp_path, case):
    text, line, problem = MALFORMED[case]
    path = _write(tmp_path / "train_FD001.txt", text)
    with pytest.raises(DataFormatError) as caught:
        read_trajectories(path)
    error = caught.value
    assert isinstance(error, RulError)
    assert error.path == str(path)
    assert error.line == line
    assert problem in error.problem
    assert str(error).startswith(f"{path}, line {line}: ")
    assert problem in str(error)


@pytest.mark.parametrize(
    "text", ["", "\n", "   \n\t\n  ", "\n\n\n"], ids=["empty", "newline", "spaces", "blank"]
)
def test_empty_or_whitespace_file(tmp_path, text):
    path = _write(tmp_path / "train_FD002.txt", text)
    with pytest.raises(DataFormatError) as caught:
        read_trajectories(path)
    assert caught.value.line is None
    assert str(caught.value) == f"{path}: the file is empty"


def test_missing_trajectory_file(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(DataFormatError, match=r"nope\.txt: file not found"):
        read_trajectories(path)


def test_check_trajectory_order_on_frame_without_line_numbers():
    frame = pd.DataFrame({"unit": [1, 1, 2, 2], "cycle": [1, 2, 1, 3]})
    with pytest.raises(DataFormatError) as caught:
        data.check_trajectory_order(frame, "memory")
    assert str(caught.value) == "memory, line 4: cycles of unit 2 must increase by one: cycle 3 follows 1"
    data.check_trajectory_order(pd.DataFrame({"unit": [5, 5, 2], "cycle": [1, 2, 1]}), "memory")


# --- RUL files ----------------------------------------------------------------------------------------


def test_read_rul_with_and_without_test(tmp_path):
    path = _write(tmp_path / "RUL_FD001.txt", "112\n98 \n\n69\n")
    alone = read_rul(path)
    assert alone["unit"].tolist() == [1, 2, 3]
    assert alone["rul"].tolist() == [112, 98, 69]
    assert alone["rul"].dtype == np.int64
    test = read_trajectories(_write(tmp_path / "test.txt", _trajectory_text([(4, 2), (9, 1), (7, 3)])))
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
    path = _write(tmp_path / "RUL_FD003.txt", text)
    with pytest.raises(DataFormatError) as caught:
        read_rul(path)
    assert caught.value.line == line
    assert str(caught.value) == f"{path}, line {line}: {problem}"


def test_empty_rul_file(tmp_path):
    path = _write(tmp_path / "RUL_FD001.txt", " \n\n")
    with pytest.raises(DataFormatError) as caught:
        read_rul(path)
    assert str(caught.value) == f"{path}: the file is empty"


@pytest.mark.parametrize("values", [[10], [10, 20, 30]], ids=["fewer", "more"])
def test_rul_count_must_match_test_units(tmp_path, values):
    test = read_trajectories(_write(tmp_path / "test.txt", VALID_TEXT))
    path = _write(tmp_path / "RUL_FD001.txt", "".join(f"{value}\n" for value in values))
    with pytest.raises(DataFormatError) as caught:
        read_rul(path, test)
    assert caught.value.path == str(path)
    assert f"has {len(values)} RUL values but the test file has 2 units" in str(caught.value)


# --- load_subset --------------------------------------------------------------------------------------


def _subset_blocks(index: int) -> list[tuple[int, int]]:
    return [(unit, 3 + unit + index) for unit in range(1, 3 + index)]


@pytest.mark.parametrize("index", range(4), ids=list(SUBSETS))
def test_load_subset_train_only(tmp_path, index):
    name = SUBSETS[index]
    blocks = _subset_blocks(index)
    _write(tmp_path / f"train_{name}.txt", _trajectory_text(blocks))
    # Files of another subset in the same folder are not picked up.
    other = SUBSETS[(index + 1) % 4]
    _write(tmp_path / f"test_{other}.txt", VALID_TEXT)
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
    _write(tmp_path / f"train_{name}.txt", _trajectory_text(_subset_blocks(index)))
    _write(tmp_path / f"test_{name}.txt", _trajectory_text([(1, 2), (2, 4), (3, 1)]))
    _write(tmp_path / f"RUL_{name}.txt", f"{index}\n{10 + index}\n{20 + index}\n")
    subset = load_subset(str(tmp_path), name)
    assert subset.name == name
    assert subset.test is not None and subset.test_rul is not None
    assert subset.test["unit"].tolist() == [1, 1, 2, 2, 2, 2, 3]
    assert subset.test_rul["unit"].tolist() == [1, 2, 3]
    assert subset.test_rul["rul"].tolist() == [index, 10 + index, 20 + index]


@pytest.mark.parametrize("name", SUBSETS)
def test_load_subset_test_without_rul_names_missing_file(tmp_path, name):
    _write(tmp_path / f"train_{name}.txt", VALID_TEXT)
    _write(tmp_path / f"test_{name}.txt", VALID_TEXT)
    with pytest.raises(DataFormatError) as caught:
        load_subset(tmp_path, name)
    assert caught.value.path == str(tmp_path / f"RUL_{name}.txt")
    assert f"RUL_{name}.txt: file not found" in str(caught.value)


def test_load_subset_rul_without_test_names_missing_file(tmp_path):
    _write(tmp_path / "train_FD003.txt", VALID_TEXT)
    _write(tmp_path / "RUL_FD003.txt", "1\n2\n")
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
    _write(tmp_path / "train_FD002.txt", VALID_TEXT)
    _write(tmp_path / "test_FD002.txt", VALID_TEXT)
    _write(tmp_path / "RUL_FD002.txt", "1\n2\n3\n")
    with pytest.raises(DataFormatError, match="has 3 RUL values but the test file has 2 units"):
        load_subset(tmp_path, "FD002")


def test_load_subset_malformed_test_file_names_it(tmp_path):
    _write(tmp_path / "train_FD001.txt", VALID_TEXT)
    _write(tmp_path / "test_FD001.txt", MALFORMED["unit again"][0])
    _write(tmp_path / "RUL_FD001.txt", "1\n2\n")
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


# --- writing ------------------------------------------------------------------------------------------


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


# --- the real data ------------------------------------------------------------------------------------


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


def test_the_first_repeated_unit_block_is_reported(tmp_path):
    rows = [(3, 1), (1, 1), (3, 2), (1, 2)]
    path = tmp_path / "train_FD001.txt"
    path.write_text("".join(f"{unit} {cycle} " + " ".join(["0.5"] * 24) + "\n" for unit, cycle in rows))
    with pytest.raises(DataFormatError, match="line 3: unit 3 appears again"):
        read_trajectories(path)


# --- truncated files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cut", [1, 3, 8, len("  \n") + 1], ids=["newline", "spaces-and-newline", "into-last-number", "one-digit"]
)
def test_a_trajectory_file_without_final_newline_is_reported_truncated(tmp_path, cut):
    text = VALID_TEXT[:-cut]
    path = _write(tmp_path / "train_FD001.txt", text)
    last = text.splitlines()[-1]
    with pytest.raises(DataFormatError) as caught:
        read_trajectories(path)
    assert caught.value.line == 5
    assert str(caught.value) == (
        f"{path}, line 5: the file ends without a newline, so it looks truncated: {last.strip()!r}"
    )


def test_trailing_blank_space_without_newline_is_not_truncation(tmp_path):
    frame = read_trajectories(_write(tmp_path / "train_FD001.txt", VALID_TEXT + "   "))
    assert len(frame) == 5


def test_a_rul_file_without_final_newline_is_reported_truncated(tmp_path):
    path = _write(tmp_path / "RUL_FD001.txt", "112\n98\n6")
    with pytest.raises(DataFormatError) as caught:
        read_rul(path)
    assert str(caught.value) == f"{path}, line 3: the file ends without a newline, so it looks truncated: '6'"


@pytest.mark.real_data
@pytest.mark.parametrize("name", SUBSETS)
def test_real_files_end_with_a_newline(real_data_dir, name):
    """What the truncation rule relies on: the published files all end with a newline."""
    path = real_data_dir / f"train_{name}.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        assert handle.read() == b"\n"


def test_the_one_pass_parser_and_the_line_by_line_parser_agree(tmp_path, monkeypatch):
    from rul.synthetic import SyntheticSpec, generate

    path = tmp_path / "train.txt"
    write_trajectories(generate(SyntheticSpec(n_train_units=5, n_test_units=1, seed=4)).train, path)
    fast = read_trajectories(path)
    monkeypatch.setattr(data, "_parse_fast", lambda text: None)
    slow = read_trajectories(path)
    pd.testing.assert_frame_equal(fast, slow)
    assert len(fast) == path.read_text().count("\n")


def test_a_line_the_one_pass_parser_would_skip_goes_through_the_checks(tmp_path):
    text = _trajectory_text([(1, 3)])
    path = _write(tmp_path / "t.txt", text.replace("\n", "\n# a comment\n", 1))
    with pytest.raises(DataFormatError, match=r"line 2: expected 26 columns, found 3"):
        read_trajectories(path)
