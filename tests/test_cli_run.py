"""A tiny real run through the command line: quiet prints only the summary, plain lines without a terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DRIVER = """
import functools, sys
from local_runner import __main__ as cli

TINY = (("feature_set", "stats"), ("ensemble_size", "2"), ("max_iter", "40"), ("validation_draws", "2"))
cli.MainJobOptions = functools.partial(cli.MainJobOptions, config_overrides={"static_hyperparameters": TINY})
sys.exit(cli.main(sys.argv[1:]))
"""


def run_cli(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    command = [sys.executable, str(driver), "run", "--work-dir", str(tmp_path / "work"), "--units", "30"]
    command += ["--no-tracking", "--param", "TuningMaxJobs=2", "--param", "TuningMaxParallelJobs=1", *flags]
    drop = {"SAGEMAKER_SUPPRESS_V2_WARNING", "AWS_EC2_METADATA_DISABLED"}  # the command line needs neither
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)


@pytest.mark.long
def test_quiet_then_verbose_runs(tmp_path):
    quiet = run_cli(tmp_path, "-q")
    assert quiet.returncode == 0, quiet.stderr
    lines = [line for line in quiet.stdout.splitlines() if line]
    assert lines[0].split() == ["step", "type", "status", "seconds"], quiet.stdout  # nothing before it
    assert any(line.startswith("registered model version 1") for line in lines), quiet.stdout
    assert "\x1b" not in quiet.stdout and "sagemaker.config" not in quiet.stdout + quiet.stderr
    assert "report: work/executions/" in quiet.stdout  # relative to the working folder
    logs = list((tmp_path / "work" / "jobs").glob("*-PreprocessData/algo-1.log"))
    assert logs and logs[0].read_text()[:4].isdigit()  # each log line starts with its timestamp

    verbose = run_cli(tmp_path, "-v", "--seed", "1")  # new data, so the jobs run and their logs stream
    assert verbose.returncode in (0, 3), verbose.stderr
    assert re.search(r"^\d\d:\d\d:\d\d   \[local-\S+-PreprocessData\] read train_FD001", verbose.stdout, re.M)
    assert re.search(r"^\d\d:\d\d:\d\d PreprocessData succeeded in \d+s$", verbose.stdout, re.M)
