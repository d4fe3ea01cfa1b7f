"""The inference server: SageMaker's container contract on the standard library's threaded HTTP/1.1 server.

    GET  /ping         200 when the bundle is loaded, its self-check scored and every worker runs; 503 with the
                       reason otherwise (also while draining after SIGTERM)
    POST /invocations  application/json, application/jsonlines or text/csv (see `payload`), answered with
                       {"model", "model_version", "scores", "threshold", "flags"} (or CSV scores, by Accept);
                       with `explain=N` in X-Amzn-SageMaker-Custom-Attributes also "explanations": per row the N
                       largest {"feature", "contribution"} in calibrated log-odds, largest |contribution| first
                       (exact TreeSHAP, `pipelines.explain`; off by default: it costs far more than a score)

Why `http.server`: on loopback it answers in ~0.4 ms where uvicorn with its pure-Python HTTP parser (h11, the
only one installed) takes ~0.8 ms, and the container then needs no web framework at all. Keep-alive is on
(SageMaker reuses connections) and Nagle is off (otherwise a response waits ~40 ms for a delayed ACK). One
process serves on one core; `workers` runs one such server per core on a shared socket (`workers.serve`).

Client mistakes are 4xx with a JSON list of problems: 400 invalid framing, body or features, 404 unknown path,
405 wrong method, 406 unacceptable Accept, 408 request not complete within its deadline, 411 no Content-Length,
413 too large (bytes, rows or objects), 415 content type. 500 means a fault of this server; 503 means no servable
model (or draining). Every /invocations request logs one line (`logs.EventLog.invocation`) with counts only.

Edges: the whole request (waiting for it, its headers and its body) must arrive within `request_seconds`; a
watchdog closes the reading side of a connection past its deadline, so a trickling client cannot hold a thread.
At most `max_connections` connections are served at once; beyond that, idle keep-alive connections are closed
to make room, and new ones wait in the kernel's accept queue. On drain (SIGTERM) the server stops accepting,
closes idle keep-alive connections, finishes what is in flight (each reply with `Connection: close`) for up to
`drain_seconds`, then returns.
"""

from __future__ import annotations

import contextlib
import gc
import json
import re
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from clinops.traffic import (
    CUSTOM_ATTRIBUTES_HEADER,
    EXPLAIN_ATTRIBUTE,
    is_synthetic_attributes,
    valid_custom_attributes,
)
from serving.container.artifact import ArtifactError, ServedModel, load_served_model
from serving.container.logs import EventLog
from serving.container.payload import (
    CSV_TYPE,
    JSON_TYPE,
    ClientError,
    CsvTable,
    RequestType,
    csv_reply,
    explain_count,
    media_type,
    read_body,
    reply_type,
)
from serving.container.settings import ServerSettings
from serving.container.validation import Problem

LINGER_SECONDS = 2.0  # how long a rejected connection keeps reading (and discarding) what the client still sends
LINGER_MAX_BYTES = 16 * 1024 * 1024
WATCHDOG_SECONDS = 0.2  # how often request deadlines are checked
ACCEPT_DEFER_SECONDS = 0.02  # how long a busier worker leaves a new connection to a less busy one
ROUTES = {"/ping": "GET", "/invocations": "POST"}
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")  # ASCII digits only: str.isdigit() also accepts "²", which int() refuses


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    rows: int = 0
    invalid_scores: int = 0
    problems: int | None = None
    payload: bytes | None = None  # a reply that is not the JSON `body` (CSV scores)
    content_type: str = JSON_TYPE
    explained: int | None = None  # contributions asked for per row


class Health:
    """What /ping reports beyond the model: draining, and (with workers) whether every worker is up.
    In one process it is this object; `workers.Fleet` keeps the same answers in memory shared across workers."""

    def __init__(self) -> None:
        self._draining = False

    @property
    def draining(self) -> bool:
        return self._draining

    def start_draining(self) -> None:
        self._draining = True

    def problem(self) -> str | None:
        return "draining: the server is shutting down" if self._draining else None

    def report_connections(self, worker: int | None, count: int) -> None:
        """How many connections a worker holds (shared with the other workers; one process has no peers)."""

    def others_less_busy(self, worker: int | None, count: int) -> bool:
        """True when another running worker holds fewer connections than `count`: it should take the next one."""
        return False


