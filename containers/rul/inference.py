"""Request parsing, prediction and response rendering shared by both serving forms of `serve.py`.

Requests carry C-MAPSS rows (unit, cycle, setting_1..3, sensor_1..21; the 26 columns of `rul.data.COLUMNS`):

- `text/csv`: one row per line, 26 comma-separated numbers (whitespace-separated lines, as in the
  C-MAPSS files, are accepted too); an optional first line naming the 26 columns, in any order.
- `application/json`: `{"instances": [...]}` where each instance is either a list of the 26 numbers in
  column order or an object with exactly the 26 column names as keys.

Each unit's rows must form one contiguous block whose cycles increase by one (the rule of
`rul.data.check_trajectory_order`); several units may share a request. The model predicts the RUL at
each unit's last cycle; a unit with fewer cycles than the model's window is padded and says so.

The response (`application/json`, the default) is
`{"predictions": [{"unit", "predicted_rul", "cycles_used", "padded"}, ...], "model_version", "model_family"}`
with units in ascending order; `text/csv` gives the same four columns with a header line. A model that
carries interval calibration (the registered, finally fitted model) adds `rul_lower` and `rul_upper` to
each prediction, in both types: the bounds, in cycles, of an interval meant to hold the true RUL with the
model's `interval_level` (default 90 %) probability, calibrated on held-out whole units (`rul.intervals`);
a model without calibration answers without them. Anything wrong
with a request raises `RequestError` with an HTTP status (400 bad rows, 406 unsupported Accept, 413 too
large, 415 unsupported content type) and a message naming the line or instance and the problem.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from rul.data import COLUMNS, SENSOR_COLUMNS, SETTING_COLUMNS, check_trajectory_order
from rul.errors import DataFormatError, RulError
from rul.fast_path import FastPredictor
from rul.models import RulPredictor

CSV = "text/csv"
JSON = "application/json"
CONTENT_TYPES = (CSV, JSON)
ACCEPT_TYPES = (JSON, CSV)
PREDICTION_COLUMNS = ("unit", "predicted_rul", "cycles_used", "padded")
# Present after PREDICTION_COLUMNS when the model carries interval calibration.
INTERVAL_COLUMNS = ("rul_lower", "rul_upper")
# Set by the deployment (a SageMaker Model's Environment) when the artifact does not carry a version.
MODEL_VERSION_VARIABLE = "MODEL_VERSION"
# SageMaker real-time endpoints accept request bodies up to 6 MB; stay under it.
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_ROWS = 50_000


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


@dataclass(frozen=True)
class ServingModel:
    """A loaded predictor with what the response reports about it."""

    predictor: RulPredictor
    model_version: str | None
    model_family: str
    directory: Path
    # `rul.fast_path`: the same predictions for less work, or None when this model takes the reference path
    fast: FastPredictor | None = None

    @property
    def window(self) -> int:
        return self.predictor.transformer.window


@dataclass(frozen=True)
class Prediction:
    """`predict` output: one row per unit (`PREDICTION_COLUMNS`) and the model that made it."""

    frame: pd.DataFrame
    model_version: str | None
    model_family: str


def load_model(model_dir: str | Path, environ: Mapping[str, str] | None = None) -> ServingModel:
    """Load a model folder; the version is metadata.json's `model_version`, else `$MODEL_VERSION`."""
    environ = os.environ if environ is None else environ
    predictor = RulPredictor.load(model_dir)
    version = predictor.metadata.get("model_version") or environ.get(MODEL_VERSION_VARIABLE) or None
    return ServingModel(
        predictor=predictor,
        model_version=None if version is None else str(version),
        model_family=predictor.hyperparameters.model_family,
        directory=Path(model_dir),
        fast=FastPredictor.build(predictor),
    )


def media_type(header: str | None) -> str:
    """`text/csv; charset=utf-8` -> `text/csv`."""
    return (header or "").split(";", 1)[0].strip().lower()


def _number_error(where: str, position: int, value: object) -> RequestError:
    return RequestError(
        400, f"{where}, column {position + 1} ({COLUMNS[position]}) is not a number: {value!r}"
    )


