"""Processing-job entry point: the data-quality baseline (statistics.json, constraints.json) of CSV rows.

Two contracts. The plain one, used by the pipeline's DataQualityBaseline processing step on the project
image (no Model Monitor needed): `baseline.py --dataset-dir D --output-dir O [--header | --no-header]`.
The other stands in for the Model Monitor analyzer of a data-quality check when no argument is given:
SageMaker's QualityCheckStep with a DataQualityCheckConfig runs the `sagemaker-model-monitor-analyzer`
image with the environment the SDK builds in `ModelMonitor._generate_env_map`: `dataset_format` (JSON,
e.g. {"csv": {"header": true, "output_columns_position": "START"}}), `dataset_source` (the folder of the
baseline dataset, /opt/ml/processing/input/baseline_dataset_input), `output_path` (/opt/ml/processing/output)
and `publish_cloudwatch_metrics` ("Disabled" for baselining), plus `record_preprocessor_script` and
`post_analytics_processor_script` when those scripts are configured. This script honours the first three,
ignores the metrics switch (there is no CloudWatch locally) and refuses the two scripts rather than skip
them. It reads every CSV file under the dataset source and writes statistics.json and constraints.json
(`rul.monitoring`) to the output path. Paths under /opt/ml follow `SAGEMAKER_BASE_DIR`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import pandas as pd

from rul.contract import DEFAULT_BASE_DIR, base_dir, run_entrypoint
from rul.data import COLUMNS
from rul.errors import ConfigurationError, DataFormatError
from rul.monitoring import is_number_text, write_baseline

# Environment variable names and defaults of sagemaker.model_monitor.model_monitoring (SDK v2).
DATASET_FORMAT_ENV = "dataset_format"
DATASET_SOURCE_ENV = "dataset_source"
OUTPUT_PATH_ENV = "output_path"
UNSUPPORTED_ENV = ("record_preprocessor_script", "post_analytics_processor_script")
DEFAULT_DATASET_SOURCE = "/opt/ml/processing/input/baseline_dataset_input"
DEFAULT_OUTPUT_PATH = "/opt/ml/processing/output"
OUTPUT_COLUMNS_POSITIONS = ("START", "END")
# Columns of the C-MAPSS format: their values must be numbers whatever the analyzer would infer.
NUMERIC_COLUMNS = frozenset(COLUMNS)


def log(message: str) -> None:
    """Print `message` to the job's log at once (flushed)."""
    print(message, flush=True)


def container_path(value: str, environ: Mapping[str, str] | None = None) -> Path:
    """A container path, moved under `SAGEMAKER_BASE_DIR` when it lies under /opt/ml."""
    path = PurePosixPath(value)
    root = PurePosixPath(DEFAULT_BASE_DIR)
    if path == root or root in path.parents:
        return base_dir(environ).joinpath(*path.relative_to(root).parts)
    return Path(value)


def parse_dataset_format(text: str | None) -> bool:
    """Whether the CSV files have a header row, from the `dataset_format` JSON; only CSV is supported."""
    if not text:
        raise ConfigurationError(
            f'{DATASET_FORMAT_ENV} is not set; expected e.g. {{"csv": {{"header": true}}}}'
        )
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"{DATASET_FORMAT_ENV} is not valid JSON ({error}): {text!r}") from None
    if not isinstance(spec, dict) or set(spec) != {"csv"} or not isinstance(spec["csv"], dict):
        raise ConfigurationError(
            f'{DATASET_FORMAT_ENV} {text!r} is not supported: only {{"csv": {{...}}}} is'
        )
    options = spec["csv"]
    header = options.get("header", True)
    if not isinstance(header, bool):
        raise ConfigurationError(f"{DATASET_FORMAT_ENV} csv.header must be true or false, found {header!r}")
    position = options.get("output_columns_position", "START")
    if position not in OUTPUT_COLUMNS_POSITIONS:
        raise ConfigurationError(
            f"{DATASET_FORMAT_ENV} csv.output_columns_position must be START or END, found {position!r}"
        )
    return header


def find_csv_files(source: Path) -> list[Path]:
    """The CSV files of `source` (itself if a file, else those under it); none is a `DataFormatError`."""
    if source.is_file():
        return [source]
    files = sorted(path for path in source.rglob("*") if path.is_file() and path.suffix.lower() == ".csv")
    if not files:
        raise DataFormatError(source, None, "no CSV file in the baseline dataset source")
    return files


