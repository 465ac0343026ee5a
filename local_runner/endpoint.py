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
`check_servable` refuses a version that is not Approved unless forced (`endpoint swap N --force`).
`on_approval_callback` plugs this into `registry approve/reject`. The server process itself (paths,
options, start, ping, stop) is `local_runner.endpoint_server`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from local_runner.endpoint_server import (
    CONTAINERS_DIR,
    DEFAULT_ENDPOINT_NAME,
    SERVE_SCRIPT,
    EndpointError,
    EndpointOptions,
    EndpointPaths,
    EndpointProcess,
    check_port_free,
    launch_server,
    ping,
    running_pid,
    wait_for_version,
)
from local_runner.object_store import ObjectStore, ObjectStoreError
from local_runner.registry import APPROVED, LocalRegistry, ModelPackage, RegistryError
from local_runner.tracking import mirror_approval
from local_runner.work_layout import REGISTRY_FILE, STORE_FOLDER
from pipeline_steps.config import LOCAL_NAME as DEFAULT_GROUP

__all__ = [
    "DEFAULT_ENDPOINT_NAME",
    "DEFAULT_GROUP",
    "REGISTRY_FILE",
    "EndpointError",
    "EndpointOptions",
    "EndpointPaths",
    "EndpointProcess",
    "SwapResult",
    "check_port_free",
    "check_servable",
    "current_release",
    "on_approval_callback",
    "ping",
    "release_version",
    "resolve_package",
    "running_pid",
    "start_endpoint",
    "swap_model",
]
KEEP_RELEASES = 3
CHECK_TIMEOUT = 180.0

Echo = Callable[[str], object]


@dataclass(frozen=True)
class SwapResult:
    """The outcome of a swap: whether the new version serves, and why (or why not)."""

    ok: bool
    reason: str
    version: int | None = None
    previous_version: int | None = None


# --- releases --------------------------------------------------------------------------------------------


def model_archive(work_dir: str | Path, package: ModelPackage) -> Path:
    """The local file behind a package's model data URL."""
    return ObjectStore(Path(work_dir) / STORE_FOLDER).path_for(package.model_data_url)


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


def check_servable(package: ModelPackage, force: bool = False) -> str | None:
    """None for an Approved version; for any other status `EndpointError`, or with `force` the warning to
    print (a Rejected or PendingManualApproval version serves only when asked for explicitly)."""
    if package.approval_status == APPROVED:
        return None
    if not force:
        raise EndpointError(
            f"version {package.version} is {package.approval_status}, not {APPROVED}; approve it first, or "
            f"pass --force to serve it anyway"
        )
    return f"serving version {package.version} although its registry status is {package.approval_status}"


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
    """The package version a release folder holds, or None for no (or an unfinished) release."""
    if release is None or not (release / "release.json").is_file():
        return None
    return int(json.loads((release / "release.json").read_text())["version"])


def current_release(paths: EndpointPaths) -> Path | None:
    """The release folder `current` points at, or None when nothing was ever served."""
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


def start_endpoint(
    work_dir: str | Path,
    package: ModelPackage,
    options: EndpointOptions | None = None,
    paths: EndpointPaths | None = None,
) -> EndpointProcess:
    """Check `package`, make it the current release and start the server (call `wait_ready` next);
    `paths` other than `<work>/endpoint` run one variant of an A/B test (`ab_split`)."""
    work_dir, options = Path(work_dir), options or EndpointOptions()
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
    return launch_server(paths, options)


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
