"""The inference server: SageMaker's container contract on the standard library's threaded HTTP/1.1 server.

    GET  /ping         200 when the bundle is loaded and its self-check scored; 503 with the reason otherwise
    POST /invocations  application/json or text/csv (see `payload`), answered with
                       {"model", "model_version", "scores", "threshold", "flags"}

Why `http.server`: on loopback it answers in ~0.4 ms where uvicorn with its pure-Python HTTP parser (h11, the
only one installed) takes ~0.8 ms, and the container then needs no web framework at all. Keep-alive is on
(SageMaker reuses connections) and Nagle is off (otherwise a response waits ~40 ms for a delayed ACK).

Client mistakes are 4xx with a JSON list of problems: 400 invalid body or features, 404 unknown path, 405 wrong
method, 406 unacceptable Accept, 411 no Content-Length, 413 too large (bytes or rows), 415 content type.
500 means a fault of this server; 503 means no servable model. Every /invocations request logs one line
(`logs.EventLog.invocation`) with counts only.
"""

from __future__ import annotations

import gc
import json
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from serving.container.artifact import ArtifactError, ServedModel, load_served_model
from serving.container.logs import EventLog
from serving.container.payload import ClientError, CsvTable, check_accept, media_type, read_body
from serving.container.settings import ServerSettings
from serving.container.validation import Problem

JSON_TYPE = "application/json"
LINGER_SECONDS = 2.0  # how long a rejected connection keeps reading (and discarding) what the client still sends
LINGER_MAX_BYTES = 16 * 1024 * 1024
ROUTES = {"/ping": "GET", "/invocations": "POST"}


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    rows: int = 0
    invalid_scores: int = 0
    problems: int | None = None


class InferenceService:
    """The loaded model (or why there is none) and what a request does with it, free of HTTP framing."""

    def __init__(self, settings: ServerSettings, log: EventLog) -> None:
        self.settings, self.log = settings, log
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

    def score(self, model: ServedModel, body: bytes, kind: str) -> Answer:
        parsed = read_body(body, kind, self.settings.max_rows)
        if isinstance(parsed, CsvTable):
            features, problems = model.schema.from_csv(parsed.header, parsed.rows)
        else:
            features, problems = model.schema.from_records(parsed.records)
        if features is None:
            raise ClientError(400, problems or [Problem(None, None, "no records to score")])
        scores = model.scorer.probabilities(features)
        valid = np.isfinite(scores) & (scores >= 0.0) & (scores <= 1.0)
        shown = [float(s) if ok else None for s, ok in zip(scores.tolist(), valid.tolist(), strict=True)]
        flags = [None if s is None else s >= model.threshold for s in shown]
        body_out = {
            "model": model.name,
            "model_version": model.version,
            "scores": shown,
            "threshold": model.threshold,
            "flags": flags,
        }
        return Answer(200, body_out, rows=len(shown), invalid_scores=int((~valid).sum()))


class InferenceServer(ThreadingHTTPServer):
    daemon_threads = True  # a hung client connection never blocks shutdown
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: InferenceService) -> None:
        self.service = service
        super().__init__(address, InferenceHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver would print a traceback (with the peer's address) to stderr; a reset connection is routine
        error = sys.exc_info()[1]
        self.service.log.event("connection_error", error=type(error).__name__)


class InferenceHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True
    timeout = 60  # seconds a connection may sit idle or trickle a body; SageMaker's own limit is 60 s
    server_version = "clinops-inference"
    server: InferenceServer

    def __getattr__(self, name: str) -> Any:
        # Any method, however spelled, is routed: unknown ones get 405 rather than http.server's 501.
        if name.startswith("do_"):
            return self._route
        raise AttributeError(name)

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the base class would write request lines and client addresses to stderr."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's own rejections (bad request line, oversized headers) as JSON, echoing nothing."""
        self.server.service.log.event("rejected_request", endpoint=self.server.service.log.endpoint, status=code)
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # an unparsable request line: answer with a status line anyway
            self.request_version = "HTTP/1.0"
        self._send(code, {"error": HTTPStatus(code).phrase})

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _route(self) -> None:
        path = self.path.split("?", 1)[0]
        method = ROUTES.get(path)
        if path == "/invocations":
            self._invocation()
        elif method is None:
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
        try:
            answer = self._answer(service, model)
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
        if answer.status >= 400 and not self._body_read:
            self._reject_unread(answer.status, answer.body, {"Allow": "POST"} if answer.status == 405 else None)
        else:
            self._send(answer.status, answer.body)
        service.log.invocation(
            model=model.name if model else None,
            model_version=model.version if model else None,
            status=answer.status,
            rows=answer.rows,
            invalid_scores=answer.invalid_scores,
            latency_ms=(time.perf_counter() - started) * 1000,
            problems=answer.problems,
        )

    def _answer(self, service: InferenceService, model: ServedModel | None) -> Answer:
        if model is None:
            return Answer(503, {"error": "Service Unavailable", "reason": service.unavailable_reason})
        try:
            if self.command != "POST":
                raise ClientError.about_body(405, "invocations are POST requests")
            kind = media_type(self.headers.get("Content-Type"))
            check_accept(self.headers.get("Accept"))
            body = self._read_body(service.settings.max_body_bytes)
            return service.score(model, body, kind)
        except ClientError as error:
            return service.problems_answer(error)

    def _read_body(self, limit: int) -> bytes:
        if "Transfer-Encoding" in self.headers:
            raise ClientError.about_body(411, "chunked bodies are not accepted; send Content-Length")
        declared = self.headers.get("Content-Length")
        if declared is None:
            raise ClientError.about_body(411, "Content-Length is required")
        if not declared.strip().isdigit():
            raise ClientError.about_body(400, "Content-Length is not a number")
        length = int(declared)
        if length > limit:
            raise ClientError.about_body(413, f"body of {length} bytes; at most {limit} are allowed")
        body = self.rfile.read(length)
        self._body_read = True
        if len(body) != length:
            self.close_connection = True
            raise ClientError.about_body(400, "the body ended before Content-Length bytes arrived")
        return body


def build_server(settings: ServerSettings, log: EventLog | None = None) -> InferenceServer:
    """Load the bundle (or record why not), then bind; the server answers /ping either way."""
    service = InferenceService(settings, log or EventLog(settings.endpoint))
    service.load(settings.model_dir)
    return InferenceServer((settings.host, settings.port), service)


def serve(
    settings: ServerSettings, log: EventLog | None = None, on_ready: Callable[[InferenceServer], None] | None = None
) -> None:
    """Serve until SIGTERM or SIGINT (SageMaker stops a container with SIGTERM). Owns the process: sets its
    thread pools and garbage collector for serving."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # one request, one core: OpenMP spin-waits hurt tail latency on small instances
    server = build_server(settings, log)
    gc.collect()
    gc.freeze()  # the model's objects leave the collector's generations: shorter pauses under load

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    server.service.log.event("listening", endpoint=server.service.log.endpoint, host=host, port=port)
    if on_ready is not None:
        on_ready(server)
    with server:
        server.serve_forever(poll_interval=0.5)
