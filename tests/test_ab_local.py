"""The local A/B endpoint: weighted split within tolerance, per-variant capture, target variant, shift,
promote.

Two small stand-in variant servers (stdlib HTTP, each writing captures with the real `DataCapture` of its
variant, as serve.py does) sit behind the real router; a full model server per variant is exercised by
`endpoint ab-serve` and too slow for an always-on test.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from local_runner import ab_endpoint
from local_runner.ab_split import (
    CHALLENGER,
    CHAMPION,
    INVOKED_HEADER,
    TARGET_HEADER,
    AbError,
    AbPaths,
    AbRouter,
    RouterState,
    WeightedSplit,
    history,
    percent_weights,
    write_state,
)
from local_runner.registry import LocalRegistry
from rul.capture import CaptureConfig, DataCapture, read_captures

ENDPOINT = "rul-local"
BODY = "1 1 " + " ".join(["1.5"] * 24)
REQUESTS = 1200


def variant_server(root, variant: str) -> ThreadingHTTPServer:
    capture = DataCapture(CaptureConfig(root, ENDPOINT, variant, seed=0))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args):
            return

        def do_POST(self):
            request = self.rfile.read(int(self.headers["Content-Length"]))
            answer = json.dumps(
                {"predictions": [{"unit": 1, "predicted_rul": 9.0, "cycles_used": 1, "padded": True}]}
            ).encode()
            capture.capture(request, self.headers["Content-Type"], answer, "application/json")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def ab(tmp_path):
    """A router (70/30, seeded, following `<work>/endpoint/ab/state.json`) over two capturing variants."""
    captures = tmp_path / "captures"
    servers = {variant: variant_server(captures, variant) for variant in (CHAMPION, CHALLENGER)}
    paths = AbPaths.of(tmp_path)
    state = {"group": "g", "versions": {CHAMPION: 1, CHALLENGER: 2}, "weights": percent_weights(30)}
    write_state(paths, state)
    backends = {variant: server.server_address[:2] for variant, server in servers.items()}
    router = AbRouter(
        ("127.0.0.1", 0), RouterState(WeightedSplit(state["weights"], seed=7), backends, paths.state)
    )
    threading.Thread(target=router.serve_forever, daemon=True).start()
    yield router, captures, tmp_path
    router.shutdown()
    for server in servers.values():
        server.shutdown()


def invoke(router: AbRouter, count: int, headers: dict | None = None) -> Counter:
    """`count` invocations on one keep-alive connection; the variants the responses name."""
    seen: Counter = Counter()
    connection = http.client.HTTPConnection(*router.server_address[:2], timeout=30)
    try:
        for _ in range(count):
            connection.request("POST", "/invocations", BODY, {"Content-Type": "text/csv", **(headers or {})})
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            seen[response.getheader(INVOKED_HEADER)] += 1
    finally:
        connection.close()
    return seen


def test_weighted_split_within_tolerance_and_captured_per_variant(ab):
    router, captures, _ = ab

    seen = invoke(router, REQUESTS)

    share = seen[CHALLENGER] / REQUESTS
    # 3 standard deviations of a binomial share of 0.3 over 1,200 requests is 0.04.
    assert abs(share - 0.30) < 0.04, seen
    assert dict(seen) == router.state.counts
    for variant in (CHAMPION, CHALLENGER):
        records = list(read_captures(captures / ENDPOINT / variant))
        assert len(records) == seen[variant]
        assert {record["eventMetadata"]["variantName"] for record in records} == {variant}


def test_a_target_variant_overrides_the_weights_and_an_unknown_one_is_refused(ab):
    router, _, _ = ab
    assert invoke(router, 20, {TARGET_HEADER: CHALLENGER}) == Counter({CHALLENGER: 20})
    connection = http.client.HTTPConnection(*router.server_address[:2], timeout=30)
    connection.request("POST", "/invocations", BODY, {"Content-Type": "text/csv", TARGET_HEADER: "Nope"})
    response = connection.getresponse()
    assert response.status == 400 and "Nope" in json.loads(response.read())["error"]
    connection.close()


def test_shift_moves_a_running_router_and_is_recorded(ab):
    router, _, work = ab
    ab_endpoint.shift(work, 100, reason="challenger looks better")

    assert invoke(router, 50) == Counter({CHALLENGER: 50})
    (entry,) = history(AbPaths.of(work))
    assert entry["action"] == "shift" and entry["weights"] == {CHAMPION: 0.0, CHALLENGER: 100.0}
    assert entry["before"] == {CHAMPION: 70.0, CHALLENGER: 30.0}


def test_promoting_the_champion_rejects_the_challenger_in_the_registry(ab):
    router, _, work = ab
    registry = LocalRegistry(work / "registry.sqlite")
    registry.create_group("g")
    for _ in range(2):
        registry.register("g", "s3://bucket/model.tar.gz", "image", approval_status="Approved")

    entry = ab_endpoint.promote(work, "champion", reason="lower RMSE on late labels")

    assert invoke(router, 30) == Counter({CHAMPION: 30})
    assert entry["registry"] == "version 2 Rejected"
    assert (
        registry.get("g", 2).approval_status == "Rejected"
        and registry.get("g", 1).approval_status == "Approved"
    )


def test_bad_weights_and_shares_are_refused():
    with pytest.raises(AbError, match="not all zero"):
        WeightedSplit({CHAMPION: 0, CHALLENGER: 0})
    with pytest.raises(AbError, match=r"\[0, 100\]"):
        percent_weights(101)
    with pytest.raises(AbError, match="no A/B test"):
        ab_endpoint.shift("/nonexistent-work-dir", 10)


def _registry(work, *statuses: str) -> LocalRegistry:
    registry = LocalRegistry(work / "registry.sqlite")
    registry.create_group("g")
    for status in statuses:
        registry.register("g", "s3://bucket/model.tar.gz", "image", approval_status=status)
    return registry


def test_a_promoted_test_is_over_and_refuses_another_promotion_or_shift(ab):
    router, _, work = ab
    registry = _registry(work, "Approved", "Approved")
    ab_endpoint.promote(work, "champion", reason="lower RMSE")

    for again in (lambda: ab_endpoint.promote(work, "challenger"), lambda: ab_endpoint.shift(work, 50)):
        with pytest.raises(AbError, match=r"the A/B test is over: Champion \(version 1\) was promoted at"):
            again()
    assert invoke(router, 20) == Counter({CHAMPION: 20})
    assert [entry["action"] for entry in history(AbPaths.of(work))] == ["promote"]
    assert [registry.get("g", v).approval_status for v in (1, 2)] == ["Approved", "Rejected"]


def test_promoting_a_challenger_not_yet_approved_says_how_to_make_it_the_champion(ab):
    _, _, work = ab
    registry = _registry(work, "Approved", "PendingManualApproval")
    entry = ab_endpoint.promote(work, "challenger")
    assert (
        entry["registry"] == "version 2 is PendingManualApproval: `registry approve 2` makes it the champion"
    )
    assert registry.get("g", 2).approval_status == "PendingManualApproval"


def test_a_promotion_the_registry_cannot_record_changes_nothing(ab):
    router, _, work = ab
    with pytest.raises(AbError, match=r"promote champion: .*'g'.*the test is unchanged"):
        ab_endpoint.promote(work, "champion")
    assert history(AbPaths.of(work)) == []
    assert sum(invoke(router, 40).values()) == 40 and ab_endpoint.shift(work, 10)["action"] == "shift"


@pytest.mark.parametrize(("verb", "signum", "code"), [("serve", "SIGINT", 130), ("ab-serve", "SIGTERM", 143)])
def test_a_server_stopped_while_starting_says_so_in_one_line(tmp_path, monkeypatch, verb, signum, code):
    import argparse
    import os
    import signal
    import time

    from local_runner import endpoint_cli

    def signalled(*_args):  # arrives while the versions are being checked
        os.kill(os.getpid(), getattr(signal, signum))
        time.sleep(5)

    monkeypatch.setattr(endpoint_cli, "resolve_package", signalled)
    monkeypatch.setattr(endpoint_cli, "check_port_free", lambda *_args: None)
    parser = argparse.ArgumentParser()
    endpoint_cli.add_endpoint_parser(parser.add_subparsers(dest="verb"))
    argv = ["endpoint", verb, "--work-dir", str(tmp_path), "--port", "1"] + (
        ["--champion", "1"] * (verb != "serve")
    )
    said: list[str] = []
    assert endpoint_cli.run_endpoint_command(parser.parse_args(argv), said.append) == code
    assert said == [f"endpoint: stopped by {signum} before serving; nothing left running"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_busy_variant_port_is_named_with_its_role(tmp_path):
    import socket

    from local_runner.endpoint import EndpointError, EndpointOptions

    with socket.socket() as first, socket.socket() as taken:
        first.bind(("127.0.0.1", 0))  # a free port for the router; the one after it is then taken
        port = first.getsockname()[1]
        first.close()
        try:
            taken.bind(("127.0.0.1", port + 1))
        except OSError:
            pytest.skip("the port after a free one is in use by someone else")
        taken.listen()
        packages = _registry(tmp_path, "Approved", "Approved").list("g")
        with pytest.raises(
            EndpointError, match=rf"port {port + 1} .*\(Champion's port: --port {port} \+ 1\)"
        ):
            ab_endpoint.start_ab_test(tmp_path, *packages, EndpointOptions(port=port), 50)
