"""Command line: `python -m pipeline_steps render|start|status|list-executions|approve|reject ...`.

`render --out definition.json [--bucket B] [--region R] ...` renders the pipeline definition offline from
a `local_config()` with the given overrides and writes it to `--out` (or stdout with `--out -`); the SDK's
import-time noise is silenced first (`local_runner.quiet`), because the `sagemaker.config` logger writes to
stdout. The other
verbs drive the deployed pipeline on AWS (`aws_verbs`): start an execution, show or wait for one, list
them, approve or reject a registered model version. Exit code 2 for a bad option or value; nothing heavier
than argparse is imported until a verb runs, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import os
import sys

from local_runner.quiet import silence_sdk
from pipeline_steps.aws_cli import add_verbs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The parsed command line: `render` and its options, or an AWS verb."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline_steps",
        description="Render the pipeline definition offline, or drive the deployed pipeline on AWS.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="write the pipeline definition JSON")
    render.add_argument("--out", required=True, help="output file, or - for stdout")
    render.add_argument("--bucket", default="local-artifacts", help="artifact bucket name")
    render.add_argument("--region", default=None, help="AWS region (default us-east-1)")
    render.add_argument("--code-uri", default=None, help="s3:// prefix of the code bundle")
    render.add_argument("--data-uri", default=None, help="s3:// prefix of the raw data")
    render.add_argument("--image-uri", default=None, help="processing and training image")
    add_verbs(commands)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the verb; 0 on success, 2 for a bad option or value."""
    args = parse_args(argv)
    silence_sdk(offline=args.command == "render")  # the AWS verbs may need the instance profile's credentials
    if args.command == "ab":
        from pipeline_steps.aws_ab import run as run_ab

        return run_ab(args)
    if args.command != "render":
        from pipeline_steps.aws_verbs import run

        return run(args)
    return render_definition_file(args)


def render_definition_file(args: argparse.Namespace) -> int:
    """Render `local_config()` with the given overrides to `--out` (or stdout); 2 if a value is bad."""
    from pipeline_steps.config import local_config
    from pipeline_steps.render import render_definition

    overrides = {
        key: value
        for key, value in (
            ("region", args.region),
            ("code_uri", args.code_uri),
            ("data_uri", args.data_uri),
            ("image_uri", args.image_uri),
        )
        if value is not None
    }
    try:
        config = local_config(work_bucket=args.bucket, **overrides)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    definition = render_definition(config)
    if args.out == "-":
        sys.stdout.write(definition + "\n")
    else:
        write_atomically(args.out, definition + "\n")
        print(f"wrote {args.out} ({len(definition)} characters)", file=sys.stderr)
    return 0


def write_atomically(path: str, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


if __name__ == "__main__":
    raise SystemExit(main())
