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
without a restart, as UpdateEndpointWeightsAndCapacities does.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from local_runner.atomic import write_json_atomic
from local_runner.errors import RunnerError

CHAMPION = "Champion"  # settings/ab_testing.py and the deploy function use the same names
CHALLENGER = "Challenger"
VARIANTS = (CHAMPION, CHALLENGER)
TARGET_HEADER = "X-Amzn-SageMaker-Target-Variant"
INVOKED_HEADER = "X-Amzn-Invoked-Production-Variant"
FORWARDED_HEADERS = ("Content-Type", "Accept", "X-Amzn-SageMaker-Inference-Id")
BACKEND_TIMEOUT = 60.0


class AbError(RunnerError, RuntimeError):
    """The A/B test cannot do what was asked (bad weights, unknown variant, no test running)."""


class WeightedSplit:
    """Draws a variant per request in proportion to its weight; thread-safe; seeded for tests."""

    def __init__(self, weights: Mapping[str, float], seed: int | None = None) -> None:
        self._random = random.Random(seed) if seed is not None else random.SystemRandom()
        self._lock = threading.Lock()
        self.set_weights(weights)

    @property
    def weights(self) -> dict[str, float]:
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
        return cls(Path(work_dir) / "endpoint" / "ab")

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def history(self) -> Path:
        return self.root / "history.jsonl"

    def variant_root(self, variant: str) -> Path:
        return self.root.parent / "variants" / variant


def read_state(paths: AbPaths) -> dict:
    """The running test's state; `AbError` when there is none."""
    if not paths.state.is_file():
        raise AbError(f"no A/B test was started here ({paths.state} does not exist)")
    return json.loads(paths.state.read_text())


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


@dataclass
class RouterState:
    """The router's split and backends; follows `state_file` when given."""

    split: WeightedSplit
    backends: dict[str, tuple[str, int]]  # variant -> (host, port)
    state_file: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)
    _seen: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def follow(self) -> None:
        """Take new weights from `state_file` when it changed since the last look."""
        if self.state_file is None or not self.state_file.is_file():
            return
        moment = self.state_file.stat().st_mtime
        if moment == self._seen:
            return
        self._seen = moment
        self.split.set_weights(json.loads(self.state_file.read_text())["weights"])

    def count(self, variant: str) -> None:
        with self._lock:
            self.counts[variant] = self.counts.get(variant, 0) + 1


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

    def log_message(self, format: str, *args: object) -> None:
        return

    def _reply(self, status: int, body: bytes, content_type: str, variant: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if variant is not None:
            self.send_header(INVOKED_HEADER, variant)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path != "/ping":
            self._reply(404, b'{"error": "not found"}', "application/json")
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
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        state = self.server.state
        state.follow()
        try:
            variant = state.split.choose(self.headers.get(TARGET_HEADER))
        except AbError as error:
            self._reply(400, json.dumps({"error": str(error)}).encode(), "application/json")
            return
        headers = {name: self.headers[name] for name in FORWARDED_HEADERS if self.headers.get(name)}
        try:
            status, answer, content_type = _forward(state.backends[variant], "POST", self.path, body, headers)
        except OSError as error:
            message = {"error": f"variant {variant} did not answer: {error}"}
            self._reply(502, json.dumps(message).encode(), "application/json", variant)
            return
        state.count(variant)
        self._reply(status, answer, content_type, variant)


class AbRouter(ThreadingHTTPServer):
    """The listening router; `serve_forever` in a thread or the foreground, `shutdown` to stop."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: RouterState) -> None:
        self.state = state
        super().__init__(address, _Handler)
