"""The response of an invocation: `Prediction`, content negotiation, rendering and reading it back.

The response (`application/json`, the default) is
`{"predictions": [{"unit", "predicted_rul", "cycles_used", "padded"}, ...], "model_version", "model_family"}`
with units in ascending order; `text/csv` gives the same four columns with a header line. A model that
carries interval calibration (the registered, finally fitted model) adds `rul_lower` and `rul_upper` to
each prediction, in both types: the bounds, in cycles, of an interval meant to hold the true RUL with the
model's `interval_level` (default 90 %) probability, calibrated on held-out whole units (`rul.intervals`);
a model without calibration answers without them. An Accept header naming neither type raises
`RequestError` 406. `parse_response` reads a rendered body back into a frame (the monitors do).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from rul.serving_request import CSV, JSON, RequestError, media_type

ACCEPT_TYPES = (JSON, CSV)
PREDICTION_COLUMNS = ("unit", "predicted_rul", "cycles_used", "padded")
# Present after PREDICTION_COLUMNS when the model carries interval calibration.
INTERVAL_COLUMNS = ("rul_lower", "rul_upper")
_PYTHON_TYPES = {"unit": int, "predicted_rul": float, "cycles_used": int, "padded": bool}
_PYTHON_TYPES.update({name: float for name in INTERVAL_COLUMNS})


def response_columns(frame: pd.DataFrame | dict) -> list[str]:
    """`PREDICTION_COLUMNS`, then `INTERVAL_COLUMNS` when the frame (or column mapping) holds them."""
    return [*PREDICTION_COLUMNS, *(name for name in INTERVAL_COLUMNS if name in frame)]


@dataclass(frozen=True, eq=False)
class Prediction:
    """`rul.inference.predict` output: one entry per unit, in ascending unit order, in `columns`
    (`response_columns` -> numpy array), and the model that made it; `frame` is the same as a DataFrame."""

    columns: dict[str, np.ndarray]
    model_version: str | None
    model_family: str

    @classmethod
    def of_frame(cls, frame: pd.DataFrame, model_version: str | None, model_family: str) -> Prediction:
        """The prediction of a frame with `response_columns` (any unit order: sorted here)."""
        if not frame["unit"].is_monotonic_increasing:
            frame = frame.sort_values("unit", kind="stable")
        columns = {name: frame[name].to_numpy() for name in response_columns(frame)}
        return cls(columns, model_version, model_family)

    @cached_property
    def frame(self) -> pd.DataFrame:
        """`columns` as a DataFrame (built once, on first use)."""
        return pd.DataFrame(self.columns)


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


def prediction_records(frame: pd.DataFrame | dict) -> list[dict]:
    """One dict per unit of a frame (or column mapping) of `response_columns`, holding Python int, float
    and bool values."""
    names = response_columns(frame)
    # a column's tolist() gives Python scalars at once, far cheaper than a pandas row per record
    columns = [[_PYTHON_TYPES[name](value) for value in np.asarray(frame[name]).tolist()] for name in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _csv_cell(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def render(prediction: Prediction, accept: str | None) -> tuple[bytes, str]:
    """The response body and its content type for the negotiated Accept type."""
    kind = negotiate(accept)
    records = prediction_records(prediction.columns)
    if kind == CSV:
        columns = response_columns(prediction.columns)
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
    """The JSON error document of a `RequestError`: `{"error": message, "status": code}`."""
    return json.dumps({"error": error.message, "status": error.status}).encode("utf-8")
