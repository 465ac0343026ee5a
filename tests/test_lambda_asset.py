"""The ops functions' code asset: a `lambdas/` folder at its root, nothing else, and every handler importable
from it the way Lambda imports it (the asset folder first on `sys.path`, no repository code reachable).

The asset folders are those of the whole app, synthesized once per session (the `synth_outcome` fixture
of conftest.py, shared with test_app_synth.py); the mirror function's asset is checked the same way in
test_model_mirror_stack.py through :func:`check_asset_runs`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.ops_common import LAMBDAS_DIR, checked_handler

FUNCTIONS = (
    "start_pipeline",
    "deploy_on_approval",
    "publish_model_metrics",
    "backup_registry",
    "mirror_model",
)
# The Python sources are ~200 kB today; an asset ten times bigger has picked up something it should not.
MAX_ASSET_BYTES = 1_000_000

IMPORT_FROM_ASSET = """
import importlib, importlib.util, json, sys
asset, handlers = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, asset)
for package in ("app", "stacks", "settings", "pipeline_steps", "local_runner"):
    assert importlib.util.find_spec(package) is None, package + " is importable beside the asset"
for handler in handlers:
    module_name, _, function = handler.rpartition(".")
    module = importlib.import_module(module_name)
    assert module.__file__.startswith(asset), (handler, module.__file__)
    assert callable(getattr(module, function)), handler
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] == "lambdas")))
"""


def function_assets(outdir: Path) -> dict[str, Path]:
    """The ops functions of a cloud assembly (by their name suffix): handler -> the asset folder of the code.

    The templates name the code by object key only (in-process synths write no asset metadata); the asset
    manifests map that key back to the folder CDK staged in ``outdir``.
    """
    folders = {
        destination["objectKey"]: outdir / entry["source"]["path"]
        for manifest in outdir.glob("*.assets.json")
        for entry in json.loads(manifest.read_text()).get("files", {}).values()
        for destination in entry["destinations"].values()
    }
    suffixes = tuple("-" + name.replace("_", "-") for name in FUNCTIONS)
    found: dict[str, Path] = {}
    for template in outdir.glob("*.template.json"):
        for resource in json.loads(template.read_text())["Resources"].values():
            properties = resource.get("Properties", {})
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            if str(properties.get("FunctionName")).endswith(suffixes):
                found[properties["Handler"]] = folders[properties["Code"]["S3Key"]]
    return found


def check_asset_runs(asset: Path, handlers: list[str]) -> list[str]:
    """Import each handler from ``asset`` alone in a new interpreter; return the `lambdas` modules loaded."""
    done = subprocess.run(
        # -I: no current directory, PYTHONPATH or user site on sys.path; the runtime's own packages stay.
        # -B: no __pycache__ written into the asset (Lambda's code folder is read-only too).
        [sys.executable, "-I", "-B", "-c", IMPORT_FROM_ASSET, str(asset), json.dumps(handlers)],
        cwd=asset,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def asset_files(asset: Path) -> dict[str, int]:
    """Every file of an asset folder (relative POSIX path -> size in bytes)."""
    return {p.relative_to(asset).as_posix(): p.stat().st_size for p in asset.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def assets(synth_outcome) -> dict[str, Path]:
    assert synth_outcome.assembly is not None, synth_outcome.error
    return function_assets(synth_outcome.outdir)


@pytest.mark.slow
def test_every_ops_function_is_named_by_its_full_module_path(assets):
    expected = {f"lambdas.{name}.handler.handler" for name in FUNCTIONS if name != "mirror_model"}
    assert set(assets) == expected  # the mirror is off by default


@pytest.mark.slow
def test_each_asset_holds_the_function_and_the_common_package(assets):
    for handler, asset in assets.items():
        function = handler.split(".")[1]
        assert (asset / "lambdas" / function / "handler.py").is_file(), handler
        assert (asset / "lambdas" / "common" / "__init__.py").is_file(), handler
        assert (asset / "lambdas" / "__init__.py").is_file(), handler


@pytest.mark.slow
def test_every_handler_imports_from_its_asset_alone(assets):
    by_asset: dict[Path, list[str]] = {}
    for handler, asset in assets.items():
        by_asset.setdefault(asset, []).append(handler)
    for asset, handlers in by_asset.items():
        loaded = check_asset_runs(asset, sorted(handlers))
        assert "lambdas.common.s3uri" in loaded
        assert not any(".shared" in name for name in loaded), loaded


@pytest.mark.slow
def test_the_asset_is_the_lambdas_sources_and_nothing_else(assets):
    sources = {
        f"lambdas/{relative.as_posix()}": p.stat().st_size
        for p in LAMBDAS_DIR.rglob("*")
        if p.is_file() and (relative := p.relative_to(LAMBDAS_DIR)).suffix != ".pyc"
        if not any(part.startswith((".", "__pycache__")) for part in relative.parts)
    }
    assert "lambdas/common/s3uri.py" in sources
    for asset in set(assets.values()):
        files = asset_files(asset)
        assert files == sources  # no tests, .venv, caches or other top-level folders
        assert sum(files.values()) <= MAX_ASSET_BYTES, sum(files.values())


def test_a_handler_outside_the_lambdas_folder_is_refused():
    assert (
        checked_handler("lambdas.start_pipeline.handler.handler") == "lambdas.start_pipeline.handler.handler"
    )
    for wrong in ("start_pipeline.handler.handler", "lambdas.start_pipeline.nothing.handler", "stacks.app.x"):
        with pytest.raises(ValueError, match=r"expected 'lambdas\.<function>\.<module>\.<callable>'"):
            checked_handler(wrong)
