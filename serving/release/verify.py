"""`clinops verify`: is the endpoint serving exactly what the stack pins, guarded as configured?

Checks, each a finding: endpoint InService; the deployed pin (SSM) equals the stack file's pin; the endpoint's
current configuration equals the pin (if not, it was rolled back - said loudly, with the alarms that fired);
the configuration's variants run the pinned (and shadow) models; data capture on at the configured rate with
a KMS key; the three rollback alarms exist, act, are OK and are the endpoint's auto-rollback alarms; variant
weights and instance counts as configured; a shadow variant exactly when one is configured.

Exit: 0 all good, 8 busy (try later), 10 rolled back or drifted from the pin, 11 anything else wrong, 16 the
stack was never deployed (no deployed pin and no endpoint: nothing to verify, and not a rollback).
Every run is recorded as a `verification` entry (check=deployment) for the pinned package; a passing run also
writes the circuit breaker's "verified" marker (`serving.guardrails.verified`) for the serving configuration.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from clinops import names
from clinops.config import StackConfig
from clinops.exitcodes import AwsUnavailable, ExitCode, UnusableInput
from clinops.models import ModelConfig
from serving.release.aws import StackAws, error_code
from serving.release.endpoint_state import BROKEN_STATUSES, BUSY_STATUSES, describe_endpoint
from serving.release.evidence import CHECK_DEPLOYMENT, EvidenceLocation, record

PASS, WARN, UNHEALTHY, ROLLBACK, BUSY = "pass", "warn", "unhealthy", "rollback", "busy"
NOT_DEPLOYED = "not-deployed"
_WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Finding:
    check: str
    level: str  # pass | warn | unhealthy | rollback | busy | not-deployed
    message: str

    def as_evidence(self) -> dict[str, str]:
        return {"check": self.check, "level": self.level, "message": self.message}


@dataclass
class VerifyReport:
    stack: str
    model: str
    package_arn: str
    endpoint: str
    findings: list[Finding] = field(default_factory=list)
    fired_alarms: list[str] = field(default_factory=list)
    serving_config: str | None = None
    evidence_seq: int | None = None
    verified_marker: str | None = None  # the evidence anchor the breaker's marker points to

    def add(self, check: str, level: str, message: str) -> None:
        self.findings.append(Finding(check, level, message))

    @property
    def exit_code(self) -> ExitCode:
        levels = {f.level for f in self.findings}
        if NOT_DEPLOYED in levels:
            return ExitCode.NOT_DEPLOYED
        if BUSY in levels:
            return ExitCode.ENDPOINT_BUSY
        if ROLLBACK in levels:
            return ExitCode.ROLLED_BACK
        if UNHEALTHY in levels:
            return ExitCode.DEPLOYMENT_UNHEALTHY
        return ExitCode.OK

    @property
    def passed(self) -> bool:
        return self.exit_code == ExitCode.OK

    def as_evidence(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "exit_code": int(self.exit_code),
            "endpoint": self.endpoint,
            "serving_config": self.serving_config,
            "fired_alarms": self.fired_alarms,
            "findings": [f.as_evidence() for f in self.findings if f.level != PASS],
            "checks_passed": sorted({f.check for f in self.findings if f.level == PASS}),
        }


class Verifier:
    def __init__(
        self,
        aws: StackAws,
        *,
        lookback: dt.timedelta = dt.timedelta(hours=24),
        now: dt.datetime | None = None,
    ) -> None:
        self.aws = aws
        self.lookback = lookback
        self.now = now

    def verify(self, config: StackConfig, model: ModelConfig) -> VerifyReport:
        if not model.package_arn:
            raise UnusableInput(f"{model.name} has no packageArn in {config.stack}: nothing is pinned to verify")
        stack = config.stack
        report = VerifyReport(stack, model.name, model.package_arn, names.endpoint_name(stack, model.name))
        pinned = names.config_name(stack, model.name, model.package_arn)
        deployed_pin, last_known_good = self._recorded_pins(report, pinned)
        endpoint = describe_endpoint(self.aws, report.endpoint)
        if endpoint is None and deployed_pin is None:
            # Nothing was ever deployed: its own state, not a rollback (which would send on-call hunting alarms).
            report.findings = [
                Finding(
                    "deployment",
                    NOT_DEPLOYED,
                    f"stack {stack} was never deployed: no SSM {names.PINNED_PARAMETER} and no endpoint "
                    f"{report.endpoint}; release it (clinops release) or run pulumi up, then verify",
                )
            ]
            return report
        if endpoint is None:
            report.add("endpoint", ROLLBACK, f"endpoint {report.endpoint} does not exist, but {pinned} is pinned")
            return report
        status = endpoint.get("EndpointStatus")
        if status in BUSY_STATUSES:
            report.add("endpoint", BUSY, f"endpoint is {status}: a deployment is in flight; verify again when done")
            return report
        if status in BROKEN_STATUSES:
            reason = endpoint.get("FailureReason") or "no reason given"
            report.add("endpoint", UNHEALTHY, f"endpoint is {status}: {reason}")
        elif status != "InService":
            report.add("endpoint", UNHEALTHY, f"endpoint status {status} is not InService")
        else:
            report.add("endpoint", PASS, "InService")
        report.serving_config = endpoint.get("EndpointConfigName")
        self._pin(report, pinned, deployed_pin, last_known_good)
        self._variants(report, config, model, endpoint)
        self._capture(report, model, endpoint)
        self._alarms(report, endpoint)
        return report

    # -- the pin ------------------------------------------------------------------------------------------

    def _parameter(self, report: VerifyReport, key: str) -> str | None:
        name = names.parameter_name(report.stack, report.model, key)
        try:
            return self.aws.call("ssm", "get_parameter", Name=name)["Parameter"]["Value"]
        except ClientError as exc:
            if error_code(exc) == "ParameterNotFound":
                return None
            raise

    def _recorded_pins(self, report: VerifyReport, pinned: str) -> tuple[str | None, str | None]:
        deployed = self._parameter(report, names.PINNED_PARAMETER)
        last_known_good = self._parameter(report, names.LAST_KNOWN_GOOD_PARAMETER)
        if deployed is None:
            report.add("deployed-pin", UNHEALTHY, f"SSM {names.PINNED_PARAMETER} is missing: the stack is not deployed")
        elif deployed != pinned:
            report.add(
                "deployed-pin",
                ROLLBACK,
                f"the deployed stack pins {deployed} but Pulumi.{report.stack}.yaml pins {pinned}: the release "
                "was not deployed (run pulumi up) or the stack was deployed from another revision",
            )
        else:
            report.add("deployed-pin", PASS, f"deployed stack pins {pinned}")
        return deployed, (None if last_known_good in (None, "none") else last_known_good)

    def _pin(self, report: VerifyReport, pinned: str, deployed_pin: str | None, last_known_good: str | None) -> None:
        serving = report.serving_config
        if serving == pinned:
            report.add("serving-config", PASS, f"serving the pinned configuration {pinned}")
            return
        report.fired_alarms = self._fired_alarms(report)
        cause = f"alarm(s) {', '.join(report.fired_alarms)}" if report.fired_alarms else "no rollback alarm on record"
        target = "the last-known-good configuration" if serving == last_known_good else "a configuration"
        report.add(
            "serving-config",
            ROLLBACK,
            f"SILENT ROLLBACK: {report.endpoint} serves {target} {serving}, not the pinned {pinned} (cause: {cause})",
        )

    def _fired_alarms(self, report: VerifyReport) -> list[str]:
        """Rollback alarms in ALARM now or that entered ALARM within the lookback window."""
        alarm_names = names.alarm_names(report.stack, report.model)
        now = self.now or dt.datetime.now(dt.UTC)
        fired = []
        states = {a["AlarmName"]: a for a in self._describe_alarms(alarm_names)}
        for alarm in alarm_names:
            if states.get(alarm, {}).get("StateValue") == "ALARM":
                fired.append(alarm)
                continue
            history = self.aws.call(
                "cloudwatch",
                "describe_alarm_history",
                AlarmName=alarm,
                HistoryItemType="StateUpdate",
                StartDate=now - self.lookback,
                EndDate=now,
                ScanBy="TimestampDescending",
                MaxRecords=50,
            )
            if any("to ALARM" in item.get("HistorySummary", "") for item in history.get("AlarmHistoryItems", [])):
                fired.append(alarm)
        return fired

    # -- variants, capture, alarms ------------------------------------------------------------------------

    def _variants(self, report: VerifyReport, config: StackConfig, model: ModelConfig, endpoint: dict) -> None:
        serving = model.serving
        variants = {v["VariantName"]: v for v in endpoint.get("ProductionVariants", [])}
        main = variants.get(names.VARIANT)
        if set(variants) != {names.VARIANT} or main is None:
            report.add("variants", UNHEALTHY, f"production variants {sorted(variants)}; expected [{names.VARIANT}]")
        else:
            self._weight(report, names.VARIANT, main, 1.0)
            count = main.get("CurrentInstanceCount")
            if count is None or not serving.min_instances <= count <= serving.max_instances:
                bounds = f"{serving.min_instances}-{serving.max_instances}"
                report.add("instances", UNHEALTHY, f"{names.VARIANT} runs {count} instance(s), outside {bounds}")
            else:
                report.add("instances", PASS, f"{names.VARIANT} runs {count} instance(s)")
        shadows = {v["VariantName"]: v for v in endpoint.get("ShadowProductionVariants", []) or []}
        if serving.shadow_package_arn is None:
            if shadows:
                report.add("shadow", UNHEALTHY, f"shadow variant(s) {sorted(shadows)} deployed but none is configured")
            else:
                report.add("shadow", PASS, "no shadow variant, as configured")
        elif set(shadows) != {names.SHADOW_VARIANT}:
            report.add("shadow", UNHEALTHY, f"shadow variants {sorted(shadows)}; expected [{names.SHADOW_VARIANT}]")
        else:
            self._weight(report, names.SHADOW_VARIANT, shadows[names.SHADOW_VARIANT], serving.shadow_percent / 100)
        if report.serving_config == names.config_name(config.stack, model.name, model.package_arn or ""):
            self._models(report, config, model)

    def _weight(self, report: VerifyReport, variant: str, summary: dict, expected: float) -> None:
        current, desired = summary.get("CurrentWeight"), summary.get("DesiredWeight", summary.get("CurrentWeight"))
        if current is None or not math.isclose(current, expected, abs_tol=_WEIGHT_TOLERANCE):
            report.add("weights", UNHEALTHY, f"{variant} weight {current}, expected {expected}")
        elif desired is not None and not math.isclose(desired, current, abs_tol=_WEIGHT_TOLERANCE):
            report.add("weights", UNHEALTHY, f"{variant} weight {current} is moving to {desired}: not settled")
        else:
            report.add("weights", PASS, f"{variant} weight {current}")

    def _models(self, report: VerifyReport, config: StackConfig, model: ModelConfig) -> None:
        """The pinned configuration runs the pinned package's model (and the shadow package's, if any)."""
        described = self.aws.call("sagemaker", "describe_endpoint_config", EndpointConfigName=report.serving_config)
        expected = {names.VARIANT: names.model_name(config.stack, model.name, model.package_arn or "")}
        shadow = model.serving.shadow_package_arn
        if shadow:
            expected[names.SHADOW_VARIANT] = names.model_name(config.stack, model.name, shadow)
        actual = {
            v["VariantName"]: v.get("ModelName")
            for v in [*described.get("ProductionVariants", []), *(described.get("ShadowProductionVariants") or [])]
        }
        if actual != expected:
            report.add("models", UNHEALTHY, f"configuration {report.serving_config} runs {actual}, expected {expected}")
        else:
            report.add("models", PASS, f"variants run {sorted(expected.values())}")

    def _capture(self, report: VerifyReport, model: ModelConfig, endpoint: dict) -> None:
        capture = endpoint.get("DataCaptureConfig") or {}
        wanted = model.serving.data_capture_percent
        problems = []
        if not capture.get("EnableCapture") or capture.get("CaptureStatus") != "Started":
            problems.append(
                f"capture is off (EnableCapture={capture.get('EnableCapture')}, "
                f"CaptureStatus={capture.get('CaptureStatus')})"
            )
        if capture and capture.get("CurrentSamplingPercentage") != wanted:
            problems.append(f"sampling {capture.get('CurrentSamplingPercentage')}%, configured {wanted}%")
        destination = str(capture.get("DestinationS3Uri", ""))
        if capture and not destination.rstrip("/").endswith(f"/{model.name}"):
            problems.append(f"destination {destination or 'none'} is not the model's capture prefix /{model.name}/")
        if capture and not capture.get("KmsKeyId"):
            problems.append("captured requests are PHI but no KMS key is set")
        if problems:
            report.add("data-capture", UNHEALTHY, "data capture: " + "; ".join(problems))
        else:
            report.add("data-capture", PASS, f"capturing {wanted}% to {destination}")

    def _describe_alarms(self, alarm_names: list[str]) -> list[dict[str, Any]]:
        return self.aws.call("cloudwatch", "describe_alarms", AlarmNames=alarm_names).get("MetricAlarms", [])

    def _alarms(self, report: VerifyReport, endpoint: dict) -> None:
        expected = names.alarm_names(report.stack, report.model)
        alarms = {a["AlarmName"]: a for a in self._describe_alarms(expected)}
        for alarm in expected:
            found = alarms.get(alarm)
            if found is None:
                report.add("alarms", UNHEALTHY, f"rollback alarm {alarm} is missing")
            elif found.get("StateValue") != "OK":
                # INSUFFICIENT_DATA fails too: an alarm without data cannot roll a bad model back.
                why = found.get("StateReason", "")
                report.add("alarms", UNHEALTHY, f"ALARM STATE: {alarm} is {found.get('StateValue')} ({why})")
            elif found.get("ActionsEnabled") is False:
                report.add("alarms", UNHEALTHY, f"rollback alarm {alarm} has its actions disabled")
            else:
                report.add("alarms", PASS, f"{alarm} OK")
        deployment = endpoint.get("LastDeploymentConfig")
        if deployment is None:
            report.add("auto-rollback", WARN, "SageMaker reports no deployment configuration to check alarms against")
            return
        watched = {a["AlarmName"] for a in (deployment.get("AutoRollbackConfiguration") or {}).get("Alarms", [])}
        if not set(expected) <= watched:
            missing = sorted(set(expected) - watched)
            report.add("auto-rollback", UNHEALTHY, f"the endpoint's auto-rollback does not watch {', '.join(missing)}")
        else:
            report.add("auto-rollback", PASS, "auto-rollback watches all three alarms")


def record_verification(
    report: VerifyReport,
    evidence: EvidenceLocation,
    *,
    actor: str,
    reason: str,
    aws: StackAws | None = None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> VerifyReport:
    """Append the verification entry; when it passed and `aws` is given, also write the circuit breaker's
    "verified" marker for the serving configuration (`serving.guardrails.verified`), anchored to that entry, so
    the breaker may later roll back to this configuration."""
    entry = record(
        evidence.log(report.stack),
        "verification",
        CHECK_DEPLOYMENT,
        model=report.model,
        package_arn=report.package_arn,
        actor=actor,
        reason=reason,
        details=report.as_evidence(),
    )
    report.evidence_seq = entry.seq
    if aws is None or not report.passed or report.serving_config is None:
        return report
    from serving.guardrails.verified import mark_verified

    try:
        mark_verified(
            aws.client("ssm"),
            aws.client("sagemaker"),
            stack=report.stack,
            model=report.model,
            endpoint_config=report.serving_config,
            package_arn=report.package_arn,
            evidence_anchor=str(entry.anchor),
            actor=actor,
            clock=clock,
        )
    except ClientError as exc:
        raise AwsUnavailable(
            f"verification passed and is recorded (evidence seq {entry.seq}), but the verified marker for "
            f"{report.serving_config} could not be written ({error_code(exc)}); the circuit breaker will not roll "
            "back to it until `clinops verify` runs again successfully"
        ) from None
    report.verified_marker = str(entry.anchor)
    return report
