"""`clinops serve --local MODEL`: the inference container's server on this machine, on loopback only.

Mounted into the `clinops` CLI with `app.add_typer(serving.container.cli.app)`; standalone:
`python -m serving.container.cli serve --local MODEL`. Structured log lines go to stdout, as in the
container; the banner goes to stderr.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from serving.container.locate import LocateError, locate
from serving.container.settings import ServerSettings, SettingsError

EXIT_UNUSABLE = 2
app = typer.Typer(add_completion=False, help="Serve a model bundle behind SageMaker's container contract.")


@app.command()
def serve(
    local: Annotated[str | None, typer.Option("--local", metavar="MODEL",
                                              help="bundle directory, pipeline run directory, models:/NAME/VERSION "
                                                   "or a model name (its newest local pipeline run)")] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="port on 127.0.0.1 (0: any free port)")] = 8080,
    out: Annotated[Path, typer.Option(help="the pipeline's output directory (runs and MLflow store)")] = Path("out"),
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI for models:/ (default: OUT/mlflow)")]
    = None,
    workers: Annotated[int | None, typer.Option(min=1, help="worker processes (default: "
                                                            "SAGEMAKER_MODEL_SERVER_WORKERS, else one per CPU)")]
    = None,
) -> None:  # fmt: skip
    """Serve MODEL on http://127.0.0.1:PORT (/ping, /invocations) until Ctrl-C."""
    if local is None:
        typer.echo("error: only --local MODEL serving starts here; on SageMaker the image's entrypoint serves "
                   "/opt/ml/model", err=True)  # fmt: skip
        raise typer.Exit(EXIT_UNUSABLE)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    scratch = Path(tempfile.mkdtemp(prefix="clinops-serve-"))
    try:
        located = locate(local, out_dir=out, tracking_uri=tracking_uri, scratch=scratch)
        overrides: dict[str, object] = {"workers": workers} if workers else {}
        settings = ServerSettings.from_env(model_dir=located.path, host="127.0.0.1", port=port, **overrides)
    except (LocateError, SettingsError) as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNUSABLE) from None
    from serving.container.app import InferenceService
    from serving.container.app import serve as run_server  # heavy imports after argument checks keep --help fast

    def announce(service: InferenceService, address: tuple[str, int]) -> None:
        host, bound = address
        model, reason = service.model, service.unavailable_reason
        state = f"{model.name} {model.version}" if model else f"NO MODEL ({reason})"
        typer.echo(f"serving {state} from {located.source} with {settings.workers} worker(s)\n"
                   f"  http://{host}:{bound}/ping  http://{host}:{bound}/invocations  (Ctrl-C stops)",
                   err=True)  # fmt: skip

    try:
        code = run_server(settings, on_ready=announce)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    raise typer.Exit(code)


def main() -> None:
    root = typer.Typer(add_completion=False)
    root.add_typer(app)
    root()


if __name__ == "__main__":
    main()
