"""Fixtures: a real bundle written by the pipeline's own steps, and the server on an ephemeral loopback port."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.container.app import InferenceServer, build_server
from serving.container.logs import EventLog
from serving.container.settings import ServerSettings
from tests.pipelines.bundles import write_pipeline_bundle
from tests.serving.container.client import Client

TEST_MAX_BODY = 64 * 1024  # small limits so the 413 tests send little
TEST_MAX_ROWS = 500


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("pipeline")
    return write_pipeline_bundle(work / "model", work)


class LogLines(io.StringIO):
    """The server's stdout, kept in memory; written under the EventLog's lock."""

    def lines(self) -> list[str]:
        return self.getvalue().splitlines()


class Running:
    def __init__(self, server: InferenceServer, log: LogLines) -> None:
        self.server, self.log = server, log
        self.port = server.server_address[1]
        self.client = Client(self.port)
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def invocations_after(
        self, start: int, count: int, where: Callable[[dict[str, Any]], bool] = lambda e: True, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Invocation log lines after line `start` that match `where`, waiting for `count` of them (a line is
        written after its reply, so it may land a moment after the client has read the reply)."""
        deadline = time.monotonic() + timeout
        while True:
            events = [json.loads(line) for line in self.log.lines()[start:]]
            found = [e for e in events if e["event"] == "invocation" and where(e)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def start_server(model_dir: Path, **settings: object) -> Running:
    log = LogLines()
    options = {
        "model_dir": model_dir,
        "port": 0,
        "endpoint": "test-endpoint",
        "max_body_bytes": TEST_MAX_BODY,
        "max_rows": TEST_MAX_ROWS,
        **settings,
    }
    return Running(build_server(ServerSettings(**options), EventLog("test-endpoint", log)), log)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def running(bundle_dir: Path) -> Iterator[Running]:
    server = start_server(bundle_dir)
    yield server
    server.stop()


@pytest.fixture
def client(running: Running) -> Client:
    return running.client
