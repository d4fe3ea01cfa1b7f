"""`clinops serve --local MODEL`: the inference container's server on this machine, on loopback only.
`clinops score --local MODEL --data CSV --out CSV`: the same model and scoring code over a CSV extract (`batch`).

Mounted into the `clinops` CLI lazily (`clinops.cli.LAZY_COMMANDS`: `app` as `serve`, `score_app` as `score`);
standalone: `python -m clinops.cli.serve serve --local MODEL`. Structured log lines go to stdout, as in the
container; the banner goes to stderr. Only a model the pipeline passed (PendingManualApproval) or a reviewer
approved is served; a Rejected run, or one interrupted before its decision, needs `--allow-unapproved`.

`serve` exit codes: 0 stopped cleanly (drained), 1 refused (the model is not PendingManualApproval or Approved)
or requests outlived the drain, 2 MODEL names nothing servable.
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
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="worker processes (default: SAGEMAKER_MODEL_SERVER_WORKERS, else one per CPU)"),
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
        overrides: dict[str, object] = {"workers": workers} if workers else {}
        settings = ServerSettings.from_env(None, model_dir=located.path, host="127.0.0.1", port=port, **overrides)
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
    from serving.container.app import InferenceService
    from serving.container.workers import serve as run_server  # heavy imports after argument checks keep --help fast

    def announce(service: InferenceService, address: tuple[str, int]) -> None:
        host, bound = address
        model, reason = service.model, service.unavailable_reason
        state = f"{model.name} {model.version}" if model else f"NO MODEL ({reason})"
        typer.echo(
            f"serving {state} from {located.source} with {settings.workers} worker(s)\n"
            f"  http://{host}:{bound}/ping  http://{host}:{bound}/invocations  (Ctrl-C stops)",
            err=True,
        )

    try:
        code = run_server(settings, on_ready=announce)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    raise typer.Exit(code)


score_app = typer.Typer(add_completion=False, help="Score a CSV extract with a model bundle, as the endpoint would.")


@score_app.command("score")
def score(
    local: Annotated[
        str,
        typer.Option(
            "--local",
            metavar="MODEL",
            help="bundle directory, pipeline run directory, models:/NAME/VERSION or a "
            "model name (its newest local pipeline run)",
        ),
    ],
    data: Annotated[Path, typer.Option("--data", metavar="CSV", help="extract with a header row")],
    out: Annotated[Path, typer.Option("--out", metavar="CSV", help="scores, one line per input row")],
    id_column: Annotated[
        list[str] | None, typer.Option("--id-column", help="record id column(s) copied to the output (repeatable)")
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="scoring processes (default: one per CPU)")] = None,
    pipeline_out: Annotated[
        Path, typer.Option("--pipeline-out", help="the pipeline's output directory (runs and MLflow store)")
    ] = Path("out"),
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI for models:/")] = None,
) -> None:
    """Score every row of CSV into OUT: row number, id columns, score, flag, problem count. Prints counts only;
    exits 1 when a row could not be scored (its problems column says how many field problems), 2 when nothing ran."""
    import json

    from serving.container.artifact import ArtifactError
    from serving.container.batch import BatchError, score_file
    from serving.container.settings import available_cpus

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if not data.is_file():
        typer.echo(f"error: --data {data} is not a file; pass the CSV extract to score", err=True)
        raise typer.Exit(ExitCode.UNUSABLE_INPUT)
    scratch = Path(tempfile.mkdtemp(prefix="clinops-score-"))
    try:
        located = locate(local, out_dir=pipeline_out, tracking_uri=tracking_uri, scratch=scratch)
        summary = score_file(located.path, data, out, id_columns=id_column or [], workers=workers or available_cpus())
    except (LocateError, ArtifactError, BatchError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    typer.echo(json.dumps({"event": "batch_scored", "model_source": located.source, **summary.as_dict()}))
    if summary.rejected:
        typer.echo(f"{summary.rejected} of {summary.rows} rows not scored: see their problems column", err=True)
        raise typer.Exit(ExitCode.FAILED)


def main() -> None:
    root = typer.Typer(add_completion=False)
    root.add_typer(app)
    root()


if __name__ == "__main__":
    main()
