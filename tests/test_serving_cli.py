"""`local_runner endpoint serve` on a port already in use fails at once, naming it, and prepares nothing."""

from __future__ import annotations

import argparse
import socket
import time

from local_runner.endpoint_cli import add_endpoint_parser, run_endpoint_command


def test_cli_serve_on_a_taken_port_fails_at_once_naming_it(tmp_path):
    parser = argparse.ArgumentParser()
    add_endpoint_parser(parser.add_subparsers(dest="verb", required=True))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = parser.parse_args(["endpoint", "serve", "--work-dir", str(tmp_path), "--port", str(port)])
        said = []
        started = time.monotonic()
        code = run_endpoint_command(args, said.append)
        seconds = time.monotonic() - started
    assert code == 1 and seconds < 2
    assert said[-1].startswith(f"error: port {port} on 127.0.0.1 is already in use")
    assert not (tmp_path / "endpoint").exists(), "nothing was prepared or started"