def _to_frame(values: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """Check finiteness, integer unit and cycle, and trajectory order; `labels[i]` names row i."""
    finite = np.isfinite(values)
    if not finite.all():
        row, position = (int(index) for index in np.argwhere(~finite)[0])
        raise RequestError(
            400, f"{labels[row]}, column {position + 1} ({COLUMNS[position]}) is {values[row, position]}"
        )
    for position in (0, 1):
        column = values[:, position]
        # Beyond 2**31 the int64 cast and the feature arithmetic stop being meaningful.
        bad = (column != np.floor(column)) | (column < 1) | (column > 2**31)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise RequestError(
                400, f"{labels[row]}: {COLUMNS[position]} must be a positive integer, found {column[row]:g}"
            )
    columns = {name: values[:, position] for position, name in enumerate(COLUMNS)}
    columns["unit"], columns["cycle"] = values[:, 0].astype(np.int64), values[:, 1].astype(np.int64)
    frame = pd.DataFrame(columns)  # one DataFrame call: per-column updates cost more than the rest
    try:
        check_trajectory_order(frame, "request", labels)
    except DataFormatError as error:
        raise RequestError(400, f"{error.line}: {error.problem}") from None
    return frame


def _split_fields(line: str) -> list[str]:
    return [field.strip() for field in line.split(",")] if "," in line else line.split()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_csv(text: str, limits: RequestLimits) -> pd.DataFrame:
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise RequestError(400, "the request body holds no rows")
    order = list(range(len(COLUMNS)))
    first = _split_fields(lines[0][1])
    if first and not _is_number(first[0]):
        if sorted(first) != sorted(COLUMNS):
            raise RequestError(
                400,
                f"line {lines[0][0]}: the header must name the {len(COLUMNS)} columns {', '.join(COLUMNS)}",
            )
        order = [first.index(name) for name in COLUMNS]
        lines = lines[1:]
        if not lines:
            raise RequestError(400, "the request body holds a header but no rows")
    if len(lines) > limits.max_rows:
        raise RequestError(413, f"the request holds {len(lines)} rows; the limit is {limits.max_rows}")
    rows = []
    for number, line in lines:
        fields = _split_fields(line)
        if len(fields) != len(COLUMNS):
            raise RequestError(400, f"line {number}: expected {len(COLUMNS)} columns, found {len(fields)}")
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
    return _to_frame(values, labels)


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
            400, f"{where} must be a list of {len(COLUMNS)} numbers or an object keyed by column name"
        )
    if len(instance) != len(COLUMNS):
        raise RequestError(400, f"{where}: expected {len(COLUMNS)} columns, found {len(instance)}")
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


def parse_json(text: str, limits: RequestLimits) -> pd.DataFrame:
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
    rows = [_json_row(index, instance) for index, instance in enumerate(instances, start=1)]
    try:
        values = np.asarray(rows, dtype=np.float64)
    except OverflowError:
        raise RequestError(400, "a value is too large for a 64-bit float") from None
    return _to_frame(values, [f"instance {index}" for index in range(1, len(rows) + 1)])


def parse_request(
    body: bytes | str, content_type: str | None, limits: RequestLimits = RequestLimits()
) -> pd.DataFrame:
    """A request body -> a validated C-MAPSS frame (`COLUMNS`; unit and cycle int64); `RequestError` else."""
    kind = media_type(content_type)
    if kind not in CONTENT_TYPES:
        raise RequestError(
            415,
            f"content type {content_type or '(none)'!r} is not supported; send {' or '.join(CONTENT_TYPES)}",
        )
    size = len(body.encode("utf-8")) if isinstance(body, str) else len(body)
    if size > limits.max_bytes:
        raise RequestError(413, f"the request body is {size} bytes; the limit is {limits.max_bytes}")
    if isinstance(body, bytes | bytearray):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as error:
            raise RequestError(400, f"the request body is not UTF-8 text: {error}") from None
    if not body.strip():
        raise RequestError(400, "the request body is empty")
    return parse_csv(body, limits) if kind == CSV else parse_json(body, limits)


def predict_last(model: ServingModel, frame: pd.DataFrame) -> pd.DataFrame:
    """`RulPredictor.predict_last`, by the model's fast path when it has one that takes this frame."""
    if model.fast is not None and model.fast.handles(len(frame)):
        return model.fast.predict_last(frame)
    return model.predictor.predict_last(frame)


def predict(model: ServingModel, frame: pd.DataFrame) -> Prediction:
    """RUL at each unit's last cycle of a frame from `parse_request`."""
    result = predict_last(model, frame)
    if not result["unit"].is_monotonic_increasing:  # predict_last gives ascending units; pandas work is dear
        result = result.sort_values("unit", kind="stable").reset_index(drop=True)
    columns = response_columns(result)
    if list(result.columns) != columns:
        result = result[columns]
    return Prediction(result, model.model_version, model.model_family)


