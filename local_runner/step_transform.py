"""Transform steps: batch transform through the model's serving command, as SageMaker runs it.

SageMaker starts the model's container with the argument `serve`, waits for `GET /ping` to answer 200 and
posts the input to `POST /invocations`. Locally the container is its **serving command**: a command line
that serves the model the same way, listening on 127.0.0.1 port `$SAGEMAKER_BIND_TO_PORT` with the model
unpacked in `/opt/ml/model` (a job folder, `$SAGEMAKER_BASE_DIR`; `/opt/ml` in the command and in the
model's environment is rewritten there, `python3` is this Python). The serving command of an image is
given with `--serve IMAGE=COMMAND` (the image URI or its repository name); this project's image
(repository `turbofan-rul`) is served by `containers/serve.py serve`. Each input object (S3Prefix) is
split by `SplitType` (`Line`, or none: the whole object), sent one record per request (`SingleRecord`) or
as many records as fit in `MaxPayloadInMB` (`MultiRecord`), with `ContentType` and `Accept`; the answers
are joined (`AssembleWith` `Line` puts one per line) into `<S3OutputPath>/<input name>.out`. An answer
other than 2xx fails the job, naming the object, the status and the answer's text.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from local_runner.errors import RunnerError
from local_runner.execution import CONTAINERS_DIR
from local_runner.execution_record import StepRecord
from local_runner.graph import ExecutionError
from local_runner.jobs import rewrite
from local_runner.object_store import replace_atomically
from local_runner.opt_ml_shim import shim_environment
from local_runner.signals import kill_group
from local_runner.step_model import load_model, primary_container

PROJECT_REPOSITORY = "turbofan-rul"
DEFAULT_PAYLOAD_MB = 6


class TransformFailed(RunnerError, RuntimeError):
    """The serving command did not start or an invocation was not answered with 2xx."""


def repository(image: str) -> str:
    """The repository name of an image URI (no registry, tag or digest)."""
    return image.rsplit("/", 1)[-1].split(":")[0].split("@")[0]


def serving_command(image: str, serving: dict[str, str]) -> list[str]:
    """The command that serves models of `image`: its `--serve` entry, else the project's server."""
    command = serving.get(image) or serving.get(repository(image))
    if command:
        return shlex.split(command)
    if repository(image) == PROJECT_REPOSITORY:
        return ["python3", str(CONTAINERS_DIR / "serve.py"), "serve"]
    raise ExecutionError(
        f"no serving command for image {image}: give one with --serve {repository(image)}=COMMAND "
        f"(a command that serves /opt/ml/model on $SAGEMAKER_BIND_TO_PORT: GET /ping, POST /invocations)"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _unpack_model(store: Any, model_data_url: str, base: Path) -> None:
    model_dir = base / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    if not model_data_url:
        return
    archive = store.path_for(model_data_url)
    if not archive.is_file():
        raise TransformFailed(f"no model archive at {model_data_url}")
    with tarfile.open(archive) as bundle:
        bundle.extractall(model_dir, filter="data")


def _start_server(command: list[str], container: dict, base: Path, port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable if part in ("python", "python3") else part for part in command]
    environment = {key: rewrite(str(value), base) for key, value in container.get("Environment", {}).items()}
    env = {
        **os.environ,
        **environment,
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_BASE_DIR": str(base),
        "RUL_BIND_HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        **shim_environment(),
    }
    with log.open("w") as output:
        return subprocess.Popen(
            [rewrite(part, base) for part in command],
            cwd=base,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_healthy(process: subprocess.Popen, port: int, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log.read_text().splitlines()[-10:])
            raise TransformFailed(f"the serving command exited with code {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TransformFailed(f"the serving command did not answer GET /ping with 200 within {timeout:g}s")


def _stop_server(process: subprocess.Popen) -> None:
    kill_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        kill_group(process.pid, signal.SIGKILL)
        process.wait()


def payloads(data: bytes, split_type: str, strategy: str, max_mb: float) -> list[bytes]:
    """The request bodies of one input object."""
    if split_type != "Line":
        return [data]
    records = [line + b"\n" for line in data.splitlines() if line.strip()]
    if strategy != "MultiRecord":
        return records
    limit, batches, current = max_mb * 1024 * 1024, [], b""
    for item in records:
        if current and len(current) + len(item) > limit:
            batches.append(current)
            current = b""
        current += item
    return batches + ([current] if current else [])


def _invoke(port: int, body: bytes, content_type: str, accept: str, name: str) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, method="POST")
    request.add_header("Content-Type", content_type or "application/octet-stream")
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.read()
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")[:500]
        raise TransformFailed(
            f"ClientError: POST /invocations for {name} answered {error.code}: {text}"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        raise TransformFailed(f"POST /invocations for {name} got no answer: {error}") from None


def _write_object(store: Any, uri: str, content: bytes) -> None:
    replace_atomically(store.path_for(uri), lambda temporary: temporary.write_bytes(content))


def _transform_objects(store: Any, arguments: dict, port: int) -> int:
    source, output = arguments["TransformInput"], arguments["TransformOutput"]
    uri = source["DataSource"]["S3DataSource"]["S3Uri"]
    objects = store.objects(uri)
    if not objects:
        raise TransformFailed(f"no S3 objects found under {uri}")
    split, strategy = source.get("SplitType", "None"), arguments.get("BatchStrategy", "SingleRecord")
    max_mb = float(arguments.get("MaxPayloadInMB", DEFAULT_PAYLOAD_MB))
    joiner = b"\n" if output.get("AssembleWith") == "Line" else b""
    for relative, path in objects:
        answers = [
            _invoke(port, body, source.get("ContentType", ""), output.get("Accept", ""), relative)
            for body in payloads(path.read_bytes(), split, strategy, max_mb)
        ]
        text = joiner.join(answer.rstrip(b"\n") if joiner else answer for answer in answers)
        target = f"{output['S3OutputPath'].rstrip('/')}/{relative}.out"
        _write_object(store, target, text + joiner)
    return len(objects)


def _serve_and_transform(
    executor: Any, job_name: str, container: dict, command: list[str], arguments: dict
) -> int:
    """Start the serving command, transform every input object, stop the server; the object count."""
    base = executor.work_dir / "jobs" / job_name / "algo-1" / "opt_ml"
    base.mkdir(parents=True, exist_ok=True)
    log = base.parent.parent / "algo-1.log"
    _unpack_model(executor.store, container.get("ModelDataUrl", ""), base)
    port = _free_port()
    process = _start_server(command, container, base, port, log)
    executor.stop.add(process.pid)
    try:
        _wait_healthy(process, port, executor.options.serve_timeout, log)
        return _transform_objects(executor.store, arguments, port)
    finally:
        executor.stop.discard(process.pid)
        _stop_server(process)


def run_transform(executor: Any, step: dict, arguments: dict, record: StepRecord) -> None:
    """Serve the step's model with its serving command and transform every input object."""
    filters = arguments.get("DataProcessing", {})
    if any(filters.get(key, "$") != "$" for key in ("InputFilter", "OutputFilter")):
        raise ExecutionError(f"step {step['Name']}: DataProcessing filters are not supported locally")
    job_name, model_name = executor._job_name(step["Name"]), arguments["ModelName"]
    container = primary_container(load_model(executor.work_dir, model_name), model_name)
    command = serving_command(container["Image"], executor.options.serving)
    started, status = time.perf_counter(), "Completed"
    try:
        count = _serve_and_transform(executor, job_name, container, command, arguments)
        executor.echo(f"  [{job_name}] transformed {count} object(s) with {' '.join(command)}")
    except TransformFailed as error:
        executor.stop.check()  # a stop request ended the server: the step is Stopped, not Failed
        record.status, record.failure_reason, status = "Failed", str(error), "Failed"
    finally:
        record.add_job(time.perf_counter() - started)
    record.properties = {
        "TransformJobName": job_name,
        "TransformJobStatus": status,
        "ModelName": model_name,
        "TransformInput": arguments["TransformInput"],
        "TransformOutput": arguments["TransformOutput"],
    }
