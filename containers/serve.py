"""Serving the RUL model on SageMaker, in both of its forms, with one request/response contract.

1. Framework container (the SageMaker inference toolkit imports this module as the user script):
   `model_fn(model_dir)`, `input_fn(request_body, request_content_type)`, `predict_fn(input_data, model)`
   and `output_fn(prediction, accept)`. A bad request raises `RequestError`, which is also the toolkit's
   `GenericInferenceToolkitError` when the toolkit is installed, so the toolkit answers 4xx, not 500.
2. Bring-your-own container: SageMaker runs the image with the argument `serve`; `python serve.py serve`
   starts gunicorn (workers `$SAGEMAKER_MODEL_SERVER_WORKERS`, default 2) with uvicorn workers on the
   ASGI app of `create_app` (`rul.http_app`, with the connection rules of `rul.http_protocol`), listening
   on `$RUL_BIND_HOST` (default 0.0.0.0, the container contract; the local endpoint sets 127.0.0.1) port
   `$SAGEMAKER_BIND_TO_PORT` (default 8080): `GET /ping` (200 once the model loaded, else 503) and
   `POST /invocations`. The model is `<base>/model` (`rul.contract.base_dir`, `/opt/ml` unless
   `SAGEMAKER_BASE_DIR` moves it); a `model.tar.gz` there is unpacked first. `serve` binds the port
   itself before anything else and exits 1 at once, naming the address, when it is taken.
   With `$RUL_MODEL_RELOAD_SECONDS` > 0 each worker follows `<base>/model` when it is repointed: it loads
   and health-checks the new model in the background and switches to it between requests.

Request and response shapes are in `rul.inference`; data capture (optional, `$RUL_CAPTURE_DIR`) in
`rul.capture`, and its upload to `$RUL_CAPTURE_S3_URI` (optional, by the master) in `rul.capture_upload`.
Bad input answers 4xx with `{"error": message, "status": code}`; the server's own faults answer 500 with
a message, and never kill the worker. `python serve.py check <model_dir>` loads a model
and makes one prediction on a canned window, printing a JSON verdict (exit 0 or 1): the health check the
local endpoint runs in a fresh process before it swaps models.

The model libraries are imported inside functions: OpenMP reads `OMP_NUM_THREADS` once, when scikit-learn
loads it, and the server sets one thread per worker before that happens (the worker and thread rule is in
`rul.http_settings`). A gbm model with a feature set `rul.fast_path` knows is predicted by that module's
compiled trees and last-row features: the same answers, bit for bit, for a fraction of the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tarfile
import traceback
from functools import cache
from pathlib import Path
from typing import Any

from rul.errors import ConfigurationError, RulError
from rul.http_settings import (  # noqa: F401 - re-exported: the tests and the toolkit use serve.*
    BODY_TIMEOUT_VARIABLE,
    CAPTURE_DIR_VARIABLE,
    CAPTURE_PERCENTAGE_VARIABLE,
    CAPTURE_SEED_VARIABLE,
    ENDPOINT_NAME_VARIABLE,
    HEADER_TIMEOUT_VARIABLE,
    HOST_VARIABLE,
    KEEPALIVE_VARIABLE,
    MAX_BYTES_VARIABLE,
    MAX_CONNECTIONS_VARIABLE,
    MAX_HEADER_BYTES_VARIABLE,
    MAX_ROWS_VARIABLE,
    PORT_VARIABLE,
    RELOAD_VARIABLE,
    THREADS_VARIABLE,
    TIMEOUT_VARIABLE,
    VARIANT_VARIABLE,
    WORKERS_VARIABLE,
    ServerSettings,
)

INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
MODEL_ARCHIVE = "model.tar.gz"


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


# --- the service and its ASGI app ------------------------------------------------------------------------


class Service:
    """The server's model, limits and data capture; answers ping and invocations as (status, body, type).

    Kept apart from HTTP so the behaviour is testable without a server. A model that fails to load leaves
    the service up, answering 503 with the reason, so a worker never fails to boot. The model and its
    batcher are one reference, replaced whole by `reload_if_moved`: a request uses the pair it read first.
    """

    def __init__(self, settings: ServerSettings, capture=None):
        from rul.capture import CaptureConfig, DataCapture
        from rul.inference import RequestLimits

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
        self.model_dir = Path(settings.model_dir)
        # (ServingModel, BatchingPredictor) once loaded; rul.inference is imported lazily
        self._active: tuple[Any, Any] = (None, None)
        self.load_error: str | None = None
        self.loaded_from: str | None = None
        self._refused: str | None = None
        self._load(check=False)

    @property
    def model(self):
        return self._active[0]

    @property
    def batcher(self):
        return self._active[1]

    def _load(self, check: bool) -> bool:
        """Load what `model_dir` resolves to now (and health-check it); switch to it if all went well."""
        from rul.inference import BatchingPredictor, health_check, load_model

        source = os.path.realpath(self.model_dir)
        try:
            model = load_model(unpack_model(source))
            if check:
                health_check(model)
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            _log(f"model not loaded from {source}: {reason}")
            if self.model is None:
                self.load_error = reason
            return False
        self._active = (model, BatchingPredictor(model, self.limits.max_rows))
        self.loaded_from, self.load_error = source, None
        _log(f"serving model version {model.model_version} from {source}")
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
        model = self.model
        if model is None:
            return _error(503, f"model not loaded: {self.load_error}")
        document = {
            "status": "healthy",
            "model_version": model.model_version,
            "model_family": model.model_family,
        }
        return 200, json.dumps(document).encode("utf-8"), JSON_TYPE

    def invoke(
        self, body: bytes, content_type: str | None, accept: str | None, inference_id: str | None = None
    ) -> tuple[int, bytes, str]:
        """One invocation: 200 with predictions, 4xx for a bad request, 500 for a fault of the server."""
        from rul.inference import RequestError, negotiate, parse_request, render

        model, batcher = self._active
        if model is None:
            return _error(503, f"model not loaded: {self.load_error}")
        try:
            negotiate(accept)  # 406 before any work
            frame = parse_request(body, content_type, self.limits)
            payload, payload_type = render(batcher.predict(frame), accept)
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
    """The ASGI app of the standalone server (`rul.http_app.InferenceApp`); builds a `Service` (loading
    the model) when called. `capture` is a `rul.capture.DataCapture`, or None to build one from
    `settings.capture_dir`."""
    from rul.http_app import HttpLimits, InferenceApp

    settings = settings or ServerSettings.from_environment()
    limits = HttpLimits(
        settings.max_bytes,
        settings.body_timeout,
        settings.threads,
        settings.reload_seconds,
        settings.max_header_bytes,
    )
    return InferenceApp(Service(settings, capture), limits)


# --- the gunicorn server -------------------------------------------------------------------------------


def bind_listener(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound now so that a taken port fails at once, naming the address."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    listener.set_inheritable(True)
    return listener


def worker_class(settings: ServerSettings):
    """A gunicorn worker class running uvicorn with the project's protocol and limits."""
    import warnings

    from rul.http_protocol import protocol_class

    with warnings.catch_warnings():  # the module warns that it moved to the `uvicorn-worker` package
        warnings.simplefilter("ignore", DeprecationWarning)
        from uvicorn.workers import UvicornWorker

    kwargs = {
        "loop": "asyncio",
        "http": protocol_class(float(settings.header_timeout)),
        "lifespan": "on",
        "limit_concurrency": settings.max_connections,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "server_header": False,
    }
    return type("InferenceWorker", (UvicornWorker,), {"CONFIG_KWARGS": kwargs})


