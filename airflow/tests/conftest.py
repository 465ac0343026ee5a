"""Airflow for the DAG tests: a throwaway home with a fresh SQLite metadata database, no example DAGs.

Airflow reads its configuration when it is first imported, so the environment is set in
`pytest_configure`, before any test module imports it; the database is created once per session.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parent.parent / "dags"


def pytest_configure(config: pytest.Config) -> None:
    home = Path(tempfile.mkdtemp(prefix="airflow-home-"))
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # `import sagemaker` in the local runner probes the instance-metadata endpoint; offline there is none.
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["SAGEMAKER_SUPPRESS_V2_WARNING"] = "1"
    # As Airflow's own workers do, so the tests can import the DAG module's helpers by name.
    sys.path.insert(0, str(DAGS_FOLDER))


@pytest.fixture(scope="session")
def airflow_db() -> None:
    from airflow.utils.db import resetdb

    resetdb()


@pytest.fixture
def dag(airflow_db):
    """The DAG parsed afresh: `dag.test()` updates the DAG object's params with the run's conf in place."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    return bag.dags["turbofan_rul_pipeline"]