class InferenceService:
    """The loaded model (or why there is none) and what a request does with it, free of HTTP framing."""

    def __init__(self, settings: ServerSettings, log: EventLog, health: Health | None = None) -> None:
        self.settings, self.log = settings, log
        self.health = health or Health()
        self.model: ServedModel | None = None
        self.unavailable_reason = "the model has not been loaded yet"

    def load(self, model_dir: Path) -> None:
        try:
            self.model = load_served_model(model_dir)
        except ArtifactError as exc:
            self.model, self.unavailable_reason = None, str(exc)
            self.log.event("model_unavailable", endpoint=self.log.endpoint, reason=str(exc))
            return
        model = self.model
        self.log.event(
            "model_loaded",
            endpoint=self.log.endpoint,
            model=model.name,
            model_version=model.version,
            scoring=model.scorer.path,
            note=model.scoring_note,
            load_seconds=model.load_seconds,
            warnings=list(model.warnings),
        )

    def ping(self) -> Answer:
        if self.model is None:
            return Answer(503, {"status": "unhealthy", "reason": self.unavailable_reason})
        problem = self.health.problem()
        if problem is not None:
            return Answer(503, {"status": "unhealthy", "reason": problem})
        return Answer(
            200,
            {
                "status": "healthy",
                "model": self.model.name,
                "model_version": self.model.version,
                "scoring": self.model.scorer.path,
            },
        )

    def problems_answer(self, error: ClientError) -> Answer:
        listed = [p.as_dict() for p in error.problems[: self.settings.max_listed_problems]]
        body = {"error": HTTPStatus(error.status).phrase, "problem_count": len(error.problems), "problems": listed}
        return Answer(error.status, body, problems=len(error.problems))

    def score(
        self,
        model: ServedModel,
        body: bytes,
        request: RequestType | str,
        reply: str = JSON_TYPE,
        explain: int | None = None,
    ) -> Answer:
        explain_field = f"{CUSTOM_ATTRIBUTES_HEADER}: {EXPLAIN_ATTRIBUTE}"
        if explain is not None and reply == CSV_TYPE:
            raise ClientError.about_body(
                400, "explanations come only in a JSON reply (Accept: application/json)", explain_field
            )
        parsed = read_body(body, request, self.settings.max_rows, model.schema.contract_names)
        if isinstance(parsed, CsvTable):
            features, problems = model.schema.from_csv(parsed.header, parsed.rows)
        else:
            features, problems = model.schema.from_records(parsed.records)
        if features is None:
            raise ClientError(400, problems or [Problem(None, None, "no records to score")])
        if explain is not None and features.shape[0] > self.settings.max_explained_rows:
            raise ClientError.about_body(
                413,
                f"explanations asked for {features.shape[0]} rows; at most {self.settings.max_explained_rows} "
                "per request (send fewer rows, or ask without explain=N)",
                explain_field,
            )
        scores = model.scorer.probabilities(features)
        valid = np.isfinite(scores) & (scores >= 0.0) & (scores <= 1.0)
        shown = [float(s) if ok else None for s, ok in zip(scores.tolist(), valid.tolist(), strict=True)]
        invalid = int((~valid).sum())
        if reply == CSV_TYPE:
            return Answer(
                200, {}, rows=len(shown), invalid_scores=invalid, payload=csv_reply(shown), content_type=CSV_TYPE
            )
        flags = [None if s is None else s >= model.threshold for s in shown]
        body_out = {
            "model": model.name,
            "model_version": model.version,
            "scores": shown,
            "threshold": model.threshold,
            "flags": flags,
        }
        if explain is not None:
            if model.explainer is not None:
                body_out["explanations"] = model.explainer.top(features, explain)
                body_out["explanation_units"] = model.explainer.units
            else:  # the scores stand; the caller learns why there are no reasons
                body_out["explanations_unavailable"] = model.explain_note
        return Answer(200, body_out, rows=len(shown), invalid_scores=invalid, explained=explain)


@dataclass
class Connection:
    """One accepted connection, as the watchdog and the drain see it."""

    sock: socket.socket
    deadline: float
    served: int = 0  # requests answered so far
    reading: bool = True  # waiting for or reading a request (the client's time); False while scoring/replying
    timed_out: bool = False
    since: float = field(default_factory=time.monotonic)


