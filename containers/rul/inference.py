"""Serving's model: loading it, predicting for one request or a batch of them, and its health check.

Both serving forms of `serve.py` use this module with `rul.serving_request` (request bodies -> validated
rows: `parse_request`, `RequestError`, the content types and limits) and `rul.serving_response` (the
`Prediction`, content negotiation and rendering); their names are re-exported here, the module callers
have always imported them from.

The model predicts the RUL at each unit's last cycle; a unit with fewer cycles than the model's window is
padded and says so. A gbm model whose feature set `rul.fast_path` knows is predicted by that module's
compiled trees and last-row features (the same floats, bit for bit); any other model, and a request the
fast path does not take, by the predictor itself (`RulPredictor.predict_last`). `BatchingPredictor`
lets the concurrent requests of one worker share a prediction. `health_check` predicts once on a canned
healthy window, the check the local endpoint runs before it swaps models.

Training sees every unit from cycle 1, so a unit sent from cycle 1 is always taken (padded when short).
A unit sent from a later cycle gets the training features only when it carries the trailing rows the
model reads (`ServingModel.history_cycles`: the longest span of its features, 60 cycles for `rich`, or a
deep model's window); a model whose features use each unit's whole history (`needs_whole_history`, the
`regime` feature set) needs its rows from cycle 1. `check_whole_history` refuses any other request (400)
before it is predicted, naming the unit, its first cycle, the rows sent and the rows needed.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TypeAlias, cast

import numpy as np
import pandas as pd

from rul.data import COLUMNS, SENSOR_COLUMNS, SETTING_COLUMNS
from rul.errors import RulError
from rul.fast_path import FastPredictor
from rul.features import late_starts
from rul.models import RulPredictor
from rul.serving_request import (
    CONTENT_TYPES,
    CSV,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ROWS,
    JSON,
    RequestError,
    RequestLimits,
    RequestRows,
    media_type,
    parse_csv,
    parse_json,
    parse_request,
    parse_rows,
)
from rul.serving_response import (
    ACCEPT_TYPES,
    INTERVAL_COLUMNS,
    PREDICTION_COLUMNS,
    Prediction,
    error_body,
    negotiate,
    parse_response,
    prediction_records,
    render,
    response_columns,
)

__all__ = [
    "ACCEPT_TYPES", "CONTENT_TYPES", "CSV", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_ROWS", "INTERVAL_COLUMNS",
    "JSON", "MODEL_VERSION_VARIABLE", "PREDICTION_COLUMNS", "BatchingPredictor", "Prediction", "RequestError",
    "RequestLimits", "RequestRows", "ServingModel", "canned_window", "check_whole_history", "error_body",
    "health_check", "late_start_problem", "load_model", "media_type", "negotiate", "parse_csv", "parse_json",
    "parse_request", "parse_response", "parse_rows", "predict", "predict_each", "predict_many",
    "prediction_records", "render", "response_columns",
]  # fmt: skip

# Set by the deployment (a SageMaker Model's Environment) when the artifact does not carry a version.
MODEL_VERSION_VARIABLE = "MODEL_VERSION"
# What `predict` takes: a parsed request, or a frame of `COLUMNS` (a test's, a health check's).
Rows: TypeAlias = RequestRows | pd.DataFrame


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
        """The window length (cycles) of the model's feature transformer."""
        return self.predictor.transformer.window

    @property
    def needs_whole_history(self) -> bool:
        """Whether each unit's rows must start at cycle 1: a tabular model whose transformer computes
        whole-history features (a deep model reads its sensor windows only)."""
        return not self.predictor.deep and self.predictor.transformer.needs_whole_history

    @cached_property
    def history_cycles(self) -> int | None:
        """The rows a unit that starts after cycle 1 must carry: a deep model's window, else the longest
        span of its transformer's features (`FeatureTransformer.history_cycles`); None when every unit
        must start at cycle 1 (`needs_whole_history`)."""
        return self.window if self.predictor.deep else self.predictor.transformer.history_cycles

    def history_reason(self) -> str:
        """What the model reads of each unit's trailing rows (`history_cycles`), in words."""
        if self.predictor.deep:
            return f"model family {self.model_family!r} reads windows of the last {self.window} cycles"
        transformer, cycles = self.predictor.transformer, self.history_cycles
        reason = f"feature set {transformer.feature_set!r} computes rolling statistics over {cycles} cycles"
        if any(":ewm" in name for name in transformer.feature_names):
            reason += " and exponentially weighted means"
        return reason


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


