"""The whole model lifecycle, offline, in one command: `python -m local_runner demo`.

On the embedded synthetic data, in a work dir of its own: the training pipeline trains and registers v1,
v1 is approved (champion and drift baselines published), the local endpoint serves it with data capture,
a synthetic fleet sends each unit's recent cycles over HTTP, the monitoring pipeline checks that window,
a drifted fleet (a sensor offset, `rul.synthetic`'s drift modes) sends the next window, the monitoring
pipeline flags it, and the drift alarm's rule - the Ops stack's: `settings.monitoring.drift_metric` above
`drift_threshold` - starts retraining on new data: the drifted fleet's run-to-failure histories are
added to the raw input as a new file, so the data version changes and the steps run fresh. v2 is
registered (or the gate's numbers say why not) and approved as the challenger of an A/B test beside v1
(`local_runner.demo_ab`: weighted router, late labels, promotion by RMSE); when it wins, the endpoint swaps
to it after a health check, a canary batch confirms the version served, then v2 is rejected: champion and
endpoint roll back to v1 (`--ab-requests 0` approves v2 straight away, without the test). Every
transition is real (pipeline runs, registry changes, HTTP requests); `local_runner.demo_report` keeps
the timeline and writes it as text and as an HTML page. The pipelines' own output goes to a log file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local_runner.champion import current_champion, follow_registry
from local_runner.data_version import local_data_version, with_data_versions
from local_runner.demo_ab import ab_release, ab_section_html
from local_runner.demo_report import Timeline, summary_cards, write_timeline
from local_runner.demo_state import MARKER, NEW_DATA_FILE, TITLE, Demo, DemoError, DemoOptions, _rul
from local_runner.demo_traffic import fleet_requests, send, traffic_window
from local_runner.endpoint import EndpointOptions, on_approval_callback, ping, start_endpoint
from local_runner.execution import ExecutionResult, PipelineExecutor
from local_runner.main_job import MainJobOptions, Workspace, prepare_workspace, run_main_job
from local_runner.readers import read_evaluation
from local_runner.registry_cli import approve_version, reject_version
from local_runner.report_publish import publish_execution
from pipeline_steps import names


# -- training and the registry ------------------------------------------------------------------------------
def _overrides(options: DemoOptions) -> dict[str, Any]:
    return {"static_hyperparameters": options.budget}


def _budget(options: DemoOptions) -> dict[str, object]:
    return {names.TUNING_MAX_JOBS: options.tuning_max_jobs, names.TUNING_MAX_PARALLEL_JOBS: 1}


def record_run(demo: Demo, workspace: Workspace, result: ExecutionResult, label: str) -> int | None:
    """Add the run's gate numbers and registration to the timeline; the registered version, if any."""
    evaluation = read_evaluation(result, workspace.store) or {}
    gate = evaluation.get("gate", {})
    fresh = [s.name for s in result.steps if s.type in ("Processing", "Tuning") and not s.cache_hit]
    demo.facts.fresh_steps.append(len(fresh))
    demo.facts.data_versions.append(str(result.parameters[names.DATA_VERSION]))
    demo.facts.gate_passed.append(bool(gate.get("passed")))
    comparison = evaluation.get("champion_comparison", {})
    champion = evaluation.get("champion")
    demo.timeline.add(
        label,
        f"pipeline {result.status.lower()} in {result.seconds:.0f}s; "
        f"quality gate: {gate.get('summary', 'not reached')}",
        ok=bool(gate.get("passed")),
        data_version=result.parameters[names.DATA_VERSION],
        fresh_steps=len(fresh),
        cached_steps=sum(s.cache_hit for s in result.steps),
        test_units=evaluation.get("n_units", "-"),
        rmse_capped=gate.get("rmse", "-"),
        rmse_threshold=gate.get("rmse_threshold", "-"),
        phm08_per_100=gate.get("phm08_score_per_100_units", "-"),
        phm08_threshold=gate.get("score_threshold", "-"),
        champion_rmse=comparison["allowed_rmse"] - comparison["tolerance"] if champion else "no champion",
        champion_tolerance=comparison.get("tolerance", "-"),
    )
    step = next((s for s in result.steps if s.type == "RegisterModel" and s.properties), None)
    if step is None:
        return None
    version = int(step.properties["ModelPackageVersion"])
    demo.facts.registered.append(version)
    package = workspace.registry.get(workspace.config.model_package_group_name, version)
    demo.timeline.add(label, f"model version {version} registered", True, status=package.approval_status)
    return version


