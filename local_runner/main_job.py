"""The main job: preprocess -> train -> evaluate, locally, on real C-MAPSS files or the synthetic default.

Data comes from `data_dir` (a folder holding train_<subset>.txt, e.g. ../shared/data/cmapss) or, when
none is given, from the project's synthetic generator, written under the work directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from local_runner.jobs import CONTAINERS_DIR, JobResult, run_processing_job, run_training_job


class JobFailed(RuntimeError):
    """A step of the main job failed; the message carries the step and its failure reason."""


@dataclass(frozen=True)
class MainJobOptions:
    work_dir: Path = Path(".work")
    data_dir: Path | None = None
    subset: str = "FD001"
    synthetic_units: int = 100
    seed: int = 0
    hyperparameters: dict[str, object] = field(default_factory=dict)


def prepare_data(options: MainJobOptions, echo: Callable[[str], None] = print) -> Path:
    """The folder holding train_<subset>.txt: the given one, or a freshly generated synthetic one."""
    if options.data_dir is not None:
        path = Path(options.data_dir) / f"train_{options.subset}.txt"
        if not path.is_file():
            raise JobFailed(f"{path} not found (data_dir must hold train_{options.subset}.txt)")
        return Path(options.data_dir)
    target = options.work_dir / "data" / "synthetic"
    echo(
        f"generating synthetic C-MAPSS data ({options.synthetic_units} units, "
        f"seed {options.seed}) in {target}"
    )
    subprocess.run(
        [
            sys.executable,
            str(CONTAINERS_DIR / "rul" / "synthetic.py"),
            "--output-dir",
            str(target),
            "--name",
            options.subset,
            "--train-units",
            str(options.synthetic_units),
            "--seed",
            str(options.seed),
        ],
        check=True,
        cwd=CONTAINERS_DIR,
    )
    return target


def _check(result: JobResult) -> JobResult:
    if not result.ok:
        raise JobFailed(f"step {result.name} failed: {result.failure_reason}")
    return result


def run_main_job(options: MainJobOptions, echo: Callable[[str], None] = print) -> dict:
    """Run the three steps; return the step results and the evaluation report."""
    work = Path(options.work_dir)
    data_dir = prepare_data(options, echo)
    artifacts = work / "artifacts"
    steps: list[JobResult] = []

    echo("step PreprocessData: splitting units and cutting test units")
    steps.append(
        _check(
            run_processing_job(
                "PreprocessData",
                "preprocess.py",
                work,
                inputs={"/opt/ml/processing/input": data_dir / f"train_{options.subset}.txt"},
                outputs={
                    f"/opt/ml/processing/{name}": artifacts / "preprocess" / name
                    for name in ("train", "validation", "test", "baseline", "metadata")
                },
                arguments=["--subset", options.subset, "--seed", str(options.seed)],
                echo=echo,
            )
        )
    )

    echo("step TrainModel: fitting the model")
    steps.append(
        _check(
            run_training_job(
                "TrainModel",
                "train.py",
                work,
                channels={name: artifacts / "preprocess" / name for name in ("train", "validation")},
                hyperparameters={"seed": options.seed, **options.hyperparameters},
                model_output=artifacts / "model" / "model.tar.gz",
                echo=echo,
            )
        )
    )

    echo("step EvaluateModel: scoring the held-out test units")
    steps.append(
        _check(
            run_processing_job(
                "EvaluateModel",
                "evaluate.py",
                work,
                inputs={
                    "/opt/ml/processing/model": artifacts / "model" / "model.tar.gz",
                    "/opt/ml/processing/test": artifacts / "preprocess" / "test",
                },
                outputs={"/opt/ml/processing/evaluation": artifacts / "evaluation"},
                echo=echo,
            )
        )
    )
    report = json.loads((artifacts / "evaluation" / "evaluation.json").read_text())
    return {"steps": steps, "report": report, "artifacts": artifacts, "finished_at": time.time()}
