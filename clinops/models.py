"""Per-model configuration of the model mesh: serving, blue/green release and its rollback alarms.

SageMaker's documented limits live here too, so the config, the program and the gate agree on them.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

MODEL_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
PACKAGE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:sagemaker:([a-z0-9-]+):(\d{12}):model-package/([\w-]+)/(\d+)$")

# SageMaker API reference, BlueGreenUpdatePolicy / TrafficRoutingConfig / AutoRollbackConfig.
WAIT_INTERVAL_MAX = 3600  # WaitIntervalInSeconds: 0..3600
TERMINATION_WAIT_MAX = 3600  # TerminationWaitInSeconds: 0..3600
EXECUTION_TIMEOUT_MIN, EXECUTION_TIMEOUT_MAX = 600, 28800  # MaximumExecutionTimeoutInSeconds
ROLLBACK_ALARMS_MAX = 10  # AutoRollbackConfiguration.Alarms: 1..10
# Time to launch and health-check the new (green) fleet before the first traffic shift. SageMaker does not
# document it; 10 minutes covers CPU instances with a container the size of ours.
FLEET_PROVISIONING_SECONDS = 600
# SageMaker endpoint metrics are emitted every 60 s; CloudWatch evaluates them after they land, which can
# take up to about two more periods. The gate adds this to period x evaluation periods.
METRIC_PUBLISHING_DELAY_SECONDS = 120


class StrictModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, str_strip_whitespace=True
    )


def package_version(arn: str) -> int:
    match = PACKAGE_ARN_RE.match(arn)
    if not match:
        raise ValueError(f"not a versioned model package ARN: {arn}")
    return int(match.group(4))


class ReleasePolicy(StrictModel):
    """How traffic moves to a new model version, and the alarms that roll it back."""

    strategy: Literal["CANARY", "LINEAR", "ALL_AT_ONCE"] = "CANARY"
    canary_percent: int = Field(default=10, ge=1, le=50, description="share of capacity in the canary step")
    linear_step_percent: int = Field(default=25, ge=5, le=50, description="share moved per LINEAR step")
    wait_seconds: int = Field(default=600, ge=0, le=WAIT_INTERVAL_MAX, description="bake time per step")
    termination_wait_seconds: int = Field(default=300, ge=0, le=TERMINATION_WAIT_MAX)
    alarm_period_seconds: Literal[10, 30, 60, 300] = 60
    alarm_evaluation_periods: int = Field(default=3, ge=1, le=10)
    alarm_datapoints: int = Field(default=2, ge=1, le=10, description="breaching datapoints out of the periods")
    latency_p99_ms: int = Field(default=500, ge=10, le=60000, description="ModelLatency p99 SLO")
    max_error_rate_percent: float = Field(default=1.0, gt=0, le=50)
    min_invocations: int = Field(default=20, ge=1, description="below this, judge by error count, not rate")
    max_invalid_score_percent: float = Field(default=1.0, gt=0, le=50)

    @model_validator(mode="after")
    def _consistent(self) -> ReleasePolicy:
        if self.alarm_datapoints > self.alarm_evaluation_periods:
            raise ValueError(
                f"alarmDatapoints {self.alarm_datapoints} exceeds alarmEvaluationPeriods "
                f"{self.alarm_evaluation_periods}; fix: make it at most the number of periods"
            )
        if self.strategy != "ALL_AT_ONCE" and self.wait_seconds < self.detection_seconds:
            raise ValueError(
                f"waitSeconds {self.wait_seconds} is shorter than the alarms' worst-case detection time "
                f"{self.detection_seconds} s, so traffic would move on before a bad model can be caught; "
                f"fix: raise waitSeconds to at least {self.detection_seconds} or tighten the alarms"
            )
        if self.execution_timeout_seconds > EXECUTION_TIMEOUT_MAX:
            raise ValueError(
                f"the deployment would need {self.execution_timeout_seconds} s, above SageMaker's "
                f"{EXECUTION_TIMEOUT_MAX} s limit; fix: fewer LINEAR steps or shorter waits"
            )
        return self

    @property
    def detection_seconds(self) -> int:
        """Worst case from the first bad datapoint to ALARM."""
        return self.alarm_period_seconds * self.alarm_evaluation_periods + METRIC_PUBLISHING_DELAY_SECONDS

    @property
    def shift_steps(self) -> int:
        if self.strategy == "CANARY":
            return 2
        if self.strategy == "LINEAR":
            return math.ceil(100 / self.linear_step_percent)
        return 1

    @property
    def total_wait_seconds(self) -> int:
        """Bake time SageMaker spends between shifts plus the wait before the old fleet goes away."""
        bakes = 0 if self.strategy == "ALL_AT_ONCE" else self.shift_steps * self.wait_seconds
        return bakes + self.termination_wait_seconds

    @property
    def execution_timeout_seconds(self) -> int:
        return max(EXECUTION_TIMEOUT_MIN, FLEET_PROVISIONING_SECONDS + self.total_wait_seconds)


class ServingConfig(StrictModel):
    instance_type: str = Field(default="ml.m5.large", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    min_instances: int = Field(default=1, ge=1, le=20)
    max_instances: int = Field(default=2, ge=1, le=40)
    target_invocations_per_instance: int = Field(default=200, ge=1, description="per minute, for autoscaling")
    data_capture_percent: int = Field(default=100, ge=1, le=100)
    release: ReleasePolicy = Field(default_factory=ReleasePolicy)
    shadow_package_arn: str | None = Field(default=None, description="candidate served as a shadow variant")
    shadow_percent: int = Field(default=50, ge=1, le=100, description="share of requests copied to the shadow")

    @model_validator(mode="after")
    def _capacity(self) -> ServingConfig:
        if self.max_instances < self.min_instances:
            raise ValueError(
                f"maxInstances {self.max_instances} < minInstances {self.min_instances}; fix: raise maxInstances"
            )
        return self


class QualityGate(StrictModel):
    """What a package's registered metrics must show before it may be released to this stack."""

    min_auc: float = Field(default=0.70, ge=0.5, le=1.0)
    max_subgroup_auc_gap: float = Field(default=0.10, ge=0.0, le=1.0)
    max_brier: float = Field(default=0.25, gt=0.0, le=1.0)