def train_first(demo: Demo) -> tuple[Workspace, int]:
    """Train and register v1 on synthetic data; the workspace and v1's version."""
    options = demo.options
    job = MainJobOptions(
        work_dir=demo.work_dir,
        subset=options.subset,
        synthetic_units=options.training_units,
        seed=options.seed,
        parameters=_budget(options),
        tracking=False,
        config_overrides=_overrides(options),
    )
    demo.timeline.add("train v1", f"training pipeline on {options.training_units} synthetic units")
    workspace, result = run_main_job(job, echo=demo.log)
    version = record_run(demo, workspace, result, "train v1")
    if version is None:
        raise DemoError(f"v1 was not registered: {result.failure_reason or 'see the pipeline log'}")
    return workspace, version


def change_status(demo: Demo, workspace: Workspace, version: int, approve: bool, reason: str) -> None:
    """Approve or reject through the registry CLI's functions; champion and endpoint follow, as on AWS."""
    group = workspace.config.model_package_group_name
    follow = follow_registry(workspace.store, workspace.config.champion_uri, workspace.registry, group)
    said: list[str] = []
    swap = on_approval_callback(demo.work_dir, echo=said.append)

    def on_change(package) -> None:
        follow(package)
        swap(package)

    change = approve_version if approve else reject_version
    package = change(workspace.registry, group, version, reason, on_change)
    demo.facts.statuses[version] = package.approval_status
    champion = current_champion(workspace.store, workspace.config.champion_uri)
    demo.facts.champion.append(champion["version"] if champion else None)
    stage = f"{'approve' if approve else 'reject'} v{version}"
    demo.timeline.add(
        stage, f"version {version} {package.approval_status}: {reason}", True if approve else None
    )
    demo.timeline.add(stage, f"champion is version {champion['version'] if champion else 'none'}", True)
    for line in said:
        demo.timeline.add(stage, line, "refused" not in line)


# -- serving and traffic ---------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port on the loopback that is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def served_version(demo: Demo, stage: str, note: str) -> str | None:
    """Ask the endpoint which version it serves, and put the answer on the timeline."""
    assert demo.endpoint is not None  # started by the first deployment
    status, document = ping(demo.endpoint.port)
    version = document.get("model_version")
    demo.facts.served.append(version)
    demo.timeline.add(stage, f"/ping {status}: serving version {version} {note}".rstrip(), status == 200)
    return version


def start_serving(demo: Demo, workspace: Workspace, version: int) -> None:
    """Start the local endpoint on `version`, capturing every invocation."""
    package = workspace.registry.get(workspace.config.model_package_group_name, version)
    options = EndpointOptions(port=free_port(), workers=1, capture_dir=demo.work_dir / "captures")
    demo.endpoint = start_endpoint(demo.work_dir, package, options)
    demo.endpoint.wait_ready()
    served_version(demo, "serve", f"at {demo.endpoint.url}, capturing 100% of invocations")


def add_new_data(demo: Demo, workspace: Workspace, drift) -> str:
    """The drifted fleet's run-to-failure histories, as a new file under the raw input; its URI."""
    rul = _rul()
    spec = rul.synthetic.SyntheticSpec(n_train_units=demo.options.new_units, seed=demo.options.seed + 3)
    histories = rul.synthetic.run_to_failure(spec, drift)
    local = demo.work_dir / "demo" / NEW_DATA_FILE.format(subset=demo.options.subset)
    rul.data.write_trajectories(histories, local)
    uri = workspace.config.data_uri.rstrip("/") + "/" + local.name
    workspace.store.upload(local, uri)
    return uri


