"""/invocations latency and throughput: the clinops inference server with one worker process and with one per
CPU, beside `mlflow models serve` and beside the in-process scoring floor (the same validation and scorer with
no HTTP), same model, same run, same machine, on loopback. Targets (2-core machine): with 2 workers at least
1.7x the single-process throughput at concurrency 16; p99 under 20 ms for one row at concurrency 16.

Model: a pipeline run's bundle for clinops, and the model that run logged to MLflow (sklearn flavor, served
by `mlflow models serve --env-manager local`, one uvicorn worker, its default). MODEL is what
`clinops serve --local` takes; by default the newest local run of readmission-risk (one is trained first if
OUT holds none). Every server runs as its own process; before timing, the servers score the same 100 rows and
must agree (MLflow's pyfunc returns `predict`, the class at 0.5; ours returns the probability).

Client: Python `http.client`, one keep-alive connection per client thread, the threads spread over
`--client-processes` processes (one Python process cannot drive two server cores: its GIL would be the limit).
Latency is per request from send to last byte, client overhead included. The client shares the machine's cores
with the servers, so multi-worker scaling measured here is a floor. Cases: one row and a batch of 100 rows at
concurrency 1, 4 and 16, after warm-up requests per server. Every case stops at its request count or its time
cap, whichever comes first.

    .venv/bin/python bench/serving.py [--model MODEL] [--out out] [--requests 1000] [--time-cap 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from pipelines.contracts import load_contract  # noqa: E402 - the repo root goes on sys.path first
from pipelines.contracts.synthetic import synthetic_rows  # noqa: E402
from serving.container.locate import LocateError, locate, tracking_uri_for  # noqa: E402

CLIENT = "Python http.client, one keep-alive connection per worker thread (client overhead included)"
WARMUP = 200
BATCH_ROWS = 100


@dataclass
class Target:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    single: bytes
    batch: bytes


@dataclass
class CaseResult:
    latencies_ms: np.ndarray
    wall_seconds: float
    errors: int

    def summary(self, rows_per_request: int) -> dict[str, float]:
        done = len(self.latencies_ms)
        p50, p99 = np.percentile(self.latencies_ms, [50, 99]) if done else (float("nan"), float("nan"))
        per_second = done / self.wall_seconds
        return {
            "requests": done,
            "errors": self.errors,
            "p50_ms": float(p50),
            "p99_ms": float(p99),
            "req_per_s": per_second,
            "rows_per_s": per_second * rows_per_request,
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(target: Target, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.process.poll() is not None:
            raise SystemExit(f"{target.name} exited with {target.process.returncode} before it was ready")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{target.name} was not ready after {timeout:.0f} s")


def post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def _client_process(port: int, body: bytes, counts: list[int], start_at: float, time_cap: float, results: Any) -> None:
    """One client process: a thread per connection, each sending its count of requests."""
    latencies: list[list[float]] = [[] for _ in counts]
    errors = [0] * len(counts)

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.time() < start_at:
            time.sleep(0.001)
        deadline = time.perf_counter() + time_cap
        for _ in range(counts[index]):
            if time.perf_counter() > deadline:
                break
            began = time.perf_counter()
            status, _ = post(connection, body)
            latencies[index].append((time.perf_counter() - began) * 1000)
            errors[index] += status != 200
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(counts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(([x for part in latencies for x in part], sum(errors), time.time()))


def run_case(
    port: int, body: bytes, requests: int, concurrency: int, time_cap: float, processes: int = 1
) -> CaseResult:
    budget = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    processes = max(1, min(processes, concurrency))
    shares = [budget[i::processes] for i in range(processes)]
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 0.3  # every process connects, then all start together
    clients = [
        context.Process(target=_client_process, args=(port, body, share, start_at, time_cap, results))
        for share in shares
    ]
    for client in clients:
        client.start()
    collected = [results.get() for _ in clients]
    for client in clients:
        client.join()
    finished = max(end for _, _, end in collected)
    latencies = np.array([x for part, _, _ in collected for x in part])
    return CaseResult(latencies, finished - start_at, sum(errors for _, errors, _ in collected))


def in_process_floor(bundle: Path, body: bytes, requests: int) -> CaseResult:
    """The same validation and scorer the server runs, called directly: what HTTP and processes add to."""
    from threadpoolctl import threadpool_limits

    from serving.container.app import InferenceService
    from serving.container.logs import EventLog
    from serving.container.settings import ServerSettings

    with threadpool_limits(limits=1):
        service = InferenceService(ServerSettings(model_dir=bundle), EventLog("bench", open(os.devnull, "w")))  # noqa: SIM115
        service.load(bundle)
        model = service.model
        assert model is not None, service.unavailable_reason
        for _ in range(50):
            service.score(model, body, "application/json")
        latencies, began = [], time.perf_counter()
        for _ in range(requests):
            start = time.perf_counter()
            service.score(model, body, "application/json")
            latencies.append((time.perf_counter() - start) * 1000)
        return CaseResult(np.array(latencies), time.perf_counter() - began, 0)


def logged_model_uri(model: str, bundle: Path, tracking_uri: str) -> str:
    """The MLflow model the pipeline logged in the run that wrote `bundle` (or MODEL itself if it is models:/)."""
    if model.startswith("models:/"):
        return model
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    name = json.loads((bundle / "metadata.json").read_text())["model_name"]
    experiment = client.get_experiment_by_name(name)
    runs = (
        client.search_runs([experiment.experiment_id], f"attributes.run_name = '{bundle.parent.name}'")
        if experiment
        else []
    )
    if not runs:
        raise SystemExit(f"no MLflow run named {bundle.parent.name} in {tracking_uri}; pass --model models:/NAME/VER")
    mlflow.set_tracking_uri(tracking_uri)
    logged = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id],
        output_format="list",
        filter_string=f"source_run_id = '{runs[0].info.run_id}'",
    )
    if not logged:
        raise SystemExit(f"MLflow run {runs[0].info.run_id} logged no model")
    return str(logged[0].model_uri)


def ensure_local_run(model: str, out_dir: Path) -> None:
    if model.startswith("models:/") or Path(model).is_dir() or (out_dir / "pipeline" / model).is_dir():
        return
    from pipelines.local import run_local

    print(f"no local run of {model} under {out_dir}: training one (20,000 synthetic rows) ...", flush=True)
    run_local(model=model, out_dir=out_dir, rows=20_000)


def start_targets(
    bundle: Path, mlflow_uri: str, tracking_uri: str, single: list[Any], batch: list[Any]
) -> list[Target]:
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": tracking_uri,
    }
    targets = []
    for workers in sorted({1, workers_default()}):
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "clinops.cli.serve",
            "serve",
            "--local",
            str(bundle),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        targets.append(
            Target(
                f"clinops-{workers}w",
                port,
                process,
                json.dumps(single[0]).encode(),
                json.dumps({"instances": batch}).encode(),
            )
        )
    mlflow_port = free_port()
    mlflow_command = [
        shutil.which("mlflow", path=env["PATH"]) or "mlflow",
        "models",
        "serve",
        "-m",
        mlflow_uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(mlflow_port),
    ]
    theirs = subprocess.Popen(mlflow_command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    targets.append(
        Target(
            "mlflow",
            mlflow_port,
            theirs,
            json.dumps({"dataframe_records": single}).encode(),
            json.dumps({"dataframe_records": batch}).encode(),
        )
    )
    return targets


def workers_default() -> int:
    from serving.container.settings import available_cpus

    return available_cpus()


def check_agreement(targets: list[Target], batch: list[Any]) -> str:
    ours, theirs = targets[0], targets[-1]
    probabilities = json.loads(post(http.client.HTTPConnection("127.0.0.1", ours.port), ours.batch)[1])["scores"]
    labels = json.loads(post(http.client.HTTPConnection("127.0.0.1", theirs.port), theirs.batch)[1])["predictions"]
    agree = sum(int(p >= 0.5) == int(label) for p, label in zip(probabilities, labels, strict=True))
    if agree != len(batch):
        raise SystemExit(f"the servers disagree on {len(batch) - agree} of {len(batch)} rows: not the same model")
    return f"the servers agree on all {len(batch)} rows (probability >= 0.5 <=> MLflow's predicted class)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="readmission-risk")
    parser.add_argument("--out", type=Path, default=Path("out"))
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--requests", type=int, default=1000, help="single-row requests per concurrency level")
    parser.add_argument("--batch-requests", type=int, default=150)
    parser.add_argument("--time-cap", type=float, default=10.0, help="seconds per case per server, at most")
    parser.add_argument("--client-processes", type=int, default=2, help="client processes sharing the threads")
    parser.add_argument("--scaling-rounds", type=int, default=6, help="alternating 1-worker/N-worker pairs")
    args = parser.parse_args()
    ensure_local_run(args.model, args.out)
    scratch = Path(tempfile.mkdtemp(prefix="clinops-bench-"))
    try:
        located = locate(args.model, out_dir=args.out, tracking_uri=args.tracking_uri, scratch=scratch)
        tracking_uri = tracking_uri_for(args.out, args.tracking_uri)
    except LocateError as exc:
        raise SystemExit(f"error: {exc}") from None
    mlflow_uri = logged_model_uri(args.model, located.path, tracking_uri)
    rows = synthetic_rows(load_contract(located.path / "contract.yaml"), rows=BATCH_ROWS, seed=11)
    targets = start_targets(located.path, mlflow_uri, tracking_uri, rows[:1], rows)
    try:
        for target in targets:
            wait_ready(target)
        agreement = check_agreement(targets, rows)
        for target in targets:
            run_case(target.port, target.single, WARMUP, 4, args.time_cap, args.client_processes)
        report(targets, args, located.source, mlflow_uri, agreement, located.path)
    finally:
        for target in targets:
            target.process.terminate()
            target.process.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)


def paired_scaling(ours: list[Target], args: argparse.Namespace) -> None:
    """Worker scaling measured in alternating pairs (one row, concurrency 16), so a change in machine load between
    two cases does not pass for scaling: the median of the per-round ratios."""
    ratios: list[float] = []
    p99: dict[str, list[float]] = {t.name: [] for t in ours}
    for round_ in range(args.scaling_rounds):
        result: dict[str, dict[str, float]] = {}
        for target in ours if round_ % 2 == 0 else ours[::-1]:
            result[target.name] = run_case(
                target.port, target.single, args.requests, 16, args.time_cap, args.client_processes
            ).summary(1)
            p99[target.name].append(result[target.name]["p99_ms"])
        ratios.append(result[ours[1].name]["req_per_s"] / result[ours[0].name]["req_per_s"])
    print(
        f"paired rounds, one row at concurrency 16: {ours[1].name} / {ours[0].name} = "
        f"{', '.join(f'{r:.2f}' for r in ratios)}; median {float(np.median(ratios)):.2f}x (target >= 1.7x); "
        f"median p99 {ours[1].name} {float(np.median(p99[ours[1].name])):.1f} ms (target < 20 ms)"
    )


def report(
    targets: list[Target], args: argparse.Namespace, source: str, mlflow_uri: str, agreement: str, bundle: Path
) -> None:
    cases = [
        (label, payload, rows, c, n)
        for label, payload, rows, n in (
            ("single row", "single", 1, args.requests),
            (f"batch of {BATCH_ROWS}", "batch", BATCH_ROWS, args.batch_requests),
        )
        for c in (1, 4, 16)
    ]
    print(
        f"model: {source}\nMLflow model: {mlflow_uri}\n{agreement}\nclient: {CLIENT}, {args.client_processes} processes"
    )
    print(f"machine: {os.cpu_count()} CPUs, load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    header = (
        f"{'case':<16}{'conc.':>6}  {'server':<11}{'requests':>9}{'errors':>7}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'req/s':>9}{'rows/s':>10}"
    )
    print(header)
    print("-" * len(header))

    def line(label: str, concurrency: int | str, name: str, s: dict[str, float]) -> None:
        print(
            f"{label:<16}{concurrency:>6}  {name:<11}{s['requests']:>9.0f}{s['errors']:>7.0f}{s['p50_ms']:>9.2f}"
            f"{s['p99_ms']:>9.2f}{s['req_per_s']:>9.0f}{s['rows_per_s']:>10.0f}",
            flush=True,
        )

    throughput: dict[tuple[str, int, str], float] = {}
    for payload, rows in (("single", 1), ("batch", BATCH_ROWS)):
        label = "single row" if rows == 1 else f"batch of {BATCH_ROWS}"
        floor = in_process_floor(bundle, getattr(targets[0], payload), min(args.requests, 2000))
        line(label, "-", "in-process", floor.summary(rows))
    for label, payload, rows, concurrency, requests in cases:
        for target in targets:  # interleaved, so a change in machine load hits every server alike
            result = run_case(
                target.port, getattr(target, payload), requests, concurrency, args.time_cap, args.client_processes
            )
            summary = result.summary(rows)
            throughput[(payload, concurrency, target.name)] = summary["req_per_s"]
            line(label, concurrency, target.name, summary)
    ours = [t for t in targets if t.name.startswith("clinops-")]
    if len(ours) == 2:
        for payload in ("single", "batch"):
            one, many = throughput[(payload, 16, ours[0].name)], throughput[(payload, 16, ours[1].name)]
            print(f"\n{payload}, concurrency 16: {ours[1].name} / {ours[0].name} throughput = {many / one:.2f}x")
        paired_scaling(ours, args)
    print(f"\nload average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
