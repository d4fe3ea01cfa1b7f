"""End to end on loopback: a real bundle served by the inference container, the CDS service over HTTP in front
of it, a synthetic discharge hook -> the risk card from the served model; the circuit opened -> the fallback
card naming the fallback; an endpoint that hangs -> the fallback within the deadline. And the CLI."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinops.cli import app as cli
from clinops.config import load_from_stack_file
from serving.cds.local import pinned_version, start_local, write_circuit
from serving.cds.logs import CdsLog
from serving.container.app import build_server
from serving.container.logs import EventLog
from serving.container.settings import ServerSettings
from tests.conftest import REPO
from tests.pipelines.bundles import write_pipeline_bundle

MODEL = "readmission-risk"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("cds-pipeline")
    return write_pipeline_bundle(work / "model", work)


@pytest.fixture(scope="module")
def inference_url(bundle: Path) -> Iterator[str]:
    server = build_server(
        ServerSettings.from_env(model_dir=bundle, host="127.0.0.1", port=0), EventLog("t", io.StringIO())
    )
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def post(url: str, token: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def hook_body(config, model: str = MODEL) -> dict:
    from pipelines.contracts import builtin_contract_path, load_contract
    from pipelines.contracts.fhirmap import builtin_mapping_path, load_mapping
    from pipelines.data.fhir import hook_request, resources_for_row
    from pipelines.data.synthetic import generate_readmission

    cfg = next(m for m in config.models if m.name == model)
    row = generate_readmission(5, seed=9).to_dict("records")[1]
    synthetic = resources_for_row(
        row, load_mapping(builtin_mapping_path(model)), load_contract(builtin_contract_path(model))
    )
    return hook_request(cfg.cds.hook, cfg.cds.prefetch, synthetic)


def test_discharge_hook_gets_the_served_models_card_then_the_fallback_when_the_circuit_opens(
    inference_url: str, tmp_path: Path
) -> None:
    config = load_from_stack_file("dev", REPO)
    server, ehr, _ = start_local(config, MODEL, inference_url, tmp_path, port=0, log=CdsLog(io.StringIO()))
    url = f"http://127.0.0.1:{server.server_address[1]}/cds-services/{MODEL}"
    try:
        status, answer = post(url, ehr.token(url), hook_body(config))
        card = answer["cards"][0]
        assert status == 200 and "model unavailable" not in card["summary"]
        assert "**Model:** readmission-risk version" in card["detail"] and card["summary"].endswith("%)")
        # reasons from the served model's exact contributions: as many as the card shows, by readable name
        reasons = card["detail"].split("**Top contributing factors:** ")[1].split(".")[0].split("; ")
        assert len(reasons) == next(m for m in config.models if m.name == MODEL).cds.top_factors > 0
        assert all(r.endswith(("(raises risk)", "(lowers risk)")) for r in reasons)
        write_circuit(tmp_path, "dev", MODEL, pinned_version(config, MODEL), open_=True)
        time.sleep(0.6)  # the local guardrail view caches for 0.5 s
        status, answer = post(url, ehr.token(url), hook_body(config))
        card = answer["cards"][0]
        assert "use the HOSPITAL score" in card["summary"] and "rollback to version 2 is under way" in card["detail"]
    finally:
        server.shutdown()


def test_an_endpoint_that_accepts_but_never_answers_gets_the_fallback_in_time(tmp_path: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections (the kernel does), never reads or answers
    config = load_from_stack_file("dev", REPO)
    inference = f"http://127.0.0.1:{silent.getsockname()[1]}"
    server, ehr, _ = start_local(config, MODEL, inference, tmp_path, port=0, log=CdsLog(io.StringIO()))
    url = f"http://127.0.0.1:{server.server_address[1]}/cds-services/{MODEL}"
    try:
        body = hook_body(config)
        started = time.perf_counter()
        status, answer = post(url, ehr.token(url), body)
        elapsed = time.perf_counter() - started
        assert status == 200 and elapsed < 0.55
        assert "did not answer" in answer["cards"][0]["detail"]
    finally:
        server.shutdown()
        silent.close()


def test_cli_demo_shows_the_risk_card_then_the_fallback_card(bundle: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["cds", "demo", "--local", str(bundle), "--model", MODEL, "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    first, second = result.output.split("-- hook to readmission-risk (circuit open)")
    assert "30-day readmission risk at discharge:" in first and "model unavailable" not in first
    assert "Top contributing factors:" in first and "Top contributing factors:" not in second
    assert "model unavailable - use the HOSPITAL score" in second and "link: HOSPITAL score" in second


def test_cli_refuses_a_model_without_a_cds_service(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["cds", "circuit", "no-such-model", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2 and "configures no CDS service" in result.output
