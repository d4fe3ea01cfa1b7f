"""`clinops cds`: the CDS Hooks service on this machine, in front of the local inference container.

    clinops cds serve --local MODEL        the inference container and the CDS service on loopback
    clinops cds hook MODEL                 send a synthetic patient's hook, signed as the local EHR; print the card
    clinops cds circuit MODEL --open       write an open breaker record (the service shows the fallback card)
    clinops cds demo --local MODEL         all of it in one process: risk card, open circuit, fallback card

State (the local EHR's key, breaker records, evidence) lives in --state-dir (default out/cds-local).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from clinops.config import ConfigError, StackConfig, load_from_stack_file
from clinops.exitcodes import ExitCode

app = typer.Typer(add_completion=False, no_args_is_help=True, help="The CDS Hooks service (clinicians' EHR) locally.")

StateDir = Annotated[Path, typer.Option(help="local EHR key, breaker records and evidence")]
Stack = Annotated[str, typer.Option(help="stack whose models[].cds configures the service")]


def _config(stack: str) -> StackConfig:
    try:
        return load_from_stack_file(stack)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None


def _cds_model(config: StackConfig, model: str) -> Any:
    found = next((m for m in config.models if m.name == model), None)
    if found is None or found.cds is None:
        served = [m.name for m in config.models if m.cds is not None]
        typer.echo(f"error: stack {config.stack} configures no CDS service for {model}; fix: one of {served}", err=True)
        raise typer.Exit(ExitCode.UNUSABLE_INPUT)
    return found


def _start_inference(local: str, out: Path, scratch: Path) -> tuple[Any, str]:
    from serving.container.app import build_server
    from serving.container.locate import LocateError, locate
    from serving.container.logs import EventLog
    from serving.container.settings import ServerSettings, SettingsError

    try:
        located = locate(local, out_dir=out, tracking_uri=None, scratch=scratch)
        settings = ServerSettings.from_env(model_dir=located.path, host="127.0.0.1", port=0)
    except (LocateError, SettingsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
    server = build_server(settings, EventLog("local", open(os.devnull, "w")))  # noqa: SIM115 (lives with the server)
    if server.service.model is None:
        typer.echo(f"error: the model cannot be served: {server.service.unavailable_reason}", err=True)
        raise typer.Exit(ExitCode.UNUSABLE_INPUT)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def send_hook(config: StackConfig, model: str, url: str, state_dir: Path, row: int, omit: list[str]) -> dict[str, Any]:
    """A synthetic patient's hook request for MODEL, signed as the local EHR; the service's JSON answer."""
    from pipelines.contracts import builtin_contract_path, load_contract
    from pipelines.contracts.fhirmap import builtin_mapping_path, load_mapping
    from pipelines.data.fhir import hook_request, resources_for_row
    from pipelines.data.sepsis import generate_sepsis
    from pipelines.data.synthetic import generate_readmission
    from serving.cds.local import LocalEhr

    cfg = _cds_model(config, model)
    generate = generate_readmission if model == "readmission-risk" else generate_sepsis
    rows = generate(row + 1, seed=42).to_dict("records")
    contract, mapping = load_contract(builtin_contract_path(model)), load_mapping(builtin_mapping_path(model))
    synthetic = resources_for_row(rows[row], mapping, contract)
    request = hook_request(cfg.cds.hook, cfg.cds.prefetch, synthetic, omit=tuple(omit))
    path = f"/cds-services/{cfg.cds_service_id}"
    token = LocalEhr.load_or_create(state_dir).token(url.rstrip("/") + path)
    req = urllib.request.Request(
        url.rstrip("/") + path,
        data=json.dumps(request).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "error": json.loads(exc.read() or b"{}").get("error")}


def print_cards(answer: dict[str, Any]) -> bool:
    if "cards" not in answer:
        typer.echo(f"no cards: {answer}")
        return False
    for card in answer["cards"]:
        typer.echo(f"[{card['indicator']}] {card['summary']}\n  source: {card['source']['label']}")
        for paragraph in card["detail"].split("\n\n"):
            typer.echo(f"  {paragraph}")
        for link in card.get("links", []):
            typer.echo(f"  link: {link['label']} <{link['url']}>")
    return True


@dataclass(frozen=True)
class _LocalService:
    name: str  # the model
    config: StackConfig
    url: str  # the CDS service on loopback
    inference_url: str
    thread: threading.Thread  # the CDS server's


@contextmanager
def _local_service(
    local: str,
    model: str | None,
    stack: str,
    out: Path,
    state_dir: Path,
    *,
    port: int,
    log: Any = None,
    prepare: Callable[[StackConfig, str], object] | None = None,
) -> Iterator[_LocalService]:
    """The inference container and MODEL's CDS service on loopback (`prepare` runs before they start), shut
    down and cleaned up on exit."""
    from serving.cds.local import start_local

    name = model or local
    config = _config(stack)
    _cds_model(config, name)
    if prepare is not None:
        prepare(config, name)
    scratch = Path(tempfile.mkdtemp(prefix="clinops-cds-"))
    try:
        inference, inference_url = _start_inference(local, out, scratch)
        try:
            server, _, thread = start_local(config, name, inference_url, state_dir, port=port, log=log)
            try:
                yield _LocalService(name, config, f"http://127.0.0.1:{server.server_address[1]}", inference_url, thread)
            finally:
                server.shutdown()
        finally:
            inference.shutdown()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@app.command("serve")
def serve_cmd(
    local: Annotated[str, typer.Option("--local", metavar="MODEL", help="model name, run directory or bundle")],
    stack: Stack = "dev",
    port: Annotated[int, typer.Option(min=0, max=65535, help="CDS service port on 127.0.0.1")] = 8090,
    model: Annotated[str | None, typer.Option(help="the model's name, when --local is a path")] = None,
    out: Annotated[Path, typer.Option(help="the pipeline's output directory")] = Path("out"),
    state_dir: StateDir = Path("out/cds-local"),
) -> None:
    """Serve MODEL's CDS Hooks service on http://127.0.0.1:PORT/cds-services until Ctrl-C."""
    with _local_service(local, model, stack, out, state_dir, port=port) as service:
        typer.echo(
            f"CDS Hooks service for {service.name}: {service.url}/cds-services (model at {service.inference_url}); "
            f"try: clinops cds hook {service.name} --url {service.url}",
            err=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            service.thread.join()


@app.command("hook")
def hook_cmd(
    model: Annotated[str, typer.Argument(help="model whose service to call")],
    url: Annotated[str, typer.Option(help="the CDS service's base URL")] = "http://127.0.0.1:8090",
    stack: Stack = "dev",
    row: Annotated[int, typer.Option(min=0, help="which synthetic patient")] = 0,
    omit: Annotated[list[str], typer.Option(help="prefetch keys to leave out (read from fhirServer instead)")] = [],  # noqa: B006
    state_dir: StateDir = Path("out/cds-local"),
) -> None:
    """Send a synthetic patient's hook request, signed as the local EHR, and print the cards."""
    ok = print_cards(send_hook(_config(stack), model, url, state_dir, row, omit))
    raise typer.Exit(ExitCode.OK if ok else ExitCode.FAILED)


@app.command("circuit")
def circuit_cmd(
    model: Annotated[str, typer.Argument()],
    open_: Annotated[bool, typer.Option("--open/--close", help="open: a rollback is under way")] = True,
    stack: Stack = "dev",
    state_dir: StateDir = Path("out/cds-local"),
) -> None:
    """Write the local breaker record the service reads (the breaker's own SSM format)."""
    from serving.cds.local import pinned_version, write_circuit

    config = _config(stack)
    _cds_model(config, model)
    path = write_circuit(state_dir, stack, model, pinned_version(config, model), open_=open_)
    typer.echo(f"circuit {'open' if open_ else 'closed'} for {model}: {path}")


@app.command("demo")
def demo_cmd(
    local: Annotated[str, typer.Option("--local", metavar="MODEL", help="model name, run directory or bundle")],
    stack: Stack = "dev",
    model: Annotated[str | None, typer.Option(help="the model's name, when --local is a path")] = None,
    out: Annotated[Path, typer.Option(help="the pipeline's output directory")] = Path("out"),
    state_dir: StateDir = Path("out/cds-local"),
) -> None:
    """A discharge hook for a synthetic patient -> the risk card; then the circuit opens -> the fallback card."""
    from serving.cds.local import GUARDRAIL_TTL_SECONDS, pinned_version, write_circuit

    def circuit(config: StackConfig, name: str, *, open_: bool) -> None:
        write_circuit(state_dir, stack, name, pinned_version(config, name), open_=open_)

    with _local_service(
        local, model, stack, out, state_dir, port=0, log=_quiet_log(), prepare=lambda c, n: circuit(c, n, open_=False)
    ) as service:
        name, config = service.name, service.config
        typer.echo(f"-- hook to {name} (circuit closed)")
        first = send_hook(config, name, service.url, state_dir, 0, [])
        risk = print_cards(first) and "model unavailable" not in first["cards"][0]["summary"]
        circuit(config, name, open_=True)
        time.sleep(GUARDRAIL_TTL_SECONDS)  # the service re-reads the breaker's record after its cache interval
        typer.echo(f"-- hook to {name} (circuit open)")
        second = send_hook(config, name, service.url, state_dir, 0, [])
        fell_back = print_cards(second) and "model unavailable" in second["cards"][0]["summary"]
        circuit(config, name, open_=False)
    raise typer.Exit(ExitCode.OK if risk and fell_back else ExitCode.FAILED)


def _quiet_log() -> Any:
    from serving.cds.logs import CdsLog

    return CdsLog(open(os.devnull, "w"))
