"""`clinops drift`: compare captured inferences (or a table) with the model's training baseline.

Exit codes: 0 no drift, 1 drift detected, 2 unusable input or too few rows for a verdict (the same meaning
as the pipeline's exit 2: the input cannot produce a verdict).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.table import Table

from clinops.exitcodes import ExitCode
from clinops.terminal import make_console
from pipelines.errors import InputError
from pipelines.monitoring.drift.baseline import Baseline, load_baseline
from pipelines.monitoring.drift.detect import DriftResult, DriftSettings, compare
from pipelines.monitoring.drift.narrative import display_name, headline
from pipelines.monitoring.drift.report import write_html, write_json
from pipelines.monitoring.drift.shard import assign, merge_partials, processing_host, summarize_batch, write_partial
from pipelines.monitoring.drift.sources import (
    S3Location,
    list_local_files,
    list_s3_keys,
    read_capture_files,
    read_capture_s3,
    read_current,
    s3_client,
)
from pipelines.monitoring.drift.summary import Summary

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
console = make_console()
err = make_console(stderr=True)

BASELINE = typer.Option(..., "--baseline", help="baseline.json, or the model bundle directory holding it")
CONTRACT = typer.Option(None, "--contract", help="contract YAML (default: contract.yaml beside the baseline)")
OUT = typer.Option(Path("out/drift"), "--out", help="directory for drift.json and drift-report.html")
PUBLISH = typer.Option(False, "--publish", help="send CloudWatch metrics (namespace clinops/drift)")
MIN_ROWS = typer.Option(None, "--min-rows", help="rows needed for a verdict (default 200)")


def _settings(min_rows: int | None) -> DriftSettings:
    return DriftSettings() if min_rows is None else DriftSettings(min_rows=min_rows)


def _print(result: DriftResult) -> None:
    table = Table(title=f"{result.model} / {result.variant}: {result.verdict} ({result.rows} rows)")
    for column in ("input", "status", "PSI", "shift", "missing", "contract breaks", "why"):
        table.add_column(column)
    shown = [*result.features.values(), *([result.score] if result.score else [])]
    for f in sorted(shown, key=lambda f: (f.status != "drift", f.status != "warn", f.name)):
        table.add_row(
            display_name(f.name),
            f.status,
            "-" if f.psi != f.psi else f"{f.psi:.3f}",
            "-" if f.shift != f.shift else f"{f.shift:.3f}",
            f"{f.missing_fraction:.1%}",
            f"{f.violation_rate:.1%}",
            ", ".join(f.reasons),
        )
    console.print(table)
    if result.attributions is not None and result.attributions.features:
        attribution = Table(title=f"attribution drift (mean |contribution|, {result.attributions.units})")
        for column in ("feature", "status", "train", "window", "change"):
            attribution.add_column(column)
        ranked = sorted(result.attributions.features.values(), key=lambda a: (a.status != "drift", -abs(a.change)))
        for a in ranked:
            attribution.add_row(
                display_name(a.name), a.status, f"{a.baseline:.3f}", f"{a.current:.3f}", f"{a.change:+.3f}"
            )
        console.print(attribution)
    elif result.attribution_note:
        console.print(f"attribution drift: not computed ({result.attribution_note})")
    console.print(headline(result))


def _finish(results: list[DriftResult], baseline: Baseline, out: Path, publish: bool) -> None:
    for result in results:
        folder = out if len(results) == 1 else out / result.variant
        write_json(result, folder / "drift.json", baseline.contract)
        write_html(result, folder / "drift-report.html", baseline.contract)
        _print(result)
        console.print(f"report: {folder / 'drift-report.html'}")
        if publish:
            from pipelines.monitoring.drift.metrics import publish as send

            console.print(f"published {send(result)} metrics to CloudWatch")
    if any(r.verdict == "insufficient-data" for r in results):
        raise typer.Exit(ExitCode.UNUSABLE_INPUT)
    raise typer.Exit(ExitCode.FAILED if any(r.verdict == "drift" for r in results) else ExitCode.OK)


def _compare_all(
    baseline: Baseline,
    summaries: dict[str, Summary],
    malformed: Counter[str],
    settings: DriftSettings,
    variant: str | None,
) -> list[DriftResult]:
    if variant is not None:
        if variant not in summaries:
            raise InputError(f"variant {variant} not in the capture (found: {', '.join(summaries) or 'none'})")
        summaries = {variant: summaries[variant]}
    return [compare(baseline, s, settings, variant=v, malformed=dict(malformed)) for v, s in summaries.items()]


@app.command("run")
def run(
    baseline_path: Path = BASELINE,
    current: str = typer.Option(..., "--current", help="CSV/parquet table, capture folder, or s3://bucket/prefix"),
    out: Path = OUT,
    publish: bool = PUBLISH,
    variant: str | None = typer.Option(None, "--variant", help="only this endpoint variant"),
    contract: Path | None = CONTRACT,
    min_rows: int | None = MIN_ROWS,
) -> None:
    """Detect drift in one window of current data; writes JSON + HTML and optionally CloudWatch metrics."""
    try:
        baseline = load_baseline(baseline_path, contract)
        batch = read_current(current, baseline.columns)
        if batch.events == 0:
            raise InputError(f"no rows or capture records in {current}")
        summaries = summarize_batch(batch, baseline)
        results = _compare_all(baseline, summaries, batch.malformed, _settings(min_rows), variant)
    except InputError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
    _finish(results, baseline, out, publish)


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("out/drift-demo"), "--out"),
    bundle: Path | None = typer.Option(None, "--bundle", help="a model bundle (default: train a small one)"),
) -> None:
    """Show drift detection end to end: a clean window passes, a lab unit change is caught and explained."""
    from pipelines.monitoring.drift.demo import run_demo

    results = run_demo(out, bundle)
    for name, result in results.items():
        console.print(f"[bold]{name}[/]: {result.verdict} - {headline(result)}")
        console.print(f"  report: {out / name / 'drift-report.html'}")
    caught = results["clean"].verdict == "no-drift" and "creatinine" in results["lab-unit-change"].drifted
    raise typer.Exit(ExitCode.OK if caught else ExitCode.FAILED)


@app.command("partial")
def partial(
    baseline_path: Path = BASELINE,
    capture: str = typer.Option(..., "--capture", help="this instance's capture folder, or an s3:// prefix"),
    out: Path = typer.Option(..., "--out", help="where partial-<host>.json goes"),
    shard_index: int | None = typer.Option(None, help="with an s3:// prefix: this shard (default: from SageMaker)"),
    shard_count: int | None = typer.Option(None, help="with an s3:// prefix: number of shards"),
    contract: Path | None = CONTRACT,
) -> None:
    """Summarise one shard of capture into mergeable counts (one SageMaker Processing instance's share)."""
    host, index, count = processing_host()
    index, count = shard_index if shard_index is not None else index, shard_count or count
    try:
        baseline = load_baseline(baseline_path, contract)
        if capture.startswith("s3://"):
            client = s3_client()
            keys = assign(list_s3_keys(client, S3Location.parse(capture)), index, count)
            batch = read_capture_s3(capture, baseline.columns, client, keys)
        else:  # inside SageMaker, ShardedByS3Key already gave this instance its own files
            files = list_local_files(Path(capture))
            if shard_count is not None:  # emulating N instances over one local folder
                files = [Path(p) for p in assign([f.as_posix() for f in files], index, count)]
            batch = read_capture_files(files, baseline.columns)
    except InputError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
    path = write_partial(summarize_batch(batch, baseline), batch.malformed, out, f"{host}-{index}")
    console.print(f"{batch.events} capture records summarised -> {path}")


@app.command("merge")
def merge_cmd(
    baseline_path: Path = BASELINE,
    partials: Path = typer.Option(..., "--partials", help="folder with every instance's partial-*.json"),
    out: Path = OUT,
    publish: bool = PUBLISH,
    contract: Path | None = CONTRACT,
    min_rows: int | None = MIN_ROWS,
) -> None:
    """Merge the partial counts of all shards and judge drift, exactly as one run over all files would."""
    try:
        baseline = load_baseline(baseline_path, contract)
        summaries, malformed = merge_partials(partials)
        results = _compare_all(baseline, summaries, malformed, _settings(min_rows), None)
    except InputError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
    _finish(results, baseline, out, publish)
