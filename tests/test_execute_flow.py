"""`execute` parity for the flow of an execution: ParallelismConfiguration, DependsOn, `JsonGet` on an S3
URI, selective execution, and the errors raised before anything runs (unsupported step types, unknown
parameters or steps)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionEquals
from sagemaker.workflow.emr_step import EMRStep, EMRStepConfig
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.parameters import ParameterString
from test_execute_support import BUCKET, execute, processing_step, render, steps_of, write_script

STAMP = """
import json, os, pathlib, time
started = time.time()
time.sleep(float(os.environ["SLEEP"]))
out = pathlib.Path("/opt/ml/processing/out")
stamp = {"started": started, "ended": time.time(), "name": os.environ["NAME"]}
(out / "stamp.json").write_text(json.dumps(stamp))
"""


def _stamp(session, name: str, sleep: float = 0.0, **options):
    environment = {"SLEEP": str(sleep), "NAME": name}
    outputs = [("out", f"{BUCKET}/stamps/{name}")]
    return processing_step(session, name, "stamp.py", outputs=outputs, env=environment, **options)


def _stamps(tmp_path, *names: str) -> dict[str, dict]:
    store = tmp_path / "work" / "s3" / "parity" / "stamps"
    return {name: json.loads((store / name / "stamp.json").read_text()) for name in names}


def test_parallelism_configuration_and_depends_on_order_the_steps(tmp_path):
    def build(session) -> list:
        first = _stamp(session, "A", 1.0)
        return [first, _stamp(session, "B", 1.0), _stamp(session, "C", depends_on=[first])]

    definition = render(build)
    assert definition["Steps"][2]["DependsOn"] == ["A"]
    # A CreatePipeline request: the definition as a string, with the pipeline's parallelism.
    request = {
        "PipelineDefinition": json.dumps(definition),
        "ParallelismConfiguration": {"MaxParallelExecutionSteps": 1},
    }

    code, record = execute(tmp_path, request, "--object", write_script(tmp_path, "stamp.py", STAMP))

    assert code == 0, record["failure_reason"]
    stamps = sorted(_stamps(tmp_path, "A", "B", "C").values(), key=lambda stamp: stamp["started"])
    for earlier, later in itertools.pairwise(stamps):
        assert earlier["ended"] <= later["started"], "one step at a time"
    assert _stamps(tmp_path, "A")["A"]["ended"] <= _stamps(tmp_path, "C")["C"]["started"]


def test_json_get_reads_an_s3_object_named_by_a_join(tmp_path):
    def build(session) -> list:
        stamp = _stamp(session, "A")
        uri = stamp.properties.ProcessingOutputConfig.Outputs["out"].S3Output.S3Uri
        name = JsonGet(
            step_name=stamp.name, s3_uri=Join(on="/", values=[uri, "stamp.json"]), json_path="name"
        )
        wrong = FailStep("Wrong", error_message=Join(on=" ", values=["read", name]))
        return [
            stamp,
            ConditionStep("IsA", conditions=[ConditionEquals(left=name, right="A")], else_steps=[wrong]),
        ]

    definition = render(build)
    assert "S3Uri" in definition["Steps"][1]["Arguments"]["Conditions"][0]["LeftValue"]["Std:JsonGet"]

    code, record = execute(tmp_path, definition, "--object", write_script(tmp_path, "stamp.py", STAMP))

    assert code == 0, record["failure_reason"]
    assert steps_of(record)["IsA"]["properties"]["Outcome"] == "True"


def test_selective_execution_runs_the_named_steps_on_the_source_results(tmp_path):
    def build(session) -> list:
        first = _stamp(session, "A")
        second = _stamp(session, "B", depends_on=[first])
        return [first, second, _stamp(session, "C", depends_on=[second])]

    definition = render(build)
    script = write_script(tmp_path, "stamp.py", STAMP)
    _, source = execute(tmp_path, definition, "--object", script)
    before = _stamps(tmp_path, "A", "B", "C")

    code, record = execute(tmp_path, definition, "--object", script, "--steps", "B")

    steps = steps_of(record)
    after = _stamps(tmp_path, "A", "B", "C")
    assert code == 0 and record["execution_id"] != source["execution_id"]
    assert steps["A"]["status"] == "Succeeded" and steps["A"]["cache_hit"]
    assert steps["A"]["properties"] == steps_of(source)["A"]["properties"]
    assert steps["B"]["status"] == "Succeeded" and not steps["B"]["cache_hit"]
    assert steps["C"]["status"] == "NotExecuted"
    assert after["B"]["started"] > before["B"]["started"]  # B ran again
    assert after["A"] == before["A"] and after["C"] == before["C"]  # A and C did not


def test_problems_of_the_definition_or_options_stop_the_run_before_any_step(tmp_path, capsys):
    def build(session) -> list:
        emr = EMRStep(
            "Crunch",
            cluster_id="j-1",
            step_config=EMRStepConfig(jar=f"{BUCKET}/a.jar"),
            display_name="c",
            description="c",
        )
        return [_stamp(session, "A"), emr]

    definition = render(build, parameters=[ParameterString("Mode", "fast", enum_values=["fast", "slow"])])

    assert execute(tmp_path, definition)[0] == 2
    assert "Crunch (EMR)" in capsys.readouterr().err
    definition["Steps"].pop()
    assert execute(tmp_path, definition, "--param", "Mood=happy")[0] == 2
    assert "unknown pipeline parameter(s): Mood" in capsys.readouterr().err
    assert execute(tmp_path, definition, "--param", "Mode=medium")[0] == 2
    assert "is not one of ['fast', 'slow']" in capsys.readouterr().err
    assert execute(tmp_path, definition, "--steps", "Nope")[0] == 2
    assert "unknown step(s) Nope; the steps are A" in capsys.readouterr().err
    assert not (tmp_path / "work" / "jobs").exists()


def test_the_command_line_runs_a_definition_in_a_fresh_process(tmp_path):
    definition = render(lambda session: [FailStep("Stop", error_message="stopped on purpose")])
    (tmp_path / "definition.json").write_text(json.dumps(definition))
    command = [sys.executable, "-m", "local_runner", "execute", str(tmp_path / "definition.json")]

    done = subprocess.run(
        [*command, "--work-dir", str(tmp_path / "work")], capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 3, done.stderr
    assert (
        "execution local-" in done.stdout and "Failed - step Stop failed: stopped on purpose" in done.stdout
    )
