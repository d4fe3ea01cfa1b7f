"""One source for the names of what a stack deploys per model: endpoints, configurations, variants, alarms, SSM
parameters, pipelines. The Pulumi components (infra/), the guardrail Lambdas (serving/guardrails/), release and
verify (serving/release/) all take them from here.

Standard library only: the Lambda functions import this module. A test holds the names equal to a real render.
"""

from __future__ import annotations

import re

# The platform's IAM personas: the workload's execution role and the three people-facing roles, whose
# separation (author != approver != deployer) is the segregation of duties.
PERSONAS = ("execution", "author", "approver", "deployer")
HUMAN_PERSONAS = PERSONAS[1:]
NONE = "none"  # value of the last-known-good parameter when the stack pins no previous package
VARIANT = "AllTraffic"
SHADOW_VARIANT = "Shadow"
PINNED_PARAMETER = "pinned-endpoint-config"
LAST_KNOWN_GOOD_PARAMETER = "last-known-good-endpoint-config"
ROLLBACK_ALARM_SUFFIXES = ("5xx-rate", "latency-p99", "invalid-scores")  # infra.rollback_alarms.RollbackAlarms
# Drift, quality and exhausted-error-budget alarms the breaker also obeys (the budget one only exists for models
# whose SLO says exhaustedAction: breaker; see SLO_EXHAUSTED_SUFFIX).
BREAKER_ALARM_SUFFIXES = ("drift", "score-drift", "quality", "slo-budget")
# The exhausted-error-budget alarm's name says what it does: the breaker obeys `slo-budget`, `clinops release`
# refuses while a `release-freeze` alarm is in ALARM, and `slo-budget-exhausted` only notifies.
SLO_EXHAUSTED_SUFFIX = {"breaker": "slo-budget", "freeze": "release-freeze", "none": "slo-budget-exhausted"}
FREEZE_ALARM_SUFFIX = SLO_EXHAUSTED_SUFFIX["freeze"]
# CloudWatch alarm state changes as EventBridge delivers them (the guardrail rules match on these).
ALARM_SOURCE, ALARM_DETAIL_TYPE = "aws.cloudwatch", "CloudWatch Alarm State Change"
# CDS Hooks service (serving/cds): clinicians' feedback on its cards, as a metric the monitoring alarms on.
CDS_METRIC_NAMESPACE = "clinops/cds"
CDS_OVERRIDDEN_METRIC = "CardOverridden"  # 1 overridden, 0 accepted: its Average is the override rate
CDS_OVERRIDE_ALARM_SUFFIX = "override-rate"
# Each card the service issues is recorded (no PHI) under s3://<evidence bucket>/<prefix>/<stack>/<model>/<uuid>.json
# so feedback reaching any instance of the function finds its card's model, version and band.
CDS_ISSUANCE_PREFIX = "cds-issued"
_PACKAGE_VERSION = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/([\w-]+)/(\d+)$")


def alert_topic_name(stack: str) -> str:
    """The platform's alert topic (infra.alerts): every alarm that must reach a person notifies it."""
    return f"clinops-{stack}-alerts"


def endpoint_name(stack: str, model: str) -> str:
    return f"clinops-{stack}-{model}"


def config_name(stack: str, model: str, package_arn: str) -> str:
    return f"{endpoint_name(stack, model)}-v{package_version(package_arn)}"


def package_version(package_arn: str) -> int:
    match = _PACKAGE_VERSION.match(package_arn)
    if not match:
        raise ValueError(f"not a versioned model package ARN: {package_arn}")
    return int(match.group(2))


def package_group(package_arn: str) -> str:
    match = _PACKAGE_VERSION.match(package_arn)
    if not match:
        raise ValueError(f"not a versioned model package ARN: {package_arn}")
    return match.group(1)


def parameter(stack: str, model: str, key: str) -> str:
    return f"/clinops/{stack}/{model}/{key}"


def parameter_name(stack: str, model: str, key: str) -> str:
    return parameter(stack, model, key)


def pinned_parameter(stack: str, model: str) -> str:
    return parameter(stack, model, PINNED_PARAMETER)


def last_known_good_parameter(stack: str, model: str) -> str:
    return parameter(stack, model, LAST_KNOWN_GOOD_PARAMETER)


def model_name(stack: str, model: str, package_arn: str) -> str:
    """The SageMaker model of one package version (named like its endpoint configuration)."""
    return config_name(stack, model, package_arn)


def alarm_names(stack: str, model: str) -> list[str]:
    """The three rollback alarms of `infra.rollback_alarms.RollbackAlarms`, in its order."""
    return [alarm_name(stack, model, suffix) for suffix in ROLLBACK_ALARM_SUFFIXES]


