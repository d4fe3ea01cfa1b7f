"""`clinops`: the offline entry point (render, gate, pipeline, demo). `pulumi up` stays the production path."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

import typer
import typer.main
from rich.markup import escape
from typer import _click as click
from typer.core import TyperGroup

from clinops.config import ConfigError
from clinops.exitcodes import ExitCode, epilog
from clinops.terminal import make_console, progress

# No phone-home from any library we drive, before any of them is imported.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CKV_SKIP_PACKAGE_UPDATE_CHECK", "True")
os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


class LazyCommands(TyperGroup):
    """The root command group: adds the LAZY_COMMANDS groups, importing each only when it is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in LAZY_COMMANDS if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module, attribute, as_group, help_text = LAZY_COMMANDS[cmd_name]
            sub = getattr(importlib.import_module(module), attribute)
            command = typer.main.get_group(sub) if as_group else typer.main.get_command(sub)
            command.name = cmd_name
            if help_text:
                command.help = help_text
            _set_epilog(command, epilog(*EXIT_CODES.get(cmd_name, ())))
            self.commands[cmd_name] = command
        return super().get_command(ctx, cmd_name)


def _set_epilog(command: click.Command, text: str) -> None:
    """Every command and subcommand's --help ends with the exit codes it can end with (one table: exitcodes)."""
    command.epilog = text
    for sub in getattr(command, "commands", {}).values():
        _set_epilog(sub, text)


app = typer.Typer(cls=LazyCommands, no_args_is_help=True, add_completion=False, help=__doc__)
console = make_console()
err = make_console(stderr=True)


def _config_failure(exc: ConfigError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)  # keys like models[name] are not markup
    return typer.Exit(ExitCode.UNUSABLE_INPUT)


@app.command("render", epilog=epilog())
def render_cmd(
    stack: str = typer.Argument(..., help="dev, staging or prod (any Pulumi.<stack>.yaml)"),
    out: Path | None = typer.Option(None, "--out", help="plan file to write (default out/<stack>.json)"),
    quiet: bool = typer.Option(False, "--quiet", help="no summary"),
) -> None:
    """Run the Pulumi program under the mock runtime and write a `pulumi preview --json`-shaped plan."""
    from clinops.cli.plans import print_summary, render_to_file

    target = out or Path("out") / f"{stack}.json"
    try:
        with progress(err, f"rendering {stack} under the Pulumi mock runtime ..."):
            plan = render_to_file(stack, target)
    except ConfigError as exc:
        raise _config_failure(exc) from None
    if not quiet:
        print_summary(console, stack, plan, target)


@app.command("demo", epilog=epilog())
def demo_cmd(out_dir: Path = typer.Option(Path("out"), "--out-dir")) -> None:
    """The main job on embedded defaults: render and gate every stack, then the release path, offline."""
    import time

    from clinops.cli.demo import cds_hooks, drift_demo, rehearse_release, render_and_gate, serve_and_ask, train_locally

    results: dict[str, bool] = {}
    seconds: dict[str, float] = {}

    def step(name: str, run: Callable[[], bool], needs: str | None = None) -> None:
        started = time.perf_counter()
        results[name] = (needs is None or results[needs]) and run()
        seconds[name] = time.perf_counter() - started

    try:
        step("gate", lambda: render_and_gate(out_dir, console))
    except ConfigError as exc:
        raise _config_failure(exc) from None
    step("pipeline", lambda: train_locally(out_dir, console))
    step("serve", lambda: serve_and_ask(out_dir, console), needs="pipeline")
    step("cds", lambda: cds_hooks(out_dir, console), needs="pipeline")
    step("drift", lambda: drift_demo(out_dir, console))
    step("rehearse", lambda: rehearse_release(out_dir, console), needs="pipeline")
    console.rule("demo")
    for name, ok in results.items():
        console.print(f"{name:<9} {'[green]ok[/]' if ok else '[red]FAILED[/]'} {seconds[name]:6.1f} s")
    console.print(f"total     {sum(seconds.values()):6.1f} s")
    raise typer.Exit(ExitCode.OK if all(results.values()) else ExitCode.FAILED)


