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

Request and response shapes are in `rul.serving_request` and `rul.serving_response`, the service behind
both routes in `rul.serving_service`; data capture (optional, `$RUL_CAPTURE_DIR`) in
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
from functools import cache
from pathlib import Path

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
    from rul.serving_service import unpack_model

    return load_model(unpack_model(model_dir))


def input_fn(request_body: bytes | str, request_content_type: str | None):
    """Request body -> validated C-MAPSS frame; RequestError (4xx) for a bad request."""
    from rul.inference import RequestError, parse_request

    try:
        return parse_request(request_body, request_content_type)
    except RequestError as error:
        _reraise(error)


def predict_fn(input_data, model):
    """RUL at each unit's last cycle; RequestError (400) for a unit that starts after cycle 1 with fewer
    rows than the model reads (`check_whole_history`; the model is known only here, not in `input_fn`)."""
    from rul.inference import RequestError, check_whole_history, predict

    try:
        check_whole_history(model, input_data)
    except RequestError as error:
        _reraise(error)
    return predict(model, input_data)


def output_fn(prediction, accept: str | None):
    """(body, content type); 406 for an Accept header the server cannot answer."""
    from rul.inference import RequestError, render

    try:
        return render(prediction, accept)
    except RequestError as error:
        _reraise(error)


# --- the ASGI app ----------------------------------------------------------------------------------------


def __getattr__(name: str):
    """`serve.Service` and `serve.unpack_model`, imported on first use (they load the model libraries)."""
    if name in ("Service", "unpack_model"):
        from rul import serving_service

        return getattr(serving_service, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def create_app(settings: ServerSettings | None = None, capture=None):
    """The ASGI app of the standalone server (`rul.http_app.InferenceApp`); builds a `Service` (loading
    the model) when called. `capture` is a `rul.capture.DataCapture`, or None to build one from
    `settings.capture_dir`."""
    from rul.http_app import HttpLimits, InferenceApp
    from rul.serving_service import Service

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
    from rul.serving_service import unpack_model

    try:
        verdict = {"ok": True, **health_check(load_model(unpack_model(model_dir)))}
    except Exception as error:
        verdict = {"ok": False, "reason": f"{type(error).__name__}: {error}"}
    print(json.dumps(verdict), flush=True)
    return 0 if verdict["ok"] else 1


def build_parser() -> argparse.ArgumentParser:
    """The `serve.py` command line: `serve` and `check`."""
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
    """Run `serve` or `check`; 1 when the settings are bad or the port is taken."""
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
