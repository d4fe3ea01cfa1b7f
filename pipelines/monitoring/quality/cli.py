"""`clinops quality`: the periodic backtest. Joins adjudicated outcomes to captured inferences by inference ID,
computes rolling-window AUC, Brier and calibration (overall and per subgroup) and judges decay against the
model's evaluation. Exit codes: 0 no decay, 1 decay, 2 unusable input or no window with enough labels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from clinops.exitcodes import ExitCode
from clinops.terminal import make_console
from pipelines.errors import InputError
from pipelines.monitoring.drift.baseline import load_baseline
from pipelines.monitoring.drift.report import json_safe
from pipelines.monitoring.drift.shard import DEFAULT_VARIANT
from pipelines.monitoring.drift.sources import read_current
from pipelines.monitoring.quality.decay import QualityResult, ReferenceMetrics, judge, load_reference
from pipelines.monitoring.quality.outcomes import clean_outcomes, join_outcomes, read_outcome_frames
from pipelines.monitoring.quality.windows import QualitySettings, rolling_windows

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
console = make_console()
err = make_console(stderr=True)


@app.callback()
def main() -> None:
    """Model quality on delayed, adjudicated outcomes."""  # a group even with one command: `quality run`


def _print(result: QualityResult) -> None:
    table = Table(title=f"{result.model} / {result.variant}: {result.verdict}")
    for column in ("window", "predictions", "labelled", "events", "AUC (95% CI)", "O/E", "slope", "status"):
        table.add_column(column)
    for w in result.windows:
        m = w.metrics
        auc = f"{m['auc']:.3f} ({m['auc_ci95'][0]:.3f}-{m['auc_ci95'][1]:.3f})" if m else "-"
        oe = f"{m['observed_expected']:.2f}" if m and not math.isnan(m["observed_expected"]) else "-"
        table.add_row(
            f"{w.start[:10]} to {w.end[:10]}",
            str(w.inferences),
            str(w.labelled),
            str(w.positives),
            auc,
            oe,
            f"{m['calibration_slope']:.2f}" if m else "-",
            w.status,
        )
    console.print(table)
    for line in result.reasons:
        console.print(f"[bold red]decay:[/] {line}")
    for line in result.warnings:
        console.print(f"[yellow]warning:[/] {line}")


def evaluate(
    inferences: pd.DataFrame,
    outcome_source: str,
    reference: ReferenceMetrics | None,
    settings: QualitySettings,
    *,
    model: str,
    variant: str,
    contract: object = None,
    threshold: float | None = None,
    as_of: pd.Timestamp | None = None,
) -> QualityResult:
    joined = join_outcomes(inferences, clean_outcomes(read_outcome_frames(outcome_source)))
    windows = rolling_windows(
        joined.labelled,
        joined.inferences,
        settings,
        as_of=as_of,
        contract=contract,  # type: ignore[arg-type]
        threshold=threshold,
    )
    return judge(windows, reference, settings, model=model, variant=variant, counts=joined.counts)


@app.command("run")
def run(
    baseline_path: Path = typer.Option(
        ...,
        "--baseline",
        help="model bundle (or its baseline.json): feature order, contract, model name, operating threshold",
    ),
    capture: str = typer.Option(..., "--capture", help="capture folder, s3:// prefix, or a CSV of inferences"),
    outcomes: str = typer.Option(
        ..., "--outcomes", help="outcome CSV (inference_id, outcome, outcome_time), a folder of them or an s3:// prefix"
    ),
    baseline_metrics: Path | None = typer.Option(None, "--baseline-metrics", help="the pipeline's evaluation.json"),
    window_days: int = typer.Option(30, help="window length"),
    step_days: int = typer.Option(7, help="distance between window ends"),
    windows: int = typer.Option(6, help="number of windows"),
    label_lag_days: int = typer.Option(45, help="newest window ends this long before --as-of"),
    as_of: str | None = typer.Option(None, help="ISO date; default: the newest captured inference"),
    variant: str | None = typer.Option(None, "--variant"),
    out: Path = typer.Option(Path("out/quality"), "--out"),
    publish: bool = typer.Option(False, "--publish", help="send CloudWatch metrics (namespace clinops/quality)"),
    create_alarms: bool = typer.Option(False, "--create-alarms", help="create or update the decay alarms"),
    alarm_action: list[str] = typer.Option([], "--alarm-action", help="SNS topic ARN(s) for the alarms"),
) -> None:
    """Backtest the deployed model on adjudicated outcomes and judge decay."""
    settings = QualitySettings(
        window_days=window_days, step_days=step_days, windows=windows, label_lag_days=label_lag_days
    )
    try:
        baseline = load_baseline(baseline_path)
        reference = load_reference(baseline_metrics) if baseline_metrics else None
        batch = read_current(capture, baseline.columns)
        frame = batch.frame
        if not len(frame) or "inference_id" not in frame.columns:
            raise InputError(f"no captured inferences with inference ids in {capture}")
        variants = (
            frame["variant"].fillna(DEFAULT_VARIANT)
            if "variant" in frame.columns
            else pd.Series(DEFAULT_VARIANT, index=frame.index)
        )
        wanted = [variant] if variant else sorted(variants.unique())
        stamp = pd.Timestamp(as_of, tz="UTC") if as_of else None
        results = [
            evaluate(
                frame[variants == v],
                outcomes,
                reference,
                settings,
                model=baseline.model_name,
                variant=v,
                contract=baseline.contract,
                threshold=baseline.operating_threshold,
                as_of=stamp,
            )
            for v in wanted
        ]
    except (InputError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
    for result in results:
        folder = out if len(results) == 1 else out / result.variant
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "quality.json").write_text(json.dumps(json_safe(result.to_dict()), indent=2) + "\n")
        _print(result)
        if publish or create_alarms:
            import boto3

            from pipelines.monitoring.quality.metrics import alarm_specs, ensure_alarms
            from pipelines.monitoring.quality.metrics import publish as send

            cloudwatch = boto3.client("cloudwatch")
            if publish:
                console.print(f"published {send(result, cloudwatch)} metrics to CloudWatch")
            if create_alarms:
                names = ensure_alarms(cloudwatch, alarm_specs(result.model, result.variant, alarm_action))
                console.print(f"alarms: {', '.join(names)}")
    if any(r.verdict == "insufficient-data" for r in results):
        raise typer.Exit(ExitCode.UNUSABLE_INPUT)
    raise typer.Exit(ExitCode.FAILED if any(r.verdict == "decay" for r in results) else ExitCode.OK)