def response_columns(frame: pd.DataFrame) -> list[str]:
    """`PREDICTION_COLUMNS`, then `INTERVAL_COLUMNS` when the frame holds them."""
    return [*PREDICTION_COLUMNS, *(name for name in INTERVAL_COLUMNS if name in frame.columns)]


def predict_many(model: ServingModel, frames: list[pd.DataFrame]) -> list[Prediction]:
    """`predict` for several requests at the cost of about one: their units are renumbered apart, predicted
    together and split back. Per-call overhead (the trees of every member, the per-sensor feature passes)
    dominates a single unit's prediction, and each unit's features depend on its own rows only, so the
    results equal those of separate calls."""
    if len(frames) == 1:
        return [predict(model, frames[0])]
    if model.fast is not None and model.fast.handles(sum(len(frame) for frame in frames)):
        results = model.fast.predict_many(frames)
        if results is not None:
            return [Prediction(result, model.model_version, model.model_family) for result in results]
    parts, offset = [], 0
    for index, frame in enumerate(frames):
        codes, _ = pd.factorize(frame["unit"])
        parts.append(
            frame.assign(unit=codes + offset + 1, request=index, original_unit=frame["unit"].to_numpy())
        )
        offset += int(codes.max()) + 1
    combined = pd.concat(parts, ignore_index=True)
    lookup = combined.drop_duplicates("unit").set_index("unit")[["request", "original_unit"]]
    result = predict_last(model, combined[COLUMNS]).join(lookup, on="unit")
    predictions = []
    for index in range(len(frames)):
        mine = result[result["request"] == index].assign(unit=lambda rows: rows["original_unit"])
        mine = mine.sort_values("unit", kind="stable").reset_index(drop=True)[response_columns(result)]
        predictions.append(Prediction(mine, model.model_version, model.model_family))
    return predictions


class _Job:
    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self.result: Prediction | None = None
        self.error: BaseException | None = None
        self.done = False


class BatchingPredictor:
    """Predicts for concurrent callers (a threaded worker's requests) in batches, with no added wait.

    While one batch runs, arriving requests queue; when it ends, one waiting thread takes the whole queue
    (up to `max_rows` rows) as the next batch. A lone request runs at once, so light load sees no delay,
    and under load a worker answers several requests for about the cost of one (`predict_many`). If a
    batch fails, its requests are retried one by one, so a fault stays with the request that caused it.
    """

    def __init__(self, model: ServingModel, max_rows: int = DEFAULT_MAX_ROWS):
        self.model = model
        self.max_rows = max_rows
        self._condition = threading.Condition()
        self._queue: list[_Job] = []
        self._busy = False
        self.batch_sizes: list[int] = []  # for tests and diagnostics; bounded below

    def predict(self, frame: pd.DataFrame) -> Prediction:
        job = _Job(frame)
        with self._condition:
            self._queue.append(job)
            while self._busy and not job.done:
                self._condition.wait()
            if not job.done:
                batch = self._take_batch()
                self._busy = True
        if not job.done:
            try:
                self._run(batch)
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()
        if job.error is not None:
            raise job.error
        return cast(Prediction, job.result)  # a done job without an error has its result

    def _take_batch(self) -> list[_Job]:
        batch: list[_Job] = []
        rows = 0
        while self._queue and (not batch or rows + len(self._queue[0].frame) <= self.max_rows):
            job = self._queue.pop(0)
            batch.append(job)
            rows += len(job.frame)
        if len(self.batch_sizes) < 10_000:
            self.batch_sizes.append(len(batch))
        return batch

    def _run(self, batch: list[_Job]) -> None:
        try:
            results = predict_many(self.model, [job.frame for job in batch])
        except Exception as error:
            if len(batch) == 1:
                batch[0].error = error
                batch[0].done = True
                return
            for job in batch:
                self._run([job])
            return
        for job, result in zip(batch, results, strict=True):
            job.result, job.done = result, True


def negotiate(accept: str | None) -> str:
    """The response type for an Accept header: the first supported type listed; JSON for none or */*."""
    if accept is None or not accept.strip():
        return JSON
    for item in accept.split(","):
        kind = media_type(item)
        if kind in ACCEPT_TYPES:
            return kind
        if kind in ("*/*", "application/*"):
            return JSON
        if kind == "text/*":
            return CSV
    raise RequestError(406, f"cannot answer in {accept!r}; accept {' or '.join(ACCEPT_TYPES)}")


