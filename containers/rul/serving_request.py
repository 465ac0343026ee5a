"""Request bodies -> validated C-MAPSS rows: the one parser of serving, batch scoring and the monitors.

Requests carry C-MAPSS rows (unit, cycle, setting_1..3, sensor_1..21; the 26 columns of `rul.data.COLUMNS`):

- `text/csv`: one row per line, 26 comma-separated numbers (whitespace-separated lines, as in the
  C-MAPSS files, are accepted too); an optional first line naming the 26 columns, in any order.
- `application/json`: `{"instances": [...]}` where each instance is either a list of the 26 numbers in
  column order or an object with exactly the 26 column names as keys.

Each unit's rows must form one contiguous block whose cycles increase by one (the rule of
`rul.data.check_trajectory_order`); unit and cycle are positive integers, every value finite. Anything
wrong raises `RequestError` with an HTTP status (400 bad rows, 413 too large, 415 unsupported content
type) and a message naming the line or instance and the problem.

`parse_rows` gives `RequestRows` (the validated float64 table; `.frame()` builds the DataFrame only when
one is needed), `parse_request` the DataFrame. A CSV body of plain decimal numbers is read by
`rul.serving_numbers.number_table` in a few numpy steps; any other body, and any body that reader
refuses, takes the general line-by-line parser, which gives the same values and names the problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rul.data import COLUMNS, check_trajectory_order
from rul.errors import DataFormatError, RulError
from rul.serving_numbers import number_table

CSV = "text/csv"
JSON = "application/json"
CONTENT_TYPES = (CSV, JSON)
# SageMaker real-time endpoints accept request bodies up to 6 MB; stay under it.
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_ROWS = 50_000
_WIDTH = len(COLUMNS)


class RequestError(RulError):
    """A request the server cannot answer: `status` is the HTTP status, `message` names the problem."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message
        super().__init__(f"{status}: {message}")


@dataclass(frozen=True)
class RequestLimits:
    """The largest request accepted: body bytes and C-MAPSS rows (413 beyond either)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_rows: int = DEFAULT_MAX_ROWS
    # A request nests 3 deep ({"instances": [[...]]}); the limit leaves room and stops a parser recursion.
    max_json_depth: int = 16


@dataclass(frozen=True, eq=False)
class RequestRows:
    """A request's validated rows: `values` is (rows, 26) float64 in `COLUMNS` order, unit and cycle
    holding exact positive integers."""

    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def frame(self) -> pd.DataFrame:
        """The rows as a C-MAPSS frame (`COLUMNS`; unit and cycle int64)."""
        columns = {name: self.values[:, position] for position, name in enumerate(COLUMNS)}
        columns["unit"] = self.values[:, 0].astype(np.int64)
        columns["cycle"] = self.values[:, 1].astype(np.int64)
        return pd.DataFrame(columns)  # one DataFrame call: per-column updates cost more than the rest


def media_type(header: str | None) -> str:
    """`text/csv; charset=utf-8` -> `text/csv`."""
    return (header or "").split(";", 1)[0].strip().lower()


def _number_error(where: str, position: int, value: object) -> RequestError:
    return RequestError(
        400, f"{where}, column {position + 1} ({COLUMNS[position]}) is not a number: {value!r}"
    )


def _in_order(units: np.ndarray, cycles: np.ndarray) -> bool:
    """`check_trajectory_order`'s rule on arrays: each unit one block, its cycles increasing by one."""
    starts = np.r_[True, units[1:] != units[:-1]]
    blocks = units[starts]
    return len(np.unique(blocks)) == len(blocks) and not (~starts[1:] & (cycles[1:] != cycles[:-1] + 1)).any()


