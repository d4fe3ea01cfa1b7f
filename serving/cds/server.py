"""The CDS service on the standard library's threaded HTTP/1.1 server (the inference container's choice and
reasons: `serving/container/app.py`). Framing only: every decision is `CdsService.handle`. The base class's
request log (client addresses, paths with patient ids in a query) is silenced."""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from serving.cds.service import MAX_BODY_BYTES, CdsService, Response


class CdsServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: CdsService) -> None:
        self.service = service
        super().__init__(address, CdsHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.service.log.event("connection_error", error=type(sys.exc_info()[1]).__name__)


class CdsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 30
    server_version = "clinops-cds"
    server: CdsServer

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: request lines can carry patient ids."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _serve(self) -> None:
        declared = self.headers.get("Content-Length", "0").strip() or "0"
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES or "Transfer-Encoding" in self.headers:
            self.close_connection = True
            self._send(Response(413 if declared.isdigit() else 411, {"error": "send a Content-Length within limits"}))
            return
        body = self.rfile.read(int(declared)) if int(declared) else b""
        try:
            response = self.server.service.handle(self.command, self.path, dict(self.headers.items()), body)
        except Exception as exc:
            self.server.service.log.event("server_fault", error=type(exc).__name__)
            response = Response(500, {"error": "Internal Server Error"})
        self._send(response)

    def _send(self, response: Response) -> None:
        payload = b"" if response.body is None else json.dumps(response.body, separators=(",", ":")).encode()
        self.send_response(response.status)
        if response.body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")  # cards hold patient data
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
