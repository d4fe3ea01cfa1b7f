"""No feature value, identifier or body fragment reaches the logs, in the process as it really runs.

The server runs as `clinops serve --local` does (a subprocess, stdout and stderr captured whole: structured
lines, Python logging, warnings, tracebacks, http.server's own messages). Requests carry distinctive values
in every place a value can hide: valid features, invalid features, identifiers as extra fields, field names,
malformed JSON, CSV cells and headers, oversized and mistyped bodies, query strings and request lines.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.serving.container.client import READMISSION_ROW, Client

VALID_VALUES = {"creatinine": 7.654321, "hemoglobin": 13.579246, "sodium": 141.2468, "albumin": 2.864213}
IDENTIFIERS = {
    "mrn": "MRN99173355",
    "patient_name": "Esmeralda Wintergreen-Oyelaran",
    "ssn": "123-45-6789",
    "date_of_birth": "1931-02-29",
}
INVALID_VALUE = "Zebulon-Quartermaine"
FIELD_NAME = "Ottoline_Featherstonehaugh"
SECRETS = [
    *(str(v) for v in VALID_VALUES.values()),
    *IDENTIFIERS.values(),
    INVALID_VALUE,
    FIELD_NAME,
    "99173355",
    "Wintergreen",
    "Quartermaine",
    "Featherstonehaugh",
]
INVOCATION_KEYS = {
    "event",
    "endpoint",
    "model",
    "model_version",
    "status",
    "rows",
    "invalid_scores",
    "latency_ms",
    "synthetic",
    "worker",
}


class ServerProcess:
    def __init__(self, bundle_dir: Path, work: Path) -> None:
        self.stdout_path, self.stderr_path = work / "stdout.log", work / "stderr.log"
        env = {
            **os.environ,
            "CLINOPS_ENDPOINT": "phi-test",
            "CLINOPS_MAX_BODY_BYTES": "65536",
            "PYTHONWARNINGS": "always",
        }
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen(
                # A bare test bundle has no pipeline decision: serving it takes the explicit flag.
                [
                    sys.executable,
                    "-m",
                    "clinops.cli.serve",
                    "serve",
                    "--local",
                    str(bundle_dir),
                    "--port",
                    "0",
                    "--allow-unapproved",
                ],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=err,
            )
        self.port = self._wait_for_port()

    def _wait_for_port(self, timeout: float = 90.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"http://127\.0\.0\.1:(\d+)/ping", self.stderr_path.read_text())
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.stderr_path.read_text()}")
            time.sleep(0.1)
        raise AssertionError("server did not announce its port")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def process(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(bundle_dir, tmp_path_factory.mktemp("phi"))
    yield server
    if server.process.poll() is None:
        server.process.kill()


def _send_everything(client: Client) -> list[int]:
    valid = {**READMISSION_ROW, **VALID_VALUES}
    mrn, ssn, name = IDENTIFIERS["mrn"], IDENTIFIERS["ssn"], IDENTIFIERS["patient_name"]
    valid_csv = ",".join(valid) + "\n" + ",".join("" if v is None else str(v) for v in valid.values()) + "\n"
    statuses = [
        client.post_json([valid, valid]).status,
        client.post_json({**valid, **IDENTIFIERS}).status,
        client.post_json({**valid, "sex": INVALID_VALUE, "payer": mrn, "age": ssn}).status,
        client.post_json({**valid, FIELD_NAME: name}).status,
        client.post(f'{{"mrn": "{mrn}", "age": ').status,
        client.post(f'{{"age": 71, "age": "{INVALID_VALUE}"}}').status,
        client.post(f"age,sex,{FIELD_NAME}\n{ssn},{INVALID_VALUE},{mrn}\n", "text/csv").status,
        client.post(valid_csv, "text/csv").status,
        client.post(json.dumps({**valid, "pad": name * 5000}), "application/json").status,
        client.post(json.dumps(valid), "text/plain").status,
        client.request("GET", f"/invocations?mrn={mrn}").status,
    ]
    client.request("POST", f"/{IDENTIFIERS['mrn']}", json.dumps(valid).encode(), {"Content-Type": "application/json"})
    client.raw(f"{IDENTIFIERS['patient_name']} {IDENTIFIERS['mrn']}\r\n\r\n".encode())
    return statuses


def test_no_value_or_identifier_reaches_any_log(process: ServerProcess) -> None:
    client = Client(process.port)
    assert client.ping().status == 200
    statuses = _send_everything(client)
    assert statuses == [200, 400, 400, 400, 400, 400, 400, 200, 413, 415, 405]
    assert process.stop() == 0  # SIGTERM: a clean shutdown, as SageMaker stops a container
    stdout, stderr = process.stdout_path.read_text(), process.stderr_path.read_text()
    for secret in SECRETS:
        assert secret not in stdout, f"{secret!r} reached stdout"
        assert secret not in stderr, f"{secret!r} reached stderr"
    events = [json.loads(line) for line in stdout.splitlines()]  # every stdout line is one JSON object
    invocations = [e for e in events if e["event"] == "invocation"]
    # one line per request; the server logs after replying, so a keep-alive client's next request can log first
    assert sorted(e["status"] for e in invocations) == sorted(statuses)
    for event in invocations:
        expected = INVOCATION_KEYS | ({"problems"} if 400 <= event["status"] < 500 else set())
        assert set(event) == expected
        assert event["endpoint"] == "phi-test"
    assert {e["event"] for e in events} == {
        "model_loaded",
        "listening",
        "invocation",
        "rejected_request",
        "worker_ready",
        "draining",
        "worker_stopped",
        "stopped",
    }