class InferenceServer(ThreadingHTTPServer):
    daemon_threads = True  # a connection still open when the drain ends never blocks the exit
    block_on_close = False
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        service: InferenceService,
        listener: socket.socket | None = None,
        worker: int | None = None,
    ) -> None:
        self.service, self.worker = service, worker
        self.connections: dict[int, Connection] = {}
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        if listener is None:
            super().__init__(address, InferenceHandler)
        else:  # a worker: serve the socket its supervisor bound before forking
            super().__init__(address, InferenceHandler, bind_and_activate=False)
            self.socket.close()
            self.socket = listener
            self.server_address = listener.getsockname()
        threading.Thread(target=self._watchdog, name="request-deadlines", daemon=True).start()

    @property
    def settings(self) -> ServerSettings:
        return self.service.settings

    def server_close(self) -> None:
        self._stopping.set()
        super().server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver would print a traceback (with the peer's address) to stderr; a reset connection is routine
        error = sys.exc_info()[1]
        self.service.log.event("connection_error", error=type(error).__name__)

    # --- connections: a cap, request deadlines, drain ---------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            while (
                len(self.connections) >= self.settings.max_connections
                and not self._stopping.is_set()
                and not self.service.health.draining
            ):
                idle = [c for c in self.connections.values() if c.reading and c.served > 0]
                if idle:  # a keep-alive connection waiting for its next request makes room for a new one
                    _close_reading(min(idle, key=lambda c: c.since).sock)
                self._lock.wait(timeout=0.05)
            self.connections[id(request)] = Connection(request, time.monotonic() + self.settings.request_seconds)
            self.service.health.report_connections(self.worker, len(self.connections))
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self.connections.pop(id(request), None)
            self.service.health.report_connections(self.worker, len(self.connections))
            self._lock.notify_all()
        super().shutdown_request(request)

    def get_request(self) -> tuple[Any, Any]:
        """Balanced accept: clients keep their connections alive, so whichever worker accepts a connection serves
        all its requests. A worker holding more connections than a peer leaves a new one to that peer (every
        worker is woken for it) - for at most ACCEPT_DEFER_SECONDS, in case the peer is stuck."""
        if self.service.health.others_less_busy(self.worker, len(self.connections)):
            now = time.monotonic()
            self._deferring_since = getattr(self, "_deferring_since", None) or now
            if now - self._deferring_since < ACCEPT_DEFER_SECONDS:
                time.sleep(0.0005)  # the socket stays readable: yield rather than spin
                raise BlockingIOError("left to a less busy worker")
        self._deferring_since = None
        return super().get_request()

    def connection(self, request: Any) -> Connection | None:
        return self.connections.get(id(request))

    def _watchdog(self) -> None:
        while not self._stopping.wait(WATCHDOG_SECONDS):
            now = time.monotonic()
            with self._lock:
                late = [c for c in self.connections.values() if c.reading and not c.timed_out and now > c.deadline]
                for conn in late:
                    conn.timed_out = True
                    _close_reading(conn.sock)  # the blocked read returns; the handler answers 408 (or just closes)

    def drain(self, seconds: float | None = None) -> bool:
        """Stop accepting, close idle keep-alive connections, wait for in-flight requests; True if all finished."""
        self.service.health.start_draining()
        self.shutdown()  # the accept loop ends; what the kernel already queued is still taken below
        self._accept_queued()
        deadline = time.monotonic() + (self.settings.drain_seconds if seconds is None else seconds)
        with self._lock:
            while True:
                for conn in self.connections.values():
                    if conn.reading and conn.served > 0:  # idle keep-alive: no request in flight
                        _close_reading(conn.sock)
                if not self.connections or time.monotonic() >= deadline:
                    break
                self._lock.wait(timeout=0.05)
            finished = not self.connections
        self._stopping.set()
        return finished

    def _accept_queued(self) -> None:
        """Connections the kernel accepted before we stopped are requests in flight, not ones to reset."""
        try:
            self.socket.setblocking(False)
            while True:
                request, address = self.socket.accept()
                request.setblocking(True)
                self.process_request(request, address)
        except OSError:
            pass


