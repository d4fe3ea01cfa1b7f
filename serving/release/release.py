"""`clinops release`: decide whether a package may go to a stack, pin it, gate it, deploy it, record it.

Order matters: every check that can refuse runs before anything is written. The edited stack file is
validated and gated as a staged copy; only then is the real file replaced, the release recorded (a release
that cannot be recorded is undone) and `pulumi up` run (a failed deploy restores the previous pin).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinops import names
from clinops.config import ConfigError, StackConfig, load_from_stack_file
from clinops.exitcodes import DeployFailed, EvidenceUnavailable, ReleaseError, ReleasesFrozen, UnusableInput
from clinops.models import ModelConfig
from serving.release import gate as release_gate
from serving.release.aws import StackAws
from serving.release.baseline import publish_baseline
from serving.release.endpoint_state import describe_endpoint, ensure_not_busy
from serving.release.evidence import (
    CHECK_DEPLOYMENT,
    CHECK_RELEASE,
    EvidenceLocation,
    latest,
    passed,
    record,
    trusted_history,
)
from serving.release.package import parse_package_arn, review_package
from serving.release.promotion import check_promotion
from serving.release.pulumi import PulumiRunner, shown, up_command
from serving.release.stackfile import StackFileEdit

Say = Callable[[str], None]


@dataclass(frozen=True)
class ReleaseRequest:
    stack: str
    model: str
    package_arn: str
    reason: str
    actor: str
    shadow: bool = False
    dry_run: bool = False


@dataclass
class ReleaseOutcome:
    status: str  # "deployed", "pinned" (pulumi not installed: run `command`), "dry-run"
    command: str
    changes: dict[str, dict[str, str | None]]
    gate: release_gate.GateResult
    evidence_seqs: list[int] = field(default_factory=list)


def load_config(stack: str, root: Path) -> StackConfig:
    try:
        return load_from_stack_file(stack, root)
    except ConfigError as exc:
        raise UnusableInput(str(exc)) from None


def find_model(config: StackConfig, name: str) -> ModelConfig:
    for model in config.models:
        if model.name == name:
            return model
    known = ", ".join(m.name for m in config.models) or "none"
    raise UnusableInput(f"stack {config.stack} has no model '{name}' (models: {known}); fix: add it to the stack first")


def segregation_principals(config: StackConfig, root: Path) -> tuple[list[str], list[str]]:
    """Approver and author roles from this stack and from the stacks of the registry account, where packages
    are approved (the approver of a prod package acted in the build account)."""
    approvers, authors = list(config.principals.approvers), list(config.principals.authors)
    for path in sorted(root.glob("Pulumi.*.yaml")):
        stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        if stack == config.stack:
            continue
        try:
            other = load_from_stack_file(stack, root)
        except ConfigError:
            continue
        if other.account_id == config.registry_account:
            approvers += other.principals.approvers
            authors += other.principals.authors
    return sorted(set(approvers)), sorted(set(authors))


def _last_known_good(
    config: StackConfig, model: ModelConfig, package_arn: str, history: list[Any]
) -> tuple[str | None, str]:
    """The rollback target after this release, and why. The previous pin qualifies only if it was verified."""
    previous, kept = model.package_arn, model.last_known_good_package_arn
    if previous is None or previous == package_arn:
        target, why = kept, "unchanged (no previous pin, or a re-release of the pinned package)"
    elif passed(latest(history, CHECK_DEPLOYMENT, previous)):
        target, why = previous, f"the previous pin {previous} passed verification in {config.stack}"
    else:
        target, why = kept, f"kept: the previous pin {previous} was never verified in {config.stack}"
    if target == package_arn:
        return None, "cleared: it equals the package being released"
    return target, why


def plan_edit(
    config: StackConfig, model: ModelConfig, request: ReleaseRequest, edit: StackFileEdit, evidence: EvidenceLocation
) -> dict[str, Any]:
    if request.shadow:
        if request.package_arn == model.package_arn:
            raise UnusableInput(f"{request.package_arn} is already the production package of {model.name}")
        edit.shadow(model.name, request.package_arn)
        return {}
    history = trusted_history(evidence.log(config.stack), model.name)
    target, why = _last_known_good(config, model, request.package_arn, history)
    edit.pin(model.name, request.package_arn, target)
    if model.serving.shadow_package_arn == request.package_arn:
        edit.shadow(model.name, None)  # the candidate graduates from shadow to production
    return {"last_known_good": why}


def check_not_frozen(aws: StackAws, config: StackConfig, model: ModelConfig) -> None:
    """SLO policy `exhaustedAction: freeze`: no release while the model's freeze alarm (infra.slo) is in ALARM.
    The refusal is recorded as evidence like every other (exit 16), naming the alarm and CloudWatch's reason."""
    if config.slo_for(model).exhausted_action != "freeze":
        return
    alarm = names.alarm_name(config.stack, model.name, names.FREEZE_ALARM_SUFFIX)
    found = aws.call("cloudwatch", "describe_alarms", AlarmNames=[alarm]).get("MetricAlarms", [])
    if found and found[0].get("StateValue") == "ALARM":
        raise ReleasesFrozen(
            f"releases of {model.name} to {config.stack} are frozen: {alarm} is in ALARM (the error budget is "
            f"exhausted). Fix: restore the SLO first (RUNBOOK.md); the freeze lifts when the alarm returns to OK",
            {"freeze_alarm": alarm, "alarm_reason": str(found[0].get("StateReason", ""))[:500]},
        )


