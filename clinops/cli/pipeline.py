"""`clinops pipeline run --local`: the whole training pipeline on this machine, with a progress display.

Exit codes: 0 registered (PendingManualApproval), 1 the pipeline rejected the candidate or the data broke its
contract, 2 the input is unusable (missing or unreadable file, bad contract, one-class label, a subgroup too
small to judge).
"""

from __future__ import annotations

import logging
import math
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from clinops.exitcodes import ExitCode
from clinops.terminal import make_console
from pipelines.errors import InputError
from pipelines.settings import GateSettings, PipelineSettings, TrainingSettings, describe_relaxations, relaxed_limits

app = typer.Typer(help="Train, evaluate, judge and register clinical models.", no_args_is_help=True)
DEFAULT_ROWS = 50_000  # enough test rows that a fair model's subgroup AUCs rarely differ by chance
_VERDICT_STYLE = {"PendingManualApproval": "bold green", "Rejected": "bold red", "ContractViolated": "bold red"}


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _metrics_table(evaluation: dict[str, Any]) -> Table:
    table = Table(title=f"Test metrics ({evaluation['evaluated_on']})")
    for column in ("metric", "candidate", "logistic comparator"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key in ("auc", "pr_auc", "brier", "calibration_slope", "calibration_intercept", "ece"):
        table.add_row(key, _fmt(evaluation["candidate"][key]), _fmt(evaluation["comparator"][key]))
    point = evaluation["candidate"]["at_threshold"]
    for key in ("threshold", "sensitivity", "specificity", "ppv", "alert_rate"):
        table.add_row(f"at threshold: {key}", _fmt(point[key]), "")
    return table


def _fairness_tables(fairness: dict[str, Any], card_rows: list[dict[str, Any]]) -> list[Table]:
    tables = []
    for attribute, result in fairness["attributes"].items():
        gap = result["gaps"]["auc"]
        title = f"Fairness: {attribute}" + (f" (largest AUC gap {gap['value']:.3f})" if gap else "")
        verdicts = {r["group"]: r["verdict"] for r in card_rows if r["attribute"] == attribute}
        table = Table(title=title)
        for column in ("group", "n", "events", "AUC", "TPR", "FPR", "calib. gap", "verdict"):
            table.add_column(column, justify="left" if column in ("group", "verdict") else "right")
        for group, row in result["groups"].items():
            verdict = verdicts.get(group, row["status"])
            flagged = row["status"] == "too_small" or not verdict.startswith(("within", "not assessed"))
            style = "red" if flagged else "dim" if row["status"] != "ok" else None
            table.add_row(
                group,
                str(row["n"]),
                _fmt(row.get("positives")),
                _fmt(row.get("auc")),
                _fmt(row.get("tpr")),
                _fmt(row.get("fpr")),
                _fmt(row.get("calibration_gap")),
                verdict,
                style=style,
            )
        tables.append(table)
    return tables


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        return "an unnamed user"


@app.callback()
def pipeline() -> None:
    """Train, evaluate, judge and register clinical models (mounted as `clinops pipeline`)."""


@app.command()
def run(
    local: Annotated[bool, typer.Option("--local", help="run every step in this process (required)")] = False,
    data: Annotated[Path | None, typer.Option(help="CSV extract; default: synthetic data for --model")] = None,
    contract: Annotated[Path | None, typer.Option(help="contract YAML; default: the model's built-in one")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="model name (registry name and built-in contract); default: the --contract's name, "
            "else readmission-risk"
        ),
    ] = None,
    rows: Annotated[int, typer.Option(min=1, help="synthetic rows when no --data is given")] = DEFAULT_ROWS,
    seed: Annotated[int, typer.Option(help="seed for synthetic data, the split and the model")] = 7,
    out: Annotated[Path, typer.Option(help="where run files and the MLflow store go")] = Path("out"),
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI; default sqlite in OUT/mlflow")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="judge data freshness as of this date (YYYY-MM-DD); default today")
    ] = None,
    min_auc: Annotated[float, typer.Option()] = GateSettings().min_auc,
    max_subgroup_auc_gap: Annotated[float, typer.Option()] = GateSettings().max_subgroup_auc_gap,
    max_subgroup_tpr_gap: Annotated[float, typer.Option()] = GateSettings().max_subgroup_tpr_gap,
    max_subgroup_fpr_gap: Annotated[float, typer.Option()] = GateSettings().max_subgroup_fpr_gap,
    max_comparator_shortfall: Annotated[float, typer.Option()] = GateSettings().max_comparator_shortfall,
    max_regression: Annotated[float, typer.Option()] = GateSettings().max_regression,
    min_subgroup_size: Annotated[int, typer.Option()] = GateSettings().min_subgroup_size,
    relaxed_by: Annotated[
        str | None,
        typer.Option(help="who relaxes a gate below its default (recorded on the card and registry); default: OS user"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show step logs")] = False,
) -> None:
    """Validate -> split -> train -> evaluate -> fairness -> decide -> card -> register, in process."""
    console = make_console()  # paths, reasons and table rows stay whole in logs; a terminal keeps its layout
    console.soft_wrap = True  # paths and reasons stay on one line, copy-pastable
    if not local:
        console.print(
            "[red]error:[/] only --local runs start here; cloud runs are the SageMaker pipeline "
            "(pipelines.definitions.training). Add --local."
        )
        raise typer.Exit(ExitCode.UNUSABLE_INPUT)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    try:
        settings = PipelineSettings(
            gate=GateSettings(
                min_auc=min_auc,
                max_subgroup_auc_gap=max_subgroup_auc_gap,
                max_subgroup_tpr_gap=max_subgroup_tpr_gap,
                max_subgroup_fpr_gap=max_subgroup_fpr_gap,
                max_comparator_shortfall=max_comparator_shortfall,
                max_regression=max_regression,
                min_subgroup_size=min_subgroup_size,
            ),
            training=TrainingSettings(seed=seed),
        )
        as_of_date = date.fromisoformat(as_of) if as_of else None
    except ValueError as exc:
        console.print(f"[red]error:[/] invalid option: {exc}")
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
    relaxed = relaxed_limits(settings.gate)
    if relaxed:
        relaxed_by = relaxed_by or _os_user()
        console.print(
            f"[bold yellow]warning:[/] gate limits relaxed from the platform default: "
            f"{describe_relaxations(relaxed, relaxed_by)} (flagged on the card and the registry entry)",
            highlight=False,
        )
    from pipelines.local import STEPS, run_local  # heavy imports after argument parsing keep --help fast

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=len(STEPS))

        def on_progress(step: str, state: str) -> None:
            if state == "start":
                bar.update(task, description=f"{step} ...")
            else:
                bar.advance(task)
                bar.console.print(f"  [green]done[/] {step}" if state == "done" else f"  [dim]skipped {step}[/]")

        try:
            result = run_local(
                data=data,
                contract=contract,
                model=model,
                out_dir=out,
                settings=settings,
                rows=rows,
                seed=seed,
                tracking_uri=tracking_uri,
                progress=on_progress,
                as_of=as_of_date,
                relaxed_by=relaxed_by,
            )
        except InputError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None

    console.print(
        f"\nVerdict: [{_VERDICT_STYLE.get(result.verdict, 'bold yellow')}]{result.verdict}[/]"
        + (f" (stopped at {result.stopped_at})" if result.stopped_at else "")
    )
    for reason in result.reasons:
        console.print(f"  - {reason}", highlight=False)
    if result.evaluation:
        console.print(_metrics_table(result.evaluation))
    if result.fairness:
        for table in _fairness_tables(result.fairness, (result.card or {}).get("fairness", [])):
            console.print(table)
    if result.contract_report is not None and not result.contract_report.passed:
        console.print(f"Contract report: {result.run_dir / 'report' / 'contract-report.md'}")
    if result.card_path:
        console.print(f"Model card: {result.card_path} (charts: {result.card_path.with_suffix('.html')})")
    if result.registered_version:
        registry_name = result.contract.name if result.contract else result.model
        console.print(
            f"Registered in MLflow: {registry_name} version {result.registered_version} "
            "(tag approval_status=PendingManualApproval)"
        )
    console.print(f"MLflow run: {result.mlflow_run_id} at {result.tracking_uri}")
    console.print("Step times (s): " + ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items()))
    raise typer.Exit(result.exit_code)
