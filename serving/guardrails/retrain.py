"""Retraining with a human gate: sustained drift or a quality drop opens a retraining request - one execution of
the model's SageMaker training pipeline on fresh data - and records it as `retraining` evidence.

It never approves and never deploys. The pipeline ends by registering its candidate PendingManualApproval, like
any other candidate; a person approves it (the recorder records who and why) and a release deploys it. The only
SageMaker calls made here are ListPipelineExecutions and StartPipelineExecution (the tests hold that set exact).

"Sustained" has two sources: the alarm path trusts the drift alarm's M-of-N evaluation (its periods are the N
consecutive verdicts), the CLI path counts consecutive `drift` verdicts in drift results or `drift` evidence
(`insufficient-data` neither counts nor breaks a run: no verdict is no evidence either way).

The training pipelines live in the registry (build) account. Route the drift alarms' events there (a rule on the
default bus with an event-bus target in the registry account) and run the retraining function in that account.
Standard library + boto3 only.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from clinops.names import model_for_alarm, training_pipeline_name
from serving.guardrails.events import iso, parse_alarm_event
from serving.guardrails.outputs import EvidenceSink, log_line

DATA_PARAMETER = "InputDataUri"  # pipelines.definitions.steps: the pipeline's training-data parameter
DEFAULT_SUSTAINED_VERDICTS = 3
RETRAINING_SIGNALS = ("drift", "quality")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")


@dataclass(frozen=True)
class RetrainingRequest:
    stack: str
    model: str
    trigger: str  # sustained-drift | quality-drop
    reason: str
    data_uri: str  # fresh training data
    requested_by: str  # evidence actor: a role ARN or `system:identity`
    request_id: str  # idempotency: the alarm event id, or the CLI's run id
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RetrainingResult:
    outcome: str  # started | already-running
    reason: str
    pipeline: str
    execution_arn: str | None = None
    evidence_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def sustained_drift(verdicts: Sequence[str], required: int = DEFAULT_SUSTAINED_VERDICTS) -> bool:
    """True when the newest `required` verdicts (oldest first in `verdicts`) are all `drift`."""
    run = 0
    for verdict in reversed(verdicts):
        if verdict == "insufficient-data":
            continue
        if verdict != "drift":
            return False
        run += 1
        if run >= required:
            return True
    return False


def verdicts_from_results(results: Iterable[Mapping[str, Any]], model: str) -> list[str]:
    """Verdicts of `clinops drift` JSON results for `model`, ordered by the end of their window."""
    mine = [r for r in results if r.get("model") == model and r.get("verdict")]
    mine.sort(key=lambda r: str((r.get("window") or {}).get("last") or ""))
    return [str(r["verdict"]) for r in mine]


def verdicts_from_evidence(entries: Iterable[Any], model: str) -> list[str]:
    """Verdicts of `drift` evidence entries (details.verdict) for `model`, in log order."""
    return [
        str(e.details["verdict"])
        for e in entries
        if str(e.kind) == "drift" and e.model == model and isinstance(e.details, Mapping) and "verdict" in e.details
    ]


def validate_data_uri(uri: str) -> None:
    if not _S3_URI.match(uri):
        raise ValueError(f"'{uri}' is not an S3 URI; fix: s3://BUCKET/PREFIX/ of the fresh data")


def open_retraining_request(
    sagemaker: Any,
    evidence: EvidenceSink,
    request: RetrainingRequest,
    *,
    pipeline_name: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RetrainingResult:
    validate_data_uri(request.data_uri)
    pipeline = pipeline_name or training_pipeline_name(request.model)
    running = _running_execution(sagemaker, pipeline)
    if running:
        result = RetrainingResult(
            "already-running", f"{pipeline} is already executing: it serves this request", pipeline, running
        )
    else:
        started = sagemaker.start_pipeline_execution(
            PipelineName=pipeline,
            PipelineExecutionDisplayName=f"retrain-{request.stack}-{clock().strftime('%Y%m%d%H%M%S')}",
            PipelineExecutionDescription=f"{request.trigger}: {request.reason}"[:3072],
            PipelineParameters=[{"Name": DATA_PARAMETER, "Value": request.data_uri}],
            # The same request (a retried alarm event) starts one execution, not two.
            ClientRequestToken=_token(request),
        )
        result = RetrainingResult(
            "started", f"{pipeline} started on {request.data_uri}", pipeline, started["PipelineExecutionArn"]
        )
        log_line("retraining-started", {"model": request.model, "execution_arn": result.execution_arn})
    entry = evidence.append(
        "retraining",
        model=request.model,
        actor=request.requested_by,
        reason=f"{request.trigger}: {request.reason}"[:2000],
        details={
            **dict(request.details or {}),
            "outcome": result.outcome,
            "trigger": request.trigger,
            "pipeline": pipeline,
            "execution_arn": result.execution_arn,
            "data_uri": request.data_uri,
            "request_id": request.request_id,
            "requested_at": iso(clock()),
            "human_gate": "the candidate registers PendingManualApproval; nothing is approved or deployed here",
        },
    )
    result = RetrainingResult(result.outcome, result.reason, pipeline, result.execution_arn, entry.seq)
    log_line("retraining-request", {"stack": request.stack, "model": request.model, **result.as_dict()})
    return result


def _running_execution(sagemaker: Any, pipeline: str) -> str | None:
    page = sagemaker.list_pipeline_executions(
        PipelineName=pipeline, SortBy="CreationTime", SortOrder="Descending", MaxResults=20
    )
    for summary in page.get("PipelineExecutionSummaries", []):
        if summary.get("PipelineExecutionStatus") == "Executing":
            return summary.get("PipelineExecutionArn")
    return None


def _token(request: RetrainingRequest) -> str:
    return hashlib.sha256(f"{request.stack}/{request.model}/{request.request_id}".encode()).hexdigest()


@dataclass(frozen=True)
class RetrainSettings:
    stack: str  # the stack whose alarms fire (names the alarms)
    models: tuple[str, ...]
    data_uri_template: str  # e.g. s3://clinops-dev-111111111111-phi/{model}/fresh/
    actor: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetrainSettings:
        models = tuple(m.strip() for m in env["MODELS"].split(",") if m.strip())
        return cls(env["STACK"], models, env["DATA_URI_TEMPLATE"], env["ACTOR_ARN"])


def handle_retraining_alarm(
    event: Mapping[str, Any],
    sagemaker: Any,
    evidence: EvidenceSink,
    clock: Callable[[], datetime],
    settings: RetrainSettings,
) -> RetrainingResult | None:
    """The alarm path (pattern: `events.retraining_event_pattern`). None when the event is not ours."""
    alarm = parse_alarm_event(event)
    if alarm is None or alarm.state != "ALARM":
        return None
    model = model_for_alarm(settings.stack, settings.models, alarm.alarm, RETRAINING_SIGNALS)
    if model is None:
        return None
    trigger = "sustained-drift" if alarm.alarm.endswith("-drift") else "quality-drop"
    request = RetrainingRequest(
        stack=settings.stack,
        model=model,
        trigger=trigger,
        reason=f"{alarm.alarm}: {alarm.reason or 'entered ALARM'}",
        data_uri=settings.data_uri_template.format(model=model, stack=settings.stack),
        requested_by=settings.actor,
        request_id=alarm.event_id,
        details={"alarm": alarm.alarm, "alarm_state_changed_at": iso(alarm.changed_at)},
    )
    return open_retraining_request(sagemaker, evidence, request, clock=clock)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:  # pragma: no cover - Lambda entry point
    import boto3

    from serving.guardrails.outputs import LazyEvidence, s3_evidence_from_env

    settings = RetrainSettings.from_env(os.environ)
    evidence = LazyEvidence(lambda: s3_evidence_from_env(os.environ.get("EVIDENCE_STACK", settings.stack)))
    result = handle_retraining_alarm(event, boto3.client("sagemaker"), evidence, lambda: datetime.now(UTC), settings)
    return result.as_dict() if result else {"outcome": "ignored"}
