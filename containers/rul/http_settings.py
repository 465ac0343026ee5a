"""What the model server reads from its environment (`serve.ServerSettings`), validated once at start-up.

Each setting is one environment variable, as SageMaker passes a Model's `Environment` to the container:
the SageMaker ones (`SAGEMAKER_BIND_TO_PORT`, `SAGEMAKER_MODEL_SERVER_WORKERS`,
`SAGEMAKER_MODEL_SERVER_TIMEOUT`) and the project's `RUL_*` ones (threads, request limits, the timeouts
and limits of HTTP connections, data capture, model reloading). An empty variable means the default; a
bad one raises `ConfigurationError` naming the variable and the value. The bind host defaults to 0.0.0.0,
SageMaker's contract for the container; the local endpoint sets `RUL_BIND_HOST=127.0.0.1`.

Workers and threads, the rule: one worker per core (`SAGEMAKER_MODEL_SERVER_WORKERS`, default 2 for the
2-core target; set it to the instance's core count elsewhere), each predicting one batch at a time on one
OpenMP thread (`serve.main` sets `OMP_NUM_THREADS=1` before scikit-learn loads), so the workers fill the
cores and no thread pool nests inside another; a worker beyond the cores adds memory (a few hundred MB)
and context switches, not throughput. `RUL_SERVER_THREADS` (default 16) are batch slots, not parallel
models: requests that arrive while a batch runs join the next one (`rul.inference.BatchingPredictor`),
which a gbm model's fast path (`rul.fast_path`) predicts for little more than the cost of one request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rul.contract import base_dir
from rul.errors import ConfigurationError

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
HOST_VARIABLE = "RUL_BIND_HOST"
HEADER_TIMEOUT_VARIABLE = "RUL_HEADER_TIMEOUT_SECONDS"
BODY_TIMEOUT_VARIABLE = "RUL_BODY_TIMEOUT_SECONDS"
KEEPALIVE_VARIABLE = "RUL_KEEPALIVE_SECONDS"
MAX_CONNECTIONS_VARIABLE = "RUL_MAX_CONNECTIONS"
MAX_HEADER_BYTES_VARIABLE = "RUL_MAX_HEADER_BYTES"
RELOAD_VARIABLE = "RUL_MODEL_RELOAD_SECONDS"


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


def _number(environ: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{name}={text!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name}={value} is outside [{low:g}, {high:g}]")
    return value


def _optional_seed(environ: Mapping[str, str]) -> int | None:
    if not environ.get(CAPTURE_SEED_VARIABLE, "").strip():
        return None
    return _integer(environ, CAPTURE_SEED_VARIABLE, 0, 0, 2**31 - 1)


@dataclass(frozen=True)
class ServerSettings:
    """What the server reads from its environment, validated once at start-up."""

    model_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    # Requests a worker prepares and batches at once: one batch predicts at a time per worker
    # (`rul.inference.BatchingPredictor`), so threads beyond one are batch slots, not parallel models.
    threads: int = 16
    timeout: int = 60
    max_bytes: int = 5 * 1024 * 1024
    max_rows: int = 50_000
    capture_dir: Path | None = None
    capture_percentage: float = 100.0
    capture_seed: int | None = None
    endpoint_name: str = "turbofan-rul"
    variant_name: str = "AllTraffic"
    header_timeout: int = 10
    body_timeout: int = 20
    keepalive: int = 75  # longer than the clients' idle timeout, as SageMaker advises
    max_connections: int = 1000
    max_header_bytes: int = 16 * 1024
    reload_seconds: float = 0.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """The settings from the environment variables; a value out of range is a `ConfigurationError`."""
        environ = os.environ if environ is None else environ
        capture_dir = environ.get(CAPTURE_DIR_VARIABLE, "").strip()
        return cls(
            model_dir=base_dir(environ) / "model",
            host=environ.get(HOST_VARIABLE, "").strip() or "0.0.0.0",
            port=_integer(environ, PORT_VARIABLE, 8080, 1, 65535),
            workers=_integer(environ, WORKERS_VARIABLE, 2, 1, 64),
            threads=_integer(environ, THREADS_VARIABLE, 16, 1, 256),
            timeout=_integer(environ, TIMEOUT_VARIABLE, 60, 1, 3600),
            max_bytes=_integer(environ, MAX_BYTES_VARIABLE, 5 * 1024 * 1024, 1, 6 * 1024 * 1024),
            max_rows=_integer(environ, MAX_ROWS_VARIABLE, 50_000, 1, 1_000_000),
            capture_dir=Path(capture_dir) if capture_dir else None,
            capture_percentage=_number(environ, CAPTURE_PERCENTAGE_VARIABLE, 100.0, 0.0, 100.0),
            capture_seed=_optional_seed(environ),
            endpoint_name=environ.get(ENDPOINT_NAME_VARIABLE, "").strip() or "turbofan-rul",
            variant_name=environ.get(VARIANT_VARIABLE, "").strip() or "AllTraffic",
            header_timeout=_integer(environ, HEADER_TIMEOUT_VARIABLE, 10, 1, 600),
            body_timeout=_integer(environ, BODY_TIMEOUT_VARIABLE, 20, 1, 600),
            keepalive=_integer(environ, KEEPALIVE_VARIABLE, 75, 1, 3600),
            max_connections=_integer(environ, MAX_CONNECTIONS_VARIABLE, 1000, 1, 100_000),
            max_header_bytes=_integer(environ, MAX_HEADER_BYTES_VARIABLE, 16 * 1024, 1024, 1024 * 1024),
            reload_seconds=_number(environ, RELOAD_VARIABLE, 0.0, 0.0, 3600.0),
        )
