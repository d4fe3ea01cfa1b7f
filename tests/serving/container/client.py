"""A small HTTP client for the tests: real sockets on loopback, nothing mocked."""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any

READMISSION_ROW: dict[str, Any] = {
    "age": 71,
    "sex": "F",
    "payer": "Medicare",
    "admission_type": "Emergency",
    "length_of_stay_days": 6,
    "prior_admissions_12m": 2,
    "ed_visits_6m": 1,
    "charlson_index": 4,
    "num_medications": 12,
    "hba1c": None,
    "creatinine": 1.3,
    "hemoglobin": 11.2,
    "sodium": 137.0,
    "albumin": 3.1,
    "discharge_disposition": "SNF",
}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 20.0,
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()

    def post(self, body: bytes | str, content_type: str | None = "application/json", **headers: str) -> Reply:
        data = body.encode() if isinstance(body, str) else body
        all_headers = {"Content-Type": content_type} if content_type is not None else {}
        return self.request("POST", "/invocations", data, {**all_headers, **headers})

    def post_json(self, document: Any) -> Reply:
        return self.post(json.dumps(document))

    def ping(self) -> Reply:
        return self.request("GET", "/ping")

    def raw(self, data: bytes, timeout: float = 10.0, half_close: bool = False) -> bytes:
        """Send bytes as they are (for framing the http.client would refuse to produce); read until close."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(data)
            if half_close:  # the client has nothing more to send: the server's read ends short
                sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def problems_of(reply: Reply) -> list[tuple[int | None, str | None, str]]:
    return [(p["row"], p["field"], p["problem"]) for p in reply.json["problems"]]
