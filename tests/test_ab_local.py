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
from settings import ab_testing

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


def test_local_variant_names_agree_with_the_settings():
    assert (CHAMPION, CHALLENGER) == (ab_testing.CHAMPION_VARIANT, ab_testing.CHALLENGER_VARIANT)
