"""The release path rehearsed offline: release -> verify -> an alarm -> the circuit breaker -> the last-known-good
-> reconcile -> the evidence, end to end through the real code, in a fake AWS account (`rehearsal_world`: moto in
process, Stubber-validated answers where moto lacks an operation). No network, no real credentials.

What is real and what is played:
- real: `Releaser.release` (package review, segregation of duties, promotion order, pin, the policy gate on the
  pinned configuration, evidence, baseline publication), `Verifier` + `record_verification` (and the breaker's
  verified marker), the approval recorder's and the circuit breaker's event handlers (`handle_package_event`,
  `handle_event`: what the Lambda `handler`s run, given the event shapes EventBridge delivers, writing to the
  local evidence log instead of S3), `reconcile_model`, the evidence log's `verify` and the scorecard's `compute`;
- played: `pulumi up` (the world leaves behind what the program declares), CloudWatch's metric evaluation (the
  alarm's state is set), SageMaker's deployment (an accepted UpdateEndpoint lands after one "Updating" read), the
  breaker's 5-minute schedule (its reconcile event is delivered once, right away).

The stack file is a copy under OUT/rehearsal/project/ (the repository's stack files are never edited); the
evidence goes where `clinops release` and `verify` write it, OUT/evidence/<stack>/, so `clinops evidence
verify --stack S`, `clinops evidence show` and `clinops scorecard --stack S` read it afterwards. The log is
append-only: a second rehearsal continues it, with new package versions (a registry never reuses one).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from clinops import names
from clinops.config import ConfigError, StackConfig, load_from_stack_file, project_root
from clinops.evidence import EvidenceError, EvidenceLog
from clinops.exitcodes import ReleaseError
from clinops.models import ModelConfig
from serving.release.pulumi import PulumiRunner

FAULTS = {
    "unverified-last-known-good": "the previous version is never verified: the release keeps no last-known-good, "
    "so the circuit breaker must refuse to roll back",
    "self-approval": "the author approves their own package: segregation of duties must refuse the release",
    "tampered-evidence": "an entry of (a copy of) the evidence log is rewritten after the rollback: verification "
    "and the scorecard must refuse it",
}
ALARM_SIGNAL = "drift"  # a breaker alarm: SageMaker's auto-rollback never acts on it, only the circuit breaker
ALARM_REASON = (
    "Threshold Crossed: 1 out of the last 1 datapoints [1.0] was greater than the threshold (0.0) "
    "(minimum 1 datapoint for OK -> ALARM transition)."
)
REASON = "rehearsal: offline release-path rehearsal (synthetic model, fake AWS account)"
# The people the rehearsal plays, each acting through the stack's configured role of their persona.
AUTHOR_PERSON, APPROVER_PERSON = "author@rehearsal.invalid", "clinical-reviewer@rehearsal.invalid"


class RehearsalUnusable(Exception):
    """The rehearsal cannot start (no trained run, unknown stack or model): nothing ran."""


class PhaseFailed(Exception):
    """A phase did not reach its expected outcome: the message says what happened instead."""


@dataclass(frozen=True)
class PhaseResult:
    name: str
    ok: bool
    seconds: float
    summary: str
    evidence: list[str] = field(default_factory=list)  # "#7 release (deployed)", one per entry written
    details: list[str] = field(default_factory=list)
    warning: str | None = None
    logs: list[str] = field(default_factory=list)  # what the Lambda handlers printed (their CloudWatch log lines)


@dataclass
class RehearsalResult:
    stack: str
    model: str
    evidence_dir: Path
    project: Path
    phases: list[PhaseResult] = field(default_factory=list)
    scorecard: dict[str, Any] | None = None
    fault: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.phases) and all(p.ok for p in self.phases) and len(self.phases) == len(PHASES)

    @property
    def failed_phase(self) -> str | None:
        return next((p.name for p in self.phases if not p.ok), None)


PHASES = (
    ("world", "a fake AWS account (moto, in process) and a scratch copy of the stack file"),
    ("baseline", "the previous version live, as its release left it, and verified"),
    ("approve", "the demo's model registered by its author, approved by a clinical reviewer"),
    ("release", "clinops release: review, segregation of duties, pin, gate, pulumi up, evidence"),
    ("verify", "clinops verify: the endpoint serves the pin, guarded as configured"),
    ("alarm", "a drift alarm goes to ALARM"),
    ("breaker", "the circuit breaker acts on the alarm event"),
    ("landing", "the breaker's schedule finds the last-known-good InService: landed"),
    ("reconcile", "clinops rollback reconcile: the pin follows the rollback"),
    ("evidence", "clinops evidence verify: the hash-chained log"),
    ("scorecard", "clinops scorecard: from the verified log"),
)


@dataclass(frozen=True)
class RehearsalOptions:
    out_dir: Path = Path("out")
    stack: str = "dev"
    model: str = "readmission-risk"
    run_dir: Path | None = None  # the training run to release (default: the newest registered run under OUT)
    engines: tuple[str, ...] | None = None  # gate engines (default: all)
    fault: str | None = None


def find_run(out_dir: Path, model: str, run_dir: Path | None = None) -> Path:
    """The training run to release: `run_dir`, else the newest run under OUT/pipeline/<model>/ that registered."""
    if run_dir is not None:
        candidates = [run_dir]
    else:
        root = out_dir / "pipeline" / model
        candidates = sorted((p for p in root.iterdir() if p.is_dir()), reverse=True) if root.is_dir() else []
    for run in candidates:
        try:
            decision = json.loads((run / "decision" / "decision.json").read_text())
        except (OSError, ValueError):
            continue
        bundle = (run / "card" / "card-property.json", run / "model" / "baseline.json")
        if decision.get("register") and all(path.is_file() for path in bundle):
            return run
    where = run_dir or out_dir / "pipeline" / model
    raise RehearsalUnusable(
        f"no registered training run of {model} at {where} (decision.json with register=true, the card's "
        f"registry metadata and the model bundle); fix: `clinops pipeline run --local --model {model}` first, "
        "or pass --run DIR"
    )


@contextmanager
def offline_aws(account: str, region: str) -> Iterator[None]:
    """moto in process, with fake credentials set for the rehearsal only: the caller's environment (any real
    profile, keys or endpoint) is hidden while it runs and restored exactly afterwards."""
    from moto import mock_aws

    from serving.rollback.rehearsal_world import FAKE_KEY

    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith("AWS_") or key.startswith("CLINOPS_EVIDENCE_"):
            del os.environ[key]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": FAKE_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_KEY,
            "AWS_SESSION_TOKEN": FAKE_KEY,
            "AWS_DEFAULT_REGION": region,
            "AWS_CONFIG_FILE": os.devnull,  # no profile of the user's is read
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "MOTO_ACCOUNT_ID": account,  # the stack's account: release checks the caller belongs to it
        }
    )
    try:
        with mock_aws():
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass(frozen=True)
class RehearsalPulumi(PulumiRunner):
    """`pulumi up` played by the fake account: it deploys the stack file as it now reads."""

    deploy: Callable[[StackConfig], None] | None = None

    def available(self) -> bool:
        return True

    def up(self, stack: str) -> int:
        assert self.deploy is not None
        self.deploy(load_from_stack_file(stack, self.root))
        return 0


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    parsed = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (start, end)]
    return round((parsed[1] - parsed[0]).total_seconds(), 1)


def _clock() -> datetime:
    return datetime.now(UTC)


class Rehearsal:
    def __init__(
        self,
        options: RehearsalOptions,
        report: Callable[[PhaseResult], None] | None = None,
        running: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None,
    ) -> None:
        if options.fault is not None and options.fault not in FAULTS:
            raise RehearsalUnusable(f"unknown fault '{options.fault}'; fix: --fault one of {', '.join(FAULTS)}")
        self.options = options
        self.report = report or (lambda phase: None)
        self.running = running or (lambda name: contextlib.nullcontext())  # e.g. a spinner while a phase runs
        try:
            self.repo_config = load_from_stack_file(options.stack)
        except ConfigError as exc:
            raise RehearsalUnusable(str(exc)) from None
        if options.model not in {m.name for m in self.repo_config.models}:
            known = ", ".join(m.name for m in self.repo_config.models)
            raise RehearsalUnusable(f"stack {options.stack} has no model '{options.model}' (models: {known})")
        self.run_dir = find_run(options.out_dir, options.model, options.run_dir)
        self.project = options.out_dir / "rehearsal" / "project"
        self.evidence_root = options.out_dir / "evidence"
        self.evidence_dir = self.evidence_root / options.stack
        self.marker = self.evidence_root / f"{options.stack}.rehearsal"
        self._refuse_foreign_log()
        self.account, self.region = self.repo_config.account_id, self.repo_config.region
        principals = self.repo_config.principals
        if not (principals.approvers and principals.authors and principals.deployers):
            raise RehearsalUnusable(
                f"stack {options.stack} names no approver, author or deployer role (clinops:principals); the "
                "rehearsal acts through them"
            )
        self.roles = {
            "author": principals.authors[0].rsplit("/", 1)[-1],
            "approver": principals.approvers[0].rsplit("/", 1)[-1],
            "deployer": principals.deployers[0].rsplit("/", 1)[-1],
        }
        self.deployer = f"arn:aws:sts::{self.account}:assumed-role/{self.roles['deployer']}/rehearsal-release"
        self.oncall = f"arn:aws:sts::{self.account}:assumed-role/{self.roles['deployer']}/rehearsal-oncall"
        self.breaker_role = f"arn:aws:iam::{self.account}:role/clinops-{options.stack}-circuit-breaker"
        self.recorder_role = f"arn:aws:iam::{self.account}:role/clinops-{options.stack}-approval-recorder"
        self.state: dict[str, Any] = {}

    def _refuse_foreign_log(self) -> None:
        """`clinops release` and `verify` write to OUT/evidence/<stack>/ by default, so a real stack's log may live
        where the rehearsal writes: never mix played events into it. A log the rehearsal started carries a marker
        beside it (like the dev key file); any other log with entries is refused."""
        holds_entries = self.evidence_dir.is_dir() and any(self.evidence_dir.glob("*.json"))
        if holds_entries and not self.marker.is_file():
            raise RehearsalUnusable(
                f"{self.evidence_dir} holds evidence the rehearsal did not write (no {self.marker.name} beside it): "
                "played events must not mix with a real log. Fix: --out-dir another folder"
            )

    # -- running ---------------------------------------------------------------------------------------------

    def run(self) -> RehearsalResult:
        result = RehearsalResult(
            self.options.stack, self.options.model, self.evidence_dir, self.project, fault=self.options.fault
        )
        with offline_aws(self.account, self.region):
            from serving.rollback.rehearsal_world import RehearsalWorld

            self.world = RehearsalWorld(self.account, self.region)
            try:
                for name, _ in PHASES:
                    phase = self._phase(name)
                    result.phases.append(phase)
                    self.report(phase)
                    # The scorecard is a reader of the log in its own right: it judges even a log verify refused.
                    if not phase.ok and name != "evidence":
                        break
            finally:
                self.world.sagemaker.close()
        result.scorecard = self.state.get("scorecard")
        return result

    def _phase(self, name: str) -> PhaseResult:
        before = self._last_seq()
        started = time.perf_counter()
        details: list[str] = []
        self.state["warning"] = None
        logs = io.StringIO()
        try:
            with (
                self.running(name),
                contextlib.redirect_stdout(logs),
            ):  # the handlers' function-log lines (JSON), kept for --verbose
                summary, ok = self._steps()[name](details), True
        except PhaseFailed as exc:
            summary, ok = str(exc), False
        except ReleaseError as exc:
            summary, ok = f"{exc.exit_code.name} (exit {int(exc.exit_code)}): {exc.message}", False
        except (ClientError, BotoCoreError) as exc:  # the fake account refused: as AWS_UNAVAILABLE would read
            summary, ok = f"AWS call failed: {exc}", False
        seconds = time.perf_counter() - started
        written = self._written_since(before)
        return PhaseResult(
            name, ok, seconds, summary, written, details, self.state["warning"], logs.getvalue().splitlines()
        )

    def _steps(self) -> dict[str, Callable[[list[str]], str]]:
        return {
            "world": self._world,
            "baseline": self._baseline,
            "approve": self._approve,
            "release": self._release,
            "verify": self._verify_phase,
            "alarm": self._alarm,
            "breaker": self._breaker_phase,
            "landing": self._landing,
            "reconcile": self._reconcile,
            "evidence": self._evidence,
            "scorecard": self._scorecard,
        }

    def _log(self, *, create_key: bool = True) -> EvidenceLog:
        return EvidenceLog.local(self.evidence_dir, self.options.stack, create_key=create_key)

    def _last_seq(self) -> int:
        try:
            seqs = self._log().store.seqs() if self.evidence_dir.is_dir() else []
        except EvidenceError:
            return -1  # an unreadable log: the release refuses it loudly (EVIDENCE_UNAVAILABLE)
        return max(seqs) if seqs else -1

    def _written_since(self, seq: int) -> list[str]:
        try:
            entries = self._log().entries() if self.evidence_dir.is_dir() else []
        except EvidenceError as exc:
            return [f"the log could not be read: {exc}"]
        written = []
        for entry in entries:
            if entry.seq > seq:
                what = entry.details.get("outcome") or entry.details.get("change") or entry.details.get("status")
                if entry.kind == "verification":
                    what = "passed" if entry.details.get("passed") else "FAILED"
                written.append(f"#{entry.seq} {entry.kind}" + (f" ({what})" if what else ""))
        return written

    # -- helpers ---------------------------------------------------------------------------------------------

    def _config(self) -> StackConfig:
        from serving.release.release import load_config

        return load_config(self.options.stack, self.project)

    def _model(self, config: StackConfig) -> ModelConfig:
        from serving.release.release import find_model

        return find_model(config, self.options.model)

    def _aws(self, config: StackConfig) -> Any:
        from serving.release.aws import RetryPolicy, open_stack

        # the caller's account is checked against the stack's, as `clinops release` does (moto's STS answers)
        retry = RetryPolicy(attempts=2, base_seconds=0.01, cap_seconds=0.01)
        return open_stack(
            config, self.deployer, self.world.session, retry=retry, clients={"sagemaker": self.world.sagemaker}
        )

    def _identity(self, persona: str, person: str) -> dict[str, Any]:
        from serving.rollback.rehearsal_world import role_session

        return role_session(self.account, self.roles[persona], person.split("@")[0], person)

    def _register(self) -> str:
        from serving.rollback.rehearsal_world import bundle_archive

        metadata = json.loads((self.run_dir / "card" / "card-property.json").read_text())["metadata"]
        archive = bundle_archive(self.run_dir / "model")
        return self.world.register(self.options.model, archive, metadata, self._identity("author", AUTHOR_PERSON))

    def _verify(self, config: StackConfig, reason: str) -> Any:
        from serving.release.evidence import EvidenceLocation
        from serving.release.verify import Verifier, record_verification

        aws = self._aws(config)
        report = Verifier(aws).verify(config, self._model(config))
        record_verification(
            report, EvidenceLocation(str(self.evidence_root)), actor=self.deployer, reason=reason, aws=aws, clock=_clock
        )
        if not report.passed:
            problems = "; ".join(f"{f.check}: {f.message}" for f in report.findings if f.level != "pass")
            raise PhaseFailed(f"verify {report.exit_code.name} (exit {int(report.exit_code)}): {problems}")
        return report

    def _breaker(self) -> tuple[Any, Any, Any]:
        from serving.guardrails.breaker import BreakerSettings, Clients
        from serving.guardrails.state import SsmStateStore

        settings = BreakerSettings(
            stack=self.options.stack,
            models=tuple(m.name for m in self.repo_config.models),
            topic_arn=self.world.topic_arn,
            actor=self.breaker_role,
        )
        clients = Clients(self.world.sagemaker, self.world.ssm, self.world.sns, self._log(), self.world.cloudwatch)
        return clients, SsmStateStore(self.world.ssm), settings

    # -- the phases ------------------------------------------------------------------------------------------

    def _world(self, details: list[str]) -> str:
        stack = self.options.stack
        if self.project.exists():
            shutil.rmtree(self.project)
        self.project.mkdir(parents=True)
        for name in ("Pulumi.yaml", f"Pulumi.{stack}.yaml"):
            shutil.copy(project_root() / name, self.project / name)
        self.evidence_root.mkdir(parents=True, exist_ok=True)
        self.marker.write_text("this stack's evidence log was started by `clinops rehearse` (a fake AWS account)\n")
        self.world.provision(self.repo_config)
        # A registry never reuses a version: continue after the newest this stack's log has seen.
        seen = [
            names.package_version(e.package_arn)
            for e in (self._log().entries() if self.evidence_dir.is_dir() else [])
            if e.model == self.options.model and e.package_arn
        ]
        for _ in range(max(seen, default=0)):
            self.world.register(self.options.model, b"", {}, None)
        details.append(f"training run: {self.run_dir}")
        details.append(f"stack file: {self.project / f'Pulumi.{stack}.yaml'} (a copy; the repository's is not edited)")
        if seen:
            details.append(f"the registry already holds versions 1-{max(seen)} (from earlier rehearsals in the log)")
        return (
            f"account {self.account} ({self.region}) in moto, in process: no network, fake credentials only; "
            f"evidence log {self.evidence_dir}"
        )

    def _baseline(self, details: list[str]) -> str:
        from serving.release.stackfile import StackFileEdit

        previous = self._register()
        self.world.decide(
            previous, "Approved", "rehearsal: the previous clinical review", self._identity("approver", APPROVER_PERSON)
        )
        edit = StackFileEdit(self.options.stack, self.project)
        edit.pin(self.options.model, previous, None)
        edit.replace()
        config = self._config()
        self.world.deploy(config)
        self.state["previous"] = previous
        endpoint = names.endpoint_name(config.stack, self.options.model)
        live = f"v{names.package_version(previous)} serving on {endpoint}"
        if self.options.fault == "unverified-last-known-good":
            self.state["warning"] = "fault: the previous version is NOT verified"
            return f"{live}; never verified (fault: unverified-last-known-good)"
        report = self._verify(config, "rehearsal: the previous release's post-deploy verification")
        details.append(f"verified marker for {report.serving_config} (evidence anchor {report.verified_marker})")
        return f"{live}; verified ({sum(f.level == 'pass' for f in report.findings)} checks passed)"

    def _approve(self, details: list[str]) -> str:
        from serving.guardrails.recorder import RecorderSettings, handle_package_event

        package = self._register()
        self.state["package"] = package
        author = self._identity("author", AUTHOR_PERSON)
        approver = author if self.options.fault == "self-approval" else self._identity("approver", APPROVER_PERSON)
        event = self.world.decide(package, "Approved", "rehearsal: clinical review CR-0001 (synthetic)", approver)
        settings = RecorderSettings(stack=self.options.stack, topic_arn=self.world.topic_arn, actor=self.recorder_role)
        recorded = handle_package_event(
            event, self.world.sagemaker, self.world.ssm, self.world.sns, self._log(), _clock, settings
        )
        details.append(f"author {author['IamIdentity']['Arn']} ({AUTHOR_PERSON})")
        details.append(f"approver {approver['IamIdentity']['Arn']} ({approver['IamIdentity']['SourceIdentity']})")
        version = f"v{names.package_version(package)}"
        if recorded.outcome != "recorded":
            if self.options.fault != "self-approval":
                raise PhaseFailed(
                    f"the approval recorder did not record {version}: {recorded.outcome}: {recorded.reason}"
                )
            # In the cloud the recorder alerts and the package stays Approved in the registry: release must refuse.
            self.state["warning"] = f"approval recorder {recorded.outcome} (alerted): {recorded.reason}"
            return f"{version} Approved in the registry by its own author; the recorder refused to record it"
        return f"{version} registered (metrics of run {self.run_dir.name}) and Approved by a different person"

    def _release(self, details: list[str]) -> str:
        from serving.release.evidence import EvidenceLocation
        from serving.release.gate import GateOptions
        from serving.release.release import Releaser, ReleaseRequest

        config = self._config()
        package = self.state["package"]
        releaser = Releaser(
            self.project,
            self._aws(config),
            EvidenceLocation(str(self.evidence_root)),
            gate_options=GateOptions(engines=self.options.engines),
            pulumi=RehearsalPulumi(self.project, deploy=self.world.deploy),
            say=details.append,
        )
        request = ReleaseRequest(self.options.stack, self.options.model, package, REASON, self.deployer)
        outcome = releaser.release(request)
        if outcome.status != "deployed":
            raise PhaseFailed(f"release ended {outcome.status}, not deployed")
        lkg = outcome.changes.get("lastKnownGoodPackageArn", {}).get("to")
        kept = f"last-known-good v{names.package_version(lkg)}" if lkg else "NO last-known-good"
        return (
            f"v{names.package_version(package)} pinned ({kept}), gate passed on plan {outcome.gate.plan_hash[:12]}, "
            f"deployed by {self.deployer.rsplit('/', 2)[-2]} (not the approver)"
        )

    def _verify_phase(self, details: list[str]) -> str:
        report = self._verify(self._config(), "rehearsal: post-deploy verification")
        details.append(f"verified marker for {report.serving_config} (evidence anchor {report.verified_marker})")
        passed = sum(f.level == "pass" for f in report.findings)
        return f"{report.serving_config} InService on its pin; {passed} checks passed"

    def _alarm(self, details: list[str]) -> str:
        alarm = names.alarm_name(self.options.stack, self.options.model, ALARM_SIGNAL)
        self.state["event"] = event = self.world.fire(alarm, ALARM_REASON)
        details.append(f"EventBridge event {event['id']} ({event['detail-type']}) to the circuit breaker")
        return f"{alarm}: OK -> ALARM at {event['detail']['state']['timestamp']} (CloudWatch: {ALARM_REASON[:60]}...)"

    def _judge(self, event: dict[str, Any], expected: str, details: list[str]) -> Any:
        from serving.guardrails.breaker import handle_event

        clients, store, settings = self._breaker()
        decisions = handle_event(event, clients, store, _clock, settings)
        for decision in decisions:
            details.append(f"{decision.outcome}: {decision.reason}")
        failing = [d for d in decisions if d.must_fail]
        if failing:  # the Lambda handler raises here: Errors alarm, retries, the dead-letter queue
            first = failing[0]
            raise PhaseFailed(
                f"circuit breaker {first.outcome}: {first.evidence_error or first.alert_error or first.reason}"
            )
        last = [d for d in decisions if d.model == self.options.model][-1:] or decisions[-1:]
        if not last or str(last[0].outcome) != expected:
            got = f"{last[0].outcome}: {last[0].reason}" if last else "no decision"
            raise PhaseFailed(f"the circuit breaker did not roll back ({got})")
        return last[0]

    def _breaker_phase(self, details: list[str]) -> str:
        decision = self._judge(self.state["event"], "rolling-back", details)
        alerts = self.world.alerts()
        details.append(f"{len(alerts)} alert(s) on the {self.options.stack} alert topic")
        return (
            f"UpdateEndpoint accepted: {decision.from_config} -> verified last-known-good {decision.to_config} "
            f"({decision.phase})"
        )

    def _landing(self, details: list[str]) -> str:
        from serving.guardrails.events import RECONCILE_EVENT

        decision = self._judge(dict(RECONCILE_EVENT), "rolled-back", details)
        return f"{decision.endpoint} InService on {decision.to_config}: phase {decision.phase}"

    def _reconcile(self, details: list[str]) -> str:
        from serving.rollback.reconcile import MATCHES, ReconcileRefused, inspect_pin, reconcile_model

        config = self._config()
        try:
            result = reconcile_model(
                config,
                self._model(config),
                sagemaker=self.world.sagemaker,
                ssm=self.world.ssm,
                evidence=self._log(),
                root=self.project,
                actor=self.oncall,
                clock=_clock,
            )
        except ReconcileRefused as exc:
            raise PhaseFailed(f"reconcile refused: {exc}") from None
        after = self._config()
        status = inspect_pin(after, self._model(after), self.world.sagemaker, self.world.ssm)
        if not result.changed or status.state != MATCHES:
            raise PhaseFailed(f"the pin does not follow the rollback: {result.message}; then {status.message}")
        details.append(f"{self.project / f'Pulumi.{config.stack}.yaml'}: {result.changes}")
        return f"{result.message}; `clinops rollback reconcile --check` now passes ({status.message})"

    def _evidence(self, details: list[str]) -> str:
        directory = self.evidence_dir
        if self.options.fault == "tampered-evidence":
            directory = self._tampered_copy(details)
        self.state["verified_dir"] = directory
        report = EvidenceLog.local(directory, self.options.stack, create_key=False).verify()
        if not report.ok:
            first = report.problems[0]
            raise PhaseFailed(
                f"TAMPERED: {directory} does not verify ({len(report.problems)} problem(s); first: {first})"
            )
        if report.entries == 0:
            raise PhaseFailed(f"{directory} holds no entries: nothing was recorded")
        return f"INTACT: {report.entries} entries, every hash, link and seal checked; head {report.head}"

    def _tampered_copy(self, details: list[str]) -> Path:
        """The fault: a copy of the log with the rollback's `rolled-back` entry rewritten to hide it (the real log
        is left alone: it stays the demo's evidence)."""
        from clinops.evidence.log import local_head_path, local_key_path
        from clinops.evidence.store import entry_name

        copy = self.options.out_dir / "rehearsal" / "tampered" / self.options.stack
        if copy.exists():
            shutil.rmtree(copy)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.evidence_dir, copy)
        for path in (local_key_path(self.evidence_dir), local_head_path(self.evidence_dir)):
            if path.exists():
                shutil.copy(path, copy.parent / path.name)
        landed = [
            e for e in self._log().entries() if e.kind == "rollback" and e.details.get("outcome") == "rolled-back"
        ]
        target = copy / entry_name(landed[-1].seq)
        target.chmod(0o644)
        target.write_bytes(target.read_bytes().replace(b"rolled-back", b"no-op"))
        details.append(f"fault: rewrote {target} (the rollback now reads 'no-op')")
        return copy

    def _scorecard(self, details: list[str]) -> str:
        from serving.release.scorecard import ScorecardRefused, compute

        log = EvidenceLog.local(self.state["verified_dir"], self.options.stack, create_key=False)
        try:
            card = compute(self.repo_config, log)
        except ScorecardRefused as exc:
            raise PhaseFailed(f"scorecard refused: {exc}") from None
        self.state["scorecard"] = doc = card.as_dict()
        mine = card.promotions[-1:]
        incident = card.incidents[-1] if card.incidents else None
        if not mine or incident is None:
            raise PhaseFailed("the scorecard shows no promotion or no rollback of this rehearsal")
        summary = doc["summary"]
        promotion = mine[0]
        cycle = _seconds_between(promotion.registered_at, promotion.deployed_at)
        details.append(
            f"this rehearsal: registration -> production {cycle} s, promotion {promotion.outcome}; incident cause "
            f"{incident.cause}, time-to-detect {incident.time_to_detect_s} s (deployment -> alarm), "
            f"time-to-rollback {incident.time_to_rollback_s} s (alarm -> landed)"
        )
        return (
            f"{summary['promotions']} promotion(s), success {summary['promotion_success_percent']} %, rollbacks by "
            f"cause {summary['rollbacks_by_cause']}, median time-to-detect {summary['median_time_to_detect_s']} s, "
            f"time-to-rollback {summary['median_time_to_rollback_s']} s"
        )
