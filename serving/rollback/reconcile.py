"""The pin follows the rollback: after the circuit breaker (or SageMaker, or a drill) moved an endpoint to its
last-known-good configuration, `Pulumi.<stack>.yaml` is told the truth, so the next `pulumi up` cannot silently
undo the rollback.

Why it is needed: the stack file still pins the package that was rolled back from. Pulumi's state also still
says the endpoint serves the pinned configuration, so a plain `pulumi up` changes nothing - the stack file and
the live endpoint disagree silently - while `pulumi up --refresh` (or any later endpoint change) redeploys the
bad package without anyone deciding to.

How the pin follows:
1. `clinops rollback reconcile --stack S --model M` rewrites the stack file with the release code's pin editor
   (`serving.release.stackfile.StackFileEdit`, comments kept, validated before the file is replaced):
   `packageArn` := the last-known-good package, `lastKnownGoodPackageArn` removed (nothing verified sits below
   it any more; the next release makes the current pin its last-known-good again), and appends a `pin-change`
   evidence entry naming the rollback it follows. Commit the file through the normal review.
2. The CI deploy job runs `clinops rollback reconcile --stack S --check` before `pulumi up`: it exits 1, printing
   the exact reconcile command, when any live endpoint serves a configuration other than its pin. Restoring the
   pinned model instead (after a drill, or a deliberate decision) is `--check --restore-reason TEXT`, which
   records that decision as `pin-change` evidence and lets the deploy (`pulumi up --refresh`) redeploy the pin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from clinops.config import StackConfig
from clinops.models import ModelConfig
from clinops.names import config_name, endpoint_name
from serving.guardrails.breaker import IN_DEPLOYMENT
from serving.guardrails.events import iso
from serving.guardrails.outputs import EvidenceSink
from serving.guardrails.state import IN_FLIGHT, LANDED, SsmStateStore
from serving.guardrails.verified import read_marker

MATCHES, ROLLED_BACK, BUSY, DIVERGED, NO_ENDPOINT, UNPINNED = (
    "matches",
    "rolled-back",
    "busy",
    "diverged",
    "no-endpoint",
    "unpinned",
)
PASSING = frozenset({MATCHES, NO_ENDPOINT, UNPINNED})


class ReconcileRefused(Exception):
    """Nothing was changed; the message says why and what to do."""


@dataclass(frozen=True)
class PinStatus:
    model: str
    state: str
    message: str
    pinned_config: str | None = None
    last_known_good_config: str | None = None
    live_config: str | None = None
    live_status: str | None = None


@dataclass(frozen=True)
class ReconcileResult:
    model: str
    changed: bool
    message: str
    changes: dict[str, Any] = field(default_factory=dict)
    evidence_seq: int | None = None


def reconcile_command(stack: str, model: str) -> str:
    return f"clinops rollback reconcile --stack {stack} --model {model}"


def inspect_pin(config: StackConfig, model: ModelConfig, sagemaker: Any, ssm: Any = None) -> PinStatus:
    """Does the live endpoint serve what the stack file pins? With `ssm`, a circuit-breaker rollback still in
    flight (requested, or deploying and not yet InService on its target) is `busy`: a deploy now would race it."""
    if not model.package_arn:
        return PinStatus(model.name, UNPINNED, "no package pinned: no endpoint is declared")
    pinned = config_name(config.stack, model.name, model.package_arn)
    lkg = (
        config_name(config.stack, model.name, model.last_known_good_package_arn)
        if model.last_known_good_package_arn
        else None
    )
    known = {"pinned_config": pinned, "last_known_good_config": lkg}
    endpoint = endpoint_name(config.stack, model.name)
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationException" and "Could not find" in str(error.get("Message")):
            return PinStatus(model.name, NO_ENDPOINT, f"{endpoint} does not exist yet", **known)
        raise
    live, status = described.get("EndpointConfigName"), described["EndpointStatus"]
    known |= {"live_config": live, "live_status": status}
    if status in IN_DEPLOYMENT:
        return PinStatus(model.name, BUSY, f"{endpoint} is {status}: wait until it settles, then check again", **known)
    breaker = SsmStateStore(ssm).read(config.stack, model.name).state if ssm is not None else None
    if breaker is not None and breaker.phase in IN_FLIGHT and live != breaker.to_config:
        return PinStatus(
            model.name,
            BUSY,
            f"the circuit breaker's rollback of {endpoint} to {breaker.to_config} (event {breaker.rollback_id}) is "
            f"{breaker.phase}: wait for it to land or fail (the breaker's schedule looks every 5 minutes)",
            **known,
        )
    if live == pinned:
        return PinStatus(model.name, MATCHES, f"{endpoint} serves the pinned {pinned}", **known)
    if lkg is not None and live == lkg:
        return PinStatus(
            model.name,
            ROLLED_BACK,
            f"{endpoint} serves the last-known-good {lkg}, not the pinned {pinned}: it was rolled back. "
            f"Run `{reconcile_command(config.stack, model.name)}` and commit the stack file "
            "(or restore the pin deliberately with --check --restore-reason TEXT)",
            **known,
        )
    return PinStatus(
        model.name,
        DIVERGED,
        f"{endpoint} serves {live}, which is neither the pinned {pinned} nor the last-known-good {lkg}: "
        "a change outside clinops - investigate before any deploy",
        **known,
    )


def reconcile_model(
    config: StackConfig,
    model: ModelConfig,
    *,
    sagemaker: Any,
    ssm: Any,
    evidence: EvidenceSink,
    root: Path,
    actor: str,
    clock: Callable[[], datetime],
) -> ReconcileResult:
    """Rewrite the pin to the configuration the endpoint serves after a rollback; ReconcileRefused otherwise."""
    from clinops.exitcodes import ReleaseError
    from serving.release.stackfile import StackFileEdit

    status = inspect_pin(config, model, sagemaker, ssm)
    if status.state in PASSING:
        return ReconcileResult(model.name, False, status.message)
    if status.state != ROLLED_BACK:
        raise ReconcileRefused(status.message)
    target = model.last_known_good_package_arn
    assert target and status.live_config
    marker = read_marker(ssm, config.stack, model.name, status.live_config)
    if marker is not None and marker.package_arn != target:
        raise ReconcileRefused(
            f"the verification marker of {status.live_config} names {marker.package_arn}, but the stack file's "
            f"lastKnownGoodPackageArn is {target}: investigate before changing the pin"
        )
    breaker = SsmStateStore(ssm).read(config.stack, model.name).state
    # `landed`, or still `updating` while the endpoint already serves the target (the schedule records it)
    by_breaker = (
        breaker is not None
        and breaker.phase in (LANDED, *IN_FLIGHT)
        and breaker.to_config == status.live_config
        and breaker.rollback_id is not None
    )
    try:
        edit = StackFileEdit(config.stack, root)
        edit.pin(model.name, target, None)
        with edit.staged():
            pass  # validates the edited file as a whole before the real one is touched
        edit.replace()
    except ReleaseError as exc:
        raise ReconcileRefused(exc.message) from None
    try:
        entry = evidence.append(
            "pin-change",
            model=model.name,
            actor=actor,
            package_arn=target,
            reason=f"pin follows the rollback of {endpoint_name(config.stack, model.name)} to {status.live_config}",
            details={
                "change": "reconcile-after-rollback",
                "from_package_arn": model.package_arn,
                "to_package_arn": target,
                "removed_last_known_good": target,
                "live_config": status.live_config,
                "rolled_back_by": "circuit-breaker" if by_breaker else "not the circuit breaker (SageMaker or manual)",
                "breaker_event_id": breaker.rollback_id if by_breaker and breaker else None,
                "breaker_alarm": breaker.rollback_alarm if by_breaker and breaker else None,
                "breaker_phase": breaker.phase if by_breaker and breaker else None,
                "rolled_back_at": breaker.requested_at if by_breaker and breaker else None,
                "file_changes": edit.changes,
                "reconciled_at": iso(clock()),
            },
        )
    except Exception as exc:
        edit.restore()  # an unrecorded pin change is not allowed to stand
        raise ReconcileRefused(f"the pin change could not be recorded ({exc}); the stack file is unchanged") from exc
    return ReconcileResult(model.name, True, f"pinned {target} (was {model.package_arn})", edit.changes, entry.seq)


def record_restore(
    config: StackConfig,
    status: PinStatus,
    *,
    evidence: EvidenceSink,
    actor: str,
    reason: str,
    clock: Callable[[], datetime],
) -> int:
    """A deliberate decision to redeploy the pin over a rolled-back endpoint (`--check --restore-reason`)."""
    if len(reason.strip()) < 10:
        raise ReconcileRefused("--restore-reason needs at least 10 characters: it is the recorded justification")
    try:
        entry = evidence.append(
            "pin-change",
            model=status.model,
            actor=actor,
            reason=f"restore the pinned {status.pinned_config} over the rolled-back endpoint: {reason.strip()}"[:2000],
            details={
                "change": "restore-pin-over-rollback",
                "pinned_config": status.pinned_config,
                "live_config": status.live_config,
                "decided_at": iso(clock()),
            },
        )
    except Exception as exc:
        raise ReconcileRefused(f"the restore decision could not be recorded ({exc})") from exc
    return int(entry.seq)
