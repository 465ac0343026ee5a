"""The job launcher (`local_runner.jobs`): failure reasons name S3 URIs and the user's own files, not job
folders."""

from __future__ import annotations

from pathlib import Path

from local_runner import jobs


def test_job_local_input_paths_are_named_by_s3_uri_and_the_users_file(tmp_path):
    """Paths under a job's /opt/ml folder are rewritten to their S3 URIs and then to the user's own file."""
    base = tmp_path / "jobs" / "j" / "algo-1" / "opt_ml"
    data_dir, lib_dir = base / "processing" / "input", base / "processing" / "input" / "lib"
    mapping = {
        **jobs.input_paths(base, data_dir, "s3://d/raw/", [("train_FD001.txt", Path("x"))]),
        **jobs.input_paths(base, lib_dir, "s3://a/code/src/", [("rul/data.py", Path("y"))]),
    }
    reason = (
        f"{data_dir}/train_FD001.txt, line 3: expected 26 columns\n"
        f'File "{lib_dir}/rul/data.py", line 9\n'
        "also /opt/ml/processing/input/train_FD001.txt and /opt/ml/processing/input/train_FD001.txt.bak"
    )
    mapped = jobs.map_paths(reason, mapping)
    assert mapped.splitlines()[0] == "s3://d/raw/train_FD001.txt, line 3: expected 26 columns"
    assert mapped.splitlines()[1] == 'File "s3://a/code/src/rul/data.py", line 9'
    assert mapped.endswith("also s3://d/raw/train_FD001.txt and s3://d/raw/train_FD001.txt.bak")
    user = tmp_path / "mine" / "train_FD001.txt"
    named = jobs.name_origins(mapped, {"s3://d/raw/train_FD001.txt": user})
    assert named.splitlines()[0] == f"{user}, line 3: expected 26 columns"
    assert named.splitlines()[-1] == f"({user} is s3://d/raw/train_FD001.txt in the local object store)"
    single = jobs.input_paths(base, data_dir, "s3://d/raw/train_FD001.txt", [("train_FD001.txt", Path("x"))])
    assert single[f"{data_dir}/train_FD001.txt"] == "s3://d/raw/train_FD001.txt"
