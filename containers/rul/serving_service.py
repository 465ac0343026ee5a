"""The model server's service: its model, request limits and data capture, apart from HTTP.

`Service.ping()` and `Service.invoke(...)` answer as (status, body, content type), so the behaviour is
testable without a server; `rul.http_app` puts them behind HTTP. Bad input answers 4xx with
`{"error": message, "status": code}`; the server's own faults answer 500 with a message and never kill
the worker; a model that failed to load answers 503 with the reason. A unit that starts after cycle 1
with fewer rows than the model reads (all of them, for a model whose features need each unit's whole
history) answers 400 (`check_whole_history`), before predicting. Only successful invocations are
captured (`rul.capture`), and a capture fault never fails the invocation.

This module imports the model libraries: `serve.py` imports it only once `OMP_NUM_THREADS` is set.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
import traceback
from pathlib import Path
from typing import Any, NamedTuple

from rul.capture import CaptureConfig, DataCapture
from rul.http_settings import ServerSettings
from rul.inference import (
    BatchingPredictor,
    Prediction,
    RequestError,
    RequestLimits,
    check_whole_history,
    health_check,
    load_model,
    negotiate,
    parse_rows,
    predict_each,
    render,
)

JSON_TYPE = "application/json"
MODEL_ARCHIVE = "model.tar.gz"


class Invocation(NamedTuple):
    """One request to /invocations: its body and the headers that matter."""

    body: bytes
    content_type: str | None
    accept: str | None
    inference_id: str | None = None


def unpack_model(model_dir: str | Path) -> Path:
    """Unpack `<model_dir>/model.tar.gz` into `model_dir` when the folder holds the archive only."""
    model_dir = Path(model_dir)
    archive = model_dir / MODEL_ARCHIVE
    if archive.is_file() and not (model_dir / "metadata.json").is_file():
        with tarfile.open(archive) as bundle:
            bundle.extractall(model_dir, filter="data")
    return model_dir


def error_answer(status: int, message: str) -> tuple[int, bytes, str]:
    """(status, the JSON error document, its content type)."""
    return status, json.dumps({"error": message, "status": status}).encode("utf-8"), JSON_TYPE


def log(message: str) -> None:
    """One line (or block) to the server's stderr, flushed."""
    print(message, file=sys.stderr, flush=True)


def capture_of(settings: ServerSettings) -> DataCapture | None:
    """The data capture `settings` ask for, or None without a capture folder."""
    if settings.capture_dir is None:
        return None
    config = CaptureConfig(
        settings.capture_dir,
        settings.endpoint_name,
        settings.variant_name,
        settings.capture_percentage,
        settings.capture_seed,
    )
    return DataCapture(config)


