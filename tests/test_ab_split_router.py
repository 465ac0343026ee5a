"""The local A/B router's own answers (`local_runner.ab_split`): request framing, body limits, timeouts and
a missing or corrupt state file, each in the model server's JSON error format.

Raw sockets send what `http.client` would never send (no or bad `Content-Length`, a body cut short, nothing
at all); two stand-in variants (stdlib HTTP, answering 200 with the variant's name) sit behind the router.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from local_runner import ab_endpoint
from local_runner.ab_split import (
    CHALLENGER,
    CHAMPION,
    AbError,
    AbPaths,
    AbRouter,
    RouterLimits,
    RouterState,
    WeightedSplit,
    percent_weights,
    read_state,
    serving_limits,
    write_state,
)
from rul.http_protocol import error_document
from rul.http_settings import MAX_BYTES_VARIABLE, ServerSettings

LIMITS = RouterLimits(max_bytes=1000, header_timeout=1.0, body_timeout=1.0)


def variant_server(variant: str) -> ThreadingHTTPServer:
    """A stand-in variant: reads the body and answers 200 with its name and the body's size."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            return

        def do_POST(self):
            size = len(self.rfile.read(int(self.headers["Content-Length"])))
            answer = json.dumps({"variant": variant, "size": size}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def router(tmp_path):
    """A router with small limits (1000 bytes, 1 s timeouts) following `<tmp>/endpoint/ab/state.json`."""
    servers = [variant_server(variant) for variant in (CHAMPION, CHALLENGER)]
    paths = AbPaths.of(tmp_path)
    write_state(paths, {"weights": percent_weights(50)})
    backends = {
        variant: ("127.0.0.1", server.server_address[1])
        for variant, server in zip((CHAMPION, CHALLENGER), servers, strict=True)
    }
    state = RouterState(WeightedSplit(percent_weights(50), seed=1), backends, paths.state)
    router = AbRouter(("127.0.0.1", 0), state, LIMITS)
    threading.Thread(target=router.serve_forever, daemon=True).start()
    yield router, paths
    router.shutdown()
    router.server_close()
    for server in servers:
        server.shutdown()
        server.server_close()


def connect(router: AbRouter) -> socket.socket:
    return socket.create_connection(("127.0.0.1", router.server_address[1]), timeout=10)


def exchange(router: AbRouter, head: str, body: bytes = b"") -> tuple[int, dict, dict]:
    """Send raw request `head` (header lines, no blank line) and `body`; (status, headers, JSON body)."""
    with connect(router) as client:
        client.sendall(f"POST /invocations HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body)
        return read_response(client)


def read_response(client: socket.socket) -> tuple[int, dict, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        assert chunk, f"the router closed without an answer: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    while len(rest) < int(headers["content-length"]):
        rest += client.recv(65536)
    return int(lines[0].split()[1]), headers, json.loads(rest)


def test_a_well_formed_request_is_forwarded(router):
    status, headers, answer = exchange(router[0], "Content-Length: 5\r\n", b"1 2 3")
    assert status == 200 and answer["size"] == 5
    assert headers["x-amzn-invoked-production-variant"] == answer["variant"]


def test_a_post_without_content_length_or_with_a_chunked_body_gets_411(router):
    status, headers, answer = exchange(router[0], "Content-Type: text/csv\r\n")
    assert (status, answer["status"]) == (411, 411) and "Content-Length" in answer["error"]
    assert headers["connection"] == "close" and headers["content-type"] == "application/json"
    status, _, answer = exchange(router[0], "Transfer-Encoding: chunked\r\n", b"5\r\n1 2 3\r\n0\r\n\r\n")
    assert status == 411 and "chunked" in answer["error"]


@pytest.mark.parametrize("value", ["abc", "-5", "+5", "0x10", "1.5", "1e3", ""])
def test_a_malformed_content_length_gets_400_naming_it(router, value):
    status, _, answer = exchange(router[0], f"Content-Length: {value}\r\n", b"12345")
    assert answer == json.loads(error_document(400, answer["error"]))
    assert status == 400 and repr(value) in answer["error"]


def test_conflicting_content_lengths_get_400(router):
    status, _, answer = exchange(router[0], "Content-Length: 5\r\nContent-Length: 6\r\n", b"123456")
    assert status == 400 and "conflicting Content-Length headers: 5, 6" in answer["error"]


@pytest.mark.parametrize("value", [str(LIMITS.max_bytes + 1), "9" * 40])
def test_a_body_over_the_limit_gets_413_before_any_of_it_is_sent(router, value):
    started = time.monotonic()
    status, headers, answer = exchange(router[0], f"Content-Length: {value}\r\n")  # no body follows
    assert status == 413 and f"the limit is {LIMITS.max_bytes}" in answer["error"]
    assert headers["connection"] == "close"
    assert time.monotonic() - started < LIMITS.body_timeout  # answered without waiting for the body


def test_a_body_at_the_limit_is_forwarded(router):
    status, _, answer = exchange(
        router[0], f"Content-Length: {LIMITS.max_bytes}\r\n", b"x" * LIMITS.max_bytes
    )
    assert status == 200 and answer["size"] == LIMITS.max_bytes


def test_a_body_slower_than_the_body_timeout_gets_408(router):
    status, _, answer = exchange(router[0], "Content-Length: 100\r\n", b"x" * 10)
    assert status == 408 and "(10 of 100 bytes received)" in answer["error"]


def test_a_body_cut_short_by_the_client_gets_400(router):
    with connect(router[0]) as client:
        client.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        client.shutdown(socket.SHUT_WR)
        status, _, answer = read_response(client)
    assert status == 400 and "ended after 10 of its 100 bytes" in answer["error"]


def test_an_idle_client_is_closed_and_never_blocks_others(router):
    with connect(router[0]) as idle, connect(router[0]) as trickling:
        trickling.sendall(b"POST /invocations HTTP/1.1\r\n")  # headers never finish
        assert exchange(router[0], "Content-Length: 1\r\n", b"1")[0] == 200
        started = time.monotonic()
        assert idle.recv(1024) == b"" and trickling.recv(1024) == b""  # closed by the router
        assert time.monotonic() - started < LIMITS.header_timeout + 2


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "does not exist"),
        ("{not json", "is unreadable"),
        (json.dumps({"weights": {CHAMPION: -1, CHALLENGER: 1}}), "must be >= 0"),
        (json.dumps({"weights": {"Nobody": 1}}), "unknown variant 'Nobody'"),
        (json.dumps({"weights": {CHAMPION: "50"}}), "not a finite number"),
        (json.dumps(["weights"]), "no 'weights' object"),
    ],
)
def test_a_missing_or_corrupt_state_file_gets_503_naming_it(router, content, problem):
    server, paths = router
    paths.state.unlink()
    if content is not None:
        paths.state.write_text(content)
    status, _, answer = exchange(server, "Content-Length: 1\r\n", b"1")
    assert (status, answer["status"]) == (503, 503)
    assert str(paths.state) in answer["error"] and problem in answer["error"]
    write_state(paths, {"weights": percent_weights(100)})
    status, _, answer = exchange(server, "Content-Length: 1\r\n", b"1")
    assert status == 200 and answer["variant"] == CHALLENGER


