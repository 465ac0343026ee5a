"""The dashboard in a real browser: `streamlit run` as `make dashboard` starts it, headless Chromium.

The server runs on a free loopback port over the `world` work folder of test_dashboard_local.py and is
waited for on `/_stcore/health`. Streamlit draws the page with JavaScript over a websocket after load, so
Chromium's one-shot `--screenshot` catches an empty page; the test drives Chromium over the DevTools
protocol instead: navigate, wait until every section and chart has rendered and the script has finished,
size the viewport to the page, then capture it. Skipped when Chromium is not installed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_dashboard_local import HEADERS, TODAY_REQUESTS, build_world

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
CHARTS = 8  # daily predictions, drift, executions, registry and the four monitoring metrics
READY = (
    "(() => { const text = document.body.innerText;"
    " const drawn = document.querySelectorAll('.vega-embed canvas, .vega-embed svg.marks').length;"
    " const running = document.querySelector('[data-testid=\"stStatusWidget\"]');"
    f" return text.includes('Monitoring over time') && drawn >= {CHARTS} && !running; }})()"
)
HEIGHT = "document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight + 200"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            value = check()
            if value:
                return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextlib.contextmanager
def dashboard_server(work: Path, log: Path) -> Iterator[str]:
    """`streamlit run dashboard/app.py` as `make dashboard` runs it, on a free loopback port."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "dashboard" / "app.py")]
    command += ["--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true"]
    command += ["--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]
    command += ["--", "--work-dir", str(work)]
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}  # as `make dashboard` sets it
    with log.open("wb") as output:
        server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=environment, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            if server.poll() is not None:
                return True  # it exited: stop waiting, the assertion below shows its log
            return urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok"

        wait_for(healthy, "the dashboard's health check")
        assert server.poll() is None, log.read_text()
        yield url + "/"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class DevTools:
    """Commands over a page's Chrome DevTools Protocol websocket (events in between are skipped)."""

    def __init__(self, connection):
        self.connection, self.next_id = connection, 0

    def __call__(self, method: str, **params) -> dict:
        self.next_id += 1
        self.connection.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.connection.recv(timeout=60))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    def evaluate(self, expression: str):
        return self("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


def screenshot(url: str, shot: Path, profile: Path) -> str:
    """Load `url` in headless Chromium, wait until the page has rendered, save a full-page PNG; its text."""
    from websockets.sync.client import connect

    port = free_port()
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    command += ["--disable-component-update", "--no-first-run", f"--user-data-dir={profile}"]
    command += [f"--remote-debugging-port={port}", "--window-size=1400,1000", "about:blank"]
    browser = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        listed = f"http://127.0.0.1:{port}/json/list"
        targets = wait_for(lambda: json.loads(urllib.request.urlopen(listed, timeout=2).read()), "DevTools")
        socket_url = next(target for target in targets if target["type"] == "page")["webSocketDebuggerUrl"]
        with connect(socket_url, max_size=None, open_timeout=30) as connection:
            devtools = DevTools(connection)
            devtools("Page.navigate", url=url)
            wait_for(lambda: devtools.evaluate(READY), "the dashboard to render")
            height = int(devtools.evaluate(HEIGHT))
            devtools(
                "Emulation.setDeviceMetricsOverride",
                width=1400,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            wait_for(lambda: devtools.evaluate(READY), "the dashboard to render at full height")
            time.sleep(1.0)  # let the charts redraw at the new width
            shot.write_bytes(base64.b64decode(devtools("Page.captureScreenshot", format="png")["data"]))
            return devtools.evaluate("document.body.innerText")
    finally:
        browser.terminate()
        browser.wait(timeout=20)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return build_world(tmp_path_factory.mktemp("dashboard"))


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_dashboard_renders_in_headless_chromium(world, tmp_path):
    shot = tmp_path / "dashboard.png"
    with dashboard_server(world, tmp_path / "streamlit.log") as url:
        text = screenshot(url, shot, tmp_path / "profile")
    for header in HEADERS:
        assert header in text
    assert "Test RMSE (v1)" in text and "4.00" in text and str(TODAY_REQUESTS) in text
    assert "v1 is serving on the endpoint" in text
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