def read_csv_text(path: Path, header: bool) -> pd.DataFrame:
    """The rows of one CSV file as text (empty fields missing); headerless columns are named `_c<i>` as
    Spark names them."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        rows, lines, names = [], [], None
        for row in reader:
            if not row or row == [""]:
                continue
            if names is None and header:
                names = [name.strip() for name in row]
                if all(is_number_text(name) for name in names):
                    raise DataFormatError(
                        path,
                        reader.line_num,
                        "the header row holds only numbers; "
                        "is the file headerless (dataset_format csv.header false)?",
                    )
                repeated = sorted({name for name in names if names.count(name) > 1})
                if repeated:
                    raise DataFormatError(path, reader.line_num, f"repeated column names {repeated}")
                continue
            names = names or [f"_c{i}" for i in range(len(row))]
            if len(row) != len(names):
                raise DataFormatError(
                    path, reader.line_num, f"expected {len(names)} fields, found {len(row)}"
                )
            rows.append([field.strip() or None for field in row])
            lines.append(reader.line_num)
    if not rows:
        raise DataFormatError(path, None, "no data rows")
    frame = pd.DataFrame(rows, columns=names, index=lines, dtype=object)
    _check_numeric_columns(path, frame, header)
    return frame


def _check_numeric_columns(path: Path, frame: pd.DataFrame, header: bool) -> None:
    """C-MAPSS columns must hold numbers; a headerless file must not start with a header row."""
    first_is_text = all(value is not None and not is_number_text(value) for value in frame.iloc[0])
    second_has_numbers = len(frame) > 1 and any(
        value is not None and is_number_text(value) for value in frame.iloc[1]
    )
    if not header and first_is_text and second_has_numbers:
        raise DataFormatError(
            path,
            int(frame.index[0]),
            "the first row looks like a header, but dataset_format says csv.header false",
        )
    for name in frame.columns:
        if name not in NUMERIC_COLUMNS:
            continue
        for line, value in frame[name].items():
            if value is not None and not is_number_text(value):
                raise DataFormatError(path, int(line), f"column {name} is not numeric: {value!r}")


def read_dataset(source: Path, header: bool) -> pd.DataFrame:
    """All CSV files under `source`, which must share their header, as one text frame."""
    frames, first = [], None
    for path in find_csv_files(source):
        frame = read_csv_text(path, header)
        if first is None:
            first = (path, list(frame.columns))
        elif list(frame.columns) != first[1]:
            raise DataFormatError(
                path, 1, f"columns {list(frame.columns)} differ from {first[1]} of {first[0].name}"
            )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The plain contract's options: dataset folder, output folder and whether the CSVs have a header."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-dir", default=None, help="folder (or file) of the CSV rows to baseline")
    parser.add_argument("--output-dir", default=None, help="where statistics.json and constraints.json go")
    parser.add_argument(
        "--header", action=argparse.BooleanOptionalAction, default=True, help="the CSV files have a header"
    )
    return parser.parse_args(argv)


def analyzer_locations(environ: Mapping[str, str]) -> tuple[Path, Path, bool]:
    """Source, output and header from the Model Monitor analyzer's environment contract."""
    for name in UNSUPPORTED_ENV:
        if environ.get(name):
            raise ConfigurationError(f"{name} is set ({environ[name]!r}), but this baseline runs no scripts")
    header = parse_dataset_format(environ.get(DATASET_FORMAT_ENV))
    source = container_path(environ.get(DATASET_SOURCE_ENV, DEFAULT_DATASET_SOURCE), environ)
    output = container_path(environ.get(OUTPUT_PATH_ENV, DEFAULT_OUTPUT_PATH), environ)
    return source, output, header


def locations(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[Path, Path, bool]:
    """The plain contract when its arguments are given (both or neither), else the analyzer's."""
    if (args.dataset_dir is None) != (args.output_dir is None):
        raise ConfigurationError("--dataset-dir and --output-dir must be given together")
    if args.dataset_dir is None:
        return analyzer_locations(environ)
    source = container_path(args.dataset_dir, environ)
    return source, container_path(args.output_dir, environ), args.header


def main(argv: list[str] | None = None) -> int:
    """Write the baseline of the dataset (either contract) and log where; return 0."""
    # None means no arguments (the analyzer contract), not sys.argv: the __main__ block passes those.
    source, output, header = locations(parse_args(argv or []), os.environ)
    if not source.exists():
        raise DataFormatError(source, None, "the baseline dataset source does not exist")
    frame = read_dataset(source, header)
    try:
        paths = write_baseline(frame, output)
    except ValueError as error:
        raise DataFormatError(source, None, str(error)) from None
    log(f"baseline of {len(frame)} rows and {len(frame.columns)} columns written to {output}")
    for path in paths.values():
        log(f"  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_entrypoint(main, sys.argv[1:]))