def _close_reading(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)


class RequestTimeout(Exception):
    """The request did not arrive whole within its deadline."""


class InferenceHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True
    server_version = "clinops-inference"
    server: InferenceServer

    def __getattr__(self, name: str) -> Any:
        # Any method, however spelled, is routed: unknown ones get 405 rather than http.server's 501.
        if name.startswith("do_"):
            return self._route
        raise AttributeError(name)

    def setup(self) -> None:
        # per connection (a class default in socketserver); a backstop: the watchdog ends slow requests first
        self.timeout = self.server.settings.request_seconds + 5  # type: ignore[misc]
        super().setup()
        self._state = self.server.connection(self.request)

    def handle(self) -> None:
        """http.server's keep-alive loop, with each request's deadline and state kept for the watchdog."""
        self.close_connection = True
        self._one_request()
        while not self.close_connection:
            self._one_request()

    def _one_request(self) -> None:
        state = self._state
        if state is not None:
            if state.served > 0:
                state.deadline = time.monotonic() + self.server.settings.request_seconds
                state.since = time.monotonic()
            state.reading = True
            if self.server.service.health.draining and state.served > 0:
                self.close_connection = True  # no new request on a kept-alive connection while draining
                return
        self.handle_one_request()
        if state is not None:
            state.served += 1
            state.reading = True

    def _timed_out(self) -> bool:
        return self._state is not None and self._state.timed_out

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the base class would write request lines and client addresses to stderr."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's own rejections (bad request line, oversized headers) as JSON, echoing nothing."""
        if self._timed_out():
            code = 408  # the request line or headers were cut short by the deadline, not malformed
        self.server.service.log.event("rejected_request", endpoint=self.server.service.log.endpoint, status=code)
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # an unparsable request line: answer with a status line anyway
            self.request_version = "HTTP/1.0"
        self._send(code, {"error": HTTPStatus(code).phrase})

    def _send(
        self,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        payload: bytes | None = None,
        content_type: str = JSON_TYPE,
    ) -> None:
        if payload is None:
            payload = json.dumps(body, separators=(",", ":")).encode()
        if self.server.service.health.draining:
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed and self._timed_out():  # headers ended by the watchdog's close, not by the client
            self.send_error(408)
            return False
        return parsed

    def _route(self) -> None:
        path = self.path.split("?", 1)[0]
        method = ROUTES.get(path)
        if path == "/invocations":
            self._invocation()
            return
        if self._state is not None:
            self._state.reading = False
        if method is None:
            self.server.service.log.event("rejected_request", endpoint=self.server.service.log.endpoint, status=404)
            self._reject_unread(404, {"error": "Not Found", "paths": sorted(ROUTES)})
        elif self.command != method:
            self._reject_unread(405, {"error": "Method Not Allowed", "allow": method}, {"Allow": method})
        else:
            answer = self.server.service.ping()
            self._send(answer.status, answer.body)

    def _reject_unread(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # the body was not read, so the connection cannot carry another request
            self._linger = True
        self._send(status, body, headers)

    def finish(self) -> None:
        if getattr(self, "_linger", False):
            self._discard_unread_body()
        super().finish()

    def _discard_unread_body(self) -> None:
        """Lingering close: closing a socket with unread data sends a reset, which can destroy the reply before
        the client reads it (a client still sending a 413 body would see a reset instead of the 413)."""
        try:
            self.connection.shutdown(socket.SHUT_WR)  # the reply is complete
            deadline, drained = time.monotonic() + LINGER_SECONDS, 0
            while drained < LINGER_MAX_BYTES and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass

    def _invocation(self) -> None:
        started = time.perf_counter()
        self._body_read = False
        service = self.server.service
        model = service.model
        attributes = self.headers.get(CUSTOM_ATTRIBUTES_HEADER)
        synthetic = is_synthetic_attributes(attributes)
        try:
            answer = self._answer(service, model, attributes)
        except Exception as exc:  # a fault of this server, never of the request
            service.log.event(
                "server_fault",
                endpoint=service.log.endpoint,
                error=type(exc).__name__,
                where=[
                    f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__)
                ],
            )
            answer = Answer(500, {"error": "Internal Server Error"})
        headers = {"Allow": "POST"} if answer.status == 405 else {}
        if attributes is not None and valid_custom_attributes(attributes):
            headers[CUSTOM_ATTRIBUTES_HEADER] = attributes  # passed through: SageMaker returns it to the caller
        if answer.status >= 400 and not self._body_read:
            self._reject_unread(answer.status, answer.body, headers)
        else:
            self._send(answer.status, answer.body, headers, answer.payload, answer.content_type)
        service.log.invocation(
            model=model.name if model else None,
            model_version=model.version if model else None,
            status=answer.status,
            rows=answer.rows,
            invalid_scores=answer.invalid_scores,
            latency_ms=(time.perf_counter() - started) * 1000,
            problems=answer.problems,
            synthetic=synthetic,
            worker=self.server.worker,
            explained=answer.explained,
        )

    def _answer(self, service: InferenceService, model: ServedModel | None, attributes: str | None) -> Answer:
        if model is None:
            return Answer(503, {"error": "Service Unavailable", "reason": service.unavailable_reason})
        try:
            if self.command != "POST":
                raise ClientError.about_body(405, "invocations are POST requests")
            if attributes is not None and not valid_custom_attributes(attributes):
                raise ClientError.about_body(
                    400, "at most 1024 visible US-ASCII characters are allowed", CUSTOM_ATTRIBUTES_HEADER
                )
            explain = explain_count(attributes, len(model.schema.names))
            request = media_type(self.headers.get("Content-Type"))
            reply = reply_type(self.headers.get("Accept"))
            body = self._read_body(service.settings.max_body_bytes)
            return service.score(model, body, request, reply, explain)
        except ClientError as error:
            return service.problems_answer(error)

    def _read_body(self, limit: int) -> bytes:
        if "Transfer-Encoding" in self.headers:
            raise ClientError.about_body(411, "chunked bodies are not accepted; send Content-Length")
        declared = self.headers.get_all("Content-Length") or []
        if not declared:
            raise ClientError.about_body(411, "Content-Length is required")
        values = {value.strip() for value in declared}
        if len(values) != 1 or not _CONTENT_LENGTH.fullmatch(next(iter(values))):
            raise ClientError.about_body(400, "Content-Length is not one number in ASCII digits")
        length = int(next(iter(values)))
        if length > limit:
            raise ClientError.about_body(413, f"body of {length} bytes; at most {limit} are allowed")
        try:
            body = self.rfile.read(length)
        except (TimeoutError, OSError):
            body = b""
        self._body_read = True
        if self._state is not None:
            self._state.reading = False  # the body is in: what follows is the server's time
        if len(body) != length:
            self.close_connection = True
            if self._timed_out():
                raise ClientError.about_body(
                    408, f"the request did not arrive whole within {self.server.settings.request_seconds:g} s"
                )
            raise ClientError.about_body(400, "the body ended before Content-Length bytes arrived")
        return body