def _gate_plan(plan_doc: dict, text: str, out_dir: Path | None, engines: list[str], stack: str) -> bool:
    from policies.bundle import write_bundle
    from policies.exceptions import ExceptionsFileError
    from policies.gate import run_gate
    from policies.plan import PlanError, parse_plan
    from policies.view import print_verdict

    try:
        with progress(err, f"gating with {', '.join(engines)} ..."):
            verdict = run_gate(parse_plan(plan_doc), text, engines=engines, stack=stack)
    except ConfigError as exc:
        raise _config_failure(exc) from None
    except (ExceptionsFileError, PlanError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
    print_verdict(console, verdict)
    if out_dir is not None:
        try:
            paths = write_bundle(verdict, out_dir)
        except OSError as exc:  # e.g. a file where the folder should go: input, not a failed verdict
            err.print(f"[bold red]error:[/] cannot write the evidence bundle to {out_dir}/: {exc.strerror or exc}")
            raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
        console.print(f"evidence bundle: {out_dir}/ ({', '.join(p.name for p in paths)})")
    return verdict.passed


def stack_from_file_name(plan_file: Path) -> str:
    """The one known stack (a Pulumi.<stack>.yaml) named as a word of the plan file's name, e.g. out/prod.json."""
    import re

    from clinops.config import project_root

    known = sorted(p.name.split(".")[1] for p in project_root().glob("Pulumi.*.yaml"))
    words = set(re.split(r"[^A-Za-z0-9]+", plan_file.name)) | {plan_file.stem}
    named = [stack for stack in known if stack in words]
    if len(named) != 1:
        found = f"it names {' and '.join(named)}" if named else f"it names none of {', '.join(known)}"
        raise ValueError(f"cannot tell which stack {plan_file.name} is for ({found}); fix: pass --stack STACK")
    return named[0]


@app.command("gate", epilog=epilog())
def gate_cmd(
    stack: str | None = typer.Argument(None, help="render this stack and gate it"),
    plan_file: Path | None = typer.Option(
        None, "--plan", help="gate a plan file (clinops render or pulumi preview --json)"
    ),
    plan_stack: str | None = typer.Option(
        None, "--stack", help="with --plan: the stack the plan is for (default: the stack its file name names)"
    ),
    out: Path | None = typer.Option(None, "--out", help="write the evidence bundle to this directory"),
    # No default list here: policies.gate.ENGINES is the one registry, read only when the gate runs (fast --help).
    engine: list[str] | None = typer.Option(None, "--engine", help="engines to run (repeatable; default: all)"),
) -> None:
    """Judge a plan with our rules, checkov, cdk-nag, the AWS Config prediction and the access engine (every
    flow allowed, nothing else); exit 0 clean, 1 mandatory failure, 2 unusable input. The stack's own
    Pulumi.<stack>.yaml gives environment, data classification and rollback SLO; a plan whose config disagrees
    with it is refused."""
    import json

    from infra.render import dumps, render
    from policies.gate import ENGINES, start_engines
    from policies.plan import PlanError, load_plan

    if out is not None and out.exists() and not out.is_dir():
        err.print(
            f"[bold red]error:[/] --out {out} is a file; --out takes a directory for the evidence bundle "
            "(report.md, findings.json, findings.sarif ...): pass a folder path"
        )
        raise typer.Exit(ExitCode.UNUSABLE_INPUT)
    engines = list(engine or ENGINES)
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown or (stack is None) == (plan_file is None) or (plan_stack and plan_file is None):
        err.print(
            "[bold red]error:[/] give exactly one of STACK or --plan FILE (--stack only with --plan), and engines "
            f"from {', '.join(ENGINES)}" + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
        raise typer.Exit(ExitCode.UNUSABLE_INPUT)
    try:
        if plan_file is not None:
            stack = plan_stack or stack_from_file_name(plan_file)
            _, text = load_plan(plan_file)  # validates the shape before any engine runs
            doc = json.loads(text)
        else:
            assert stack is not None  # exactly one of STACK or --plan was checked above
            with progress(err, f"rendering {stack} under the Pulumi mock runtime ..."):
                doc = render(stack, on_valid=lambda: start_engines(engines))  # engines start once config is valid
            text = dumps(doc)
    except ConfigError as exc:
        raise _config_failure(exc) from None
    except (PlanError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(ExitCode.UNUSABLE_INPUT) from None
    passed = _gate_plan(doc, text, out, engines, stack)
    raise typer.Exit(ExitCode.OK if passed else ExitCode.FAILED)


def main(argv: list[str] | None = None) -> None:
    """The console entry point. An uncaught exception is a bug, not a verdict: it exits CRASH (70), never 1."""
    import sys
    import traceback

    try:
        app(args=argv, prog_name="clinops")
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        err.print(f"[bold red]clinops crashed[/] (exit {int(ExitCode.CRASH)}): {ExitCode.CRASH.name}; this is a bug")
        sys.exit(ExitCode.CRASH)


# Codes each mounted command can end with beside OK, FAILED, UNUSABLE_INPUT and CRASH.
EXIT_CODES: dict[str, tuple[ExitCode, ...]] = {
    "release": (
        ExitCode.PACKAGE_NOT_RELEASABLE,
        ExitCode.SEGREGATION_OF_DUTIES,
        ExitCode.QUALITY_BELOW_THRESHOLD,
        ExitCode.PROMOTION_ORDER,
        ExitCode.GATE_FAILED,
        ExitCode.ENDPOINT_BUSY,
        ExitCode.AWS_UNAVAILABLE,
        ExitCode.DEPLOY_FAILED,
        ExitCode.EVIDENCE_UNAVAILABLE,
        ExitCode.RELEASES_FROZEN,
    ),
    "verify": (
        ExitCode.ENDPOINT_BUSY,
        ExitCode.AWS_UNAVAILABLE,
        ExitCode.ROLLED_BACK,
        ExitCode.DEPLOYMENT_UNHEALTHY,
        ExitCode.EVIDENCE_UNAVAILABLE,
        ExitCode.NOT_DEPLOYED,
    ),
    "shadow": (
        ExitCode.ENDPOINT_BUSY,
        ExitCode.AWS_UNAVAILABLE,
        ExitCode.SHADOW_FAILED,
        ExitCode.SHADOW_INCONCLUSIVE,
        ExitCode.EVIDENCE_UNAVAILABLE,
    ),
    "evidence": (ExitCode.EVIDENCE_UNAVAILABLE,),
    "drill": (ExitCode.ENDPOINT_BUSY, ExitCode.AWS_UNAVAILABLE),
    "scorecard": (ExitCode.AWS_UNAVAILABLE,),
    "rollback": (ExitCode.AWS_UNAVAILABLE,),
    "retrain": (ExitCode.AWS_UNAVAILABLE,),
    "cds": (),
    "rehearse": (),
}

# The release path's commands live beside their code; the CLI mounts them by name and imports a group only
# when it is used, so `clinops render` or `gate` never pays for pandas, scikit-learn or boto3 at start-up.
# name -> (module, Typer attribute, mounted as a group, help)
LAZY_COMMANDS: dict[str, tuple[str, str, bool, str | None]] = {
    "pipeline": (
        "clinops.cli.pipeline",
        "app",
        True,
        "Train, evaluate and register a model (locally or in SageMaker).",
    ),
    "serve": ("clinops.cli.serve", "app", False, None),
    "score": ("clinops.cli.serve", "score_app", False, None),
    "cost": ("clinops.cli.cost", "app", False, None),
    "scorecard": ("clinops.cli.scorecard", "app", False, None),
    "release": ("clinops.cli.release", "release_app", False, None),
    "verify": ("clinops.cli.release", "verify_app", False, None),
    "shadow": ("clinops.cli.release", "shadow_app", True, None),
    "evidence": ("clinops.cli.evidence", "app", True, "Verify, show and export the hash-chained evidence log."),
    "drift": (
        "pipelines.monitoring.drift.cli",
        "app",
        True,
        "Drift of captured inferences against the training baseline.",
    ),
    "quality": ("pipelines.monitoring.quality.cli", "app", True, "Model quality on delayed (adjudicated) outcomes."),
    "drill": ("clinops.cli.rollback", "drill_app", True, None),
    "rollback": ("clinops.cli.rollback", "rollback_app", True, None),
    "retrain": ("clinops.cli.rollback", "retrain_app", True, None),
    "cds": ("clinops.cli.cds", "app", True, "The CDS Hooks service clinicians reach from the EHR, locally."),
    "rehearse": ("clinops.cli.rehearse", "app", False, None),
}
