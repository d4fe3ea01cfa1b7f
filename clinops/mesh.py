"""Everything a model of the mesh needs, checked before a single resource is declared: its feature contract
(present, and about this model), the names of every resource derived from it within AWS's limits, and alarm
counts and event patterns within CloudWatch, SageMaker and EventBridge quotas. `clinops render`, the gate and
`pulumi up` call `check_mesh` right after the config validates; each problem names the model and the fix.

Linear in the number of models: one pass over the models, one file read each, no rendering.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from clinops import names
from clinops.config import YAML_LOADER, ConfigError, StackConfig, project_root
from clinops.slo import WORKBOOK_TIERS, detection_seconds

# AWS limits (API references: CreateEndpoint/CreateEndpointConfig/CreateModel EndpointName etc. max 63; IAM
# CreateRole RoleName max 64; Lambda FunctionName max 64; SageMaker CreatePipeline PipelineName max 256;
# CloudWatch PutMetricAlarm AlarmName max 255; PutDashboard DashboardName max 255; SSM PutParameter Name max
# 2048 with at most 15 levels; CloudWatch Logs log group name max 512; EventBridge event pattern 2048
# characters by default (quota "Event pattern size", adjustable to 4096); AutoRollbackConfig 1-10 alarms).
SAGEMAKER_NAME_MAX = 63
IAM_ROLE_NAME_MAX = 64
LAMBDA_NAME_MAX = 64
PIPELINE_NAME_MAX = 256
ALARM_NAME_MAX = 255
DASHBOARD_NAME_MAX = 255
SSM_NAME_MAX, SSM_LEVELS_MAX = 2048, 15
LOG_GROUP_MAX = 512
EVENT_PATTERN_MAX = 2048
ROLLBACK_ALARMS_MAX = 10

# The per-model alarm suffixes of infra.slo, longest names first matter only for the length check.
SLO_ALARM_SUFFIXES = (
    *(
        f"slo-{signal}-{t.name}{w}"
        for signal in ("availability", "latency")
        for t in WORKBOOK_TIERS
        for w in ("", "-long", "-short")
    ),
    *names.SLO_EXHAUSTED_SUFFIX.values(),
    "slo-auc",
    "slo-calibration",
    "cost-per-1000",
)


def contract_path(model: str, root: Path | None = None) -> Path:
    return (root or project_root()) / "pipelines" / "contracts" / f"{model}.yaml"


def check_mesh(config: StackConfig, root: Path | None = None) -> None:
    """Raise ConfigError listing every problem (model, what, fix); return quietly when the mesh is sound."""
    problems: list[str] = []
    for model in config.models:
        problems += _contract_problems(model.name, root)
        problems += _name_problems(config, model)
        problems += _detection_problems(config, model)
        rollback = len(names.ROLLBACK_ALARM_SUFFIXES)
        if rollback > ROLLBACK_ALARMS_MAX:
            problems.append(f"models[{model.name}]: {rollback} auto-rollback alarms, SageMaker accepts 1-10")
    problems += _event_pattern_problems(config)
    if problems:
        raise ConfigError(config.stack, problems)


def _detection_problems(config: StackConfig, model) -> list[str]:
    """A total outage after the bake must page (fast burn tier) within the stack's rollback SLO, or the SLO
    alarms would report an outage the release alarms already promised to catch sooner."""
    slo = config.slo_for(model)
    fast = WORKBOOK_TIERS[0]
    seconds = detection_seconds(fast, slo.window_days, 1.0, slo.error_budget)
    if seconds is None or seconds > config.rollback_slo_seconds:
        return [
            f"models[{model.name}]: a total outage would page after "
            f"{'never' if seconds is None else f'{seconds:.0f}'} s (fast burn tier), beyond "
            f"clinops:rollbackSloSeconds {config.rollback_slo_seconds}; fix: a stricter slo.availabilityPercent or a "
            "shorter slo.windowDays (both make the fast tier fire on less)"
        ]
    return []


def _contract_problems(model: str, root: Path | None) -> list[str]:
    path = contract_path(model, root)
    where = f"pipelines/contracts/{model}.yaml"
    if not path.is_file():
        return [
            f"models[{model}]: no feature contract at {where}; the training pipeline and the endpoint canary need "
            f"it. Fix: add {where} (copy pipelines/contracts/readmission-risk.yaml and edit it), or remove the "
            "model from the stack"
        ]
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return [f"models[{model}]: {where} cannot be read as YAML ({type(exc).__name__}); fix: repair the file"]
    declared = doc.get("name") if isinstance(doc, dict) else None
    if declared != model:
        return [
            f"models[{model}]: {where} declares name {declared!r}, not {model!r}; fix: set `name: {model}` in the "
            "contract (or use the right file)"
        ]
    return []


def _name_problems(config: StackConfig, model) -> list[str]:
    stack, name = config.stack, model.name
    derived: list[tuple[str, str, int]] = [
        ("endpoint name", names.endpoint_name(stack, name), SAGEMAKER_NAME_MAX),
        ("canary Lambda function and IAM role", names.canary_function_name(stack, name), IAM_ROLE_NAME_MAX),
        ("drift scheduler IAM role", names.drift_scheduler_role_name(stack, name), IAM_ROLE_NAME_MAX),
        ("drift pipeline", names.drift_pipeline_name(stack, name), PIPELINE_NAME_MAX),
        # the schedule is named as the pipeline (Scheduler Name max 64): the role's longer name covers it
        ("batch-scoring scheduler IAM role", names.batch_scoring_scheduler_role_name(stack, name), IAM_ROLE_NAME_MAX),
        ("batch-scoring pipeline", names.batch_scoring_pipeline_name(stack, name), PIPELINE_NAME_MAX),
        ("training pipeline", names.training_pipeline_name(name), PIPELINE_NAME_MAX),
        ("dashboard", names.endpoint_name(stack, name), DASHBOARD_NAME_MAX),
        ("endpoint log group", f"/aws/sagemaker/Endpoints/{names.endpoint_name(stack, name)}", LOG_GROUP_MAX),
    ]
    for arn in (model.package_arn, model.last_known_good_package_arn, model.serving.shadow_package_arn):
        if arn:
            config_name = names.config_name(stack, name, arn)
            derived.append(("endpoint configuration and model", config_name, SAGEMAKER_NAME_MAX))
            derived.append(
                ("verified marker parameter", names.verified_parameter(stack, name, config_name), SSM_NAME_MAX)
            )
    suffixes = (*names.ROLLBACK_ALARM_SUFFIXES, *names.BREAKER_ALARM_SUFFIXES, *SLO_ALARM_SUFFIXES)
    longest = max(suffixes, key=len)
    derived.append(("alarm", names.alarm_name(stack, name, longest), ALARM_NAME_MAX))
    derived.append(("circuit-breaker parameter", names.breaker_state_parameter(stack, name), SSM_NAME_MAX))
    problems = []
    for what, value, limit in derived:
        if len(value) > limit:
            over = len(value) - limit
            problems.append(
                f"models[{model.name}]: the {what} name '{value}' is {len(value)} characters, AWS allows {limit}; "
                f"fix: shorten the model name by {over} or more (or the stack name)"
            )
    for parameter in (names.breaker_state_parameter(stack, name), names.pinned_parameter(stack, name)):
        if parameter.count("/") > SSM_LEVELS_MAX:
            problems.append(f"models[{model.name}]: parameter {parameter} is deeper than {SSM_LEVELS_MAX} levels")
    return problems


def _event_pattern_problems(config: StackConfig) -> list[str]:
    patterns = {
        "circuit-breaker": names.alarm_state_pattern([config.stack], names.BREAKER_ALARM_SUFFIXES),
        "retraining": names.alarm_state_pattern(config.retraining_stacks, ("drift", "quality")),
    }
    problems = []
    for rule, pattern in patterns.items():
        size = len(json.dumps(pattern, sort_keys=True))
        if size > EVENT_PATTERN_MAX:
            problems.append(
                f"the {rule} EventBridge rule's pattern is {size} characters, over EventBridge's default "
                f"{EVENT_PATTERN_MAX}-character quota, so the deploy would fail; fix: fewer stacks or signals, or "
                "raise the 'Event pattern size' quota (up to 4096)"
            )
    return problems