class MonitoringConfig(StrictModel):
    """After the bake: when drift and quality decay trip the circuit breaker and open a retraining request."""

    schedule: str = Field(
        default="cron(0 6 * * ? *)",
        pattern=r"^(cron|rate)\(.+\)$",
        description="EventBridge Scheduler expression for the drift job (UTC)",
    )
    drifted_features_alarm: int = Field(default=3, ge=1, description="drifted features that count as drift")
    score_psi_alarm: float = Field(default=0.25, gt=0, le=5, description="score PSI that counts as drift")
    min_auc_alarm: float = Field(default=0.65, ge=0.5, le=1.0, description="rolling AUC on adjudicated outcomes")
    sustained_runs: int = Field(default=2, ge=1, le=7, description="consecutive daily results before acting")
    drift_instances: int = Field(default=1, ge=1, le=20, description="processing instances, sharded by capture key")
    drift_instance_type: str = Field(default="ml.m5.xlarge", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")


class BatchScoringConfig(StrictModel):
    """The nightly Batch Transform over the day's extract (same model as the endpoint): when and on what."""

    schedule: str = Field(
        default="cron(0 2 * * ? *)",
        pattern=r"^(cron|rate)\(.+\)$",
        description="EventBridge Scheduler expression for the batch scoring pipeline (UTC)",
    )
    instance_type: str = Field(default="ml.m5.xlarge", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    instances: int = Field(default=1, ge=1, le=20, description="transform instances, each given whole input files")


SloAction = Literal["breaker", "freeze", "none"]


class SloOverrides(StrictModel):
    """Service level objectives as set in a stack file: any field left out comes from the environment default
    (`SLO_DEFAULTS`), then from the stack-wide `clinops:slo`, then from the model's own `slo`."""

    availability_percent: float | None = Field(
        default=None, ge=90.0, lt=100.0, description="share of invocations that are not 5XX, over windowDays"
    )
    latency_p99_ms: int | None = Field(default=None, ge=10, le=60000, description="ModelLatency p99 objective")
    min_auc: float | None = Field(default=None, ge=0.5, le=1.0, description="AUC on adjudicated outcomes")
    max_calibration_slope_error: float | None = Field(
        default=None, gt=0.0, le=1.0, description="|calibration slope - 1| on adjudicated outcomes"
    )
    cost_per_1000_usd: float | None = Field(default=None, gt=0.0, le=1000.0, description="per 1,000 predictions")
    window_days: int | None = Field(default=None, ge=7, le=90, description="the error budget's rolling window")
    exhausted_action: SloAction | None = Field(
        default=None, description="prod, budget exhausted: open the circuit breaker, freeze releases, or alert only"
    )

    def given(self) -> dict[str, object]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Slo(StrictModel):
    """The resolved objectives of one model (every field set). The error budget is 1 - availability."""

    availability_percent: float = Field(ge=90.0, lt=100.0)
    latency_p99_ms: int = Field(ge=10, le=60000)
    min_auc: float = Field(ge=0.5, le=1.0)
    max_calibration_slope_error: float = Field(gt=0.0, le=1.0)
    cost_per_1000_usd: float = Field(gt=0.0, le=1000.0)
    window_days: int = Field(ge=7, le=90)
    exhausted_action: SloAction

    @property
    def error_budget(self) -> float:
        """Allowed bad fraction of invocations, e.g. 0.001 for 99.9%."""
        return round(1.0 - self.availability_percent / 100.0, 12)


# Defaults per environment: prod is what patients see; dev only has to show the machinery works.
SLO_DEFAULTS: dict[str, dict[str, object]] = {
    "dev": {
        "availability_percent": 99.0,
        "latency_p99_ms": 1000,
        "min_auc": 0.60,
        "max_calibration_slope_error": 0.5,
        "cost_per_1000_usd": 5.0,
        "window_days": 7,
        "exhausted_action": "none",
    },
    "staging": {
        "availability_percent": 99.5,
        "latency_p99_ms": 500,
        "min_auc": 0.65,
        "max_calibration_slope_error": 0.3,
        "cost_per_1000_usd": 2.0,
        "window_days": 30,
        "exhausted_action": "none",
    },
    "prod": {
        "availability_percent": 99.9,
        "latency_p99_ms": 300,
        "min_auc": 0.70,
        "max_calibration_slope_error": 0.2,
        "cost_per_1000_usd": 1.0,
        "window_days": 30,
        "exhausted_action": "freeze",
    },
}


CDS_SERVICE_ID_RE = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
# CDS Hooks 2.0 prefetch tokens: {{context.*}} and {{userPractitionerId}}-style user tokens.
_PREFETCH_TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")
_PREFETCH_CONTEXT = {
    "encounter-discharge": {"context.patientId", "context.encounterId", "context.userId"},
    "patient-view": {"context.patientId", "context.encounterId", "context.userId"},
}


def fill_prefetch_template(template: str, context: dict[str, str]) -> str | None:
    """A prefetch template with the hook's context filled in; None when the context lacks a token it uses."""
    missing = False

    def token(match: re.Match[str]) -> str:
        nonlocal missing
        value = context.get(match.group(1).removeprefix("context."))
        missing = missing or not value
        return value or ""

    filled = _PREFETCH_TOKEN.sub(token, template)
    return None if missing else filled


class CdsFallback(StrictModel):
    """What clinicians use instead when the model cannot answer safely (a standard index, a screening protocol)."""

    name: str = Field(min_length=3, max_length=80, description="e.g. HOSPITAL score, qSOFA screening protocol")
    guidance: str = Field(min_length=10, max_length=1000, description="markdown shown on the fallback card")
    url: str | None = Field(default=None, pattern=r"^https://\S+$", description="the protocol or index itself")


class CdsBand(StrictModel):
    """A risk band: scores at or above `min_score` (up to the next band) read as `label`."""

    label: str = Field(min_length=2, max_length=30)
    min_score: float = Field(ge=0.0, le=1.0)
    indicator: Literal["info", "warning", "critical"] = "info"


class CdsConfig(StrictModel):
    """The model's CDS Hooks 2.0 service: which EHR hook calls it, the FHIR data the EHR prefetches, the card."""

    hook: Literal["encounter-discharge", "patient-view"]
    service_id: str | None = Field(default=None, description="default: the model name")
    title: str = Field(min_length=3, max_length=120)
    prefetch: dict[str, str] = Field(default_factory=dict, description="key -> FHIR query template")
    deadline_ms: int = Field(default=500, ge=50, le=5000, description="the EHR never waits longer for a card")
    model_card_url: str = Field(pattern=r"^https://\S+$")
    bands: list[CdsBand] = Field(min_length=1)
    top_factors: int = Field(default=3, ge=0, le=10)
    override_rate_alarm: float = Field(
        default=0.5, gt=0, lt=1, description="daily share of cards clinicians override that raises the alarm"
    )
    override_min_feedback: int = Field(default=20, ge=1, description="below this many a day, no override verdict")
    fallback: CdsFallback

    @field_validator("service_id")
    @classmethod
    def _service_id(cls, v: str | None) -> str | None:
        if v is not None and not CDS_SERVICE_ID_RE.match(v):
            raise ValueError(f"'{v}' is not a CDS service id; fix: lower-case letters, digits and '-'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CdsConfig:
        allowed = _PREFETCH_CONTEXT[self.hook]
        for key, template in self.prefetch.items():
            if not re.match(r"^[A-Za-z][A-Za-z0-9]*$", key):
                raise ValueError(f"prefetch key '{key}' must be letters and digits; fix: rename it")
            unknown = sorted(set(_PREFETCH_TOKEN.findall(template)) - allowed)
            if unknown:
                raise ValueError(
                    f"prefetch.{key} uses {unknown}, which hook {self.hook} does not provide; "
                    f"fix: use {sorted(allowed)}"
                )
        cuts = [b.min_score for b in self.bands]
        if cuts != sorted(cuts) or len(set(cuts)) != len(cuts) or cuts[0] != 0.0:
            raise ValueError("bands must start at minScore 0 and rise strictly; fix: order them low to high")
        return self


class CdsGateway(StrictModel):
    """The stack's CDS Hooks API (infra/cds_api.py): which EHRs may call it, from where, how fast."""

    issuers: dict[str, str] = Field(min_length=1, description="allowed JWT issuer -> its JWKS URL (https)")
    allowed_origins: list[str] = Field(default_factory=list, description="EHR web origins allowed by CORS")
    throttle_rate_per_second: float = Field(default=50, gt=0, le=10000)
    throttle_burst: int = Field(default=100, ge=1, le=5000)

    @model_validator(mode="after")
    def _https(self) -> CdsGateway:
        for issuer, url in self.issuers.items():
            if not url.startswith("https://"):
                raise ValueError(f"issuers.{issuer}: JWKS URL '{url}' must be https; fix: the EHR's https JWKS URL")
        for origin in self.allowed_origins:
            if not re.match(r"^https://[A-Za-z0-9.-]+(:\d+)?$", origin):
                raise ValueError(f"allowedOrigins: '{origin}' is not an https origin; fix: https://host[:port]")
        return self


class ModelConfig(StrictModel):
    """One model of the mesh: a registry group, a training pipeline, and an endpoint once a package is pinned."""

    name: str = Field(description="lower-case slug, used in every resource name of the model")
    description: str = Field(min_length=10, description="intended use, for the registry and the model card")
    package_arn: str | None = Field(default=None, description="the approved model package pinned for release")
    last_known_good_package_arn: str | None = Field(
        default=None, description="the previous verified package: kept deployable as the rollback target"
    )
    serving: ServingConfig = Field(default_factory=ServingConfig)
    quality: QualityGate = Field(default_factory=QualityGate)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    batch_scoring: BatchScoringConfig = Field(default_factory=BatchScoringConfig)
    slo: SloOverrides = Field(default_factory=SloOverrides, description="this model's objectives (see Slo)")
    cds: CdsConfig | None = Field(default=None, description="the CDS Hooks service clinicians see it through")

    @property
    def cds_service_id(self) -> str | None:
        return None if self.cds is None else (self.cds.service_id or self.name)

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not MODEL_NAME_RE.match(v):
            raise ValueError(
                f"'{v}' is not a model slug; fix: 3-32 characters, lower-case letters, digits and '-', "
                "starting with a letter (e.g. readmission-risk)"
            )
        return v

    @field_validator("package_arn", "last_known_good_package_arn")
    @classmethod
    def _package(cls, v: str | None) -> str | None:
        if v is not None and not PACKAGE_ARN_RE.match(v):
            raise ValueError(
                f"'{v}' is not a versioned model package ARN; "
                "fix: arn:aws:sagemaker:REGION:ACCOUNT:model-package/GROUP/VERSION"
            )
        return v

    @model_validator(mode="after")
    def _packages_belong_to_model(self) -> ModelConfig:
        pins = {
            "packageArn": self.package_arn,
            "lastKnownGoodPackageArn": self.last_known_good_package_arn,
            "serving.shadowPackageArn": self.serving.shadow_package_arn,
        }
        for field, arn in pins.items():
            if arn and f"model-package/{self.name}/" not in arn:
                raise ValueError(
                    f"{field} '{arn}' belongs to another model's group; fix: pin a package of group {self.name}"
                )
        if self.last_known_good_package_arn and not self.package_arn:
            raise ValueError("lastKnownGoodPackageArn without packageArn; fix: pin the current package too")
        if self.package_arn and self.package_arn == self.last_known_good_package_arn:
            raise ValueError("lastKnownGoodPackageArn equals packageArn; fix: remove it (nothing to roll back to)")
        return self
