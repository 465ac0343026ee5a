"""Job launcher: runs a container script as a SageMaker processing or training job would, locally.

Each job gets its own folder `<work>/jobs/<job name>/` whose `opt_ml/` stands for the container's
`/opt/ml`. Inputs are copied in, the script runs in a subprocess with `SAGEMAKER_BASE_DIR` pointing
there, its output is streamed with the job name as prefix and kept in `job.log`, and outputs are copied
out. A failed job reports the reason from the failure file, as SageMaker's FailureReason does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

CONTAINERS_DIR = Path(__file__).resolve().parent.parent / "containers"
CONTAINER_ROOT = "/opt/ml"


@dataclass
class JobResult:
    name: str
    status: str  # "Completed" or "Failed"
    seconds: float
    job_dir: Path
    failure_reason: str = ""
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "Completed"


def to_local(container_path: str, base: Path) -> Path:
    """Translate a path under /opt/ml into the job's local stand-in folder."""
    if not container_path.startswith(CONTAINER_ROOT + "/"):
        raise ValueError(f"{container_path} is not under {CONTAINER_ROOT}")
    return base / container_path[len(CONTAINER_ROOT) + 1 :]


def pack_model(model_dir: Path, archive: Path) -> Path:
    """Pack a model folder into model.tar.gz, as SageMaker does when a training job ends."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as bundle:
        for path in sorted(model_dir.rglob("*")):
            bundle.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
    return archive


def _copy(source: Path, destination: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True)
    else:
        destination.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination / source.name)


def _run_script(
    name: str, script: str, arguments: list[str], base: Path, job_dir: Path, echo: Callable[[str], None]
) -> tuple[int, str]:
    environment = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(CONTAINERS_DIR / script), *arguments]
    tail: list[str] = []
    with (job_dir / "job.log").open("w") as log_file:
        process = subprocess.Popen(
            command,
            cwd=CONTAINERS_DIR,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for line in process.stdout:
            log_file.write(line)
            tail = [*tail[-19:], line.rstrip()]
            echo(f"  [{name}] {line.rstrip()}")
        code = process.wait()
    failure = base / "output" / "failure"
    reason = failure.read_text().strip() if failure.is_file() else "\n".join(tail[-5:])
    return code, reason


def _job_dir(work_dir: Path, name: str) -> tuple[Path, Path]:
    job_dir = work_dir / "jobs" / name
    if job_dir.exists():
        shutil.rmtree(job_dir)
    base = job_dir / "opt_ml"
    base.mkdir(parents=True)
    (base / "config").mkdir()
    (base / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    return job_dir, base


def run_processing_job(
    name: str,
    script: str,
    work_dir: Path,
    inputs: Mapping[str, Path],
    outputs: Mapping[str, Path],
    arguments: list[str] | None = None,
    echo: Callable[[str], None] = print,
) -> JobResult:
    """Run a processing script; `inputs` maps container paths to local sources, `outputs` the reverse."""
    started = time.perf_counter()
    job_dir, base = _job_dir(Path(work_dir), name)
    for container_path, source in inputs.items():
        _copy(Path(source), to_local(container_path, base))
    for container_path in outputs:
        to_local(container_path, base).mkdir(parents=True, exist_ok=True)
    code, reason = _run_script(name, script, arguments or [], base, job_dir, echo)
    result = JobResult(name, "Completed" if code == 0 else "Failed", 0.0, job_dir)
    if code == 0:
        for container_path, destination in outputs.items():
            Path(destination).mkdir(parents=True, exist_ok=True)
            shutil.copytree(to_local(container_path, base), destination, dirs_exist_ok=True)
            result.outputs[container_path] = Path(destination)
    else:
        result.failure_reason = reason
    result.seconds = time.perf_counter() - started
    return result


def run_training_job(
    name: str,
    script: str,
    work_dir: Path,
    channels: Mapping[str, Path],
    hyperparameters: Mapping[str, object],
    model_output: Path,
    echo: Callable[[str], None] = print,
) -> JobResult:
    """Run a training script with SageMaker's config files; pack the model into `model_output`."""
    started = time.perf_counter()
    job_dir, base = _job_dir(Path(work_dir), name)
    config = base / "input" / "config"
    config.mkdir(parents=True)
    # The SDK JSON-encodes every hyperparameter value into a string.
    (config / "hyperparameters.json").write_text(
        json.dumps({key: json.dumps(value) for key, value in hyperparameters.items()})
    )
    (config / "inputdataconfig.json").write_text(
        json.dumps({channel: {"TrainingInputMode": "File"} for channel in channels})
    )
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    for channel, source in channels.items():
        _copy(Path(source), base / "input" / "data" / channel)
    (base / "model").mkdir()
    code, reason = _run_script(name, script, [], base, job_dir, echo)
    result = JobResult(name, "Completed" if code == 0 else "Failed", 0.0, job_dir)
    if code == 0:
        result.outputs["model"] = pack_model(base / "model", Path(model_output))
        result.outputs["output_data"] = base / "output" / "data"
    else:
        result.failure_reason = reason
    result.seconds = time.perf_counter() - started
    return result