def test_a_corrupt_state_file_is_a_named_error_for_the_cli(tmp_path):
    paths = AbPaths.of(tmp_path)
    paths.root.mkdir(parents=True)
    paths.state.write_text("{")
    with pytest.raises(AbError, match=f"the A/B state file {paths.state} is unreadable"):
        read_state(paths)


def test_the_router_takes_the_model_servers_limits():
    defaults = ServerSettings.from_environment({})
    assert serving_limits({}) == RouterLimits(
        defaults.max_bytes, defaults.header_timeout, defaults.body_timeout
    )
    assert serving_limits({MAX_BYTES_VARIABLE: "2048"}).max_bytes == 2048
    with pytest.raises(AbError, match=f"{MAX_BYTES_VARIABLE}='lots' is not an integer"):
        serving_limits({MAX_BYTES_VARIABLE: "lots"})


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ({"weights": {}}, "'group' must be"),
        ({"group": "g", "weights": {}, "versions": {CHAMPION: 1}}, "'versions' must map"),
        ({"group": "g", "weights": {}, "versions": {CHAMPION: 1, CHALLENGER: True}}, "'versions' must map"),
        ({"group": "g", "versions": {CHAMPION: 1, CHALLENGER: 2}}, "'weights' must map"),
    ],
)
def test_shift_and_promote_name_what_a_state_file_lacks_and_change_nothing(tmp_path, state, problem):
    paths = AbPaths.of(tmp_path)
    write_state(paths, state)
    before = paths.state.read_text()
    with pytest.raises(AbError, match=f"{paths.state} is not a test's state: .*{problem}"):
        ab_endpoint.shift(tmp_path, 30)
    with pytest.raises(AbError, match=f"{paths.state} is not a test's state: .*{problem}"):
        ab_endpoint.promote(tmp_path, "champion")
    assert paths.state.read_text() == before and not paths.history.exists()
