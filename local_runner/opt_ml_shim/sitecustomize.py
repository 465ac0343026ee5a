"""Inside a job's Python process: `/opt/ml/...` paths name the job's folder `$SAGEMAKER_BASE_DIR/...`.

Scripts written for SageMaker containers open literal paths such as `/opt/ml/processing/input/x.csv`.
`python -m local_runner execute` runs them without a container, so it puts this folder first on the
job's `PYTHONPATH`; Python imports `sitecustomize` at start-up, and this one wraps `open` and the `os`
functions that take paths (which `pathlib`, `shutil`, `glob` and `os.path` use) so that a path under
`/opt/ml` is rewritten to the job's folder. Other paths pass through unchanged. Only Python processes
(and their Python children) are covered: a shell script's `/opt/ml` paths are not rewritten.
"""

import builtins
import functools
import io
import os

_ROOT = "/opt/ml"
_BASE = os.environ.get("SAGEMAKER_BASE_DIR", "")


def _mapped(path):
    text = os.fspath(path) if isinstance(path, os.PathLike) else path
    if isinstance(text, str) and (text == _ROOT or text.startswith(_ROOT + "/")):
        return _BASE + text[len(_ROOT) :]
    return path


def _wrap(function, positions=(0,)):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        mapped = [_mapped(value) if index in positions else value for index, value in enumerate(args)]
        return function(*mapped, **kwargs)

    return wrapper


if _BASE and _BASE != _ROOT:
    builtins.open = io.open = _wrap(io.open)
    for _name in (
        "open",
        "stat",
        "lstat",
        "listdir",
        "scandir",
        "mkdir",
        "rmdir",
        "remove",
        "unlink",
        "chdir",
        "access",
        "utime",
        "chmod",
        "readlink",
        "truncate",
    ):
        if hasattr(os, _name):
            setattr(os, _name, _wrap(getattr(os, _name)))
    for _name in ("rename", "replace", "symlink", "link"):
        setattr(os, _name, _wrap(getattr(os, _name), positions=(0, 1)))
