"""A local real-time endpoint: the BYOC server of `containers/serve.py` on a registered model, with swaps.

Layout under `<work>/endpoint/`:

    releases/v<N>-<time>/model/      a model package's model.tar.gz, unpacked (metadata stamped with N)
    releases/v<N>-<time>/release.json  version, package ARN, archive
    current -> releases/...          the release being served (the server's SAGEMAKER_BASE_DIR)
    gunicorn.pid, endpoint.json      the running server's master pid, and its port and options
    server.log                       the server's output

`start_endpoint` prepares a release from the local registry (`<work>/registry.sqlite`, the archive at
`ObjectStore(<work>/s3).path_for(package.model_data_url)`), checks it and runs `serve.py serve` as a
subprocess listening on 127.0.0.1 only; a port already taken fails at once, naming it. `swap_model`
prepares and checks a candidate in a fresh process (load + one prediction on a canned 30-row window) and
only then points `current` at it. Each server worker follows `current` (`RUL_MODEL_RELOAD_SECONDS`): it
loads and health-checks the new model beside the old one and switches between requests, so no request
fails and no connection is closed by a swap. `swap_model` waits until /ping reports the new version and
rolls back if it never does; when anything fails the old model keeps serving and `SwapResult.reason`
says why.
`on_approval_callback` plugs this into `registry approve/reject`.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from local_runner.object_store import ObjectStore, ObjectStoreError
from local_runner.registry import LocalRegistry, ModelPackage, RegistryError
from local_runner.tracking import mirror_approval

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTAINERS_DIR = PROJECT_ROOT / "containers"
SERVE_SCRIPT = CONTAINERS_DIR / "serve.py"
ENDPOINT_FOLDER = "endpoint"
REGISTRY_FILE = "registry.sqlite"
DEFAULT_GROUP = "turbofan-rul"
DEFAULT_ENDPOINT_NAME = "turbofan-rul-local"
KEEP_RELEASES = 3
LOCAL_HOST = "127.0.0.1"
# How often each server worker checks whether `current` moved (seconds): the delay of a swap.
RELOAD_SECONDS = 0.2
CHECK_TIMEOUT = 180.0

Echo = Callable[[str], object]


class EndpointError(RuntimeError):
    """The endpoint cannot start: no approved model, a missing archive, a failed health check."""


@dataclass(frozen=True)
class EndpointPaths:
    root: Path

    @classmethod
    def of(cls, work_dir: str | Path) -> EndpointPaths:
        return cls(Path(work_dir) / ENDPOINT_FOLDER)

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def pid_file(self) -> Path:
        return self.root / "gunicorn.pid"

    @property
    def state_file(self) -> Path:
        return self.root / "endpoint.json"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def lock_file(self) -> Path:
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


@dataclass(frozen=True)
class SwapResult:
    ok: bool
    reason: str
    version: int | None = None
    previous_version: int | None = None


# --- releases --------------------------------------------------------------------------------------------


def model_archive(work_dir: str | Path, package: ModelPackage) -> Path:
    """The local file behind a package's model data URL."""
    return ObjectStore(Path(work_dir) / "s3").path_for(package.model_data_url)


def resolve_package(work_dir: str | Path, version: int | None, group: str = DEFAULT_GROUP) -> ModelPackage:
    """Version `version` of `group`, or its newest approved version; `EndpointError` when there is none."""
    path = Path(work_dir) / REGISTRY_FILE
    if not path.is_file():
        raise EndpointError(f"no model registry at {path}; run the pipeline first")
    registry = LocalRegistry(path)
    try:
        if version is not None:
            return registry.get(group, version)
        package = registry.latest_approved(group)
    except RegistryError as error:
        raise EndpointError(str(error)) from None
    if package is None:
        raise EndpointError(
            f"model package group {group} has no approved version; approve one or pass a version"
        )
    return package


