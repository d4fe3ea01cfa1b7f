"""Typer apps the `clinops` CLI mounts:

    app.add_typer(drill_app, name="drill")        # clinops drill rollback --stack S --model M ...
    app.add_typer(rollback_app, name="rollback")  # clinops rollback reconcile --stack S [--model M] [--check]
    app.add_typer(retrain_app, name="retrain")    # clinops retrain request --stack S --model M ...

Exit codes: 0 done / passed / pins match; 1 drill failed or timed out, `--check` found a mismatch, drift not
sustained; 2 refused or unusable input (nothing changed); 9 AWS unavailable. AWS access goes through the release
code's per-stack session (`releaseRoleArn` when set), the evidence log through its `--evidence DIR|s3://...`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from clinops.config import ConfigError, StackConfig, load_from_stack_file, project_root
from clinops.exitcodes import ExitCode
from clinops.models import ModelConfig

EVIDENCE_OPTION = typer.Option(
    "out/evidence",
    "--evidence",
    envvar="CLINOPS_EVIDENCE",
    help="evidence log location: a directory or s3://BUCKET/PREFIX",
)
ROOT_OPTION = typer.Option(None, "--root", help="project root holding Pulumi.<stack>.yaml (default: this repo)")

drill_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Failover exercises (runbook).")
rollback_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Keep the stack file true after a rollback."
)
retrain_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Retraining requests (human-gated).")
console = Console(soft_wrap=True)  # commands printed here are copied: never wrap them
err = Console(stderr=True, soft_wrap=True)


# A callback keeps each app a command group, so `drill rollback` means the same mounted or standalone
# (typer collapses a one-command app into that command).
@drill_app.callback()
def _drill() -> None:
    """Failover exercises (runbook)."""


@rollback_app.callback()
def _rollback() -> None:
    """Keep the stack file true after a rollback."""


@retrain_app.callback()
def _retrain() -> None:
    """Retraining requests (human-gated)."""


@dataclass(frozen=True)
class StackClients:
    sagemaker: Any
    ssm: Any
    cloudwatch: Any
    actor: str  # who runs the command (STS caller identity): the evidence actor


def open_clients(config: StackConfig) -> StackClients:
    """Clients in the stack's account (tests replace this function)."""
    import boto3

    from serving.release.aws import caller_arn, open_stack

    session = boto3.Session()
    actor = caller_arn(session, config.region)
    aws = open_stack(config, actor, session)
    return StackClients(aws.client("sagemaker"), aws.client("ssm"), aws.client("cloudwatch"), actor)


def open_evidence(spec: str, stack: str) -> Any:
    from clinops.exitcodes import ReleaseError
    from serving.release.evidence import EvidenceLocation

    try:
        return EvidenceLocation.parse(spec).log(stack)
    except ReleaseError as exc:
        _fail(int(exc.exit_code), exc.message)


