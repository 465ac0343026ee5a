"""Serving the RUL model on SageMaker, in both of its forms, with one request/response contract.

1. Framework container (the SageMaker inference toolkit imports this module as the user script):
   `model_fn(model_dir)`, `input_fn(request_body, request_content_type)`, `predict_fn(input_data, model)`
   and `output_fn(prediction, accept)`. A bad request raises `RequestError`, which is also the toolkit's
   `GenericInferenceToolkitError` when the toolkit is installed, so the toolkit answers 4xx, not 500.
2. Bring-your-own container: SageMaker runs the image with the argument `serve`; `python serve.py serve`
   starts gunicorn (workers `$SAGEMAKER_MODEL_SERVER_WORKERS`, default 2; port `$SAGEMAKER_BIND_TO_PORT`,
   default 8080) on the Flask app of `create_app`: `GET /ping` (200 once the model loaded, else 503) and
   `POST /invocations`. The model is `<base>/model` (`rul.contract.base_dir`, `/opt/ml` unless
   `SAGEMAKER_BASE_DIR` moves it); a `model.tar.gz` there is unpacked first. Each worker loads the model
   when it starts, so a gunicorn HUP (graceful reload) picks up whatever `<base>/model` points to then.

Request and response shapes are in `rul.inference`; data capture (optional, `$RUL_CAPTURE_DIR`) in
`rul.capture`, and its upload to `$RUL_CAPTURE_S3_URI` (optional, by the master) in `rul.capture_upload`.
Bad input answers 4xx with `{"error": message, "status": code}`; the server's own faults answer 500 with
a message, and never kill the worker. `python serve.py check <model_dir>` loads a model
and makes one prediction on a canned window, printing a JSON verdict (exit 0 or 1): the health check the
local endpoint runs in a fresh process before it swaps models.

The model libraries are imported inside functions: OpenMP reads `OMP_NUM_THREADS` once, when scikit-learn
loads it, and the server sets one thread per worker before that happens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rul.contract import base_dir
from rul.errors import ConfigurationError, RulError

PORT_VARIABLE = "SAGEMAKER_BIND_TO_PORT"
WORKERS_VARIABLE = "SAGEMAKER_MODEL_SERVER_WORKERS"
TIMEOUT_VARIABLE = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
THREADS_VARIABLE = "RUL_SERVER_THREADS"
CAPTURE_DIR_VARIABLE = "RUL_CAPTURE_DIR"
CAPTURE_PERCENTAGE_VARIABLE = "RUL_CAPTURE_PERCENTAGE"
CAPTURE_SEED_VARIABLE = "RUL_CAPTURE_SEED"
ENDPOINT_NAME_VARIABLE = "RUL_ENDPOINT_NAME"
VARIANT_VARIABLE = "RUL_VARIANT_NAME"
MAX_BYTES_VARIABLE = "RUL_MAX_REQUEST_BYTES"
MAX_ROWS_VARIABLE = "RUL_MAX_REQUEST_ROWS"
INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
MODEL_ARCHIVE = "model.tar.gz"


# --- settings ------------------------------------------------------------------------------------------


def _integer(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = environ.get(name, "")
    if not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(f"{name}={text!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name}={value} is outside [{low}, {high}]")
    return value


def _percentage(text: str) -> float:
    if not text.strip():
        return 100.0
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{CAPTURE_PERCENTAGE_VARIABLE}={text!r} is not a number") from None
    if not 0.0 <= value <= 100.0:
        raise ConfigurationError(f"{CAPTURE_PERCENTAGE_VARIABLE}={value} is outside [0, 100]")
    return value


def _optional_seed(environ: Mapping[str, str]) -> int | None:
    if not environ.get(CAPTURE_SEED_VARIABLE, "").strip():
        return None
    return _integer(environ, CAPTURE_SEED_VARIABLE, 0, 0, 2**31 - 1)


@dataclass(frozen=True)
class ServerSettings:
    """What the server reads from its environment, validated once at start-up."""

    model_dir: Path
    port: int = 8080
    workers: int = 2
    threads: int = 4
    timeout: int = 60
    max_bytes: int = 5 * 1024 * 1024
    max_rows: int = 50_000
    capture_dir: Path | None = None
    capture_percentage: float = 100.0
    capture_seed: int | None = None
    endpoint_name: str = "turbofan-rul"
    variant_name: str = "AllTraffic"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        environ = os.environ if environ is None else environ
        percentage_text = environ.get(CAPTURE_PERCENTAGE_VARIABLE, "").strip() or "100"
        try:
            percentage = float(percentage_text)
        except ValueError:
            raise ConfigurationError(
                f"{CAPTURE_PERCENTAGE_VARIABLE}={percentage_text!r} is not a number"
            ) from None
        if not 0.0 <= percentage <= 100.0:
            raise ConfigurationError(f"{CAPTURE_PERCENTAGE_VARIABLE}={percentage} is outside [0, 100]")
        capture_dir = environ.get(CAPTURE_DIR_VARIABLE, "").strip()
        return cls(
            model_dir=base_dir(environ) / "model",
            port=_integer(environ, PORT_VARIABLE, 8080, 1, 65535),
            workers=_integer(environ, WORKERS_VARIABLE, 2, 1, 64),
            threads=_integer(environ, THREADS_VARIABLE, 4, 1, 64),
            timeout=_integer(environ, TIMEOUT_VARIABLE, 60, 1, 3600),
            max_bytes=_integer(environ, MAX_BYTES_VARIABLE, 5 * 1024 * 1024, 1, 6 * 1024 * 1024),
            max_rows=_integer(environ, MAX_ROWS_VARIABLE, 50_000, 1, 1_000_000),
            capture_dir=Path(capture_dir) if capture_dir else None,
            capture_percentage=percentage,
            capture_seed=_optional_seed(environ),
            endpoint_name=environ.get(ENDPOINT_NAME_VARIABLE, "").strip() or "turbofan-rul",
            variant_name=environ.get(VARIANT_VARIABLE, "").strip() or "AllTraffic",
        )


# --- model loading -------------------------------------------------------------------------------------


def unpack_model(model_dir: str | Path) -> Path:
    """Unpack `<model_dir>/model.tar.gz` into `model_dir` when the folder holds the archive only."""
    model_dir = Path(model_dir)
    archive = model_dir / MODEL_ARCHIVE
    if archive.is_file() and not (model_dir / "metadata.json").is_file():
        with tarfile.open(archive) as bundle:
            bundle.extractall(model_dir, filter="data")
    return model_dir


# --- SageMaker inference toolkit handlers --------------------------------------------------------------


@cache
def _toolkit_error_class():
    """RequestError that is also the toolkit's error type, so the toolkit answers with its status."""
    from rul.inference import RequestError

    try:
        from sagemaker_inference.errors import GenericInferenceToolkitError
    except ImportError:
        return RequestError

    class ToolkitRequestError(RequestError, GenericInferenceToolkitError):
        def __init__(self, status: int, message: str):
            RequestError.__init__(self, status, message)
            GenericInferenceToolkitError.__init__(self, status, message)

    return ToolkitRequestError