def prepare_release(paths: EndpointPaths, package: ModelPackage, archive: Path) -> Path:
    """Unpack `archive` into a new release folder and stamp the package's version into its metadata."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    release = paths.releases / f"v{package.version}-{stamp}"
    model_dir = release / "model"
    model_dir.mkdir(parents=True)
    with tarfile.open(archive) as bundle:
        bundle.extractall(model_dir, filter="data")
    metadata_path = model_dir / "metadata.json"
    if metadata_path.is_file():
        metadata = json.loads(metadata_path.read_text())
        # The registry assigns the version after training; the serving response reports it.
        metadata.update({"model_version": str(package.version), "model_package_arn": package.arn})
        metadata_path.write_text(json.dumps(metadata, indent=2))
    release_info = {"version": package.version, "model_package_arn": package.arn, "archive": str(archive)}
    (release / "release.json").write_text(json.dumps(release_info, indent=2))
    return release


def check_model(model_dir: Path, timeout: float = CHECK_TIMEOUT) -> tuple[bool, str]:
    """Load the model and predict once in a fresh process (`serve.py check`); (ok, what it said)."""
    try:
        completed = subprocess.run(
            [sys.executable, str(SERVE_SCRIPT), "check", str(model_dir)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONPATH": str(CONTAINERS_DIR), "OMP_NUM_THREADS": "1"},
        )
    except subprocess.TimeoutExpired:
        return False, f"the health check did not finish within {timeout:.0f}s"
    lines = completed.stdout.strip().splitlines()
    try:
        verdict = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (completed.stderr or completed.stdout).strip()[-500:]
        return False, f"the health check exited {completed.returncode}: {tail}"
    if completed.returncode == 0 and verdict.get("ok"):
        return True, f"predicted RUL {verdict['predicted_rul']:.1f} on the canned window"
    return False, verdict.get("reason", f"exit code {completed.returncode}")


def release_version(release: Path | None) -> int | None:
    if release is None or not (release / "release.json").is_file():
        return None
    return int(json.loads((release / "release.json").read_text())["version"])


def current_release(paths: EndpointPaths) -> Path | None:
    return paths.current.resolve() if paths.current.is_symlink() else None


def point_current(paths: EndpointPaths, release: Path) -> None:
    """Repoint `current` atomically (a new link renamed over the old one)."""
    link = paths.root / f".current-{os.getpid()}"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(release.relative_to(paths.root))
    os.replace(link, paths.current)


def prune_releases(paths: EndpointPaths, keep: int = KEEP_RELEASES) -> None:
    """Delete all but the newest `keep` releases, never the current one."""
    current = current_release(paths)
    releases = sorted(paths.releases.iterdir(), key=lambda path: path.stat().st_mtime, reverse=True)
    for release in releases[keep:]:
        if release != current:
            shutil.rmtree(release, ignore_errors=True)


@contextmanager
def _swap_lock(paths: EndpointPaths) -> Iterator[None]:
    paths.root.mkdir(parents=True, exist_ok=True)
    with paths.lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _checked_release(work_dir: Path, paths: EndpointPaths, package: ModelPackage) -> tuple[Path | None, str]:
    """A prepared and health-checked release of `package`, or None and the reason it failed."""
    try:
        archive = model_archive(work_dir, package)
    except ObjectStoreError as error:
        return None, str(error)
    if not archive.is_file():
        return None, f"model archive {archive} of version {package.version} does not exist"
    try:
        release = prepare_release(paths, package, archive)
    except (tarfile.TarError, OSError, ValueError) as error:
        return None, f"cannot unpack {archive}: {error}"
    ok, said = check_model(release / "model")
    if not ok:
        shutil.rmtree(release, ignore_errors=True)
        return None, f"health check of version {package.version} failed: {said}"
    return release, said


# --- the running server ----------------------------------------------------------------------------------


def running_pid(paths: EndpointPaths) -> int | None:
    """The gunicorn master's pid when it is alive, else None."""
    try:
        pid = int(paths.pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def ping(port: int, timeout: float = 2.0) -> tuple[int, dict]:
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


def _reload(paths: EndpointPaths, version: int, timeout: float) -> bool:
    """Wait until the server, which follows `current` by itself, reports `version`."""
    state = json.loads(paths.state_file.read_text()) if paths.state_file.is_file() else {}
    if "port" not in state:
        return True
    return wait_for_version(int(state["port"]), str(version), timeout)


def swap_model(work_dir: str | Path, package: ModelPackage, timeout: float = 60.0) -> SwapResult:
    """Serve `package` if it passes a health check in a fresh process; otherwise keep the current model."""
    work_dir = Path(work_dir)
    paths = EndpointPaths.of(work_dir)
    with _swap_lock(paths):
        previous = current_release(paths)
        previous_version = release_version(previous)
        keeping = f"version {previous_version} keeps serving" if previous else "nothing is served"
        release, said = _checked_release(work_dir, paths, package)
        if release is None:
            return SwapResult(False, f"{said}; {keeping}", package.version, previous_version)
        point_current(paths, release)
        pid = running_pid(paths)
        if pid is not None and not _reload(paths, package.version, timeout):
            if previous is not None:
                point_current(paths, previous)
            reason = f"the server did not report version {package.version} within {timeout:.0f}s; rolled back"
            return SwapResult(False, reason, package.version, previous_version)
        prune_releases(paths)
    where = "now serving" if pid is not None else "will serve on the next start (no server running)"
    return SwapResult(True, f"version {package.version} {where}; {said}", package.version, previous_version)


@dataclass
class EndpointProcess:
    """A started server: its process, URL and folders."""

    process: subprocess.Popen
    port: int
    paths: EndpointPaths
    host: str = LOCAL_HOST

    @property
    def url(self) -> str:
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


def start_endpoint(
    work_dir: str | Path,
    package: ModelPackage,
    options: EndpointOptions = EndpointOptions(),
    paths: EndpointPaths | None = None,
) -> EndpointProcess:
    """Check `package`, make it the current release and start the server (call `wait_ready` next);
    `paths` other than `<work>/endpoint` run one variant of an A/B test (`ab_split`)."""
    work_dir = Path(work_dir)
    paths = paths or EndpointPaths.of(work_dir)
    if running_pid(paths) is not None:
        raise EndpointError(f"an endpoint already runs from {paths.root} (pid {running_pid(paths)})")
    check_port_free(options.host, options.port)
    with _swap_lock(paths):
        if release_version(current_release(paths)) != package.version:
            release, said = _checked_release(work_dir, paths, package)
            if release is None:
                raise EndpointError(said)
            point_current(paths, release)
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


def on_approval_callback(work_dir: str | Path, echo: Echo = print) -> Callable[[ModelPackage], None]:
    """An `on_change` for `registry_cli.approve_version`/`reject_version`: mirror the change in MLflow and
    serve the newest approved version.

    Does nothing when no local endpoint was ever set up (no `<work>/endpoint/current`), or when the newest
    approved version is the one served; otherwise swaps and prints the outcome.
    """
    work_dir = Path(work_dir)

    def on_change(package: ModelPackage) -> None:
        mirror_approval(work_dir, package, echo=echo)  # MLflow's version and `champion` alias follow
        paths = EndpointPaths.of(work_dir)
        served = release_version(current_release(paths))
        if served is None:
            echo("endpoint: no local endpoint set up; nothing to swap")
            return
        latest = LocalRegistry(work_dir / REGISTRY_FILE).latest_approved(package.group)
        if latest is None:
            echo(f"endpoint: no approved version left; version {served} keeps serving")
            return
        if latest.version == served:
            echo(f"endpoint: already serving version {served}")
            return
        echo(f"endpoint: swapping version {served} -> {latest.version} ...")
        result = swap_model(work_dir, latest)
        echo(f"endpoint: {'swapped' if result.ok else 'swap refused'}: {result.reason}")

    return on_change