def retrain(demo: Demo, drift) -> tuple[Workspace, int | None]:
    """What the drift alarm's rule starts: the deployed pipeline, on the raw input as it now is."""
    workspace = prepare_workspace(demo.work_dir, **_overrides(demo.options))
    before = demo.facts.data_versions[-1]
    uri = add_new_data(demo, workspace, drift)
    after = local_data_version(workspace.store, workspace.config.data_uri)
    demo.timeline.add(
        "retrain",
        f"the alarm starts retraining: new file {uri.rsplit('/', 1)[1]} ({demo.options.new_units} units) "
        f"under the raw input; data version {before} -> {after}",
        after != before,
        raw_files=len(workspace.store.objects(workspace.config.data_uri)),
    )
    executor = PipelineExecutor(
        workspace.definition,
        demo.work_dir,
        workspace.store,
        workspace.registry,
        demo.log,
        pipeline_name=workspace.config.pipeline_name,
    )
    parameters = {names.SUBSET: demo.options.subset, **_budget(demo.options)}
    result = executor.start(
        with_data_versions(parameters, workspace.store, workspace.registry, workspace.config)
    )
    publish_execution(result, workspace.store, echo=demo.log)
    return workspace, record_run(demo, workspace, result, "train v2")


# -- the whole story ---------------------------------------------------------------------------------------
def prepare_work_dir(work_dir: Path) -> None:
    """A fresh work dir; an existing one is wiped only when an earlier demo made it."""
    if work_dir.exists():
        if not (work_dir / MARKER).is_file():
            raise DemoError(f"{work_dir} exists and is not a demo work dir; choose another --work-dir")
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    (work_dir / MARKER).write_text("made by python -m local_runner demo; wiped by the next run\n")


def canary_bodies(options: DemoOptions) -> list[bytes]:
    """The request bodies of the canary: recent cycles of fresh synthetic units."""
    synthetic = _rul().synthetic
    spec = synthetic.SyntheticSpec(
        n_train_units=1, n_test_units=options.canary_requests, seed=options.seed + 4
    )
    return fleet_requests(synthetic.generate(spec).test, options.cycles_sent)


def release_and_roll_back(demo: Demo, workspace: Workspace, versions: tuple[int, int], drift) -> None:
    """Release v2 (through an A/B test against v1 unless `ab_requests` is 0), canary, then roll back."""
    version = versions[1]
    bodies = canary_bodies(demo.options)
    served_version(demo, "approve v2", "before the approval")
    if not demo.options.ab_requests:
        change_status(demo, workspace, version, True, "drift retraining passed the gate")
    elif not ab_release(demo, workspace, versions, drift):
        demo.timeline.add("A/B test", f"v{version} lost the A/B test: no swap, nothing to roll back", None)
        return
    served_version(demo, "approve v2", "after the health-checked swap")
    send(demo, "canary", bodies, "canary batch")
    change_status(demo, workspace, version, False, "a reviewer rejects v2 (the demo's rollback)")
    served_version(demo, "rollback", "after the rollback")
    send(demo, "rollback", bodies, "traffic after the rollback")


def lifecycle(demo: Demo) -> None:
    """The demo's stages in order, each timed on the timeline."""
    options, stage = demo.options, demo.timeline.stage
    with stage("train v1"):
        demo.workspace, v1 = train_first(demo)
    with stage("approve v1"):
        change_status(demo, demo.workspace, v1, True, "first model, gate passed")
    with stage("serve v1"):
        start_serving(demo, demo.workspace, v1)
    with stage("clean window"):
        traffic_window(demo, "clean window", options.seed + 1, None)
    drift = _rul().synthetic.DriftSpec(options.drift_kind, options.drift_magnitude, options.drift_sensors)
    with stage("drifted window"):
        demo.timeline.add(
            "drifted window",
            f"sensor drift injected: {options.drift_kind} of {options.drift_magnitude:g} noise sd "
            f"on {', '.join(options.drift_sensors)}",
        )
        fires = traffic_window(demo, "drifted window", options.seed + 2, drift)
    if not fires:  # the loop did not close: a failure of the demo, not an outcome to show
        raise DemoError("the drift alarm did not fire on the drifted window, so nothing retrains")
    with stage("train v2"):
        demo.workspace, v2 = retrain(demo, drift)
    if v2 is None:
        demo.timeline.add("train v2", "v2 not registered: v1 stays champion; no swap, no rollback", False)
        return
    with stage("A/B, swap and rollback" if options.ab_requests else "swap and rollback"):
        release_and_roll_back(demo, demo.workspace, (v1, v2), drift)


