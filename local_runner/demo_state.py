"""State of a lifecycle demo run: its options, its record, and where the container code lives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_runner.container_code import use_container_code
from local_runner.demo_report import DemoFacts, Timeline
from local_runner.endpoint import EndpointProcess
from local_runner.errors import RunnerError
from local_runner.main_job import Workspace

MARKER = ".lifecycle-demo"  # marks a work dir as the demo's own, so a rerun may wipe it
TITLE = "Turbofan RUL: the model lifecycle, offline"
NEW_DATA_FILE = "train_{subset}_drifted_fleet.txt"


class DemoError(RunnerError, RuntimeError):
    """A transition of the demo did not happen; the message says which and why."""


@dataclass(frozen=True)
class DemoOptions:
    """The demo's sizes, budgets and seeds."""

    work_dir: Path = Path(".work/demo")
    subset: str = "FD001"
    training_units: int = 60  # synthetic run-to-failure units of v1's training data
    fleet_units: int = 48  # units in service sending traffic, per window
    new_units: int = 40  # the drifted fleet's run-to-failure histories added for retraining
    cycles_sent: int = 60  # recent cycles each unit sends: what the rich model reads (its history_cycles)
    tuning_max_jobs: int = 2
    # A small training budget (static hyperparameters of every trial) so two runs fit in minutes.
    budget: tuple[tuple[str, str], ...] = (("ensemble_size", "1"), ("max_iter", "150"))
    drift_kind: str = "offset"
    drift_magnitude: float = 2.0  # in measurement-noise standard deviations
    drift_sensors: tuple[str, ...] = ("sensor_4", "sensor_11", "sensor_15")
    seed: int = 0
    concurrency: int = 4
    canary_requests: int = 8
    ab_requests: int = 96  # units of the A/B phase's fleet, one request each; 0 skips the A/B phase
    ab_min_labelled: int = 10  # labelled predictions each variant needs before the challenger can win


@dataclass
class Demo:
    """A running demo: its options, timeline, log, facts and the endpoint it started."""

    options: DemoOptions
    timeline: Timeline
    log: Callable[[str], None]
    facts: DemoFacts = field(default_factory=DemoFacts)
    endpoint: EndpointProcess | None = None
    workspace: Workspace | None = None
    failed: str = ""

    @property
    def work_dir(self) -> Path:
        """The demo's work folder as an absolute path."""
        return Path(self.options.work_dir).resolve()


def _rul() -> Any:
    # The runner does not import the container code at module level; the generator and file format are theirs.
    use_container_code()
    import rul.data
    import rul.synthetic

    return rul
