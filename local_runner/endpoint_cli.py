"""The `endpoint` verb of the local runner: serve a registered model locally, swap it, show its state.

python -m local_runner endpoint serve [--model-version N] [--port 8080] [--host 127.0.0.1] [--workers 2]
                                      [--capture-dir D] [--capture-percentage P] [--work-dir .work]
python -m local_runner endpoint swap N [--force] [--work-dir .work]
python -m local_runner endpoint status [--work-dir .work]
python -m local_runner endpoint ab-serve --champion N [--challenger M] [--challenger-percent 50] [...]
python -m local_runner endpoint ab-shift PERCENT [--reason TEXT]
python -m local_runner endpoint ab-promote {champion,challenger} [--reason TEXT]
python -m local_runner endpoint ab-status
python -m local_runner endpoint ab-report --captures D [--ground-truth G]

`serve` runs in the foreground until Ctrl-C or SIGTERM (exit 0; 130 or 143 when stopped while starting);
without `--model-version` it serves the newest approved version of the model package group, on 127.0.0.1
unless `--host` says otherwise; a port already in use fails at once, naming it. `swap` health-checks version
N in a fresh process and only then points the running server at it; a version that is not Approved
(Rejected, PendingManualApproval) is refused unless `--force` is given, and then served with a warning
naming its status on standard error. `registry approve` swaps too, through
`endpoint.on_approval_callback`. The `ab-*` verbs run an A/B test (`ab_endpoint`, `ab_split`): `ab-serve`
puts the router on `--port` and the two variants on the next two ports; `ab-shift` and `ab-promote` move its
traffic from another shell; `ab-report` compares the variants from their captures and, given failure
events, their late-label quality.
"""

from __future__ import annotations

import argparse
import json
import signal
from collections.abc import Callable
from pathlib import Path

from local_runner.endpoint import (
    DEFAULT_ENDPOINT_NAME,
    DEFAULT_GROUP,
    EndpointError,
    EndpointOptions,
    EndpointPaths,
    check_port_free,
    check_servable,
    current_release,
    ping,
    release_version,
    resolve_package,
    running_pid,
    start_endpoint,
    swap_model,
)
from local_runner.registry_cli import Echo, errors_to

AB_VERBS = ("ab-serve", "ab-shift", "ab-promote", "ab-status", "ab-report")


def _percentage(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 100]")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def add_endpoint_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `endpoint` verb and its sub-verbs to `subparsers`; sets `handler=run_endpoint_command`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--work-dir", type=Path, default=Path(".work"), help="the runner's work dir")
    common.add_argument(
        "--group", default=DEFAULT_GROUP, help=f"model package group (default: {DEFAULT_GROUP})"
    )
    endpoint = subparsers.add_parser("endpoint", help="serve a registered model on a local endpoint")
    actions = endpoint.add_subparsers(dest="endpoint_action", required=True)
    serve = actions.add_parser("serve", parents=[common], help="serve a model version until Ctrl-C")
    serve.add_argument("--model-version", type=_positive, default=None, help="default: newest approved")
    serve.add_argument("--port", type=_positive, default=8080)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--workers", type=_positive, default=2)
    serve.add_argument(
        "--threads", type=_positive, default=16, help="inference threads per worker (default: 16)"
    )
    serve.add_argument("--capture-dir", type=Path, default=None, help="capture invocations under this folder")
    serve.add_argument("--capture-percentage", type=_percentage, default=100.0, help="sampled share, 0-100")
    serve.add_argument(
        "--endpoint-name", default=DEFAULT_ENDPOINT_NAME, help="folder name in the capture dir"
    )
    serve.add_argument(
        "--force", action="store_true", help="serve --model-version even if it is not Approved"
    )
    swap = actions.add_parser("swap", parents=[common], help="health-check a version, then serve it")
    swap.add_argument("version", type=_positive)
    swap.add_argument("--force", action="store_true", help="serve it even if it is not Approved")
    actions.add_parser("status", parents=[common], help="the served version and whether the server runs")
    _add_ab_parsers(actions, common)
    endpoint.set_defaults(handler=run_endpoint_command)
    return endpoint


