"""Job launcher: runs CreateProcessingJob and CreateTrainingJob requests locally, as SageMaker would.

Each job gets a folder `<work>/jobs/<job name>/`; per instance, `algo-N/opt_ml/` stands for the
container's `/opt/ml`. Inputs are downloaded from the object store into it, the container's entry point
runs as a subprocess of this Python with `SAGEMAKER_BASE_DIR` pointing there (paths under /opt/ml in the
entry point, arguments and environment are rewritten to the local folder), its output is streamed with
the job name as prefix and kept in `<host>.log`, and outputs are uploaded back. A failed job reports the
reason from its failure file, as SageMaker's FailureReason does. Training packs `model.tar.gz` and
uploads it under `<S3OutputPath>/<job name>/output/`. `extra_environment` adds variables that are not part
of the request (the MLflow settings of `local_runner.tracking`), so they never enter a step's cache key.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from local_runner.object_store import ObjectStore

CONTAINER_ROOT = "/opt/ml"
_PYTHON = re.compile(r"^(/usr/(local/)?bin/)?python3?(\.\d+)?$")


class JobError(RuntimeError):
    """A job request cannot be run locally (not a failure of the job's own script)."""


@dataclass
class JobResult:
    name: str
    status: str  # "Completed" or "Failed"
    seconds: float = 0.0
    job_dir: Path | None = None
    failure_reason: str = ""
    log_text: str = ""
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "Completed"


def to_local(container_path: str, base: Path) -> Path:
    """Translate a path under /opt/ml into the job's local stand-in folder."""
    if container_path != CONTAINER_ROOT and not container_path.startswith(CONTAINER_ROOT + "/"):
        raise JobError(f"{container_path} is not under {CONTAINER_ROOT}")
    return base / container_path[len(CONTAINER_ROOT) + 1 :]


def rewrite(text: str, base: Path) -> str:
    """Rewrite every /opt/ml path inside a command-line argument or environment value."""
    return re.sub(r"/opt/ml(?=/|$|:)", str(base), text)


def pack_model(model_dir: Path, archive: Path) -> Path:
    """Pack a model folder into model.tar.gz, as SageMaker does when a training job ends."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as bundle:
        for path in sorted(model_dir.rglob("*")):
            bundle.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
    return archive


def _prepare_base(job_dir: Path, host: str, hosts: list[str]) -> Path:
    base = job_dir / host / "opt_ml"
    base.mkdir(parents=True)
    resource = json.dumps({"current_host": host, "hosts": hosts})
    for folder in (base / "config", base / "input" / "config"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "resourceconfig.json").write_text(resource)
    return base


def run_command(
    name: str,
    command: list[str],
    base: Path,
    environment: Mapping[str, str],
    log_path: Path,
    echo: Callable[[str], None],
    cwd: Path | None = None,
) -> tuple[int, str, str]:
    """Run the container's command; return the exit code, the failure reason and the whole log."""
    if command and _PYTHON.match(command[0]):
        command = [sys.executable, *command[1:]]
    command = [rewrite(part, base) for part in command]
    env = {**os.environ, **{key: rewrite(value, base) for key, value in environment.items()}}
    env.update({"SAGEMAKER_BASE_DIR": str(base), "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    with log_path.open("w") as log_file:
        try:
            process = subprocess.Popen(
                command, cwd=cwd or base, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        except OSError as error:
            return 127, f"cannot start {command[0]}: {error}", ""
        for line in process.stdout:
            log_file.write(line)
            lines.append(line.rstrip("\n"))
            echo(f"  [{name}] {line.rstrip()}")
        code = process.wait()
    failure = base / "output" / "failure"
    reason = failure.read_text().strip() if failure.is_file() else "\n".join(lines[-5:])
    if code != 0 and not reason:
        reason = f"exit code {code}"
    return code, reason, "\n".join(lines)


def shard_objects(objects: list, host_index: int, host_count: int, distribution: str) -> list:
    """The objects (in key order) that instance `host_index` of `host_count` downloads.

    SageMaker documents only that with ShardedByS3Key each instance gets about 1/n of the objects and
    that with more instances than objects some get none; dealing them out in key order is one such split.
    """
    if distribution == "ShardedByS3Key":
        return objects[host_index::host_count]
    return objects


def run_processing_job(
    name: str,
    request: dict,
    store: ObjectStore,
    work_dir: Path,
    echo: Callable[[str], None] = print,
    extra_environment: Mapping[str, str] | None = None,
) -> JobResult:
    """Run a resolved CreateProcessingJob request on as many local 'instances' as it asks for."""
    started = time.perf_counter()
    job_dir = Path(work_dir).resolve() / "jobs" / name
    count = int(request.get("ProcessingResources", {}).get("ClusterConfig", {}).get("InstanceCount", 1))
    hosts = [f"algo-{index + 1}" for index in range(count)]
    app = request["AppSpecification"]
    command = [*app.get("ContainerEntrypoint", []), *app.get("ContainerArguments", [])]
    if not command:
        raise JobError(f"{name}: the request has no ContainerEntrypoint to run")
    outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
    logs = []
    for index, host in enumerate(hosts):
        base = _prepare_base(job_dir, host, hosts)
        for item in request.get("ProcessingInputs", []):
            s3_input = item["S3Input"]
            objects = store.objects(s3_input["S3Uri"])
            if not objects:
                return JobResult(
                    name,
                    "Failed",
                    time.perf_counter() - started,
                    job_dir,
                    f"no S3 objects found under {s3_input['S3Uri']} (input {item['InputName']})",
                )
            local = to_local(s3_input["LocalPath"], base)
            local.mkdir(parents=True, exist_ok=True)  # empty when no object lands here
            distribution = s3_input.get("S3DataDistributionType", "")
            for relative, source in shard_objects(objects, index, count, distribution):
                target = local / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read_bytes())
        for output in outputs:
            to_local(output["S3Output"]["LocalPath"], base).mkdir(parents=True, exist_ok=True)
        label = name if count == 1 else f"{name} {host}"
        environment = {**request.get("Environment", {}), **(extra_environment or {})}
        code, reason, log_text = run_command(label, command, base, environment, job_dir / f"{host}.log", echo)
        logs.append(log_text)
        if code != 0:
            return JobResult(name, "Failed", time.perf_counter() - started, job_dir, reason, "\n".join(logs))
        for output in outputs:
            store.upload(to_local(output["S3Output"]["LocalPath"], base), output["S3Output"]["S3Uri"])
    result = JobResult(name, "Completed", time.perf_counter() - started, job_dir, log_text="\n".join(logs))
    result.outputs = {output["OutputName"]: output["S3Output"]["S3Uri"] for output in outputs}
    return result


def run_training_job(
    name: str,
    request: dict,
    store: ObjectStore,
    work_dir: Path,
    echo: Callable[[str], None] = print,
    extra_environment: Mapping[str, str] | None = None,
) -> JobResult:
    """Run a resolved CreateTrainingJob request in script mode (sagemaker_program from source_dir)."""
    started = time.perf_counter()
    job_dir = Path(work_dir).resolve() / "jobs" / name
    base = _prepare_base(job_dir, "algo-1", ["algo-1"])
    hyperparameters = dict(request.get("HyperParameters", {}))
    program = _decode(hyperparameters.get("sagemaker_program"))
    submit_directory = _decode(hyperparameters.get("sagemaker_submit_directory"))
    if not program or not submit_directory:
        raise JobError(
            f"{name}: only script-mode training (sagemaker_program, sagemaker_submit_directory) runs"
        )
    config = base / "input" / "config"
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    channels = {}
    for channel in request.get("InputDataConfig", []):
        uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
        local = base / "input" / "data" / channel["ChannelName"]
        local.mkdir(parents=True)
        if not store.objects(uri):
            return JobResult(
                name,
                "Failed",
                time.perf_counter() - started,
                job_dir,
                f"no S3 objects found under {uri} (channel {channel['ChannelName']})",
            )
        store.download(uri, local)
        channels[channel["ChannelName"]] = {"TrainingInputMode": "File"}
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    # With network isolation the SDK ships the code as a "code" channel and names its local path.
    archive = (
        to_local(submit_directory, base)
        if submit_directory.startswith("/opt/ml")
        else store.path_for(submit_directory)
    )
    if not archive.is_file():
        return JobResult(
            name, "Failed", time.perf_counter() - started, job_dir, f"no source bundle at {submit_directory}"
        )
    code_dir = base / "code"
    with tarfile.open(archive) as bundle:
        bundle.extractall(code_dir, filter="data")
    (base / "model").mkdir()
    environment = {
        **request.get("Environment", {}),
        "SM_MODEL_DIR": "/opt/ml/model",
        "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
        "SM_HPS": json.dumps({key: _decode(value) for key, value in hyperparameters.items()}),
        **{f"SM_CHANNEL_{channel.upper()}": f"/opt/ml/input/data/{channel}" for channel in channels},
        **(extra_environment or {}),
    }
    code, reason, log_text = run_command(
        name,
        ["python3", str(code_dir / program)],
        base,
        environment,
        job_dir / "algo-1.log",
        echo,
        cwd=code_dir,
    )
    if code != 0:
        return JobResult(name, "Failed", time.perf_counter() - started, job_dir, reason, log_text)
    model_uri = f"{request['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output/model.tar.gz"
    archive = pack_model(base / "model", job_dir / "model.tar.gz")
    store.upload(archive, model_uri)
    result = JobResult(name, "Completed", time.perf_counter() - started, job_dir, log_text=log_text)
    result.outputs = {"model": model_uri}
    return result


def _decode(value):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
