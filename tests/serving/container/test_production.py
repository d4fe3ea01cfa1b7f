"""The server as SageMaker runs it: worker processes on one port, SIGTERM under load, and the HTTP edges.

Subprocess tests run `python -m serving.container serve` (the image's entry point) with two workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.serving.container.client import READMISSION_ROW, Client
from tests.serving.container.conftest import Running, start_server

HEADER = list(READMISSION_ROW)


def csv_rows(count: int) -> bytes:
    cells = ",".join("" if v is None else str(v) for v in READMISSION_ROW.values())
    return ("\n".join([",".join(HEADER)] + [cells] * count) + "\n").encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Container:
    """The image's entry point in a subprocess; stdout (the JSON log lines) kept in a file."""

    def __init__(self, bundle_dir: Path, work: Path, workers: int = 2, **env: str) -> None:
        self.port = free_port()
        self.stdout = work / "stdout.log"
        environment = {
            **os.environ,
            "SM_MODEL_DIR": str(bundle_dir),
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
            "CLINOPS_ENDPOINT": "prod-test",
            **env,
        }
        with self.stdout.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "serving.container", "serve"],
                cwd=REPO,
                env=environment,
                stdout=out,
                stderr=subprocess.PIPE,
            )
        self.client = Client(self.port)
        self.wait_for(lambda: len(self.events("worker_ready")) >= workers, 90)
        self.wait_for(lambda: self.client.ping().status == 200, 10)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.stdout.read_text().splitlines() if line.strip()]
        return [e for e in lines if name is None or e["event"] == name]

    def wait_for(self, condition: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except OSError:
                pass
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.process.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.05)
        raise AssertionError("timed out waiting for the server")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def container(bundle_dir: Path, tmp_path: Path) -> Iterator[Container]:
    server = Container(bundle_dir, tmp_path)
    yield server
    server.close()


def test_sigterm_under_load_answers_every_request_in_flight_and_exits_0(container: Container) -> None:
    """8 concurrent 10,000-row requests, SIGTERM 300 ms in: every one is answered, then the process exits 0."""
    body, replies = csv_rows(10_000), []

    def send() -> None:
        replies.append(container.client.post(body, "text/csv", timeout=30))

    senders = [threading.Thread(target=send) for _ in range(8)]
    for sender in senders:
        sender.start()
    time.sleep(0.3)
    started = time.monotonic()
    container.process.send_signal(signal.SIGTERM)
    for sender in senders:
        sender.join(timeout=30)
    code = container.process.wait(timeout=30)
    assert [r.status for r in replies] == [200] * 8
    assert all(len(r.json["scores"]) == 10_000 for r in replies)
    assert all(r.headers.get("connection") == "close" for r in replies)  # nothing more on a draining connection
    assert code == 0 and time.monotonic() - started < 25
    assert [e["drained"] for e in container.events("worker_stopped")] == [True, True]
    with pytest.raises(OSError):  # the port is closed
        container.client.ping()


def test_two_workers_both_serve_and_a_dead_one_is_detected_and_replaced(container: Container) -> None:
    body = json.dumps([READMISSION_ROW] * 100).encode()

    def burst() -> None:
        threads = [threading.Thread(target=lambda: [container.client.post(body) for _ in range(5)]) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    container.wait_for(lambda: burst() or {e.get("worker") for e in container.events("invocation")} == {0, 1}, 30)
    victim = container.events("worker_ready")[0]
    os.kill(victim["pid"], signal.SIGKILL)
    container.wait_for(lambda: container.client.ping().status == 503, 5)
    reason = container.client.ping().json["reason"]
    assert "1 of 2 workers not running" in reason or container.client.ping().status == 200  # may already be back
    container.wait_for(lambda: container.client.ping().status == 200, 10)  # restarted from the loaded model
    exited = container.events("worker_exited")
    assert exited and exited[0]["worker"] == victim["worker"] and exited[0]["signal"] == signal.SIGKILL
    assert len(container.events("worker_ready")) == 3
    assert container.client.post(body).status == 200


# --- HTTP edges, on the in-process server with short deadlines ---------------------------------------------------


@pytest.fixture(scope="module")
def strict(bundle_dir: Path) -> Iterator[Running]:
    server = start_server(bundle_dir, request_seconds=1, max_connections=2)
    yield server
    server.stop()


def _request(headers: str, body: bytes = b"") -> bytes:
    return f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}\r\n".encode() + body


@pytest.mark.parametrize("length", ["\u00b2", "1_0", "+5", "0x10", "5 5", "99999999999999999999"])
def test_content_length_must_be_ascii_digits(strict: Running, length: str) -> None:
    reply = strict.client.raw(_request(f"Content-Length: {length}\r\nConnection: close\r\n", b"{}"))
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:40]
    assert b"ASCII digits" in reply


def test_conflicting_content_lengths_are_400(strict: Running) -> None:
    reply = strict.client.raw(_request("Content-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n", b"{}"))
    assert reply.startswith(b"HTTP/1.1 400 ")


def test_a_body_that_stops_short_is_408_at_the_deadline_not_500(strict: Running) -> None:
    started = time.monotonic()
    reply = strict.client.raw(_request("Content-Length: 50\r\n", b"{}"), timeout=10)  # client keeps the socket open
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert 0.9 < time.monotonic() - started < 3