def prediction_records(frame: pd.DataFrame) -> list[dict]:
    """One dict per row of `response_columns`, holding Python int, float and bool values."""
    types = {"unit": int, "predicted_rul": float, "cycles_used": int, "padded": bool}
    types.update({name: float for name in INTERVAL_COLUMNS})
    names = response_columns(frame)
    # a column's tolist() gives Python scalars at once, far cheaper than a pandas row per record
    columns = [[types[name](value) for value in frame[name].to_numpy().tolist()] for name in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _csv_cell(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def render(prediction: Prediction, accept: str | None) -> tuple[bytes, str]:
    """The response body and its content type for the negotiated Accept type."""
    kind = negotiate(accept)
    records = prediction_records(prediction.frame)
    if kind == CSV:
        columns = response_columns(prediction.frame)
        lines = [",".join(columns)]
        lines += [",".join(_csv_cell(record[name]) for name in columns) for record in records]
        return ("\n".join(lines) + "\n").encode("utf-8"), CSV
    document = {
        "predictions": records,
        "model_version": prediction.model_version,
        "model_family": prediction.model_family,
    }
    return json.dumps(document).encode("utf-8"), JSON


def parse_response(body: bytes | str, content_type: str | None) -> pd.DataFrame:
    """A response body of `render` -> a frame with `PREDICTION_COLUMNS` and, when the response holds
    them, `INTERVAL_COLUMNS` (the reverse of `render`)."""
    text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else body
    if media_type(content_type) == CSV:
        frame = pd.read_csv(io.StringIO(text))
        frame["padded"] = frame["padded"].astype(str).str.lower() == "true"
    else:
        records = json.loads(text)["predictions"]
        present = [name for name in INTERVAL_COLUMNS if records and name in records[0]]
        frame = pd.DataFrame(records, columns=[*PREDICTION_COLUMNS, *present])
    types = {"unit": np.int64, "predicted_rul": np.float64, "cycles_used": np.int64, "padded": bool}
    types.update({name: np.float64 for name in INTERVAL_COLUMNS if name in frame.columns})
    return frame[response_columns(frame)].astype(types)


def error_body(error: RequestError) -> bytes:
    return json.dumps({"error": error.message, "status": error.status}).encode("utf-8")


# A typical FD001 cruise row (sea level, Mach 0, TRA 100): the settings and the 21 sensors' means.
_CANNED_SETTINGS = (0.0, 0.0, 100.0)
_CANNED_SENSORS = (
    518.67, 642.68, 1590.52, 1408.93, 14.62, 21.61, 553.37, 2388.10, 9065.24, 1.30, 47.54,
    521.41, 2388.10, 8143.75, 8.44, 0.03, 393.21, 2388.0, 100.0, 38.82, 23.29,
)  # fmt: skip


def canned_window(cycles: int = 30, unit: int = 1) -> pd.DataFrame:
    """A deterministic healthy unit of `cycles` rows, for health checks of a freshly loaded model."""
    step = np.arange(cycles, dtype=np.float64)[:, None]
    sensors = np.asarray(_CANNED_SENSORS) * (1.0 + 1e-4 * np.sin(step + np.arange(len(_CANNED_SENSORS))))
    columns: dict[str, np.ndarray] = {
        "unit": np.full(cycles, unit, dtype=np.int64),
        "cycle": np.arange(1, cycles + 1, dtype=np.int64),
    }
    settings = zip(SETTING_COLUMNS, _CANNED_SETTINGS, strict=True)
    columns.update({name: np.full(cycles, value) for name, value in settings})
    columns.update({name: sensors[:, index] for index, name in enumerate(SENSOR_COLUMNS)})
    return pd.DataFrame(columns)[COLUMNS]


def health_check(model: ServingModel) -> dict:
    """One prediction on `canned_window()`; raises `RulError` unless it is a finite RUL within the cap
    (and, for a calibrated model, its interval has finite bounds, 0 <= lower <= upper)."""
    result = predict(model, canned_window()).frame
    value = float(result["predicted_rul"].iloc[0]) if len(result) == 1 else math.nan
    cap = model.predictor.hyperparameters.rul_cap
    if not (math.isfinite(value) and 0.0 <= value <= cap):
        raise RulError(f"health check prediction {value} is not a RUL within [0, {cap}]")
    report = {
        "model_version": model.model_version,
        "model_family": model.model_family,
        "predicted_rul": value,
    }
    if "rul_lower" in result.columns:
        lower, upper = float(result["rul_lower"].iloc[0]), float(result["rul_upper"].iloc[0])
        if not (math.isfinite(lower) and math.isfinite(upper) and 0.0 <= lower <= upper):
            raise RulError(f"health check interval [{lower}, {upper}] is not an interval of RULs")
        report.update(rul_lower=lower, rul_upper=upper)
    return report
