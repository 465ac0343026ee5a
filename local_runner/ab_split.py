"""The local endpoint's A/B test: a weighted router in front of two servers, one per production variant.

Like a SageMaker endpoint with a `Champion` and a `Challenger` variant: each request goes to a variant
drawn by weight, unless it names one in `X-Amzn-SageMaker-Target-Variant` (InvokeEndpoint's
`TargetVariant`); the response says which variant answered in `X-Amzn-Invoked-Production-Variant`. Each
variant is a full local server (`endpoint.start_endpoint`) under `<work>/endpoint/variants/<variant>/`,
started with `RUL_VARIANT_NAME`, so its captures land in `<capture dir>/<endpoint>/<variant>/` and the
quality report groups by variant.

State under `<work>/endpoint/ab/`: `state.json` (versions, weights and ports; written atomically) and
`history.jsonl` (one line per start, shift and promotion: the local audit trail). The router re-reads
`state.json` when it changes, so `endpoint ab-shift` in another shell moves the traffic of a running test
without a restart, as UpdateEndpointWeightsAndCapacities does; while that file is missing or unreadable the
router answers 503 naming it.

The router refuses what a variant's server would, with the server's limits (`RouterLimits`, from
`rul.http_settings.ServerSettings`) and its JSON error format (`rul.http_protocol.error_document`), before
anything is forwarded: a POST without a `Content-Length` (or with a chunked body) gets 411, a malformed or
conflicting one 400, one over the body limit 413 without a byte of the body read, a body that does not
arrive within the body timeout 408, one the client cuts short 400. A connection idle for the header timeout
is closed, so a slow or silent client holds one thread of the router for a bounded time, never the router.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lambdas.deploy_on_approval.ab_names import CHALLENGER_VARIANT as CHALLENGER
from lambdas.deploy_on_approval.ab_names import CHAMPION_VARIANT as CHAMPION
from local_runner.atomic import write_json_atomic
from local_runner.container_code import use_container_code
from local_runner.errors import RunnerError

VARIANTS = (CHAMPION, CHALLENGER)
TARGET_HEADER = "X-Amzn-SageMaker-Target-Variant"
INVOKED_HEADER = "X-Amzn-Invoked-Production-Variant"
FORWARDED_HEADERS = ("Content-Type", "Accept", "X-Amzn-SageMaker-Inference-Id")
BACKEND_TIMEOUT = 60.0


class AbError(RunnerError, RuntimeError):
    """The A/B test cannot do what was asked (bad weights, unknown variant, no test running)."""


class RouterStateError(AbError):
    """The router's state file is missing or unreadable: it cannot choose a variant (503)."""


class WeightedSplit:
    """Draws a variant per request in proportion to its weight; thread-safe; seeded for tests."""

    def __init__(self, weights: Mapping[str, float], seed: int | None = None) -> None:
        self._random = random.Random(seed) if seed is not None else random.SystemRandom()
        self._lock = threading.Lock()
        self.set_weights(weights)

    @property
    def weights(self) -> dict[str, float]:
        """A copy of the current weights, by variant name."""
        return dict(self._weights)

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Replace the weights; `AbError` for a negative weight or when all are zero (as SageMaker)."""
        if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise AbError(f"variant weights must be >= 0 and not all zero (got {dict(weights)})")
        with self._lock:
            self._weights = {name: float(weight) for name, weight in weights.items()}

    def choose(self, target: str | None = None) -> str:
        """The variant for one request: `target` when given (it must exist), else a weighted draw."""
        with self._lock:
            if target:
                if target not in self._weights:
                    raise AbError(f"no variant {target!r}; the variants are {', '.join(self._weights)}")
                return target
            names = list(self._weights)
            return self._random.choices(names, weights=[self._weights[n] for n in names])[0]


def percent_weights(challenger_percent: int) -> dict[str, float]:
    """{Champion: 100 - p, Challenger: p}; `AbError` outside [0, 100]."""
    if not 0 <= challenger_percent <= 100:
        raise AbError(f"the challenger's share must be within [0, 100] percent (got {challenger_percent})")
    return {CHAMPION: float(100 - challenger_percent), CHALLENGER: float(challenger_percent)}


# --- state and audit trail -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AbPaths:
    """The files of a local A/B test under `<work>/endpoint/ab`."""

    root: Path  # <work>/endpoint/ab

    @classmethod
    def of(cls, work_dir: str | Path) -> AbPaths:
        """The A/B test files of the work folder `work_dir`."""
        return cls(Path(work_dir) / "endpoint" / "ab")

    @property
    def state(self) -> Path:
        """The running test's state (weights and backends), which the router follows."""
        return self.root / "state.json"

    @property
    def history(self) -> Path:
        """The JSON-lines audit trail: one line per start, shift and promotion."""
        return self.root / "history.jsonl"

    def variant_root(self, variant: str) -> Path:
        """The endpoint folder of one variant's server: `<work>/endpoint/variants/<variant>`."""
        return self.root.parent / "variants" / variant