class Releaser:
    def __init__(
        self,
        root: Path,
        aws: StackAws,
        evidence: EvidenceLocation,
        *,
        gate_options: release_gate.GateOptions | None = None,
        pulumi: PulumiRunner | None = None,
        say: Say = print,
    ) -> None:
        self.root, self.aws, self.evidence = root, aws, evidence
        self.gate_options = gate_options or release_gate.GateOptions()
        self.pulumi = pulumi or PulumiRunner(root)
        self.say = say

    def release(self, request: ReleaseRequest) -> ReleaseOutcome:
        config = load_config(request.stack, self.root)
        model = find_model(config, request.model)
        parse_package_arn(request.package_arn, model)
        try:
            return self._release(request, config, model)
        except ReleaseError as exc:
            if not request.dry_run and not isinstance(exc, UnusableInput | DeployFailed):
                self._record_refusal(request, exc)
            raise

    def _release(self, request: ReleaseRequest, config: StackConfig, model: ModelConfig) -> ReleaseOutcome:
        approvers, authors = segregation_principals(config, self.root)
        review = review_package(self.aws, request.package_arn, model, approvers=approvers, authors=authors)
        self.say(f"package {review.arn}: Approved by {review.approver.describe()}; metrics meet {config.stack}'s bar")
        proof = check_promotion(
            config, model.name, request.package_arn, shadow=request.shadow, evidence=self.evidence, root=self.root
        )
        check_not_frozen(self.aws, config, model)
        endpoint = describe_endpoint(self.aws, names.endpoint_name(config.stack, model.name))
        ensure_not_busy(endpoint)
        edit = StackFileEdit(config.stack, self.root)
        notes = plan_edit(config, model, request, edit, self.evidence)
        command = shown(up_command(config.stack))
        with edit.staged() as (staged_root, _):
            verdict = release_gate.run(config.stack, staged_root, self.gate_options)
        self.say(f"gate passed on the pinned configuration (plan {verdict.plan_hash})")
        if request.dry_run:
            self.say(f"dry run: would change {edit.path.name}: {edit.changes or 'nothing'}; then run: {command}")
            return ReleaseOutcome("dry-run", command, edit.changes, verdict)
        details = {
            "outcome": "pinned",
            "mode": "shadow" if request.shadow else model.serving.release.strategy.lower(),
            "changes": edit.changes,
            "notes": notes,
            "gate": verdict.as_evidence(),
            "package": review.as_evidence(),
            "promotion": proof,
            "endpoint_status_before": (endpoint or {}).get("EndpointStatus", "absent"),
            "command": command,
        }
        edit.replace()
        try:
            entry = self._record(request, details)
        except ReleaseError:
            edit.restore()  # a release nobody can audit does not happen
            raise
        outcome = ReleaseOutcome("pinned", command, edit.changes, verdict, [entry.seq])
        if not self.pulumi.available():
            self.say(f"pinned in {edit.path.name}; the Pulumi CLI is not installed here. Deploy with:\n  {command}")
            return outcome
        return self._deploy(request, config, edit, outcome)

    def _deploy(
        self, request: ReleaseRequest, config: StackConfig, edit: StackFileEdit, outcome: ReleaseOutcome
    ) -> ReleaseOutcome:
        self.say(f"running: {outcome.command}")
        code = self.pulumi.up(config.stack)
        if code != 0:
            edit.restore()
            failure = DeployFailed(
                f"`{outcome.command}` exited {code}; {edit.path.name} was restored to the previous pin. SageMaker "
                "rolls a failed blue/green update back itself; run `clinops verify` to confirm what is serving",
                {"pulumi_exit_code": code},
            )
            self._record_refusal(request, failure, outcome="deploy-failed")
            raise failure
        deployed: dict[str, Any] = {
            "outcome": "deployed",
            "plan_hash": outcome.gate.plan_hash,
            "command": outcome.command,
        }
        baseline_error: ReleaseError | None = None
        if not request.shadow:  # the drift pipeline compares production traffic with the production model's baseline
            try:
                published = publish_baseline(self.aws, config, request.model, request.package_arn)
                deployed["drift_baseline"] = published.as_evidence()
                self.say(f"drift baseline published to s3://{published.bucket}/{published.keys[0].rsplit('/', 1)[0]}/")
            except ReleaseError as exc:
                baseline_error = exc
                deployed["drift_baseline_error"] = exc.message[:1000]
        try:
            entry = self._record(request, deployed)
        except EvidenceUnavailable as exc:
            raise EvidenceUnavailable(
                f"{config.stack} is deployed and its 'pinned' entry (seq {outcome.evidence_seqs[0]}) stands, but the "
                f"deployment itself could not be recorded: {exc.message}. `clinops verify` records what is serving"
            ) from None
        outcome.status = "deployed"
        outcome.evidence_seqs.append(entry.seq)
        if baseline_error is not None:  # deployed and recorded, but drift monitoring would fail daily: say so loudly
            raise type(baseline_error)(
                f"{config.stack} is deployed, but its drift baseline was not published: {baseline_error.message}",
                baseline_error.details,
            )
        return outcome

    def _record(self, request: ReleaseRequest, details: dict[str, Any]) -> Any:
        return record(
            self.evidence.log(request.stack),
            "release",
            CHECK_RELEASE,
            model=request.model,
            package_arn=request.package_arn,
            actor=request.actor,
            reason=request.reason,
            details={"shadow": request.shadow, **details},
        )

    def _record_refusal(self, request: ReleaseRequest, exc: ReleaseError, outcome: str = "refused") -> None:
        """Refused attempts are evidence too (who tried to release what). Best effort: the refusal stands."""
        try:
            self._record(
                request,
                {"outcome": outcome, "exit_code": int(exc.exit_code), "message": exc.message[:1000], **exc.details},
            )
        except ReleaseError as failure:
            self.say(f"warning: the refusal could not be recorded: {failure.message}")
