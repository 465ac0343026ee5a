"""The local endpoint's server process: where it keeps its files, how it is started, pinged and stopped.

`EndpointPaths` names the files under `<work>/endpoint/` (releases, the `current` link the server
follows, the master's pid file, the state file with its port, the log); `EndpointOptions` says how to run
the server. `launch_server` runs `containers/serve.py serve` as a subprocess bound to the loopback
interface by default, `EndpointProcess` waits until /ping answers and stops it (SIGTERM, then SIGKILL),
`running_pid` tells whether a server from an earlier command is alive and `wait_for_version` polls /ping
until the served model's version shows. Choosing and swapping models is `local_runner.endpoint`'s job.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from local_runner.container_code import CONTAINERS_DIR
from local_runner.errors import RunnerError

SERVE_SCRIPT = CONTAINERS_DIR / "serve.py"
ENDPOINT_FOLDER = "endpoint"
DEFAULT_ENDPOINT_NAME = "turbofan-rul-local"
LOCAL_HOST = "127.0.0.1"
# How often each server worker checks whether `current` moved (seconds): the delay of a swap.
RELOAD_SECONDS = 0.2


class EndpointError(RunnerError, RuntimeError):
    """The endpoint cannot start: no approved model, a missing archive, a failed health check."""


@dataclass(frozen=True)
class EndpointPaths:
    """The files of one endpoint under its root folder (`<work>/endpoint` unless an A/B variant's)."""

    root: Path

    def __post_init__(self) -> None:
        # Absolute: the server runs with the containers folder as its working directory.
        object.__setattr__(self, "root", Path(self.root).absolute())

    @classmethod
    def of(cls, work_dir: str | Path) -> EndpointPaths:
        """The endpoint files of the work folder `work_dir`."""
        return cls(Path(work_dir) / ENDPOINT_FOLDER)

    @property
    def releases(self) -> Path:
        """The folder of unpacked model releases, one subfolder per deployment."""
        return self.root / "releases"

    @property
    def current(self) -> Path:
        """The link to the release being served (the server's SAGEMAKER_BASE_DIR)."""
        return self.root / "current"

    @property
    def pid_file(self) -> Path:
        """Where gunicorn writes its master's process id."""
        return self.root / "gunicorn.pid"

    @property
    def state_file(self) -> Path:
        """The running server's port, pid and options, written at launch."""
        return self.root / "endpoint.json"

    @property
    def log_file(self) -> Path:
        """The server's combined stdout and stderr."""
        return self.root / "server.log"

    @property
    def lock_file(self) -> Path:
        """The file locked while a release is swapped in, so swaps do not interleave."""
        return self.root / "swap.lock"


@dataclass(frozen=True)
class EndpointOptions:
    """How to run the server; `capture_dir` None turns data capture off."""

    port: int = 8080
    host: str = LOCAL_HOST
    workers: int = 2
    threads: int = 16
    capture_dir: Path | None = None
    capture_percentage: float = 100.0
    endpoint_name: str = DEFAULT_ENDPOINT_NAME
    variant_name: str = "AllTraffic"  # the production variant it serves: its captures' folder


def running_pid(paths: EndpointPaths) -> int | None:
    """The gunicorn master's pid when it is alive, else None."""
    try:
        pid = int(paths.pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def ping(port: int, timeout: float = 2.0) -> tuple[int, dict]:
    """GET /ping on the loopback interface: (HTTP status, parsed JSON body or {})."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/ping")
        response = connection.getresponse()
        body = response.read()
        try:
            return response.status, json.loads(body)
        except json.JSONDecodeError:
            return response.status, {}
    finally:
        connection.close()


def wait_for_version(port: int, version: str | None, timeout: float, streak: int = 6) -> bool:
    """Wait until /ping answers 200 (with `version`, if given) `streak` times in a row."""
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        try:
            status, document = ping(port)
        except OSError:
            status, document = 0, {}
        good = status == 200 and (version is None or document.get("model_version") == version)
        seen = seen + 1 if good else 0
        if seen >= streak:
            return True
        time.sleep(0.1)
    return False


@dataclass
class EndpointProcess:
    """A started server: its process, URL and folders."""

    process: subprocess.Popen
    port: int
    paths: EndpointPaths
    host: str = LOCAL_HOST

    @property
    def url(self) -> str:
        """The server's base URL, e.g. `http://127.0.0.1:8080`."""
        return f"http://{self.host}:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until /ping answers 200; `EndpointError` (with the log's tail) if it dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EndpointError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            if wait_for_version(self.port, None, 0.5, streak=1):
                return
        raise EndpointError(f"the server did not answer /ping within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, characters: int = 2000) -> str:
        """The last `characters` of the server log; '' when there is no log yet."""
        return self.paths.log_file.read_text()[-characters:] if self.paths.log_file.is_file() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (gunicorn's graceful stop), then SIGKILL after `timeout`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for path in (self.paths.state_file, self.paths.pid_file):
            path.unlink(missing_ok=True)
        return self.process.returncode

    def __enter__(self) -> EndpointProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def check_port_free(host: str, port: int) -> None:
    """`EndpointError` naming the address when another process listens on it (as the server would bind)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise EndpointError(
                f"port {port} on {host} is already in use ({error.strerror}); stop what listens there "
                "or pass another --port"
            ) from None


def server_environment(paths: EndpointPaths, options: EndpointOptions) -> dict[str, str]:
    """The server's environment: its port, release folder, workers, capture and thread settings."""
    environ = {
        **os.environ,
        "PYTHONPATH": str(CONTAINERS_DIR),
        "SAGEMAKER_BASE_DIR": str(paths.current),
        "SAGEMAKER_BIND_TO_PORT": str(options.port),
        "RUL_BIND_HOST": options.host,
        "RUL_MODEL_RELOAD_SECONDS": str(RELOAD_SECONDS),
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(options.workers),
        "RUL_SERVER_THREADS": str(options.threads),
        "RUL_ENDPOINT_NAME": options.endpoint_name,
        "RUL_VARIANT_NAME": options.variant_name,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    environ.pop("RUL_CAPTURE_DIR", None)
    environ.pop("MODEL_VERSION", None)  # the version comes from the served release's metadata
    if options.capture_dir is not None:
        environ["RUL_CAPTURE_DIR"] = str(Path(options.capture_dir).resolve())
        environ["RUL_CAPTURE_PERCENTAGE"] = str(options.capture_percentage)
    return environ


def launch_server(paths: EndpointPaths, options: EndpointOptions) -> EndpointProcess:
    """Start `serve.py serve` on the release `current` points at and record its port and pid."""
    paths.log_file.parent.mkdir(parents=True, exist_ok=True)
    with paths.log_file.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, str(SERVE_SCRIPT), "serve", "--pid-file", str(paths.pid_file)],
            env=server_environment(paths, options),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(CONTAINERS_DIR),
        )
    state = {
        "port": options.port,
        "pid": process.pid,
        "workers": options.workers,
        "capture_dir": str(options.capture_dir) if options.capture_dir else None,
        "started": datetime.now(UTC).isoformat(),
    }
    paths.state_file.write_text(json.dumps(state, indent=2))
    return EndpointProcess(process, options.port, paths, options.host)
