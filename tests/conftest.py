"""Shared fixtures: small synthetic subsets (session-scoped, generated once) and the real-data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from rul.hyperparameters import Hyperparameters
from rul.models import fit_predictor
from rul.synthetic import SyntheticSpec, generate, write_subset

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REAL_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data" / "cmapss"


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    if not (REAL_DATA_DIR / "train_FD001.txt").is_file():
        pytest.skip(f"real C-MAPSS data not found at {REAL_DATA_DIR}")
    return REAL_DATA_DIR


@pytest.fixture(scope="session")
def small_subset():
    """40 training and 20 test units, one condition, one fault mode."""
    return generate(SyntheticSpec(n_train_units=40, n_test_units=20, seed=7))


@pytest.fixture(scope="session")
def multi_condition_subset():
    return generate(SyntheticSpec(n_train_units=30, n_test_units=10, n_conditions=6, n_fault_modes=2, seed=3))


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory, small_subset) -> Path:
    """A folder holding train/test/RUL_FD001.txt files of the small synthetic subset."""
    directory = tmp_path_factory.mktemp("synthetic")
    write_subset(small_subset, directory, "FD001")
    return directory


@pytest.fixture(scope="session")
def serving_subset():
    """The data of the small served model: 30 training and 10 test units."""
    return generate(SyntheticSpec(n_train_units=30, n_test_units=10, seed=1))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, serving_subset):
    """A fast gbm model folder (trained once per test session) for the serving, capture and endpoint tests."""
    hp = Hyperparameters.from_dict({"feature_set": "stats", "ensemble_size": 1, "max_iter": 50})
    directory = tmp_path_factory.mktemp("served-model") / "model"
    fit_predictor(serving_subset.train, None, hp).save(directory)
    return directory


# The whole CDK app, synthesized once per session with cdk-nag (imports are lazy: most tests need no CDK).
@pytest.fixture(scope="session")
def app():
    from cdk_helpers import cdk_json_context

    from app import build_app

    return build_app(context=cdk_json_context())


@pytest.fixture(scope="session")
def synth_outcome(app):
    from cdk_helpers import synth_with_report

    return synth_with_report(app)


@pytest.fixture(scope="session")
def templates(synth_outcome) -> dict[str, dict]:
    """Every synthesized template of the whole app, by CloudFormation stack name."""
    assert synth_outcome.assembly is not None, synth_outcome.error
    return {stack.stack_name: stack.template for stack in synth_outcome.assembly.stacks}
