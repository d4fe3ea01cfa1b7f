"""`clinops serve --local MODEL`: the inference container's server on this machine, on loopback only.

Mounted into the `clinops` CLI with `app.add_typer(clinops.cli.serve.app)`; standalone:
`python -m clinops.cli.serve serve --local MODEL`. Structured log lines go to stdout, as in the
container; the banner goes to stderr. Only a model the pipeline passed (PendingManualApproval) or a reviewer
approved is served; a Rejected run, or one interrupted before its decision, needs `--allow-unapproved`.

Exit codes: 0 stopped cleanly, 1 refused (the model is not PendingManualApproval or Approved), 2 MODEL names
nothing servable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from clinops.exitcodes import ExitCode
from serving.container.locate import Located, LocateError, locate
from serving.container.settings import ServerSettings, SettingsError

app = typer.Typer(add_completion=False, help="Serve a model bundle behind SageMaker's container contract.")
SERVABLE = ("PendingManualApproval", "Approved")  # anything else needs --allow-unapproved


def run_verdict(located: Located) -> str:
    """What the pipeline (or the registry's reviewer) decided about the model at `located`.

    A local run keeps its decision in <run>/decision/decision.json beside <run>/model/; a run interrupted or
    crashed before the decision has a model but no decision. A registry version carries its approval tag.
    """
    if "MLflow registry" in located.source:
        tag = re.search(r"\(([^()]*)\)$", located.source)
        return tag.group(1) if tag else "no approval tag"
    for run_dir in (located.path.parent, located.path):
        decision = run_dir / "decision" / "decision.json"
        if decision.is_file():
            try:
                return str(json.loads(decision.read_text())["verdict"])
            except (OSError, ValueError, KeyError, TypeError):
                return "unreadable decision"
    return "no decision on record (the run was interrupted or failed before deciding)"


@app.command()
def serve(
    local: Annotated[
        str | None,
        typer.Option(
            "--local",
            metavar="MODEL",
            help="bundle directory, pipeline run directory, models:/NAME/VERSION "
            "or a model name (its newest local pipeline run)",
        ),
    ] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="port on 127.0.0.1 (0: any free port)")] = 8080,
    out: Annotated[Path, typer.Option(help="the pipeline's output directory (runs and MLflow store)")] = Path("out"),
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI for models:/ (default: OUT/mlflow)")
    ] = None,
    allow_unapproved: Annotated[
        bool,
        typer.Option(
            "--allow-unapproved",
            help="serve a model that is not PendingManualApproval or Approved (Rejected, interrupted, no decision)",
        ),
    ] = False,
) -> None:
    """Serve MODEL on http://127.0.0.1:PORT (/ping, /invocations) until Ctrl-C."""
    if local is None:
        typer.echo(
            "error: only --local MODEL serving starts here; on SageMaker the image's entrypoint serves /opt/ml/model",
            err=True,
        )
        raise typer.Exit(ExitCode.UNUSABLE_INPUT)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    scratch = Path(tempfile.mkdtemp(prefix="clinops-serve-"))
    try:
        located = locate(local, out_dir=out, tracking_uri=tracking_uri, scratch=scratch)
        settings = ServerSettings.from_env(model_dir=located.path, host="127.0.0.1", port=port)
    except (LocateError, SettingsError) as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
    verdict = run_verdict(located)
    if verdict not in SERVABLE:
        if not allow_unapproved:
            shutil.rmtree(scratch, ignore_errors=True)
            typer.echo(
                f"refused: {located.source} is not servable: verdict {verdict}. Only {' or '.join(SERVABLE)} "
                "models are served; pass --allow-unapproved to serve it anyway (never for patients).",
                err=True,
            )
            raise typer.Exit(ExitCode.FAILED)
        typer.echo(f"WARNING: serving a model whose verdict is {verdict} (--allow-unapproved)", err=True)
    from serving.container.app import InferenceServer
    from serving.container.app import serve as run_server  # heavy imports after argument checks keep --help fast

    def announce(server: InferenceServer) -> None:
        host, bound = (str(part) for part in server.server_address[:2])
        model, reason = server.service.model, server.service.unavailable_reason
        state = f"{model.name} {model.version}" if model else f"NO MODEL ({reason})"
        typer.echo(
            f"serving {state} from {located.source}\n  http://{host}:{bound}/ping  "
            f"http://{host}:{bound}/invocations  (Ctrl-C stops)",
            err=True,
        )

    try:
        run_server(settings, on_ready=announce)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    root = typer.Typer(add_completion=False)
    root.add_typer(app)
    root()


if __name__ == "__main__":
    main()
