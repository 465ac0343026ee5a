"""Benchmark of the local endpoint: single-unit request latency and throughput under concurrent clients.

Starts the gunicorn server of `containers/serve.py` through `local_runner.endpoint` on loopback, then for
each concurrency level runs that many client threads for `--seconds`, each on its own keep-alive
`http.client` connection, sending one unit's rows as text/csv and timing each request end to end.
Prints, per level: requests, throughput, p50/p95/p99 latency, errors (non-200 answers and broken
connections) and the server's resident memory (master and workers). The clients are Python threads on
the same machine as the server, so at high concurrency they compete with it for the cores.

By default the model is trained here on synthetic data (`--preset default`: the default gbm
hyperparameters, the shipped configuration; `--preset fast`: a one-member, 50-iteration model) and
registered in a temporary work dir; `--work-dir` serves a version from an existing registry instead.

    python bench/bench_serving.py --seconds 10 --levels 1 8 32
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GROUP = "turbofan-rul"
PRESETS = {
    "default": {},
    "fast": {"feature_set": "stats", "ensemble_size": 1, "max_iter": 50},
}


@dataclass
class LevelResult:
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    rss_mb: float = 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def temporary_workspace(preset: str) -> tuple[Path, object]:
    """A work dir with a registry holding one approved model trained on synthetic data."""
    from local_runner.object_store import ObjectStore
    from local_runner.registry import APPROVED, LocalRegistry
    from rul.hyperparameters import Hyperparameters
    from rul.models import fit_predictor
    from rul.synthetic import SyntheticSpec, generate

    work_dir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    subset = generate(SyntheticSpec(n_train_units=60, n_test_units=10, seed=1))
    started = time.perf_counter()
    predictor = fit_predictor(subset.train, None, Hyperparameters.from_dict(PRESETS[preset]))
    print(f"trained the {preset} gbm model in {time.perf_counter() - started:.1f}s", flush=True)
    model_dir = predictor.save(work_dir / "trained")
    url = "s3://bench/models/model.tar.gz"
    archive = ObjectStore(work_dir / "s3").path_for(url)
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as bundle:
        for path in sorted(model_dir.iterdir()):
            bundle.add(path, arcname=path.name)
    registry = LocalRegistry(work_dir / "registry.sqlite")
    registry.create_group(GROUP)
    registry.register(GROUP, url, "local/turbofan-rul:bench", approval_status=APPROVED)
    return work_dir, subset.test


def request_body(test, cycles: int | None) -> tuple[bytes, int]:
    """One test unit's rows as CSV: the unit with the median history length, cut to its last `cycles`."""
    from rul.data import COLUMNS

    lengths = test.groupby("unit").size().sort_values()
    unit = lengths.index[len(lengths) // 2]
    rows = test[test["unit"] == unit][COLUMNS]
    if cycles is not None:
        rows = rows.tail(cycles)
        rows = rows.assign(cycle=np.arange(1, len(rows) + 1))
    return rows.to_csv(index=False, header=False).encode(), len(rows)


def client_loop(port: int, body: bytes, deadline: float, result: LevelResult, lock: threading.Lock) -> None:
    latencies, errors = [], 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "text/csv", "Accept": "application/json"}
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.close()
    with lock:
        result.latencies.extend(latencies)
        result.errors += errors


def server_rss_mb(pid: int) -> float:
    import psutil

    try:
        master = psutil.Process(pid)
        processes = [master, *master.children(recursive=True)]
        return sum(process.memory_info().rss for process in processes) / 2**20
    except psutil.Error:
        return float("nan")


def run_level(port: int, body: bytes, clients: int, seconds: float, pid: int) -> LevelResult:
    result = LevelResult(clients, seconds)
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    threads = [
        threading.Thread(target=client_loop, args=(port, body, deadline, result, lock))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.rss_mb = server_rss_mb(pid)
    return result


def format_table(results: list[LevelResult]) -> list[str]:
    lines = [
        f"{'clients':>7} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'server RSS MB':>14}"
    ]
    for r in results:
        lines.append(
            f"{r.clients:>7} {len(r.latencies):>9} {r.throughput:>8.1f} {r.percentile(50):>8.1f} "
            f"{r.percentile(95):>8.1f} {r.percentile(99):>8.1f} {r.errors:>7} {r.rss_mb:>14.0f}"
        )
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each level (default 30)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32], help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default", help="model to train")
    parser.add_argument("--cycles", type=int, default=None, help="send only the unit's last N cycles")
    parser.add_argument("--work-dir", type=Path, default=None, help="serve from this work dir's registry")
    parser.add_argument("--model-version", type=int, default=None, help="with --work-dir; default: approved")
    return parser


def main(argv: list[str] | None = None) -> int:
    from local_runner.endpoint import EndpointOptions, resolve_package, start_endpoint
    from rul.synthetic import SyntheticSpec, generate

    args = build_parser().parse_args(argv)
    temporary = args.work_dir is None
    if temporary:
        work_dir, test = temporary_workspace(args.preset)
    else:
        work_dir, test = args.work_dir, generate(SyntheticSpec(n_train_units=1, n_test_units=10, seed=1)).test
    body, rows = request_body(test, args.cycles)
    package = resolve_package(work_dir, args.model_version, GROUP)
    options = EndpointOptions(port=free_port(), workers=args.workers, threads=args.threads)
    try:
        with start_endpoint(work_dir, package, options) as server:
            server.wait_ready(120)
            run_level(server.port, body, 1, 1.0, server.process.pid)  # warm-up
            print(
                f"model version {package.version}, {args.workers} workers x {args.threads} threads, "
                f"single-unit request of {rows} rows ({len(body)} bytes), {args.seconds:g}s per level",
                flush=True,
            )
            results = []
            for clients in args.levels:
                results.append(run_level(server.port, body, clients, args.seconds, server.process.pid))
                print(format_table(results)[-1], flush=True)
    finally:
        if temporary:
            shutil.rmtree(work_dir, ignore_errors=True)
    print()
    for line in format_table(results):
        print(line)
    return 0 if all(result.errors == 0 for result in results) else 1


if __name__ == "__main__":
    sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "containers")]
    raise SystemExit(main())