def finish(demo: Demo) -> None:
    """Stop the endpoint; add the registry as it ends up to the timeline."""
    if demo.endpoint is not None:
        demo.endpoint.stop()
        demo.timeline.add("stop", "endpoint stopped")
    if demo.workspace is not None:
        group = demo.workspace.config.model_package_group_name
        packages = demo.workspace.registry.list(group)
        champion = current_champion(demo.workspace.store, demo.workspace.config.champion_uri)
        demo.timeline.add(
            "registry",
            ", ".join(f"v{p.version} {p.approval_status}" for p in packages)
            + f"; champion v{champion['version'] if champion else '-'}",
        )


def run_demo(options: DemoOptions, echo: Callable[[str], object] = print) -> tuple[Demo, dict[str, Path]]:
    """The whole story; a transition that fails ends it with a failed event (the page is still written)."""
    work_dir = Path(options.work_dir).resolve()
    prepare_work_dir(work_dir)
    log_path = work_dir / "demo" / "pipelines.log"
    log_path.parent.mkdir(parents=True)
    echo(f"{TITLE}\nwork dir {work_dir}; the pipelines' own output goes to {log_path}\n")
    with log_path.open("a", encoding="utf-8") as log_file:
        demo = Demo(options, Timeline(echo), lambda line: print(line, file=log_file, flush=True))
        try:
            lifecycle(demo)
        except Exception as error:  # reported in the timeline and by the exit code, never hidden
            demo.failed = f"{type(error).__name__}: {error}"
            demo.timeline.add("failed", demo.failed, False)
        finally:
            finish(demo)
    summary = summary_cards(demo.facts, demo.timeline.elapsed())
    return demo, write_timeline(demo.timeline, work_dir / "demo", TITLE, summary, ab_section_html(demo.facts))


# -- the command line --------------------------------------------------------------------------------------
def add_demo_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `demo` verb and its options."""
    defaults = DemoOptions()
    demo = subparsers.add_parser("demo", help="the whole model lifecycle, offline, with a timeline")
    demo.add_argument("--work-dir", type=Path, default=defaults.work_dir, help="wiped and reused by reruns")
    demo.add_argument("--units", type=int, default=defaults.training_units, help="v1's training units")
    demo.add_argument("--fleet-units", type=int, default=defaults.fleet_units, help="units per window")
    demo.add_argument("--new-units", type=int, default=defaults.new_units, help="new run-to-failure units")
    demo.add_argument("--trials", type=int, default=defaults.tuning_max_jobs, help="tuning trials per run")
    demo.add_argument(
        "--ab-requests", type=int, default=defaults.ab_requests, help="A/B phase's requests; 0 skips it"
    )
    demo.add_argument("--seed", type=int, default=defaults.seed)
    return demo


def run_demo_command(args: argparse.Namespace, echo: Callable[[str], object] = print) -> int:
    """`demo`: run the lifecycle and write its timeline; 0 when every stage passed."""
    # The jobs inherit this; with OpenMP's default of a thread per core, the trials, the endpoint and the
    # monitors spin against each other on a small machine and gbm fitting runs several times slower.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    options = DemoOptions(
        work_dir=args.work_dir,
        training_units=args.units,
        fleet_units=args.fleet_units,
        new_units=args.new_units,
        tuning_max_jobs=args.trials,
        ab_requests=args.ab_requests,
        seed=args.seed,
    )
    try:
        demo, paths = run_demo(options, echo)
    except DemoError as error:
        echo(f"demo: {error}")
        return 1
    echo("")
    for name, seconds in demo.timeline.stages.items():
        echo(f"  {name:<20} {seconds:>7.1f}s")
    echo(f"demo {'FAILED' if demo.failed else 'done'} in {demo.timeline.elapsed():.1f}s")
    echo(f"timeline: {paths['txt']}\npage:     {paths['html']}")
    return 1 if demo.failed else 0
