"""Tests of rul.data: reading and validating C-MAPSS trajectory files (malformed, empty, truncated ones)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from data_text import UNIT_AGAIN_TEXT, VALID_TEXT, row_line, row_values, trajectory_text, write_ascii

from rul import data
from rul.data import COLUMNS, SUBSETS, read_rul, read_trajectories, write_trajectories
from rul.errors import DataFormatError, RulError

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
    path = write_ascii(tmp_path / "train_FD001.txt", text)
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
    frame = read_trajectories(write_ascii(tmp_path / "t.txt", VALID_TEXT))
    assert frame["unit"].tolist() == [1, 1, 1, 2, 2]
    assert frame["cycle"].tolist() == [1, 2, 3, 1, 2]
    assert frame.loc[4, "sensor_21"] == pytest.approx(202 + 23 / 8)


def test_blank_lines_are_skipped_but_counted(tmp_path):
    lines = VALID_TEXT.splitlines(keepends=True)
    text = "".join([lines[0], "\n", "   \n", *lines[1:]])
    frame = read_trajectories(write_ascii(tmp_path / "t.txt", text))
    assert len(frame) == 5
    # A bad row after the blank lines reports its physical line number.
    bad = "".join([lines[0], "\n", row_line(1, 2, ["x"] * 24)])
    with pytest.raises(DataFormatError) as caught:
        read_trajectories(write_ascii(tmp_path / "bad.txt", bad))
    assert caught.value.line == 3


def test_accepts_integer_written_as_float_and_crlf(tmp_path):
    text = row_line("1.0", 1).replace("\n", "\r\n") + row_line(1, "2.0").replace("\n", "\r\n")
    frame = read_trajectories(write_ascii(tmp_path / "t.txt", text))
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
    "25 columns": (
        _replace_line(2, row_line(1, 2, row_values(1, 2)[:-1])),
        2,
        "expected 26 columns, found 25",
    ),
    "27 columns": (
        _replace_line(4, row_line(2, 1, [*row_values(2, 1), "1.0"])),
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
        trajectory_text([(1, 3)]) + row_line(1, 1),
        4,
        "cycles of unit 1 must increase by one: cycle 1 follows 3",
    ),
    "unit again": (
        UNIT_AGAIN_TEXT,
        5,
        "unit 1 appears again after other units' rows",
    ),
    "unit again after two others": (
        trajectory_text([(3, 1), (1, 2), (2, 1), (3, 1)]),
        5,
        "unit 3 appears again after other units' rows",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_trajectory_raises_naming_file_line_problem(tmp_path, case):
    text, line, problem = MALFORMED[case]
    path = write_ascii(tmp_path / "train_FD001.txt", text)
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
    path = write_ascii(tmp_path / "train_FD002.txt", text)
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


# --- load_subset --------------------------------------------------------------------------------------


# --- writing ------------------------------------------------------------------------------------------


# --- the real data ------------------------------------------------------------------------------------


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
    path = write_ascii(tmp_path / "train_FD001.txt", text)
    last = text.splitlines()[-1]
    with pytest.raises(DataFormatError) as caught:
        read_trajectories(path)
    assert caught.value.line == 5
    assert str(caught.value) == (
        f"{path}, line 5: the file ends without a newline, so it looks truncated: {last.strip()!r}"
    )


def test_trailing_blank_space_without_newline_is_not_truncation(tmp_path):
    frame = read_trajectories(write_ascii(tmp_path / "train_FD001.txt", VALID_TEXT + "   "))
    assert len(frame) == 5


def test_a_rul_file_without_final_newline_is_reported_truncated(tmp_path):
    path = write_ascii(tmp_path / "RUL_FD001.txt", "112\n98\n6")
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
    text = trajectory_text([(1, 3)])
    path = write_ascii(tmp_path / "t.txt", text.replace("\n", "\n# a comment\n", 1))
    with pytest.raises(DataFormatError, match=r"line 2: expected 26 columns, found 3"):
        read_trajectories(path)
