"""Fault injection against the real model server (`serve.py serve`) on loopback, bounded in time.

Hostile and broken clients (truncated and slow bodies, bad chunk sizes, deep JSON, huge headers, bad
Content-Length, wrong types, NaN, wrong shapes), idle keep-alive connections and slow partial bodies
while /ping and a prediction must answer fast, a model swap under keep-alive clients, and a taken port.
Each client fault must be answered 4xx in the JSON error format (or, for a client that is gone, not at
all), leave the server alive and serving the right answer, and capture nothing. A small subset runs in
`make test`; the rest is `@pytest.mark.chaos` (`make chaos`).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from pipeline_steps.code import CONTAINERS_DIR
from rul.data import COLUMNS

GOOD_ROW = ",".join(str(value) for value in [1, 1, 0.0, 0.0, 100.0, *range(21)])
TIMEOUT = 1  # the server's header and body timeouts in these tests, seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """One HTTP response off a socket: status, lower-cased headers, body (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed without a response; got {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def raw(port: int, data: bytes, half_close: bool = False, timeout: float = 10) -> tuple[int, dict, dict]:
    """Send raw bytes (half-closing the socket if asked) and read the answer; body parsed as JSON."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        status, headers, body = read_response(sock)
    return status, headers, json.loads(body)


def post_head(length: int | str, content_type: str = "text/csv", extra: str = "") -> bytes:
    return (
        f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def request(port: int, method: str, path: str, body: bytes | None = None, headers=None, timeout=10):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def captured(capture_dir: Path) -> int:
    return sum(len(path.read_text().splitlines()) for path in capture_dir.rglob("*.jsonl"))


class Server:
    def __init__(self, process: subprocess.Popen, port: int, capture_dir: Path, good_body: bytes):
        self.process, self.port, self.capture_dir, self.good_body = process, port, capture_dir, good_body
        self.reference = None

    def predict(self, timeout: float = 10) -> dict:
        return request(
            self.port, "POST", "/invocations", self.good_body, {"Content-Type": "text/csv"}, timeout
        )

    def assert_healthy(self) -> None:
        """Alive, /ping 200, and the good request answered exactly as before."""
        assert self.process.poll() is None, "the server died"
        assert request(self.port, "GET", "/ping")[0] == 200
        status, document = self.predict()
        assert status == 200 and document == self.reference


def start_server(base: Path, model_dir: Path, port: int, capture_dir: Path, workers: int = 1):
    (base / "model").symlink_to(model_dir)
    environ = {
        **os.environ,
        "PYTHONPATH": str(CONTAINERS_DIR),
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
        "RUL_SERVER_THREADS": "2",
        "RUL_BIND_HOST": "127.0.0.1",
        "RUL_HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
        "RUL_BODY_TIMEOUT_SECONDS": str(TIMEOUT),
        "RUL_MAX_REQUEST_BYTES": "400000",
        "RUL_CAPTURE_DIR": str(capture_dir),
        "MODEL_VERSION": "1",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.Popen(
        [sys.executable, str(CONTAINERS_DIR / "serve.py"), "serve"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_dir, serving_subset):
    base = tmp_path_factory.mktemp("faults")
    port, capture_dir = free_port(), base / "capture"
    process = start_server(base, model_dir, port, capture_dir)
    body = serving_subset.test[COLUMNS].to_csv(index=False, header=False).encode()
    server = Server(process, port, capture_dir, body)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, "the server exited"
            try:
                if request(port, "GET", "/ping")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        status, server.reference = server.predict()
        assert status == 200
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def assert_refused(server: Server, send, status: int, words: str) -> None:
    """A client fault: answered `status` in the JSON error format, nothing captured, server fine."""
    before = captured(server.capture_dir)
    answer_status, headers, document = send(server.port)
    assert (answer_status, document["status"]) == (status, status), document
    assert headers["content-type"] == "application/json" and words in document["error"], document
    assert captured(server.capture_dir) == before
    server.assert_healthy()


TRUNCATED = post_head(len(GOOD_ROW) * 12) + GOOD_ROW.encode()
DEEP = b"[" * 100_000
NAN_ROW = GOOD_ROW.replace("100.0", "nan")
# Each: (id, send(port) -> (status, headers, document), expected status, words of the message).
ALWAYS = [
    ("truncated body, client half-closed", lambda p: raw(p, TRUNCATED, half_close=True), 400, "peer closed"),
    (
        "bad chunk size",
        lambda p: raw(
            p, post_head(0).replace(b"Content-Length: 0", b"Transfer-Encoding: chunked") + b"zz\r\n"
        ),
        400,
        "invalid HTTP request",
    ),
    ("deep JSON", lambda p: raw(p, post_head(len(DEEP), "application/json") + DEEP), 400, "100000 levels"),
    (
        "huge headers",
        lambda p: raw(p, post_head(10, extra="X-Big: " + "a" * 40_000 + "\r\n")),
        431,
        "limit is 16384",
    ),
    ("bad Content-Length", lambda p: raw(p, post_head("ten") + b"0123456789"), 400, "Content-Length"),
    ("Content-Length over the limit", lambda p: raw(p, post_head(10_000_000)), 413, "limit is 400000"),
]
CHAOS = [
    (
        "huge headers, trickled",
        lambda p: raw(p, b"POST /invocations HTTP/1.1\r\nX-Big: " + b"a" * 40_000),
        431,
        "Receive buffer too long",
    ),
    ("truncated body, client waits", lambda p: raw(p, TRUNCATED), 408, "did not arrive within"),
    ("negative Content-Length", lambda p: raw(p, post_head(-5) + b"12345"), 400, "Content-Length"),
    ("two Content-Lengths", lambda p: raw(p, post_head(3, extra="Content-Length: 4\r\n") + b"1234"), 400, ""),
    ("slow headers", lambda p: raw(p, b"POST /invocations HTTP/1.1\r\nHost: x\r\n"), 408, "headers did not"),
    ("garbage request line", lambda p: raw(p, b"HELLO\r\n\r\n"), 400, "invalid HTTP request"),
    (
        "wrong content type",
        lambda p: raw(p, post_head(len(GOOD_ROW), "text/plain") + GOOD_ROW.encode()),
        415,
        "",
    ),
    (
        "wrong accept",
        lambda p: raw(p, post_head(len(GOOD_ROW), extra="Accept: image/png\r\n") + GOOD_ROW.encode()),
        406,
        "cannot answer",
    ),
    ("NaN in JSON", lambda p: raw(p, post_json(b'{"instances": [[NaN]]}')), 400, "NaN"),
    (
        "nan in CSV",
        lambda p: raw(p, post_head(len(NAN_ROW)) + NAN_ROW.encode()),
        400,
        "nan",
    ),
    (
        "25 columns",
        lambda p: raw(p, post_head(len(GOOD_ROW) - 3) + GOOD_ROW[:-3].encode()),
        400,
        "expected 26",
    ),
    ("instances not a list", lambda p: raw(p, post_json(b'{"instances": {"a": 1}}')), 400, "must be a list"),
    (
        "JSON 17 deep",
        lambda p: raw(p, post_json(b'{"instances": ' + b"[" * 16 + b"]" * 16 + b"}")),
        400,
        "17 levels",
    ),
    ("not UTF-8", lambda p: raw(p, post_head(2) + b"\xff\xfe"), 400, "not UTF-8"),
]


def post_json(body: bytes) -> bytes:
    return post_head(len(body), "application/json") + body


@pytest.mark.parametrize(
    ("send", "status", "words"), [case[1:] for case in ALWAYS], ids=[c[0] for c in ALWAYS]
)
def test_client_faults_answer_4xx_json_and_capture_nothing(server, send, status, words):
    assert_refused(server, send, status, words)


@pytest.mark.chaos
@pytest.mark.parametrize(("send", "status", "words"), [case[1:] for case in CHAOS], ids=[c[0] for c in CHAOS])
def test_more_client_faults_answer_4xx_json_and_capture_nothing(server, send, status, words):
    assert_refused(server, send, status, words)


def timed(call) -> tuple[float, object]:
    started = time.monotonic()
    result = call()
    return time.monotonic() - started, result


def test_idle_keep_alive_connections_do_not_delay_ping_or_predictions(server):
    """More idle connections than inference threads (gthread stalled here for their whole hold)."""
    idle = []
    try:
        for _ in range(8):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            connection.request("GET", "/ping")
            connection.getresponse().read()
            idle.append(connection)  # kept open, idle, keep-alive
        idle += [socket.create_connection(("127.0.0.1", server.port)) for _ in range(8)]  # never a byte
        seconds, (status, _) = timed(lambda: request(server.port, "GET", "/ping", timeout=5))
        assert status == 200 and seconds < 1.0
        seconds, (status, document) = timed(lambda: server.predict(timeout=5))
        assert status == 200 and document == server.reference and seconds < 1.0
    finally:
        for connection in idle:
            connection.close()


@pytest.mark.chaos
@pytest.mark.parametrize("clients", [4, 16])
def test_slow_partial_bodies_do_not_delay_ping_or_predictions(server, clients):
    """Clients holding partial bodies (gthread: /ping took 9.5-14.5 s or timed out)."""
    before = captured(server.capture_dir)
    slow = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(clients)]
    try:
        for sock in slow:
            sock.sendall(TRUNCATED)
        seconds, (status, _) = timed(lambda: request(server.port, "GET", "/ping", timeout=5))
        assert status == 200 and seconds < 1.0
        seconds, (status, document) = timed(lambda: server.predict(timeout=5))
        assert status == 200 and document == server.reference and seconds < 1.0
        for sock in slow:  # each is told, within the body timeout, that its body is late
            status, _, body = read_response(sock)
            assert status == 408 and json.loads(body)["status"] == 408
    finally:
        for sock in slow:
            sock.close()
    assert captured(server.capture_dir) == before + 1  # the one good prediction only
    server.assert_healthy()


def test_serve_on_a_taken_port_exits_at_once_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        environ = {**os.environ, "PYTHONPATH": str(CONTAINERS_DIR), "SAGEMAKER_BASE_DIR": str(tmp_path)}
        command = [
            sys.executable,
            str(CONTAINERS_DIR / "serve.py"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        seconds, completed = timed(
            lambda: subprocess.run(command, env=environ, capture_output=True, text=True, timeout=60)
        )
    assert completed.returncode == 1 and seconds < 10
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in completed.stderr


# --- a swap under load -----------------------------------------------------------------------------------


def registry_with_two_versions(work_dir: Path, model_dir: Path) -> None:
    from local_runner.object_store import ObjectStore
    from local_runner.registry import APPROVED, PENDING, LocalRegistry

    store, registry = ObjectStore(work_dir / "s3"), LocalRegistry(work_dir / "registry.sqlite")
    registry.create_group("turbofan-rul")
    for version in (1, 2):
        url = f"s3://artifacts/models/v{version}/model.tar.gz"
        archive = store.path_for(url)
        archive.parent.mkdir(parents=True)
        with tarfile.open(archive, "w:gz") as bundle:
            for path in sorted(model_dir.iterdir()):
                bundle.add(path, arcname=path.name)
        status = APPROVED if version == 1 else PENDING
        registry.register("turbofan-rul", url, "local/turbofan-rul:local", approval_status=status)


def keep_alive_client(port: int, body: bytes, stop: threading.Event, outcome: dict) -> None:
    """Posts on one keep-alive connection until `stop`; records versions seen, failures, reconnects."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.is_set():
        try:
            connection.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv"})
            response = connection.getresponse()
            document = json.loads(response.read())
            if response.status != 200:
                outcome["failures"].append(f"{response.status}: {document}")
            else:
                outcome["versions"].append(document["model_version"])
        except (OSError, http.client.HTTPException) as error:
            outcome["failures"].append(repr(error))
            outcome["reconnects"] += 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.close()


@pytest.mark.chaos
def test_a_swap_under_eight_keep_alive_clients_fails_no_request(tmp_path, model_dir, serving_subset):
    from local_runner.endpoint import EndpointOptions, resolve_package, start_endpoint, swap_model

    registry_with_two_versions(tmp_path, model_dir)
    body = serving_subset.test[COLUMNS].head(60).to_csv(index=False, header=False).encode()
    options = EndpointOptions(port=free_port(), workers=2, threads=4)
    outcomes = [{"failures": [], "versions": [], "reconnects": 0} for _ in range(8)]
    stop = threading.Event()
    with start_endpoint(tmp_path, resolve_package(tmp_path, None), options) as server:
        server.wait_ready(60)
        clients = [
            threading.Thread(target=keep_alive_client, args=(server.port, body, stop, outcome))
            for outcome in outcomes
        ]
        for client in clients:
            client.start()
        time.sleep(1.0)
        result = swap_model(tmp_path, resolve_package(tmp_path, 2))
        time.sleep(1.0)
        stop.set()
        for client in clients:
            client.join(60)
    assert result.ok, result.reason
    for outcome in outcomes:
        assert outcome["failures"] == [] and outcome["reconnects"] == 0
        versions = outcome["versions"]
        assert versions[0] == "1" and versions[-1] == "2"
        assert versions == sorted(versions), "no client saw the old model after the new one"