def _reraise(error) -> None:
    raise _toolkit_error_class()(error.status, error.message) from None


def model_fn(model_dir: str):
    """Load the model folder SageMaker unpacked model.tar.gz into."""
    from rul.inference import load_model

    return load_model(unpack_model(model_dir))


def input_fn(request_body: bytes | str, request_content_type: str | None):
    """Request body -> validated C-MAPSS frame; RequestError (4xx) for a bad request."""
    from rul.inference import RequestError, parse_request

    try:
        return parse_request(request_body, request_content_type)
    except RequestError as error:
        _reraise(error)


def predict_fn(input_data, model):
    """RUL at each unit's last cycle."""
    from rul.inference import predict

    return predict(model, input_data)


def output_fn(prediction, accept: str | None):
    """(body, content type); 406 for an Accept header the server cannot answer."""
    from rul.inference import RequestError, render

    try:
        return render(prediction, accept)
    except RequestError as error:
        _reraise(error)


# --- the WSGI app ----------------------------------------------------------------------------------------


class Service:
    """The server's model, limits and data capture; answers ping and invocations as (status, body, type).

    Kept apart from Flask so the behaviour is testable without HTTP. A model that fails to load leaves the
    service up, answering 503 with the reason, so a gunicorn worker never fails to boot.
    """

    def __init__(self, settings: ServerSettings, capture=None):
        from rul.capture import CaptureConfig, DataCapture
        from rul.inference import BatchingPredictor, RequestLimits, load_model

        self.limits = RequestLimits(settings.max_bytes, settings.max_rows)
        if capture is None and settings.capture_dir is not None:
            config = CaptureConfig(
                settings.capture_dir,
                settings.endpoint_name,
                settings.variant_name,
                settings.capture_percentage,
                settings.capture_seed,
            )
            capture = DataCapture(config)
        self.capture = capture
        self.model, self.load_error, self.batcher = None, None, None
        try:
            self.model = load_model(unpack_model(settings.model_dir))
            self.batcher = BatchingPredictor(self.model, self.limits.max_rows)
        except Exception as error:
            self.load_error = f"{type(error).__name__}: {error}"
            _log(f"model not loaded from {settings.model_dir}: {self.load_error}")

    def ping(self) -> tuple[int, bytes, str]:
        if self.model is None:
            return _error(503, f"model not loaded: {self.load_error}")
        document = {
            "status": "healthy",
            "model_version": self.model.model_version,
            "model_family": self.model.model_family,
        }
        return 200, json.dumps(document).encode("utf-8"), JSON_TYPE

    def invoke(
        self, body: bytes, content_type: str | None, accept: str | None, inference_id: str | None = None
    ) -> tuple[int, bytes, str]:
        """One invocation: 200 with predictions, 4xx for a bad request, 500 for a fault of the server."""
        from rul.inference import RequestError, negotiate, parse_request, render

        if self.model is None:
            return _error(503, f"model not loaded: {self.load_error}")
        try:
            negotiate(accept)  # 406 before any work
            frame = parse_request(body, content_type, self.limits)
            payload, payload_type = render(self.batcher.predict(frame), accept)
        except RequestError as error:
            return _error(error.status, error.message)
        except Exception as error:
            _log(traceback.format_exc())
            return _error(500, f"internal error: {type(error).__name__}: {error}")
        if self.capture is not None:
            try:
                self.capture.capture(body, content_type, payload, payload_type, inference_id)
            except Exception:  # a capture fault must not fail the inference
                _log("data capture failed:\n" + traceback.format_exc())
        return 200, payload, payload_type