def build_server(
    settings: ServerSettings,
    log: EventLog | None = None,
    health: Health | None = None,
    listener: socket.socket | None = None,
    worker: int | None = None,
) -> InferenceServer:
    """Load the bundle (or record why not), then bind; the server answers /ping either way."""
    service = InferenceService(settings, log or EventLog(settings.endpoint), health)
    service.load(settings.model_dir)
    return InferenceServer((settings.host, settings.port), service, listener, worker)


def prepare_process() -> None:
    """Thread pools and garbage collector set for serving (call before loading, and before forking)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # one request, one core: OpenMP spin-waits hurt tail latency on small instances


def serve_one(server: InferenceServer, unblock: set[signal.Signals] | None = None) -> bool:
    """Run one server in this process until SIGTERM/SIGINT, then drain it; True if every request finished.
    `unblock`: signals the caller blocked until these handlers were in place."""
    gc.collect()
    gc.freeze()  # the model's objects leave the collector's generations: shorter pauses under load
    stopped = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if unblock:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, unblock)
    result: list[bool] = []

    def drain_when_stopped() -> None:
        stopped.wait()
        result.append(server.drain())

    drainer = threading.Thread(target=drain_when_stopped, name="drain", daemon=True)
    drainer.start()
    server.serve_forever(poll_interval=0.5)
    drainer.join()
    return bool(result and result[0])