class Service:
    """The server's model, limits and data capture; answers ping and invocations as (status, body, type).

    A model that fails to load leaves the service up, answering 503 with the reason, so a worker never
    fails to boot. The model and its batcher are one reference, replaced whole by `reload_if_moved`: a
    request uses the pair it read first.
    """

    def __init__(self, settings: ServerSettings, capture: DataCapture | None = None):
        self.limits = RequestLimits(settings.max_bytes, settings.max_rows)
        self.capture = capture if capture is not None else capture_of(settings)
        self.model_dir = Path(settings.model_dir)
        self._active: tuple[Any, Any] = (None, None)  # (ServingModel, BatchingPredictor) once loaded
        self.load_error: str | None = None
        self.loaded_from: str | None = None
        self._refused: str | None = None
        self._load(check=False)

    @property
    def model(self):
        """The loaded `ServingModel`, or None while no model has loaded."""
        return self._active[0]

    @property
    def batcher(self):
        """The loaded model's `BatchingPredictor`, or None while no model has loaded."""
        return self._active[1]

    def _load(self, check: bool) -> bool:
        """Load what `model_dir` resolves to now (and health-check it); switch to it if all went well."""
        source = os.path.realpath(self.model_dir)
        try:
            model = load_model(unpack_model(source))
            if check:
                health_check(model)
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            log(f"model not loaded from {source}: {reason}")
            if self.model is None:
                self.load_error = reason
            return False
        self._active = (model, BatchingPredictor(model, self.limits.max_rows))
        self.loaded_from, self.load_error = source, None
        log(f"serving model version {model.model_version} from {source}")
        return True

    def reload_if_moved(self) -> bool:
        """Switch to the model `model_dir` now resolves to, if that changed and the new one is healthy.

        A model that fails to load or to pass the health check is not retried until the link moves again.
        """
        source = os.path.realpath(self.model_dir)
        if source in (self.loaded_from, self._refused):
            return False
        loaded = self._load(check=True)
        self._refused = None if loaded else source
        return loaded

    def ping(self) -> tuple[int, bytes, str]:
        """200 with the model's version and family once it is loaded, else 503 with the reason."""
        model = self.model
        if model is None:
            return error_answer(503, f"model not loaded: {self.load_error}")
        document = {
            "status": "healthy",
            "model_version": model.model_version,
            "model_family": model.model_family,
        }
        return 200, json.dumps(document).encode("utf-8"), JSON_TYPE

    def serves_inline(self) -> bool:
        """Whether the current model predicts a small request in about a millisecond (it has a fast path),
        so that the HTTP layer may answer it on its event loop instead of handing it to a thread."""
        return self.model is not None and self.model.fast is not None

    def invoke(
        self, body: bytes, content_type: str | None, accept: str | None, inference_id: str | None = None
    ) -> tuple[int, bytes, str]:
        """One invocation: 200 with predictions, 4xx for a bad request, 500 for a fault of the server;
        batched with the other threads' requests (`BatchingPredictor`)."""
        model, batcher = self._active
        if model is None:
            return error_answer(503, f"model not loaded: {self.load_error}")
        try:
            negotiate(accept)  # 406 before any work
            rows = parse_rows(body, content_type, self.limits)
            check_whole_history(model, rows)
            prediction = batcher.predict(rows)
        except Exception as error:
            return self._failure(error)
        return self._answer(prediction, Invocation(body, content_type, accept, inference_id))

    def invoke_many(self, calls: list[tuple]) -> list[tuple[int, bytes, str]]:
        """`invoke` of several requests, each given as `invoke`'s arguments, with one prediction
        (`predict_each`) in this thread; each answer is the one `invoke` would give."""
        invocations = [Invocation(*call) for call in calls]
        model = self.model
        if model is None:
            return [error_answer(503, f"model not loaded: {self.load_error}")] * len(invocations)
        answers: list[Any] = [None] * len(invocations)
        parsed = []
        for index, call in enumerate(invocations):
            try:
                negotiate(call.accept)
                rows = parse_rows(call.body, call.content_type, self.limits)
                check_whole_history(model, rows)
                parsed.append((index, rows))
            except Exception as error:
                answers[index] = self._failure(error)
        results = predict_each(model, [rows for _, rows in parsed])
        for (index, _), result in zip(parsed, results, strict=True):
            call = invocations[index]
            answers[index] = (
                self._failure(result) if isinstance(result, Exception) else self._answer(result, call)
            )
        return answers

    def _failure(self, error: Exception) -> tuple[int, bytes, str]:
        if isinstance(error, RequestError):
            return error_answer(error.status, error.message)
        log("".join(traceback.format_exception(error)))
        return error_answer(500, f"internal error: {type(error).__name__}: {error}")

    def _answer(self, prediction: Prediction, call: Invocation) -> tuple[int, bytes, str]:
        """200 with the rendered prediction, captured when capture is on."""
        try:
            payload, payload_type = render(prediction, call.accept)
        except Exception as error:
            return self._failure(error)
        if self.capture is not None:
            try:
                self.capture.capture(call.body, call.content_type, payload, payload_type, call.inference_id)
            except Exception:  # a capture fault must not fail the inference
                log("data capture failed:\n" + traceback.format_exc())
        return 200, payload, payload_type
