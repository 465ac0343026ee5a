"""Benchmark of the model server: single-unit request latency and throughput under concurrent clients.

Trains a model on synthetic data (`--preset default`: the default gbm hyperparameters, the shipped
configuration; `--preset fast`: a one-member, 50-iteration model), or serves `--model-dir` (a model
folder, e.g. one unpacked from a `make run` work dir, since training the default model takes minutes on a
busy machine), then for each server under test starts
`<containers>/serve.py serve` on loopback (`SAGEMAKER_BASE_DIR` holding the model, `--workers` x
`--threads`), and for each concurrency level runs that many client threads for `--seconds`, each on its
own keep-alive `http.client` connection, sending one unit's rows as text/csv and timing each request end
to end. Prints, per server and level: requests, throughput, p50/p95/p99 latency, errors (non-200 answers
and broken connections), the server's resident memory (master and workers) and its CPU time per request
(user + system over all its processes: the figure least disturbed by other load on the machine).

Before/after in one run: `--containers DIR` adds the server of another checkout's `containers/` folder
(e.g. `mkdir /tmp/old && git archive <commit> containers | tar -x -C /tmp/old` then
`--containers /tmp/old/containers`); each is measured in
turn on the same model, body and pinning, and the ratios this checkout / DIR are printed last. On a busy
machine compare those ratios, not absolute figures.

Pinning: the server process (and so its forked workers) is started under `taskset -c --server-cpus`
and this process, the load generator, pins itself to `--client-cpus` with `os.sched_setaffinity`; both
default to every CPU (no pinning). The clients are Python threads, so at high concurrency they compete
with the server for whatever cores they share.

    python bench/bench_serving.py --seconds 10 --levels 1 8 32
    python bench/bench_serving.py --containers /tmp/old/containers --server-cpus 0-1 --client-cpus 0-1
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PRESETS = {
    "default": {},
    "fast": {"feature_set": "stats", "ensemble_size": 1, "max_iter": 50},
}


@dataclass
class LevelResult:
    """What one concurrency level measured: request latencies, errors, server memory and CPU."""

    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    rss_mb: float = 0.0
    cpu_seconds: float = 0.0  # the server's CPU time (user + system, all processes) during the level

    @property
    def cpu_ms_per_request(self) -> float:
        """Server CPU milliseconds spent per answered request; NaN when none was answered."""
        return self.cpu_seconds * 1000 / len(self.latencies) if self.latencies else float("nan")

    def percentile(self, q: float) -> float:
        """The `q`th percentile of the request latencies in milliseconds; NaN when none was answered."""
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")

    @property
    def throughput(self) -> float:
        """Answered requests per second over the level's duration."""
        return len(self.latencies) / self.seconds


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def trained_model(preset: str, work_dir: Path) -> tuple[Path, object]:
    """A model folder trained on synthetic data with `preset`, and that data's test split."""
    from rul.hyperparameters import Hyperparameters
    from rul.models import fit_predictor
    from rul.synthetic import SyntheticSpec, generate

    subset = generate(SyntheticSpec(n_train_units=60, n_test_units=10, seed=1))
    started = time.perf_counter()
    predictor = fit_predictor(subset.train, None, Hyperparameters.from_dict(PRESETS[preset]))
    print(f"trained the {preset} gbm model in {time.perf_counter() - started:.1f}s", flush=True)
    return predictor.save(work_dir / "base" / "model"), subset.test


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
    """One client: requests on one keep-alive connection until `deadline`, timing each end to end."""
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
    """Resident memory of the server's master and workers, in MB."""
    import psutil

    try:
        master = psutil.Process(pid)
        processes = [master, *master.children(recursive=True)]
        return sum(process.memory_info().rss for process in processes) / 2**20
    except psutil.Error:
        return float("nan")


def server_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the server's master and workers have used so far."""
    import psutil

    try:
        master = psutil.Process(pid)
        times = [process.cpu_times() for process in [master, *master.children(recursive=True)]]
        return sum(t.user + t.system for t in times)
    except psutil.Error:
        return float("nan")


def run_level(port: int, body: bytes, clients: int, seconds: float, pid: int) -> LevelResult:
    """`clients` client threads for `seconds`, and the server's CPU and memory over that time."""
    result = LevelResult(clients, seconds)
    cpu_before = server_cpu_seconds(pid)
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
    result.cpu_seconds = server_cpu_seconds(pid) - cpu_before
    return result


def format_table(results: list[LevelResult]) -> list[str]:
    """The result table: a header line, then one line per level."""
    lines = [
        f"{'clients':>7} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'server RSS MB':>14} {'CPU ms/req':>11}"
    ]
    for r in results:
        lines.append(
            f"{r.clients:>7} {len(r.latencies):>9} {r.throughput:>8.1f} {r.percentile(50):>8.1f} "
            f"{r.percentile(95):>8.1f} {r.percentile(99):>8.1f} {r.errors:>7} {r.rss_mb:>14.0f} "
            f"{r.cpu_ms_per_request:>11.1f}"
        )
    return lines


