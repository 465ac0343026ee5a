"""Where the local MLflow store is, and the `ui` verb that serves it on the loopback interface.

By default the store is SQLite under the work folder (`<work>/mlflow/mlflow.db`, artifacts in
`<work>/mlflow/artifacts`); `MLFLOW_TRACKING_URI` in the environment names another one. `python -m
local_runner ui` (`make ui`) runs `mlflow ui` on that store, bound to a loopback address (the UI has no
authentication), with MLflow's usage telemetry off and without the server's job runner (MLflow 3 would
otherwise start a pool of huey consumer processes for jobs the local UI never runs).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
STORE_DIR = "mlflow"
TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
UI_SETTINGS = {**TELEMETRY_OFF, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def default_tracking_uri(work_dir: Path) -> str:
    """The SQLite store under the work folder: `<work>/mlflow/mlflow.db`."""
    return f"sqlite:///{(Path(work_dir) / STORE_DIR / 'mlflow.db').resolve()}"


def artifact_root(work_dir: Path) -> str:
    """The artifact folder of the work folder's store, as a file URI."""
    return (Path(work_dir) / STORE_DIR / "artifacts").resolve().as_uri()


def resolve_tracking_uri(work_dir: Path, environ: Mapping[str, str]) -> str:
    """`MLFLOW_TRACKING_URI` when set, else the SQLite store of the work folder."""
    return environ.get(TRACKING_URI_ENV, "").strip() or default_tracking_uri(work_dir)


def existing_store(work_dir_or_tracking_uri: Path | str, environ: Mapping[str, str]) -> str | None:
    """The tracking URI a work folder (or a URI, as is) stands for; None for a work folder never tracked."""
    target = work_dir_or_tracking_uri
    if isinstance(target, str) and len(urllib.parse.urlparse(target).scheme) > 1:
        return target
    uri = resolve_tracking_uri(Path(target), environ)
    if uri == default_tracking_uri(Path(target)) and not (Path(target) / STORE_DIR / "mlflow.db").is_file():
        return None
    return uri


# -- the `ui` verb ------------------------------------------------------------------------------------------
def loopback_host(text: str) -> str:
    """An argparse type: a loopback address or `localhost`, else a usage error naming the value."""
    try:
        loopback = text == "localhost" or ipaddress.ip_address(text).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a loopback address: the MLflow UI has no authentication, so it listens on "
            "127.0.0.1, ::1 or localhost only"
        )
    return text


def add_ui_parser(verbs: argparse._SubParsersAction) -> None:
    """Add the `ui` verb and its options to the command line."""
    ui = verbs.add_parser("ui", help="start the MLflow UI on localhost for the tracked executions")
    ui.add_argument("--work-dir", type=Path, default=Path(".work"))
    ui.add_argument(
        "--host", type=loopback_host, default="127.0.0.1", help="loopback address to listen on (127.0.0.1)"
    )
    ui.add_argument("--port", type=int, default=5000)


def ui_command(work_dir: Path, host: str, port: int, environ: Mapping[str, str]) -> list[str]:
    """The `mlflow ui` command line for the store the runner tracks into."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        resolve_tracking_uri(work_dir, environ),
        "--default-artifact-root",
        artifact_root(work_dir),
        "--host",
        loopback_host(host),
        "--port",
        str(port),
    ]


def ui_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The UI's environment: the caller's, with telemetry and the server's job runner off."""
    return {**environ, **UI_SETTINGS}


def run_ui(args: argparse.Namespace) -> int:
    """The `ui` verb: serve the MLflow UI of the work folder's store until interrupted; the exit code."""
    uri = existing_store(args.work_dir, os.environ)
    if uri is None:
        print(f"no MLflow store in {args.work_dir}: run `python -m local_runner run` first", file=sys.stderr)
        return 1
    print(f"MLflow UI of {uri} at http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    command = ui_command(args.work_dir, args.host, args.port, os.environ)
    try:
        return subprocess.call(command, env=ui_environment(os.environ))
    except KeyboardInterrupt:
        return 0
