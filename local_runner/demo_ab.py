"""The demo's A/B phase: the retrained version is approved as the challenger beside the champion, the numbers
pick the winner.

As the deploy function does with `serving.ab_test` on, approving v2 does not replace v1: the local A/B
endpoint (`ab_endpoint.start_ab_test`: a weighted router in front of one model server per variant, each
capturing into its own variant folder) serves v1 as `Champion` and v2 as `Challenger` at
`serving.ab_test.challenger_weight_percent`. A fleet, still drifted, sends one request per unit through the
router; its failures arrive as late labels under `<work>/endpoint/ab/ground_truth/`, where the execution
report's "A/B variants" section also reads them. `report_variants.compare_variants` joins them per variant
as the model-quality job does. The lower RMSE on labelled predictions wins; the champion stays unless the
challenger's numbers are there and better. `ab_endpoint.promote` records the decision and its reason in
the test's audit trail (`history.jsonl`) and rejects a losing challenger in the registry; a winning
challenger becomes the champion and the demo's single-variant endpoint swaps to it (the AWS endpoint's
return to one `AllTraffic` variant).
"""

from __future__ import annotations

import math
import socket
import threading
from collections import Counter

from local_runner import ab_endpoint
from local_runner.ab_split import CHALLENGER, CHAMPION, AbPaths, history
from local_runner.champion import current_champion, follow_registry
from local_runner.demo_report import DemoFacts
from local_runner.demo_state import Demo, DemoError, _rul
from local_runner.demo_traffic import fleet_requests, ground_truth, invoke
from local_runner.endpoint import EndpointError, EndpointOptions, check_port_free, on_approval_callback
from local_runner.main_job import Workspace
from local_runner.registry_cli import approve_version
from local_runner.report_variants import compare_variants, render_html
from settings import load_settings

STAGE = "A/B test"
HOST = "127.0.0.1"


def split_check(counts: dict[str, int], challenger_percent: int, sds: float = 3.0) -> dict[str, float]:
    """The challenger's realised share against its weight, with a binomial tolerance of `sds` sd."""
    total = sum(counts.values())
    if total == 0:
        raise DemoError("the A/B router answered no requests, so there is no split to check")
    expected = challenger_percent / 100.0
    share = counts.get(CHALLENGER, 0) / total
    tolerance = sds * math.sqrt(expected * (1.0 - expected) / total)
    return {"challenger_share": share, "expected_share": expected, "tolerance": tolerance}


def pick_winner(comparison: dict, min_labelled: int) -> tuple[str, str]:
    """("challenger" or "champion", why): the lower RMSE on late-labelled predictions wins; the champion
    stays unless both variants have `min_labelled` labelled predictions and the challenger's RMSE is lower."""
    empty = {"labelled": 0, "rmse": None}
    champion, challenger = (comparison.get(variant, empty) for variant in (CHAMPION, CHALLENGER))
    for variant, row in ((CHAMPION, champion), (CHALLENGER, challenger)):
        if row["labelled"] < min_labelled or row["rmse"] is None:
            return "champion", (
                f"{variant} has {row['labelled']} labelled predictions (fewer than {min_labelled}): "
                "not enough evidence, the champion stays"
            )
    numbers = (
        f"challenger RMSE {challenger['rmse']:.2f} on {challenger['labelled']} labelled predictions vs "
        f"champion RMSE {champion['rmse']:.2f} on {champion['labelled']}"
    )
    if challenger["rmse"] < champion["rmse"]:
        return "challenger", f"{numbers}: the challenger is more accurate"
    return "champion", f"{numbers}: the challenger is not more accurate, the champion stays"


def free_port_run(count: int = 3, attempts: int = 20) -> int:
    """The first of `count` consecutive free ports on HOST (the router's, then one per variant)."""
    for _ in range(attempts):
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            base = probe.getsockname()[1]
        try:
            for offset in range(count):
                check_port_free(HOST, base + offset)
        except (EndpointError, OverflowError):
            continue
        return base
    raise DemoError(f"found no {count} consecutive free ports on {HOST} in {attempts} attempts")


def approve_challenger(demo: Demo, workspace: Workspace, version: int, reason: str) -> None:
    """Approve `version` without swapping: with A/B on, an approval makes it the challenger."""
    group = workspace.config.model_package_group_name
    package = approve_version(workspace.registry, group, version, reason)
    demo.facts.statuses[version] = package.approval_status
    joins = f"version {version} {package.approval_status}: {reason}; it joins as the challenger"
    demo.timeline.add("approve v2", joins, True)


def _ab_fleet(demo: Demo, drift) -> tuple[list[bytes], object]:
    rul = _rul()
    spec = rul.synthetic.SyntheticSpec(
        n_train_units=1, n_test_units=demo.options.ab_requests, seed=demo.options.seed + 5, drift=drift
    )
    fleet = rul.synthetic.generate(spec)
    return fleet_requests(fleet.test, demo.options.cycles_sent), fleet


def _send_through(test: ab_endpoint.AbTest, bodies: list[bytes]) -> Counter:
    """Send the fleet one request at a time, so the seeded router gives every unit the same variant on every
    run (concurrent senders would draw in thread order, and which units each variant scores would vary)."""
    url = f"http://{HOST}:{test.router.server_address[1]}"
    answers = [invoke(url, body) for body in bodies]
    failed = sum(answer[0] != 200 for answer in answers)
    if failed:
        raise DemoError(f"{failed} of {len(bodies)} requests through the A/B router did not answer 200")
    return Counter(str(answer[1]) for answer in answers)


