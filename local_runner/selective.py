"""Selective execution: run only named steps, the others' results taken from an earlier execution.

As with the SDK's `SelectiveExecutionConfig(selected_steps, source_pipeline_execution_arn,
reference_latest_execution=True)`, only the selected steps run. The steps upstream of them take the
properties they had in the source execution (shown as cache hits); the other steps are NotExecuted. The
source is an execution record of the work dir (`<work>/executions/<id>/execution.json`), by default the
newest one. A selected step that needs a step which did not succeed in the source is refused before
anything runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from local_runner.graph import ExecutionError


@dataclass(frozen=True)
class Selection:
    """A selective execution: the steps to run and the source execution the others reuse."""

    steps: frozenset[str]
    source_id: str
    source_steps: dict[str, dict] = field(default_factory=dict)  # step name -> its record in the source
    upstream: frozenset[str] = frozenset()  # the steps the selected ones depend on, transitively

    def reused(self, name: str) -> dict | None:
        """The source's properties of a step that is not selected, None when it did not succeed."""
        record = self.source_steps.get(name)
        if record and record.get("status") == "Succeeded":
            return record.get("properties", {})
        return None


def newest_execution(work_dir: Path) -> str:
    """The id of the newest execution record in the work dir."""
    records = sorted(
        Path(work_dir).glob("executions/*/execution.json"), key=lambda path: path.stat().st_mtime
    )
    if not records:
        raise ExecutionError(f"selective execution needs an earlier execution; {work_dir} has none")
    return records[-1].parent.name


def upstream_of(names: set[str], graph: dict) -> frozenset[str]:
    """Every step that `names` depend on, directly or not."""
    found: set[str] = set()
    pending = [d for name in names for d in graph[name][1]]
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending.extend(graph[name][1])
    return frozenset(found)


def load_selection(work_dir: Path, steps: list[str], source_id: str | None, graph: dict) -> Selection:
    """Check the selected steps against the definition and the source execution's records."""
    unknown = sorted(set(steps) - set(graph))
    if unknown:
        raise ExecutionError(
            f"unknown step(s) {', '.join(unknown)}; the steps are {', '.join(sorted(graph))}"
        )
    source_id = source_id or newest_execution(work_dir)
    path = Path(work_dir) / "executions" / source_id / "execution.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ExecutionError(f"cannot read the source execution {source_id} ({path}): {error}") from None
    selection = Selection(
        frozenset(steps),
        source_id,
        {item["name"]: item for item in record.get("steps", [])},
        upstream_of(set(steps), graph) - set(steps),
    )
    for name in sorted(selection.steps):
        missing = sorted(
            d for d in graph[name][1] if d not in selection.steps and selection.reused(d) is None
        )
        if missing:
            raise ExecutionError(
                f"selected step {name} needs {', '.join(missing)}, which did not succeed in execution "
                f"{source_id}: select them too or choose another source execution"
            )
    return selection
