"""Command line: `python -m pipeline_steps render --out definition.json [--bucket B] [--region R] ...`.

Renders the pipeline definition offline from a `local_config()` with the given overrides and writes it to
`--out` (or stdout with `--out -`). The SDK's loggers are quieted first because the `sagemaker.config`
logger writes to stdout on import. Exit code 2 for a bad option or config value.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline_steps", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="write the pipeline definition JSON")
    render.add_argument("--out", required=True, help="output file, or - for stdout")
    render.add_argument("--bucket", default="local-artifacts", help="artifact bucket name")
    render.add_argument("--region", default=None, help="AWS region (default us-east-1)")
    render.add_argument("--code-uri", default=None, help="s3:// prefix of the code bundle")
    render.add_argument("--data-uri", default=None, help="s3:// prefix of the raw data")
    render.add_argument("--image-uri", default=None, help="processing and training image")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in ("sagemaker", "sagemaker.config"):
        logging.getLogger(name).setLevel(logging.ERROR)
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
        Path(args.out).write_text(definition + "\n")
        print(f"wrote {args.out} ({len(definition)} characters)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