def build_parser() -> argparse.ArgumentParser:
    """The bench's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each level (default 30)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32], help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="server workers (default 2)")
    parser.add_argument(
        "--threads", type=int, default=None, help="threads per worker (default: each server's own default)"
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default", help="model to train")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="serve this model folder instead of training one"
    )
    parser.add_argument(
        "--cycles",
        type=int,
        default=None,
        help="send only the unit's last N cycles, renumbered from cycle 1 (so any N is served)",
    )
    parser.add_argument(
        "--containers",
        type=Path,
        action="append",
        default=[],
        help="also measure the serve.py of this containers/ folder (repeatable), before this checkout's",
    )
    parser.add_argument("--server-cpus", default=None, help="taskset CPU list for the server, e.g. 0-1")
    parser.add_argument("--client-cpus", default=None, help="CPU list for the load generator, e.g. 1")
    return parser


def cpu_list(text: str) -> set[int]:
    """`0-2,5` -> {0, 1, 2, 5}."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def start_server(containers: Path, base: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, int]:
    """`<containers>/serve.py serve` on a free loopback port, as SageMaker runs it; waits for /ping."""
    port = free_port()
    environ = {
        **os.environ,
        "PYTHONPATH": str(containers),
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(args.workers),
        "RUL_BIND_HOST": "127.0.0.1",
        "MODEL_VERSION": "1",
        "OMP_NUM_THREADS": "1",
    }
    environ.pop("RUL_CAPTURE_DIR", None)
    environ.pop("RUL_SERVER_THREADS", None)
    if args.threads is not None:
        environ["RUL_SERVER_THREADS"] = str(args.threads)
    command = [sys.executable, str(containers / "serve.py"), "serve"]
    if args.server_cpus:
        command = ["taskset", "-c", args.server_cpus, *command]
    process = subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server of {containers} did not answer /ping")


def measure(containers: Path, base: Path, body: bytes, args: argparse.Namespace) -> list[LevelResult]:
    """Start the server of `containers`, warm it up, run every level, stop it."""
    process, port = start_server(containers, base, args)
    try:
        run_level(port, body, 1, 1.0, process.pid)  # warm-up
        print(f"\n{containers} ({args.workers} workers x {args.threads or 'default'} threads)", flush=True)
        print(format_table([])[0], flush=True)
        results = []
        for clients in args.levels:
            results.append(run_level(port, body, clients, args.seconds, process.pid))
            print(format_table(results)[-1], flush=True)
        return results
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def ratio_lines(before: list[LevelResult], after: list[LevelResult]) -> list[str]:
    """Per level, this checkout's figures divided by the baseline's."""
    names = " ".join(f"{name:>7}" for name in ("p50", "p95", "p99", "req/s", "CPU/req"))
    lines = [f"{'clients':>7} {names}  (this checkout / baseline)"]
    for old, new in zip(before, after, strict=True):
        ratios = [new.percentile(q) / old.percentile(q) for q in (50, 95, 99)]
        ratios.append(new.throughput / old.throughput if old.throughput else float("nan"))
        ratios.append(new.cpu_ms_per_request / old.cpu_ms_per_request)
        lines.append(f"{new.clients:>7} " + " ".join(f"{value:>7.2f}" for value in ratios))
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the bench; exit 1 if any request failed."""
    args = build_parser().parse_args(argv)
    if args.client_cpus:
        os.sched_setaffinity(0, cpu_list(args.client_cpus))
    servers = [*(path.resolve() for path in args.containers), PROJECT_ROOT / "containers"]
    work_dir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    try:
        if args.model_dir is None:
            model_dir, test = trained_model(args.preset, work_dir)
        else:
            from rul.synthetic import SyntheticSpec, generate

            model_dir = Path(shutil.copytree(args.model_dir, work_dir / "base" / "model"))
            test = generate(SyntheticSpec(n_train_units=1, n_test_units=10, seed=1)).test
        body, rows = request_body(test, args.cycles)
        print(
            f"single-unit request of {rows} rows ({len(body)} bytes), {args.seconds:g}s per level; "
            f"server CPUs {args.server_cpus or 'all'}, load generator CPUs {args.client_cpus or 'all'}",
            flush=True,
        )
        results = {path: measure(path, model_dir.parent, body, args) for path in servers}
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    for path, table in results.items():
        print(f"\n{path}")
        for line in format_table(table):
            print(line)
    current = results[servers[-1]]
    for path in servers[:-1]:
        print(f"\nratios against {path}")
        for line in ratio_lines(results[path], current):
            print(line)
    return 0 if all(r.errors == 0 for table in results.values() for r in table) else 1


if __name__ == "__main__":
    sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "containers")]
    raise SystemExit(main())