def _share(text: str) -> int:
    value = _percentage(text)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"{value} must be a whole percentage")
    return int(value)


def _add_ab_parsers(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    serve = actions.add_parser("ab-serve", parents=[common], help="serve two versions as an A/B test")
    serve.add_argument("--champion", type=_positive, required=True, help="the version in service")
    serve.add_argument("--challenger", type=_positive, default=None, help="default: newest approved")
    serve.add_argument("--challenger-percent", type=_share, default=50, help="challenger's share (0-100)")
    serve.add_argument("--seed", type=int, default=None, help="seed of the split (reproducible runs)")
    for name, kind, default in (("--port", _positive, 8080), ("--workers", _positive, 1)):
        serve.add_argument(name, type=kind, default=default)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--capture-dir", type=Path, default=None, help="capture invocations under this folder")
    serve.add_argument("--capture-percentage", type=_percentage, default=100.0, help="sampled share, 0-100")
    serve.add_argument(
        "--endpoint-name", default=DEFAULT_ENDPOINT_NAME, help="folder name in the capture dir"
    )
    shift = actions.add_parser("ab-shift", parents=[common], help="set the challenger's share of requests")
    shift.add_argument("percent", type=_share)
    shift.add_argument("--reason", default="", help="recorded in the test's history")
    promote = actions.add_parser("ab-promote", parents=[common], help="send every request to the winner")
    promote.add_argument("winner", choices=("champion", "challenger"))
    promote.add_argument("--reason", default="", help="recorded in the history and the registry")
    actions.add_parser("ab-status", parents=[common], help="the test's versions, weights and history")
    report = actions.add_parser("ab-report", parents=[common], help="compare the variants from captures")
    report.add_argument("--captures", type=Path, required=True, help="the capture dir (or an endpoint's)")
    report.add_argument("--ground-truth", type=Path, default=None, help="failure-event files (late labels)")


def _serve(args: argparse.Namespace, echo: Echo) -> int:
    check_port_free(args.host, args.port)
    package = resolve_package(args.work_dir, args.model_version, args.group)
    warning = check_servable(package, args.force)
    if warning is not None:
        errors_to(echo)(f"warning: {warning}")
    options = EndpointOptions(
        port=args.port,
        host=args.host,
        workers=args.workers,
        threads=args.threads,
        capture_dir=args.capture_dir,
        capture_percentage=args.capture_percentage,
        endpoint_name=args.endpoint_name,
    )
    echo(f"endpoint: checking version {package.version} ({package.model_data_url}) ...")
    server = start_endpoint(args.work_dir, package, options)
    try:
        server.wait_ready()
        echo(f"endpoint: serving version {package.version} at {server.url} (/ping, /invocations)")
        if options.capture_dir is not None:
            share = f"{options.capture_percentage:g}%"
            echo(f"endpoint: capturing {share} of invocations under {options.capture_dir}")
        echo(f"endpoint: log {server.paths.log_file}; Ctrl-C stops")
        server.process.wait()
    except KeyboardInterrupt:
        echo("endpoint: stopping")
    finally:
        code = server.stop()
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else 1


def _until_stopped(
    command: Callable[[argparse.Namespace, Echo], int], args: argparse.Namespace, echo: Echo
) -> int:
    """Run a foreground server command, SIGTERM stopping it as Ctrl-C does (its servers are never left
    without their parent); stopped before it served: one line and 130 (SIGINT) or 143 (SIGTERM)."""
    received: list[int] = [signal.SIGINT]

    def interrupt(signum: int, _frame: object) -> None:
        received[0] = signum
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        return command(args, echo)
    except KeyboardInterrupt:
        echo(f"endpoint: stopped by {signal.Signals(received[0]).name} before serving; nothing left running")
        return 128 + received[0]
    finally:
        signal.signal(signal.SIGTERM, previous)


def _status(args: argparse.Namespace, echo: Echo) -> int:
    paths = EndpointPaths.of(args.work_dir)
    served = release_version(current_release(paths))
    pid = running_pid(paths)
    echo(f"current release: {current_release(paths) or '-'} (version {served if served else '-'})")
    if pid is None:
        echo("server: not running")
        return 0
    state = json.loads(paths.state_file.read_text()) if paths.state_file.is_file() else {}
    answer = "unknown port"
    if "port" in state:
        try:
            status, document = ping(int(state["port"]))
            answer = f"/ping {status} {json.dumps(document)}"
        except OSError as error:
            answer = f"/ping failed: {error}"
    echo(f"server: pid {pid}, port {state.get('port', '?')}, {answer}")
    return 0


def _ab_serve(args: argparse.Namespace, echo: Echo) -> int:
    from local_runner.ab_endpoint import start_ab_test

    champion = resolve_package(args.work_dir, args.champion, args.group)
    challenger = resolve_package(args.work_dir, args.challenger, args.group)
    options = EndpointOptions(
        port=args.port,
        host=args.host,
        workers=args.workers,
        capture_dir=args.capture_dir,
        capture_percentage=args.capture_percentage,
        endpoint_name=args.endpoint_name,
    )
    echo(
        f"endpoint: checking versions {champion.version} (Champion) and {challenger.version} (Challenger) ..."
    )
    test = start_ab_test(args.work_dir, champion, challenger, options, args.challenger_percent, args.seed)
    try:
        echo(f"endpoint: A/B test at http://{args.host}:{args.port}, challenger {args.challenger_percent}%")
        echo("endpoint: `endpoint ab-shift P` / `ab-promote WINNER` from another shell; Ctrl-C stops")
        test.router.serve_forever()
    except KeyboardInterrupt:
        echo("endpoint: stopping")
    finally:
        test.stop()
    return 0


def _ab_command(args: argparse.Namespace, echo: Echo) -> int:
    from local_runner import ab_endpoint, ab_split, report_variants

    if args.endpoint_action == "ab-serve":
        return _until_stopped(_ab_serve, args, echo)
    if args.endpoint_action == "ab-shift":
        echo(json.dumps(ab_endpoint.shift(args.work_dir, args.percent, args.reason)))
    elif args.endpoint_action == "ab-promote":
        echo(json.dumps(ab_endpoint.promote(args.work_dir, args.winner, args.reason)))
    elif args.endpoint_action == "ab-status":
        paths = ab_split.AbPaths.of(args.work_dir)
        echo(json.dumps(ab_split.read_state(paths), indent=2))
        for entry in ab_split.history(paths):
            echo(json.dumps(entry))
    else:
        try:
            comparison = report_variants.compare_variants(args.captures, args.ground_truth)
        except ValueError as error:  # rul's DataFormatError names the file and line; also bad label files
            raise ab_split.AbError(str(error)) from None
        echo(report_variants.render_text(comparison))
    return 0


def run_endpoint_command(args: argparse.Namespace, echo: Echo = print) -> int:
    """Run a parsed `endpoint` command; 0 on success, 1 with a message otherwise."""
    from local_runner.ab_split import AbError

    try:
        if args.endpoint_action in AB_VERBS:
            return _ab_command(args, echo)
        if args.endpoint_action == "serve":
            return _until_stopped(_serve, args, echo)
        if args.endpoint_action == "status":
            return _status(args, echo)
        package = resolve_package(args.work_dir, args.version, args.group)
        warning = check_servable(package, args.force)
        if warning is not None:
            errors_to(echo)(f"warning: {warning}")
        result = swap_model(args.work_dir, package)
        if result.ok:
            echo(f"endpoint: swapped: {result.reason}")
            return 0
        errors_to(echo)(f"endpoint: swap refused: {result.reason}")
        return 1
    except (EndpointError, AbError) as error:
        errors_to(echo)(f"error: {error}")
        return 1