def _validated(values: np.ndarray, label: Callable[[int], str]) -> RequestRows:
    """Check finiteness, integer unit and cycle, and trajectory order; `label(i)` names row i."""
    finite = np.isfinite(values)
    if not finite.all():
        row, position = (int(index) for index in np.argwhere(~finite)[0])
        raise RequestError(
            400, f"{label(row)}, column {position + 1} ({COLUMNS[position]}) is {values[row, position]}"
        )
    for position in (0, 1):
        column = values[:, position]
        # Beyond 2**31 the int64 cast and the feature arithmetic stop being meaningful.
        bad = (column != np.floor(column)) | (column < 1) | (column > 2**31)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise RequestError(
                400, f"{label(row)}: {COLUMNS[position]} must be a positive integer, found {column[row]:g}"
            )
    if not _in_order(values[:, 0], values[:, 1]):
        order = pd.DataFrame({"unit": values[:, 0].astype(np.int64), "cycle": values[:, 1].astype(np.int64)})
        try:
            check_trajectory_order(order, "request", [label(row) for row in range(len(values))])
        except DataFormatError as error:
            raise RequestError(400, f"{error.line}: {error.problem}") from None
    return RequestRows(values)


def _split_fields(line: str) -> list[str]:
    return [field.strip() for field in line.split(",")] if "," in line else line.split()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _header_order(fields: list[str], number: int) -> list[int]:
    if sorted(fields) != sorted(COLUMNS):
        raise RequestError(
            400, f"line {number}: the header must name the {_WIDTH} columns {', '.join(COLUMNS)}"
        )
    return [fields.index(name) for name in COLUMNS]


def _csv_rows(text: str, limits: RequestLimits) -> RequestRows:
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise RequestError(400, "the request body holds no rows")
    order = list(range(_WIDTH))
    first = _split_fields(lines[0][1])
    if first and not _is_number(first[0]):
        order = _header_order(first, lines[0][0])
        lines = lines[1:]
        if not lines:
            raise RequestError(400, "the request body holds a header but no rows")
    if len(lines) > limits.max_rows:
        raise RequestError(413, f"the request holds {len(lines)} rows; the limit is {limits.max_rows}")
    rows = []
    for number, line in lines:
        fields = _split_fields(line)
        if len(fields) != _WIDTH:
            raise RequestError(400, f"line {number}: expected {_WIDTH} columns, found {len(fields)}")
        rows.append([fields[index] for index in order])
    labels = [f"line {number}" for number, _ in lines]
    try:
        values = np.asarray(rows, dtype=np.float64)
    except ValueError:
        # Find the first cell that is not a number, to name it.
        for label, row in zip(labels, rows, strict=True):
            for position, field in enumerate(row):
                if not _is_number(field):
                    raise _number_error(label, position, field) from None
        raise
    return _validated(values, labels.__getitem__)


def _plain_csv_rows(body: bytes, limits: RequestLimits) -> RequestRows | None:
    """`_csv_rows` of a body of plain decimal lines (`number_table`), with or without a header line;
    None for any other body, which the general parser then reads."""
    end = body.find(b"\n")
    first = body if end < 0 else body[:end]
    order, data, header = None, body, 0
    if first[:1] not in b"0123456789-.":
        try:
            text = first.decode("ascii")
        except UnicodeDecodeError:
            return None
        fields = _split_fields(text)
        if end < 0 or len(text.splitlines()) != 1 or sorted(fields) != sorted(COLUMNS):
            return None
        order, data, header = [fields.index(name) for name in COLUMNS], body[end + 1 :], 1
    values = number_table(data, _WIDTH)
    if values is None or len(values) > limits.max_rows:
        return None
    if order is not None:
        values = values[:, order]
    return _validated(values, lambda row: f"line {row + 1 + header}")


def parse_csv(text: str, limits: RequestLimits) -> pd.DataFrame:
    """A CSV request text -> a validated C-MAPSS frame; `RequestError` naming the line otherwise."""
    return _csv_rows(text, limits).frame()


def _reject_constant(name: str) -> float:
    raise RequestError(400, f"the JSON body holds {name}, which is not a finite number")