def breaker_state_parameter(stack: str, model: str) -> str:
    return parameter(stack, model, "circuit-breaker")


def verified_parameter(stack: str, model: str, endpoint_config: str) -> str:
    return parameter(stack, model, f"verified/{endpoint_config}")


def alarm_name(stack: str, model: str, signal: str) -> str:
    """`clinops-<stack>-<model>-<signal>`: every alarm the breaker obeys is named after its endpoint."""
    return f"{endpoint_name(stack, model)}-{signal}"


def canary_function_name(stack: str, model: str) -> str:
    """The synthetic-traffic canary's Lambda function, its IAM role and its schedule (infra.canary)."""
    return f"{endpoint_name(stack, model)}-canary"


def drift_pipeline_name(stack: str, model: str) -> str:
    """The daily drift and outcome-backtest pipeline and its schedule (infra.drift_monitoring)."""
    return f"{endpoint_name(stack, model)}-drift"


def drift_scheduler_role_name(stack: str, model: str) -> str:
    return f"{drift_pipeline_name(stack, model)}-scheduler"


def config_version(endpoint_config: str) -> int | None:
    """The package version an endpoint configuration of `config_name` serves (`...-v3` -> 3)."""
    match = re.search(r"-v(\d+)$", endpoint_config or "")
    return int(match.group(1)) if match else None


def cds_function_name(stack: str, model: str) -> str:
    """The model's CDS Hooks Lambda and its role (infra.cds_api); it writes clinician-feedback evidence."""
    return f"clinops-{stack}-cds-{model}"


def cds_alarm_names(stack: str, model: str) -> list[str]:
    """Alarms in force that stop the CDS service from showing the model's score: drift, quality, overrides."""
    return [alarm_name(stack, model, s) for s in (*BREAKER_ALARM_SUFFIXES, CDS_OVERRIDE_ALARM_SUFFIX)]


def batch_scoring_pipeline_name(stack: str, model: str) -> str:
    """The nightly batch-scoring pipeline and its schedule (infra.batch_scoring)."""
    return f"{endpoint_name(stack, model)}-batch-scoring"


def batch_scoring_scheduler_role_name(stack: str, model: str) -> str:
    return f"{batch_scoring_pipeline_name(stack, model)}-scheduler"


def tracking_server_name(stack: str) -> str:
    """The stack's SageMaker-managed MLflow tracking server (infra.tracking); the execution role may use only it."""
    return f"clinops-{stack}-mlflow"


def tracking_server_arn(stack: str, region: str, account: str) -> str:
    """The server the execution role may use (also the tracking URI the sagemaker-mlflow plugin accepts)."""
    return f"arn:aws:sagemaker:{region}:{account}:mlflow-tracking-server/{tracking_server_name(stack)}"


def training_pipeline_name(model: str) -> str:
    """Matches `pipelines.definitions.training.PipelineDefinitionSettings.pipeline_name` (held equal by a test)."""
    return f"clinops-{model}-training"


def model_for_alarm(
    stack: str,
    models: tuple[str, ...] | list[str],
    alarm: str,
    suffixes: tuple[str, ...] = (*ROLLBACK_ALARM_SUFFIXES, *BREAKER_ALARM_SUFFIXES),
) -> str | None:
    """The model whose endpoint names this alarm. Longest match wins, so `sepsis` never takes `sepsis-warning`'s
    alarms; the suffix must be a known signal, so an unrelated alarm that shares the prefix is not obeyed."""
    for model in sorted(models, key=len, reverse=True):
        prefix = endpoint_name(stack, model) + "-"
        if alarm.startswith(prefix) and alarm[len(prefix) :] in suffixes:
            return model
    return None


def alarm_state_pattern(stacks: list[str] | tuple[str, ...], signals: tuple[str, ...]) -> dict:
    """EventBridge pattern: any model's alarm of these signals in these stacks entering ALARM, by wildcard
    (`clinops-prod-*-drift`). Its size does not grow with the number of models (an exact-name list of a 50-model
    mesh is ~9,000 characters, over EventBridge's 2,048 default); the Lambdas still accept only the models and
    signals they serve (`model_for_alarm`)."""
    return {
        "source": [ALARM_SOURCE],
        "detail-type": [ALARM_DETAIL_TYPE],
        "detail": {
            "alarmName": [
                {"wildcard": f"{endpoint_name(stack, '*')}-{signal}"} for stack in stacks for signal in signals
            ],
            "state": {"value": ["ALARM"]},
        },
    }