@contextmanager
def _aws_errors() -> Iterator[None]:
    """AWS refusing or failing mid-command is exit 9 with its message, not a traceback."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        _fail(ExitCode.AWS_UNAVAILABLE, f"AWS call failed: {exc}")


def clock() -> datetime:
    return datetime.now(UTC)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def _fail(code: int, message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _load(stack: str, root: Path | None) -> StackConfig:
    try:
        return load_from_stack_file(stack, root or project_root())
    except ConfigError as exc:
        _fail(ExitCode.UNUSABLE_INPUT, str(exc))


def _model(config: StackConfig, name: str) -> ModelConfig:
    for model in config.models:
        if model.name == name:
            return model
    _fail(
        ExitCode.UNUSABLE_INPUT,
        f"stack {config.stack} has no model '{name}'; known: {', '.join(m.name for m in config.models)}",
    )


def _clients(config: StackConfig) -> StackClients:
    from clinops.exitcodes import ReleaseError

    try:
        return open_clients(config)
    except ReleaseError as exc:
        _fail(int(exc.exit_code), exc.message)


@drill_app.command("rollback")
def drill_rollback(
    stack: str = typer.Option(..., "--stack"),
    model: str = typer.Option(..., "--model"),
    alarm: str | None = typer.Option(
        None,
        "--alarm",
        help="alarm to force (default: the model's score-drift alarm, the one that reaches only the breaker)",
    ),
    timeout: int = typer.Option(900, "--timeout", min=60, help="seconds to wait for the last-known-good"),
    poll: float = typer.Option(10.0, "--poll", min=0.0, help="seconds between DescribeEndpoint calls"),
    window: str | None = typer.Option(
        None, "--window", envvar="CLINOPS_DRILL_WINDOW", help="declared drill window START/END (ISO 8601, with zone)"
    ),
    now: bool = typer.Option(False, "--now", help="run outside a declared window (needs --reason)"),
    reason: str | None = typer.Option(None, "--reason", help="why the drill runs now (recorded)"),
    cooldown: int = typer.Option(1800, "--cooldown", help="the breaker's cooldown, for the preflight"),
    evidence: str = EVIDENCE_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Force a breaker alarm, time the failover to the last-known-good, restore the alarm, record the result."""
    from serving.rollback.drill import DrillNotRecorded, DrillPlan, DrillRefused, DrillWindow, run_drill

    if now != (reason is not None):
        _fail(
            ExitCode.UNUSABLE_INPUT,
            "--now and --reason go together: a drill outside its window needs a recorded reason",
        )
    config = _load(stack, root)
    target = _model(config, model)
    if not target.last_known_good_package_arn:
        _fail(
            ExitCode.UNUSABLE_INPUT,
            f"{model} pins no lastKnownGoodPackageArn in {stack}: there is nothing to fail over to",
        )
    try:
        declared = DrillWindow.parse(window) if window else None
    except ValueError as exc:
        _fail(ExitCode.UNUSABLE_INPUT, str(exc))
    clients = _clients(config)
    plan = DrillPlan(
        stack=stack,
        model=model,
        slo_seconds=config.rollback_slo_seconds,
        actor=clients.actor,
        alarm=alarm,
        timeout_seconds=timeout,
        poll_seconds=poll,
        window=declared,
        now_reason=reason if now else None,
        cooldown_seconds=cooldown,
    )
    try:
        result = run_drill(
            plan,
            sagemaker=clients.sagemaker,
            cloudwatch=clients.cloudwatch,
            ssm=clients.ssm,
            evidence=open_evidence(evidence, stack),
            clock=clock,
            sleep=sleep,
        )
    except DrillRefused as exc:
        _fail(ExitCode.UNUSABLE_INPUT, f"drill refused, nothing changed: {exc}")
    except DrillNotRecorded as exc:
        _fail(ExitCode.FAILED, f"{exc} - the drill does not count; the alarm is back to OK")
    except (ClientError, BotoCoreError) as exc:
        _fail(
            ExitCode.AWS_UNAVAILABLE,
            f"AWS call failed during the drill (the alarm was restored to OK if it was set): {exc}",
        )
    colour = "green" if result.passed else "red"
    console.print(
        f"[{colour}]{result.outcome}[/]: {result.from_config} -> {result.to_config} in {result.seconds} s "
        f"(SLO {result.slo_seconds} s); evidence seq {result.evidence_seq}",
        highlight=False,
    )
    console.print(
        f"the endpoint now serves the last-known-good. Keep it: clinops rollback reconcile --stack {stack} "
        f"--model {model}; or restore the pin: clinops rollback reconcile --stack {stack} --model {model} "
        "--check --restore-reason TEXT, then pulumi up --refresh",
        highlight=False,
    )
    raise typer.Exit(ExitCode.OK if result.passed else ExitCode.FAILED)