def _json_row(index: int, instance: object) -> list[float]:
    where = f"instance {index}"
    if isinstance(instance, dict):
        missing = [name for name in COLUMNS if name not in instance]
        unknown = sorted(set(instance) - set(COLUMNS))
        if missing or unknown:
            parts = [f"missing {', '.join(missing)}"] if missing else []
            parts += [f"unknown {', '.join(unknown)}"] if unknown else []
            raise RequestError(400, f"{where}: {'; '.join(parts)}")
        instance = [instance[name] for name in COLUMNS]
    if not isinstance(instance, list):
        raise RequestError(
            400, f"{where} must be a list of {_WIDTH} numbers or an object keyed by column name"
        )
    if len(instance) != _WIDTH:
        raise RequestError(400, f"{where}: expected {_WIDTH} columns, found {len(instance)}")
    for position, value in enumerate(instance):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _number_error(where, position, value)
    return instance


# A JSON string, escapes included: its brackets are text, not nesting.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _json_depth(text: str) -> int:
    """How deeply a JSON text nests arrays and objects, counted on its brackets outside strings."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).encode("ascii")
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max(initial=0))


def _json_instances(text: str, limits: RequestLimits) -> list:
    depth = _json_depth(text)
    if depth > limits.max_json_depth:
        raise RequestError(
            400, f"the JSON body nests {depth} levels deep; the limit is {limits.max_json_depth}"
        )
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise RequestError(400, f"the body is not valid JSON: {error}") from None
    except RecursionError:  # only if the depth count above was fooled by a malformed text
        raise RequestError(400, "the JSON body nests too deeply to parse") from None
    if not isinstance(document, dict) or "instances" not in document:
        raise RequestError(400, 'the JSON body must be an object {"instances": [...]}')
    instances = document["instances"]
    if not isinstance(instances, list):
        raise RequestError(400, '"instances" must be a list')
    if not instances:
        raise RequestError(400, "the request body holds no rows")
    if len(instances) > limits.max_rows:
        raise RequestError(413, f"the request holds {len(instances)} rows; the limit is {limits.max_rows}")
    return instances


def _json_rows(text: str, limits: RequestLimits) -> RequestRows:
    instances = _json_instances(text, limits)
    rows = [_json_row(index, instance) for index, instance in enumerate(instances, start=1)]
    try:
        values = np.asarray(rows, dtype=np.float64)
    except OverflowError:
        raise RequestError(400, "a value is too large for a 64-bit float") from None
    return _validated(values, lambda row: f"instance {row + 1}")


def parse_json(text: str, limits: RequestLimits) -> pd.DataFrame:
    """A JSON request text -> a validated C-MAPSS frame; `RequestError` naming the instance otherwise."""
    return _json_rows(text, limits).frame()


def parse_rows(
    body: bytes | str, content_type: str | None, limits: RequestLimits = RequestLimits()
) -> RequestRows:
    """A request body -> its validated `RequestRows`; `RequestError` (4xx) naming the problem otherwise."""
    kind = media_type(content_type)
    if kind not in CONTENT_TYPES:
        raise RequestError(
            415,
            f"content type {content_type or '(none)'!r} is not supported; send {' or '.join(CONTENT_TYPES)}",
        )
    size = len(body.encode("utf-8")) if isinstance(body, str) else len(body)
    if size > limits.max_bytes:
        raise RequestError(413, f"the request body is {size} bytes; the limit is {limits.max_bytes}")
    if kind == CSV and isinstance(body, bytes):
        plain = _plain_csv_rows(body, limits)
        if plain is not None:
            return plain
    if isinstance(body, bytes | bytearray):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as error:
            raise RequestError(400, f"the request body is not UTF-8 text: {error}") from None
    if not body.strip():
        raise RequestError(400, "the request body is empty")
    return _csv_rows(body, limits) if kind == CSV else _json_rows(body, limits)


def parse_request(
    body: bytes | str, content_type: str | None, limits: RequestLimits = RequestLimits()
) -> pd.DataFrame:
    """A request body -> a validated C-MAPSS frame (`COLUMNS`; unit and cycle int64); `RequestError` else."""
    return parse_rows(body, content_type, limits).frame()