def run_server(settings: ServerSettings, pid_file: Path | None = None, listener_fd: int | None = None) -> int:
    """Run gunicorn (uvicorn workers) on `create_app` until it is stopped.

    `listener_fd` is a socket `bind_listener` bound; without one gunicorn binds `host:port` itself.
    """
    from gunicorn.app.base import BaseApplication

    bind = f"fd://{listener_fd}" if listener_fd is not None else f"{settings.host}:{settings.port}"
    options = {
        "bind": bind,
        "workers": settings.workers,
        "worker_class": worker_class(settings),
        "timeout": settings.timeout,
        "graceful_timeout": settings.timeout,
        "keepalive": settings.keepalive,
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
            return create_app(settings)

    # Import the model libraries once in the master, so that a worker forked at start or after a crash
    # only loads the model (about 0.1 s) instead of importing pandas and scikit-learn too (seconds).
    import rul.http_app
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
    serve.add_argument("--host", default=None, help=f"bind address; default: ${HOST_VARIABLE} or 0.0.0.0")
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
        for variable, value in ((HOST_VARIABLE, args.host), (PORT_VARIABLE, args.port)):
            if value is not None:
                os.environ[variable] = str(value)
        if args.workers is not None:
            os.environ[WORKERS_VARIABLE] = str(args.workers)
        settings = ServerSettings.from_environment()
        listener = bind_listener(settings.host, settings.port)
    except RulError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 1
    return run_server(settings, args.pid_file, listener.detach())


if __name__ == "__main__":
    raise SystemExit(main())