@rollback_app.command("reconcile")
def rollback_reconcile(
    stack: str = typer.Option(..., "--stack"),
    model: str | None = typer.Option(None, "--model", help="required unless --check (which checks every model)"),
    check: bool = typer.Option(False, "--check", help="exit 1 when a live endpoint does not serve its pin"),
    restore_reason: str | None = typer.Option(
        None, "--restore-reason", help="with --check: redeploy the pin over a rollback, recorded"
    ),
    evidence: str = EVIDENCE_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Rewrite the pin to the last-known-good after a rollback; or (--check) fail a deploy that would undo one."""
    from serving.rollback.reconcile import (
        PASSING,
        ROLLED_BACK,
        ReconcileRefused,
        inspect_pin,
        reconcile_model,
        record_restore,
    )

    if not check and (model is None or restore_reason is not None):
        _fail(ExitCode.UNUSABLE_INPUT, "reconcile needs --model; --restore-reason goes with --check")
    config = _load(stack, root)
    models = [_model(config, model)] if model else [m for m in config.models if m.package_arn]
    clients = _clients(config)
    if not check:
        try:
            with _aws_errors():
                result = reconcile_model(
                    config,
                    models[0],
                    sagemaker=clients.sagemaker,
                    ssm=clients.ssm,
                    evidence=open_evidence(evidence, stack),
                    root=root or project_root(),
                    actor=clients.actor,
                    clock=clock,
                )
        except ReconcileRefused as exc:
            _fail(ExitCode.UNUSABLE_INPUT, f"nothing changed: {exc}")
        console.print(
            result.message
            + (f"; evidence seq {result.evidence_seq}; commit Pulumi.{stack}.yaml" if result.changed else ""),
            highlight=False,
        )
        raise typer.Exit(ExitCode.OK)
    failed = False
    for target in models:
        with _aws_errors():
            status = inspect_pin(config, target, clients.sagemaker, clients.ssm)
        if status.state in PASSING:
            console.print(f"ok  {target.name}: {status.message}", highlight=False)
        elif status.state == ROLLED_BACK and restore_reason is not None:
            try:
                seq = record_restore(
                    config,
                    status,
                    evidence=open_evidence(evidence, stack),
                    actor=clients.actor,
                    reason=restore_reason,
                    clock=clock,
                )
            except ReconcileRefused as exc:
                _fail(ExitCode.UNUSABLE_INPUT, str(exc))
            console.print(
                f"ok  {target.name}: restore of {status.pinned_config} recorded (evidence seq {seq}); "
                "deploy with pulumi up --refresh",
                highlight=False,
            )
        else:
            failed = True
            err.print(f"FAIL {target.name}: {status.message}", highlight=False)
    raise typer.Exit(ExitCode.FAILED if failed else ExitCode.OK)


@retrain_app.command("request")
def retrain_request(
    stack: str = typer.Option(..., "--stack", help="the stack whose model drifted (its evidence log records it)"),
    model: str = typer.Option(..., "--model"),
    data_uri: str = typer.Option(..., "--data-uri", help="S3 URI of the fresh training data"),
    trigger: str = typer.Option(..., "--trigger", help="drift (needs sustained drift results) or quality"),
    reason: str = typer.Option(..., "--reason", help="why, in a sentence (recorded)"),
    drift_result: list[Path] = typer.Option([], "--drift-result", help="`clinops drift` JSON results (repeatable)"),
    sustained: int = typer.Option(3, "--sustained", min=1, help="consecutive drift verdicts required"),
    pipeline_stack: str | None = typer.Option(
        None, "--pipeline-stack", help="stack of the registry account (default: found by account)"
    ),
    evidence: str = EVIDENCE_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Start the model's training pipeline on fresh data. Its candidate waits for a human approver."""
    from clinops.evidence import EvidenceError
    from serving.guardrails.retrain import (
        RetrainingRequest,
        open_retraining_request,
        sustained_drift,
        validate_data_uri,
        verdicts_from_evidence,
        verdicts_from_results,
    )

    if trigger not in ("drift", "quality") or len(reason.strip()) < 10:
        _fail(ExitCode.UNUSABLE_INPUT, "--trigger is drift or quality, and --reason needs at least 10 characters")
    try:
        validate_data_uri(data_uri)
    except ValueError as exc:
        _fail(ExitCode.UNUSABLE_INPUT, str(exc))
    config = _load(stack, root)
    _model(config, model)
    log = open_evidence(evidence, stack)
    details: dict[str, Any] = {}
    if trigger == "drift":
        try:
            docs = [json.loads(p.read_text()) for p in drift_result]
        except (OSError, ValueError) as exc:
            _fail(ExitCode.UNUSABLE_INPUT, f"cannot read a drift result: {exc}")
        verdicts = verdicts_from_results(docs, model) if docs else verdicts_from_evidence(log.entries(), model)
        if not sustained_drift(verdicts, sustained):
            err.print(
                f"not sustained: the newest verdicts are {verdicts[-sustained:] or 'none'}, "
                f"{sustained} consecutive 'drift' are required; nothing started",
                highlight=False,
            )
            raise typer.Exit(ExitCode.FAILED)
        details = {"verdicts": verdicts[-max(sustained, 10) :], "required_consecutive": sustained}
    registry = _load(pipeline_stack, root) if pipeline_stack else _registry_stack(config, root or project_root())
    clients = _clients(registry)
    request = RetrainingRequest(
        stack=stack,
        model=model,
        trigger="sustained-drift" if trigger == "drift" else "quality-drop",
        reason=reason.strip(),
        data_uri=data_uri,
        requested_by=clients.actor,
        request_id=f"cli-{clock().strftime('%Y%m%dT%H%M%S')}",
        details=details,
    )
    try:
        with _aws_errors():
            result = open_retraining_request(clients.sagemaker, log, request, clock=clock)
    except (EvidenceError, ValueError) as exc:  # the execution (if started) is in the log line above
        _fail(ExitCode.FAILED, f"retraining requested but not recorded: {exc}")
    console.print(
        f"{result.outcome}: {result.reason}; evidence seq {result.evidence_seq}. The candidate registers "
        "PendingManualApproval: a human approves it, nothing is deployed automatically",
        highlight=False,
    )


def _registry_stack(config: StackConfig, root: Path) -> StackConfig:
    """The stack deployed in the registry (build) account: the training pipelines live there."""
    if config.account_id == config.registry_account:
        return config
    for path in sorted(root.glob("Pulumi.*.yaml")):
        name = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        try:
            other = load_from_stack_file(name, root)
        except ConfigError:
            continue
        if other.account_id == config.registry_account:
            return other
    _fail(
        ExitCode.UNUSABLE_INPUT,
        f"no stack in {root} is in the registry account {config.registry_account}; fix: --pipeline-stack",
    )
