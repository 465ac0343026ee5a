"""Helpers of the `execute` parity tests: render a pipeline with the SageMaker SDK, run it, read the record.

Each test builds its pipeline with `sagemaker.workflow.*` on the project's offline `PipelineSession`
(`pipeline_steps.session.definition_offline`), writes tiny scripts into its tmp folder, maps them to S3
URIs with `--object` and runs `python -m local_runner execute` in-process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from registry_helpers import pack_texts
from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor
from sagemaker.sklearn import SKLearn
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.steps import ProcessingStep

from local_runner.__main__ import main
from pipeline_steps.config import local_config
from pipeline_steps.session import definition_offline

BUCKET = "s3://parity"
ROLE = "arn:aws:iam::111122223333:role/parity"
IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/parity-jobs:1"


def render(build: Callable[[object], list], parameters: list | None = None) -> dict:
    """The definition of the pipeline whose steps `build(session)` returns."""

    def pipeline(session, _config) -> Pipeline:
        return Pipeline(
            "parity", parameters=parameters or [], steps=build(session), sagemaker_session=session
        )

    return definition_offline(local_config(), pipeline)


def processor(session, image: str = IMAGE, env: dict | None = None) -> ScriptProcessor:
    return ScriptProcessor(
        image_uri=image,
        env=env,
        command=["python3"],
        role=ROLE,
        instance_count=1,
        instance_type="ml.m5.large",
        sagemaker_session=session,
    )


def processing_step(
    session, name: str, code: str, inputs=(), outputs=(), env: dict | None = None, **step_options
) -> ProcessingStep:
    """A processing step running `s3://parity/code/<code>` with `/opt/ml/processing/<name>` folders.

    `inputs`: (S3 URI or property, local folder name); `outputs`: (output name, destination).
    """
    step_args = processor(session, env=env).run(
        code=f"{BUCKET}/code/{code}",
        inputs=[ProcessingInput(source=s, destination=f"/opt/ml/processing/{d}") for s, d in inputs],
        outputs=[
            ProcessingOutput(output_name=n, source=f"/opt/ml/processing/{n}", destination=d)
            for n, d in outputs
        ],
    )
    return ProcessingStep(name=name, step_args=step_args, **step_options)


def write_script(folder: Path, name: str, text: str) -> str:
    """Write a script; returns its --object option value for `s3://parity/code/<name>`."""
    path = folder / name
    path.write_text(text)
    return f"{BUCKET}/code/{name}={path}"


def script_estimator(session, hyperparameters: dict) -> SKLearn:
    """A script-mode SKLearn estimator of `train.py` in the parity bucket's source bundle."""
    return SKLearn(
        entry_point="train.py",
        source_dir=f"{BUCKET}/code/sourcedir.tar.gz",
        framework_version="1.2-1",
        instance_type="ml.m5.large",
        role=ROLE,
        sagemaker_session=session,
        output_path=f"{BUCKET}/models/",
        code_location=f"{BUCKET}/code/",
        hyperparameters=hyperparameters,
    )


def source_bundle(folder: Path, files: dict[str, str]) -> Path:
    """A sourcedir.tar.gz holding `files` (name -> text)."""
    return pack_texts(folder / "sourcedir.tar.gz", files)


def execute(tmp_path: Path, definition: dict, *options: str) -> tuple[int, dict]:
    """Run `execute` on the definition with `options`; the exit code and the newest execution record."""
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(definition))
    work = tmp_path / "work"
    code = main(["execute", str(path), "--work-dir", str(work), *options])
    records = sorted((work / "executions").glob("*/execution.json"), key=lambda p: p.stat().st_mtime)
    return code, json.loads(records[-1].read_text()) if records else {}


def steps_of(record: dict) -> dict[str, dict]:
    return {step["name"]: step for step in record["steps"]}


def object_text(tmp_path: Path, uri: str) -> str:
    """The text of an object of the run's local store."""
    return (tmp_path / "work" / "s3" / uri.removeprefix("s3://")).read_text()