JSON_TYPE = "application/json"


def _error(status: int, message: str) -> tuple[int, bytes, str]:
    return status, json.dumps({"error": message, "status": status}).encode("utf-8"), JSON_TYPE


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def create_app(settings: ServerSettings | None = None, capture=None):
    """The Flask app of the standalone server; builds a `Service` (loading the model) when called.

    gunicorn calls it in each worker. `capture` is a `rul.capture.DataCapture`, or None to build one from
    `settings.capture_dir`.
    """
    from flask import Flask, Response, request
    from werkzeug.exceptions import HTTPException

    service = Service(settings or ServerSettings.from_environment(), capture)
    app = Flask("rul-serving")
    app.extensions["rul_service"] = service

    def respond(answer: tuple[int, bytes, str]) -> Response:
        status, payload, content_type = answer
        return Response(payload, status=status, content_type=content_type)

    @app.get("/ping")
    def ping():
        return respond(service.ping())

    @app.post("/invocations")
    def invocations():
        limit = service.limits.max_bytes
        if request.content_length is not None and request.content_length > limit:
            message = f"the request body is {request.content_length} bytes; the limit is {limit}"
            return respond(_error(413, message))
        body = request.stream.read(limit + 1)  # one byte more than allowed, for parse_request to refuse
        headers = request.headers
        return respond(
            service.invoke(
                body, headers.get("Content-Type"), headers.get("Accept"), headers.get(INFERENCE_ID_HEADER)
            )
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return respond(_error(error.code or 500, error.description or error.name))

    return app


# --- the gunicorn server -------------------------------------------------------------------------------


def run_server(settings: ServerSettings, pid_file: Path | None = None) -> int:
    """Run gunicorn (gthread workers) on `create_app` until it is stopped; HUP reloads the workers."""
    from gunicorn.app.base import BaseApplication

    options = {
        "bind": f"0.0.0.0:{settings.port}",
        "workers": settings.workers,
        "worker_class": "gthread",
        "threads": settings.threads,
        "timeout": settings.timeout,
        "graceful_timeout": settings.timeout,
        "keepalive": 75,  # longer than the clients' idle timeout, as SageMaker advises
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "pidfile": str(pid_file) if pid_file else None,
    }

    class StandaloneServer(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return create_app(ServerSettings.from_environment())

    # Import the model libraries once in the master, so that a worker forked at start or on a HUP only
    # loads the model (about 0.1 s) instead of importing pandas and scikit-learn too (seconds).
    import rul.inference  # noqa: F401
    from rul.capture_upload import uploader_from_environment

    # Captures go to S3 from the master, never from a worker: a request never waits for an upload.
    uploader = uploader_from_environment(os.environ, settings.capture_dir, settings.endpoint_name)
    if uploader is not None:
        uploader.start()
    try:
        StandaloneServer().run()
    finally:  # gunicorn exits through SystemExit once its workers stopped: upload what they wrote
        if uploader is not None:
            uploader.stop()
    return 0


def run_check(model_dir: Path) -> int:
    """Load a model and predict once on a canned window; print a JSON verdict."""
    from rul.inference import health_check, load_model

    try:
        verdict = {"ok": True, **health_check(load_model(unpack_model(model_dir)))}
    except Exception as error:
        verdict = {"ok": False, "reason": f"{type(error).__name__}: {error}"}
    print(json.dumps(verdict), flush=True)
    return 0 if verdict["ok"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serve.py", description="Serve the RUL model (SageMaker BYOC).")
    verbs = parser.add_subparsers(dest="verb", required=True)
    serve = verbs.add_parser("serve", help="start the gunicorn server on /ping and /invocations")
    serve.add_argument("--port", type=int, default=None, help=f"default: ${PORT_VARIABLE} or 8080")
    serve.add_argument("--workers", type=int, default=None, help=f"default: ${WORKERS_VARIABLE} or 2")
    serve.add_argument("--pid-file", type=Path, default=None, help="where gunicorn writes its master's pid")
    check = verbs.add_parser("check", help="load a model folder and predict once (a health check)")
    check.add_argument("model_dir", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # One OpenMP thread per worker: workers already use the cores, and nested pools only contend.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.verb == "check":
        return run_check(args.model_dir)
    try:
        if args.port is not None:
            os.environ[PORT_VARIABLE] = str(args.port)
        if args.workers is not None:
            os.environ[WORKERS_VARIABLE] = str(args.workers)
        settings = ServerSettings.from_environment()
    except RulError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return run_server(settings, args.pid_file)


if __name__ == "__main__":
    raise SystemExit(main())
