"""Start, shift and promote a local A/B test: two variant servers behind the weighted router of `ab_split`.

`start_ab_test` health-checks and starts the champion's and the challenger's servers on the two ports
after the router's (router on `--port`, Champion on port + 1, Challenger on port + 2, all on 127.0.0.1
unless told otherwise), then returns the router, not yet serving. `shift` and `promote` change
`<work>/endpoint/ab/state.json`, which the running router follows, and append to `history.jsonl`.
`promote` sends every request to the winner (weight 0 for the loser: the local twin of the deploy
function's single-variant endpoint) and, when the champion wins, rejects the challenger in the local
registry so that "the newest approved version serves" holds again, as the deploy function does. A
promotion ends the test: the state keeps `promoted` (winner, time), and a later shift or promotion is
refused until `ab-serve` starts a new test.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from local_runner.ab_split import (
    CHALLENGER,
    CHAMPION,
    VARIANTS,
    AbError,
    AbPaths,
    AbRouter,
    RouterState,
    WeightedSplit,
    percent_weights,
    read_state,
    record,
    write_state,
)
from local_runner.endpoint import (
    REGISTRY_FILE,
    EndpointError,
    EndpointOptions,
    EndpointPaths,
    EndpointProcess,
    check_port_free,
    start_endpoint,
)
from local_runner.registry import APPROVED, LocalRegistry, ModelPackage, RegistryError

WINNERS = {"champion": CHAMPION, "challenger": CHALLENGER}


@dataclass
class AbTest:
    """A started test: the router (call `serve_forever`) and the two variant servers."""

    router: AbRouter
    servers: dict[str, EndpointProcess]
    paths: AbPaths

    def stop(self) -> None:
        """Close the router's socket and stop both variant servers."""
        self.router.server_close()
        for server in self.servers.values():
            server.stop()


def start_ab_test(
    work_dir: str | Path,
    champion: ModelPackage,
    challenger: ModelPackage,
    options: EndpointOptions,
    challenger_percent: int,
    seed: int | None = None,
) -> AbTest:
    """Start both variants' servers and bind the router; `AbError`/`EndpointError` when anything fails."""
    if champion.version == challenger.version:
        raise AbError(f"champion and challenger are both version {champion.version}; pick two versions")
    weights = percent_weights(challenger_percent)
    paths = AbPaths.of(work_dir)
    for offset, role in enumerate(("the router's", f"{CHAMPION}'s", f"{CHALLENGER}'s")):
        try:
            check_port_free(options.host, options.port + offset)
        except EndpointError as error:
            raise EndpointError(f"{error} ({role} port: --port {options.port} + {offset})") from None
    servers: dict[str, EndpointProcess] = {}
    try:
        for offset, (variant, package) in enumerate(((CHAMPION, champion), (CHALLENGER, challenger)), 1):
            variant_options = replace(options, port=options.port + offset, variant_name=variant)
            server_paths = EndpointPaths(paths.variant_root(variant))
            servers[variant] = start_endpoint(work_dir, package, variant_options, server_paths)
        for server in servers.values():
            server.wait_ready()
        backends = {variant: (server.host, server.port) for variant, server in servers.items()}
        state = {
            "group": champion.group,
            "versions": {CHAMPION: champion.version, CHALLENGER: challenger.version},
            "weights": weights,
            "ports": {variant: port for variant, (_, port) in backends.items()},
            "capture_dir": str(Path(options.capture_dir).resolve()) if options.capture_dir else None,
        }
        write_state(paths, state)
        record(paths, "start", versions=state["versions"], weights=weights)
        router_state = RouterState(WeightedSplit(weights, seed), backends, paths.state)
        return AbTest(AbRouter((options.host, options.port), router_state), servers, paths)
    except BaseException:
        for server in servers.values():
            server.stop()
        raise


def _check_test_state(paths: AbPaths, state: dict) -> None:
    """`AbError` naming the file and the field unless the state has what `shift` and `promote` read."""
    versions, weights, group = state.get("versions"), state.get("weights"), state.get("group")
    problems = []
    if not isinstance(group, str) or not group:
        problems.append("'group' must be the model package group's name")
    if not isinstance(versions, dict) or any(
        type(versions.get(variant)) is not int or versions[variant] < 1 for variant in VARIANTS
    ):
        problems.append(f"'versions' must map {' and '.join(VARIANTS)} to positive version numbers")
    if not isinstance(weights, dict):
        problems.append("'weights' must map the variants to their shares")
    if problems:
        raise AbError(f"the A/B state file {paths.state} is not a test's state: {'; '.join(problems)}")


def _open_test(paths: AbPaths) -> dict:
    """The state of a test that has not been decided yet; `AbError` after a promotion."""
    state = read_state(paths)
    _check_test_state(paths, state)
    done = state.get("promoted")
    if done:
        version = state["versions"][done["winner"]]
        raise AbError(
            f"the A/B test is over: {done['winner']} (version {version}) was promoted at {done['at']}; "
            "`endpoint ab-serve` starts a new one"
        )
    return state


def shift(work_dir: str | Path, challenger_percent: int, reason: str = "") -> dict:
    """Give the challenger `challenger_percent` of the requests; returns the audit line."""
    paths = AbPaths.of(work_dir)
    state = _open_test(paths)
    before = state["weights"]
    state["weights"] = percent_weights(challenger_percent)
    write_state(paths, state)
    return record(paths, "shift", before=before, weights=state["weights"], reason=reason)


def promote(work_dir: str | Path, winner: str, reason: str = "") -> dict:
    """Send all requests to `winner` ("champion" or "challenger"); a losing challenger is Rejected."""
    if winner not in WINNERS:
        raise AbError(f"the winner must be one of {', '.join(WINNERS)} (got {winner!r})")
    paths = AbPaths.of(work_dir)
    state = _open_test(paths)
    won = WINNERS[winner]
    lost = next(variant for variant in VARIANTS if variant != won)
    registry_file = LocalRegistry(Path(work_dir) / REGISTRY_FILE)
    versions = state["versions"]
    try:
        if won == CHAMPION:
            description = f"lost the A/B test to version {versions[CHAMPION]}: {reason}"[:1024]
            registry_file.update_approval(state["group"], versions[CHALLENGER], "Rejected", description)
            registry = f"version {versions[CHALLENGER]} Rejected"
        else:
            registry = _challenger_note(registry_file, state["group"], versions)
    except RegistryError as error:
        raise AbError(f"promote {winner}: {error}; the test is unchanged") from None
    entry = record(paths, "promote", winner=won, versions=versions, registry=registry, reason=reason)
    write_state(
        paths, {**state, "weights": {won: 100.0, lost: 0.0}, "promoted": {"winner": won, "at": entry["at"]}}
    )
    return entry


def _challenger_note(registry: LocalRegistry, group: str, versions: dict) -> str:
    """The registry's side of a challenger's win: nothing changes; one not yet approved needs approving."""
    status = registry.get(group, versions[CHALLENGER]).approval_status
    if status == APPROVED:
        return f"version {versions[CHAMPION]} stays as it is"
    return (
        f"version {versions[CHALLENGER]} is {status}: `registry approve {versions[CHALLENGER]}` "
        "makes it the champion"
    )