def read_state(paths: AbPaths) -> dict:
    """The running test's state; `AbError` when there is none or it is not a JSON object."""
    if not paths.state.is_file():
        raise AbError(f"no A/B test was started here ({paths.state} does not exist)")
    try:
        state = json.loads(paths.state.read_text())
    except (OSError, ValueError) as error:
        raise AbError(f"the A/B state file {paths.state} is unreadable: {error}") from None
    if not isinstance(state, dict):
        raise AbError(f"the A/B state file {paths.state} does not hold a JSON object")
    return state


def write_state(paths: AbPaths, state: dict) -> None:
    """Write the test's state atomically (a running router picks it up)."""
    write_json_atomic(paths.state, state)


def record(paths: AbPaths, action: str, **fields: object) -> dict:
    """Append one line to the audit trail and return it."""
    entry = {"at": datetime.now(UTC).isoformat(), "action": action, **fields}
    paths.root.mkdir(parents=True, exist_ok=True)
    with paths.history.open("a") as handle:
        handle.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
    return entry


def history(paths: AbPaths) -> list[dict]:
    """The audit trail's entries, oldest first; empty when no test was started."""
    if not paths.history.is_file():
        return []
    return [json.loads(line) for line in paths.history.read_text().splitlines() if line.strip()]


# --- the router ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouterLimits:
    """What one request to the router may take: body bytes, and seconds for its headers and its body."""

    max_bytes: int
    header_timeout: float
    body_timeout: float


def serving_limits(environ: Mapping[str, str] | None = None) -> RouterLimits:
    """The variants' own limits: the model server's settings from `environ` (default: this process's
    environment, which the variant servers inherit); `AbError` naming a bad variable."""
    use_container_code()  # the router shares the model server's rules
    from rul.errors import ConfigurationError
    from rul.http_settings import ServerSettings

    try:
        settings = ServerSettings.from_environment(os.environ if environ is None else environ)
    except ConfigurationError as error:
        raise AbError(f"the serving settings are invalid: {error}") from None
    return RouterLimits(settings.max_bytes, settings.header_timeout, settings.body_timeout)


def _state_weights(state: object, backends: Mapping[str, object]) -> dict[str, float]:
    """The weights of a state document; `ValueError` naming what is wrong."""
    weights = state.get("weights") if isinstance(state, dict) else None
    if not isinstance(weights, dict) or not weights:
        raise ValueError("it has no 'weights' object")
    for name, weight in weights.items():
        if name not in backends:
            raise ValueError(f"weight for unknown variant {name!r} (the variants are {', '.join(backends)})")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
            raise ValueError(f"the weight of {name} is {weight!r}, not a finite number")
    return weights