def late_start_problem(model: ServingModel, units: np.ndarray, cycles: np.ndarray) -> tuple[int, str] | None:
    """The first unit the model cannot predict as it was trained, and the problem in words; None when
    every unit starts at cycle 1 or carries the model's `history_cycles` rows. A `regime` model (no
    trailing window is enough) refuses every unit that starts after cycle 1."""
    late, first = late_starts(units, cycles)
    if not len(late):
        return None
    needed = model.history_cycles
    if needed is None:
        more = f" (and {len(late) - 1} more units start after cycle 1)" if len(late) > 1 else ""
        unit, reason = int(late[0]), model.predictor.transformer.whole_history_reason()
        return unit, (
            f"unit {unit} starts at cycle {first[0]}{more}: {reason}, so rows that start later give other "
            "features than the model was trained on; send the unit's rows from cycle 1"
        )
    unit_ids, counts = np.unique(np.asarray(units), return_counts=True)
    sent = counts[np.searchsorted(unit_ids, late)]
    short = sent < needed
    if not short.any():
        return None
    late, first, sent = late[short], first[short], sent[short]
    more = f" (and {len(late) - 1} more units start after cycle 1 with too few rows)" if len(late) > 1 else ""
    unit = int(late[0])
    return unit, (
        f"unit {unit} starts at cycle {first[0]} with {sent[0]} rows, fewer than the {needed} the model "
        f"needs{more}: {model.history_reason()}, so fewer rows give other features than the model was "
        f"trained on; send the unit's last {needed} cycles or its whole history"
    )


def check_whole_history(model: ServingModel, rows: Rows) -> None:
    """`RequestError` 400 (`late_start_problem`) when a unit of the request starts after cycle 1 with
    fewer rows than the model reads (`ServingModel.history_cycles`)."""
    if isinstance(rows, RequestRows):
        units, cycles = rows.values[:, 0], rows.values[:, 1]
    else:
        units, cycles = rows["unit"].to_numpy(), rows["cycle"].to_numpy()
    problem = late_start_problem(model, units, cycles)
    if problem is not None:
        raise RequestError(400, problem[1])


def _frame(rows: Rows) -> pd.DataFrame:
    return rows.frame() if isinstance(rows, RequestRows) else rows


def predict(model: ServingModel, rows: Rows) -> Prediction:
    """RUL at each unit's last cycle of the rows of one request (`parse_rows`, or a frame of `COLUMNS`)."""
    if model.fast is not None and model.fast.handles(len(rows)):
        return Prediction(model.fast.predict_columns(rows), model.model_version, model.model_family)
    result = model.predictor.predict_last(_frame(rows))
    return Prediction.of_frame(result, model.model_version, model.model_family)


def predict_many(model: ServingModel, requests: list[Rows]) -> list[Prediction]:
    """`predict` for several requests at the cost of about one: their units are renumbered apart, predicted
    together and split back. Per-call overhead (the trees of every member, the per-sensor feature passes)
    dominates a single unit's prediction, and each unit's features depend on its own rows only, so the
    results equal those of separate calls."""
    if len(requests) == 1:
        return [predict(model, requests[0])]
    if model.fast is not None and model.fast.handles(sum(len(rows) for rows in requests)):
        results = model.fast.predict_many(requests)
        if results is not None:
            return [Prediction(columns, model.model_version, model.model_family) for columns in results]
    parts, offset = [], 0
    for index, frame in enumerate(_frame(rows) for rows in requests):
        codes, _ = pd.factorize(frame["unit"])
        parts.append(
            frame.assign(unit=codes + offset + 1, request=index, original_unit=frame["unit"].to_numpy())
        )
        offset += int(codes.max()) + 1
    combined = pd.concat(parts, ignore_index=True)
    lookup = combined.drop_duplicates("unit").set_index("unit")[["request", "original_unit"]]
    result = model.predictor.predict_last(combined[COLUMNS]).join(lookup, on="unit")
    predictions = []
    for index in range(len(requests)):
        mine = result[result["request"] == index].assign(unit=lambda rows: rows["original_unit"])
        predictions.append(Prediction.of_frame(mine, model.model_version, model.model_family))
    return predictions


class _Job:
    def __init__(self, rows: Rows):
        self.rows = rows
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

    def predict(self, rows: Rows) -> Prediction:
        """`predict(model, rows)`, in a batch with the requests that arrive while the last batch runs."""
        job = _Job(rows)
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
        while self._queue and (not batch or rows + len(self._queue[0].rows) <= self.max_rows):
            job = self._queue.pop(0)
            batch.append(job)
            rows += len(job.rows)
        if len(self.batch_sizes) < 10_000:
            self.batch_sizes.append(len(batch))
        return batch

    def _run(self, batch: list[_Job]) -> None:
        for job, result in zip(batch, predict_each(self.model, [job.rows for job in batch]), strict=True):
            if isinstance(result, Prediction):
                job.result = result
            else:
                job.error = result
            job.done = True


def predict_each(model: ServingModel, requests: list[Rows]) -> list[Prediction | Exception]:
    """`predict_many`, or, if that fails, `predict` of each request alone: a fault stays with the request
    that caused it, as the exception in its place."""
    try:
        return list[Prediction | Exception](predict_many(model, requests))
    except Exception as error:
        if len(requests) == 1:
            return [error]
    results: list[Prediction | Exception] = []
    for rows in requests:
        try:
            results.append(predict(model, rows))
        except Exception as error:
            results.append(error)
    return results


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
