"""The command lines start fast and quiet: `--help` imports no SDK, the SDK's noise is silenced in code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local_runner import quiet

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sagemaker", "pandas", "optuna", "mlflow", "pydantic", "boto3")


def bare_environment() -> dict[str, str]:
    """This environment without the variables the Makefile used to set to quiet the SDK."""
    drop = {quiet.V2_WARNING_SWITCH, quiet.METADATA_SWITCH}
    return {key: value for key, value in os.environ.items() if key not in drop}


def test_help_imports_no_heavy_library():
    probe = (
        "import sys\nfrom local_runner.__main__ import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as done:\n    assert done.code == 0\n"
        f"print(sorted(name for name in {HEAVY!r} if name in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT_ROOT,
        env=bare_environment(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "[]"
    for verb in ("run", "registry", "endpoint", "monitor", "batch", "demo", "ui"):
        assert verb in done.stdout


FULL_HELP = [("run", "--param"), ("registry", "approve"), ("demo", "--units")]


@pytest.mark.parametrize(("verb", "option"), FULL_HELP)
def test_each_verb_has_its_full_help(verb, option):
    command = [sys.executable, "-m", "local_runner", verb, "--help"]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and option in done.stdout, done.stderr


def test_rendering_prints_no_sdk_noise_without_the_makefiles_variables():
    done = subprocess.run(
        [sys.executable, "-m", "pipeline_steps", "render", "--out", "-"],
        cwd=PROJECT_ROOT,
        env=bare_environment(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Parameters"]  # stdout is the definition and nothing else
    assert "sagemaker.config INFO" not in done.stdout + done.stderr
    assert "SDK v2" not in done.stderr


def test_silence_sdk_sets_defaults_only(monkeypatch):
    monkeypatch.delenv(quiet.V2_WARNING_SWITCH, raising=False)
    monkeypatch.delenv(quiet.METADATA_SWITCH, raising=False)
    quiet.silence_sdk(offline=False)  # the AWS verbs: the instance profile stays reachable
    assert os.environ[quiet.V2_WARNING_SWITCH] == "1" and quiet.METADATA_SWITCH not in os.environ
    monkeypatch.setenv(quiet.METADATA_SWITCH, "false")
    quiet.silence_sdk(offline=True)
    assert os.environ[quiet.METADATA_SWITCH] == "false"  # the user's own value wins


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["registry", "list"], "error: work dir {work} does not exist; a pipeline run"),
        (["endpoint", "ab-status"], "error: no A/B test was started here"),
    ],
)
def test_an_error_is_one_line_on_stderr_and_nothing_on_stdout(tmp_path, capsys, argv, message):
    from local_runner.__main__ import main

    work = tmp_path / "missing"
    assert main([*argv, "--work-dir", str(work)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(message.format(work=work)) and err.count("\n") == 1