@dataclass
class RouterState:
    """The router's split and backends; follows `state_file` when given."""

    split: WeightedSplit
    backends: dict[str, tuple[str, int]]  # variant -> (host, port)
    state_file: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)
    _seen: tuple[int, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def follow(self) -> None:
        """Take new weights from `state_file` when it changed since the last look (an atomic write is a
        new inode); `RouterStateError` naming the file when it is missing or unreadable."""
        if self.state_file is None:
            return
        try:
            status = self.state_file.stat()
            moment = (status.st_mtime_ns, status.st_ino)
            if moment == self._seen:
                return
            self.split.set_weights(_state_weights(json.loads(self.state_file.read_text()), self.backends))
        except FileNotFoundError:
            raise RouterStateError(
                f"the A/B state file {self.state_file} does not exist; `endpoint ab-serve` writes it"
            ) from None
        except (OSError, ValueError, AbError) as error:
            raise RouterStateError(f"the A/B state file {self.state_file} is unreadable: {error}") from None
        self._seen = moment

    def count(self, variant: str) -> None:
        """Count one request routed to `variant`."""
        with self._lock:
            self.counts[variant] = self.counts.get(variant, 0) + 1


class _Refused(AbError):
    """A request the router answers itself with `status` and `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def declared_length(headers: Message, limit: int) -> int:
    """The body length a POST's headers declare; `_Refused` with 411 (none, or a chunked body), 400
    (malformed or conflicting) or 413 (over `limit`)."""
    if headers.get("Transfer-Encoding"):
        raise _Refused(411, "the router takes no chunked body: send the body with a Content-Length")
    values = {value.strip() for value in headers.get_all("Content-Length") or []}
    if not values:
        raise _Refused(411, "a POST needs a Content-Length header")
    if len(values) > 1:
        raise _Refused(400, f"conflicting Content-Length headers: {', '.join(sorted(values))}")
    (text,) = values
    if not re.fullmatch(r"[0-9]+", text):
        raise _Refused(400, f"Content-Length {text[:40]!r} is not a number of bytes")
    if len(text) > len(str(limit)) or int(text) > limit:
        shown = text if len(text) <= 20 else f"{text[:20]}..."
        raise _Refused(413, f"the request body is {shown} bytes; the limit is {limit}")
    return int(text)


def _forward(backend: tuple[str, int], method: str, path: str, body: bytes, headers: dict) -> tuple:
    connection = http.client.HTTPConnection(*backend, timeout=BACKEND_TIMEOUT)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Content-Type") or "application/json"
    finally:
        connection.close()


class _Handler(BaseHTTPRequestHandler):
    server: AbRouter
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.limits.header_timeout)  # then an idle connection is closed

    def log_message(self, format: str, *args: object) -> None:
        return

    def _reply(self, status: int, body: bytes, content_type: str, variant: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if variant is not None:
            self.send_header(INVOKED_HEADER, variant)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, close: bool = False) -> None:
        """Answer in the model server's JSON error format; `close` when the body was left unread."""
        if close:
            self.close_connection = True
        self._reply(status, self.server.error_document(status, message), "application/json")

    def _receive(self, length: int) -> bytes:
        """`length` body bytes within the body timeout; `_Refused` 408 past it, 400 when the client stops."""
        timeout = self.server.limits.body_timeout
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        size = 0
        try:
            while size < length:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self.connection.settimeout(remaining)
                chunk = self.rfile.read1(min(length - size, 1 << 16))
                if not chunk:
                    raise _Refused(400, f"the body ended after {size} of its {length} bytes")
                chunks.append(chunk)
                size += len(chunk)
        except TimeoutError:
            message = (
                f"the request body did not arrive within {timeout:g}s ({size} of {length} bytes received)"
            )
            raise _Refused(408, message) from None
        finally:
            self.connection.settimeout(self.server.limits.header_timeout)
        return b"".join(chunks)

    def do_GET(self) -> None:
        if self.path != "/ping":
            self._error(404, f"no such path {self.path!r}; the router answers GET /ping and POST")
            return
        answers = {}
        for variant, backend in self.server.state.backends.items():
            try:
                answers[variant] = _forward(backend, "GET", "/ping", b"", {})[0]
            except OSError:
                answers[variant] = 0
        healthy = all(status == 200 for status in answers.values())
        self._reply(200 if healthy else 503, json.dumps({"variants": answers}).encode(), "application/json")

    def do_POST(self) -> None:
        try:
            body = self._receive(declared_length(self.headers, self.server.limits.max_bytes))
        except _Refused as refusal:
            self._error(refusal.status, refusal.message, close=True)
            return
        state = self.server.state
        try:
            state.follow()
            variant = state.split.choose(self.headers.get(TARGET_HEADER))
        except RouterStateError as error:
            self._error(503, str(error))
            return
        except AbError as error:
            self._error(400, str(error))
            return
        headers = {name: self.headers[name] for name in FORWARDED_HEADERS if self.headers.get(name)}
        try:
            status, answer, content_type = _forward(state.backends[variant], "POST", self.path, body, headers)
        except OSError as error:
            message = self.server.error_document(502, f"variant {variant} did not answer: {error}")
            self._reply(502, message, "application/json", variant)
            return
        state.count(variant)
        self._reply(status, answer, content_type, variant)


class AbRouter(ThreadingHTTPServer):
    """The listening router; `serve_forever` in a thread or the foreground, `shutdown` to stop. `limits`
    default to the variants' (`serving_limits`)."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], state: RouterState, limits: RouterLimits | None = None
    ) -> None:
        use_container_code()  # the router shares the model server's rules
        from rul.http_protocol import error_document

        self.state = state
        self.limits = limits or serving_limits()
        self.error_document: Callable[[int, str], bytes] = error_document
        super().__init__(address, _Handler)

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        """A client that went away mid-answer is no fault of the router's; anything else is reported."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)