def serve_and_compare(demo: Demo, workspace: Workspace, versions: tuple[int, int], drift) -> dict:
    """Serve both versions behind the router, send the fleet, join the late labels; the per-variant rows."""
    group = workspace.config.model_package_group_name
    champion, challenger = (workspace.registry.get(group, version) for version in versions)
    percent = load_settings().serving.ab_test.challenger_weight_percent
    captures = demo.work_dir / "demo" / "ab" / "captures"  # apart from the single-variant endpoint's
    options = EndpointOptions(port=free_port_run(), host=HOST, workers=1, capture_dir=captures)
    bodies, fleet = _ab_fleet(demo, drift)
    split_seed = demo.options.seed + 6  # the router's draws; +1..+5 seed the demo's fleets
    test = ab_endpoint.start_ab_test(demo.work_dir, champion, challenger, options, percent, split_seed)
    threading.Thread(target=test.router.serve_forever, daemon=True).start()
    try:
        demo.timeline.add(
            STAGE,
            f"A/B endpoint at http://{HOST}:{options.port}: Champion v{versions[0]}, "
            f"Challenger v{versions[1]} at {percent}% (serving.ab_test.challenger_weight_percent)",
            True,
        )
        answered = _send_through(test, bodies)
        counts = dict(test.router.state.counts)
    finally:
        test.router.shutdown()
        test.stop()
    split = split_check(counts, percent)
    ok = abs(split["challenger_share"] - split["expected_share"]) <= split["tolerance"]
    demo.timeline.add(
        STAGE,
        f"drifted fleet of {len(bodies)} units through the router: "
        + ", ".join(f"{variant} {counts.get(variant, 0)}" for variant in (CHAMPION, CHALLENGER))
        + " requests; answered by "
        + ", ".join(f"v{v} {n}" for v, n in sorted(answered.items())),
        ok,
        **split,
    )
    labels = ground_truth(fleet, AbPaths.of(demo.work_dir).root / "ground_truth")
    comparison = compare_variants(captures, labels)
    demo.facts.ab = {"versions": list(versions), "percent": percent, "counts": counts, **split}
    demo.facts.ab["comparison"] = comparison
    return comparison


def _record_variants(demo: Demo, comparison: dict, versions: tuple[int, int]) -> None:
    for variant, version in zip((CHAMPION, CHALLENGER), versions, strict=True):
        row = comparison.get(variant, {})
        demo.timeline.add(
            STAGE,
            f"{variant} v{version}: {row.get('labelled', 0)} of {row.get('predictions', 0)} predictions "
            "labelled by late failure events",
            None,
            requests=row.get("requests", 0),
            rmse=row.get("rmse") if row.get("rmse") is not None else "-",
            mae=row.get("mae") if row.get("mae") is not None else "-",
            phm08_score=row.get("phm08_score") if row.get("phm08_score") is not None else "-",
        )


def promote_winner(demo: Demo, workspace: Workspace, versions: tuple[int, int], comparison: dict) -> bool:
    """Promote by the numbers, with the reason in the audit trail; True when the challenger won."""
    winner, reason = pick_winner(comparison, demo.options.ab_min_labelled)
    entry = ab_endpoint.promote(demo.work_dir, winner, reason)
    demo.facts.ab.update(winner=winner, reason=reason)
    demo.timeline.add(STAGE, f"promote {winner}: {reason}", True, registry=entry["registry"])
    group = workspace.config.model_package_group_name
    package = workspace.registry.get(group, versions[1])
    demo.facts.statuses[package.version] = package.approval_status
    said: list[str] = []
    if winner == "challenger":  # the champion prefix follows the winner; the endpoint serves it alone
        follow_registry(workspace.store, workspace.config.champion_uri, workspace.registry, group)(package)
        on_approval_callback(demo.work_dir, echo=said.append)(package)
    champion = current_champion(workspace.store, workspace.config.champion_uri)
    demo.facts.champion.append(champion["version"] if champion else None)
    demo.timeline.add(STAGE, f"champion is version {champion['version'] if champion else 'none'}", True)
    for line in said:
        demo.timeline.add(STAGE, line, "refused" not in line)
    trail = AbPaths.of(demo.work_dir).history
    actions = ", ".join(entry["action"] for entry in history(AbPaths.of(demo.work_dir)))
    demo.timeline.add(STAGE, f"audit trail {trail.relative_to(demo.work_dir)}: {actions}", True)
    return winner == "challenger"


def ab_release(demo: Demo, workspace: Workspace, versions: tuple[int, int], drift) -> bool:
    """Approve v2 as the challenger, A/B-test it against v1, promote the winner; True when v2 won."""
    approve_challenger(demo, workspace, versions[1], "drift retraining passed the gate")
    comparison = serve_and_compare(demo, workspace, versions, drift)
    _record_variants(demo, comparison, versions)
    return promote_winner(demo, workspace, versions, comparison)


def ab_section_html(facts: DemoFacts) -> str:
    """The page's "A/B variants" section (the execution report's table), or "" without an A/B phase."""
    if not facts.ab.get("comparison"):
        return ""
    ab = facts.ab
    caption = (
        f"Champion v{ab['versions'][0]}, Challenger v{ab['versions'][1]} at {ab['percent']}%; "
        f"{ab.get('winner', 'no')} promoted: {ab.get('reason', 'the test did not finish')}"
    )
    return render_html(ab["comparison"], caption)