def test_the_deadline_covers_the_whole_request_not_each_read(strict: Running) -> None:
    """A trickle of one byte every 0.3 s never trips a per-read timeout; the whole-request deadline ends it."""
    with socket.create_connection(("127.0.0.1", strict.port), timeout=10) as sock:
        sock.sendall(_request("Content-Length: 40\r\n"))
        started, reply = time.monotonic(), b""
        try:
            for _ in range(20):
                sock.sendall(b" ")
                time.sleep(0.3)
        except OSError:
            pass  # the server closed its reading side
        sock.settimeout(5)
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 4


def test_trickled_headers_are_408(strict: Running) -> None:
    with socket.create_connection(("127.0.0.1", strict.port), timeout=10) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(10):
                sock.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.3)
        except OSError:
            pass
        sock.settimeout(5)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408 ")


def test_idle_keep_alive_connections_make_room_under_the_connection_cap(strict: Running) -> None:
    """Cap 2: two kept-alive idle connections do not lock a third client out."""
    import http.client

    idle = [http.client.HTTPConnection("127.0.0.1", strict.port, timeout=5) for _ in range(2)]
    for connection in idle:
        connection.request("GET", "/ping")
        assert connection.getresponse().read()
    assert strict.client.ping().status == 200
    assert len(strict.server.connections) <= 2
    for connection in idle:
        connection.close()


def test_a_million_empty_objects_stop_at_the_limit_while_parsing(bundle_dir: Path) -> None:
    server = start_server(bundle_dir, max_body_bytes=6 * 1024 * 1024, max_rows=10_000)
    try:
        flood = b"[" + b"{}," * 1_700_000 + b"{}]"
        started = time.monotonic()
        reply = server.client.post(flood)
        assert reply.status == 413 and "at most 10000" in reply.json["problems"][0]["problem"]
        assert time.monotonic() - started < 1.5  # was 3.3 s and +135 MiB when every object was built first
        nested = b'{"age": [' + b"{}," * 1_000_000 + b"{}]}"
        assert server.client.post(nested).status == 413  # objects counted, not only records
        lines = b"{}\n" * 1_000_000
        assert server.client.post(lines, "application/jsonlines").status == 413
        assert server.client.post(csv_rows(1_000), "text/csv").status == 200
        assert server.client.post(csv_rows(10_001), "text/csv").status == 413
        assert server.client.post(b"\xff" * 10, "text/csv").status == 400
    finally:
        server.stop()


@pytest.mark.parametrize("value", [b"x" * 1025, "caf\u00e9".encode("latin-1"), b"tab\tinside"])
def test_custom_attributes_beyond_sagemakers_rules_are_400(strict: Running, value: bytes) -> None:
    body = json.dumps(READMISSION_ROW).encode()
    head = _request(f"Content-Length: {len(body)}\r\nConnection: close\r\n")[:-2]
    reply = strict.client.raw(head + b"X-Amzn-SageMaker-Custom-Attributes: " + value + b"\r\n\r\n" + body)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"X-Amzn-SageMaker-Custom-Attributes" in reply and value not in reply


def test_ping_is_503_while_draining_and_in_flight_requests_finish(bundle_dir: Path) -> None:
    server = start_server(bundle_dir, request_seconds=5)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            body = json.dumps(READMISSION_ROW).encode()
            sock.sendall(_request(f"Content-Length: {len(body)}\r\n") + body[:10])  # in flight: half a body
            time.sleep(0.2)
            drained: list[bool] = []
            drainer = threading.Thread(target=lambda: drained.append(server.server.drain(seconds=5)))
            drainer.start()
            time.sleep(0.3)
            assert server.server.service.ping().status == 503
            assert "draining" in server.server.service.ping().body["reason"]
            sock.sendall(body[10:])
            reply = sock.recv(65536)
            drainer.join(timeout=10)
        assert reply.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in reply
        assert drained == [True]
    finally:
        server.server.server_close()


def test_a_busier_worker_leaves_new_connections_to_a_less_busy_one(bundle_dir: Path) -> None:
    """Keep-alive clients stay with the worker that accepted them: accepts are balanced by connection count."""
    from serving.container.app import ACCEPT_DEFER_SECONDS, InferenceServer, InferenceService
    from serving.container.logs import EventLog
    from serving.container.settings import ServerSettings
    from serving.container.workers import Fleet, bind

    fleet = Fleet(2)
    listener = bind("127.0.0.1", 0)
    service = InferenceService(ServerSettings(model_dir=bundle_dir), EventLog("t", open(os.devnull, "w")), fleet)  # noqa: SIM115
    server = InferenceServer(listener.getsockname()[:2], service, listener, worker=0)
    try:
        fleet.mark(0, True)
        fleet.mark(1, True)
        fleet.report_connections(1, 0)
        server.connections.update({i: None for i in range(3)})  # type: ignore[misc]
        with socket.create_connection(listener.getsockname()[:2]):
            time.sleep(0.05)
            with pytest.raises(BlockingIOError):  # worker 1 holds none: it should take this one
                server.get_request()
            fleet.report_connections(1, 5)
            accepted, _ = server.get_request()  # now worker 0 is the less busy one
            accepted.close()
            fleet.report_connections(1, 0)
            fleet.mark(1, False)  # a worker that is down takes nothing
            assert not fleet.others_less_busy(0, 3)
            fleet.mark(1, True)
            with socket.create_connection(listener.getsockname()[:2]):
                time.sleep(0.05)
                with pytest.raises(BlockingIOError):
                    server.get_request()
                time.sleep(ACCEPT_DEFER_SECONDS)  # the peer never took it (stuck?): accept anyway
                accepted, _ = server.get_request()
                accepted.close()
    finally:
        server.connections.clear()
        server.server_close()
