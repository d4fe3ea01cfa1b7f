"""Post-bake guardrails as Lambdas in the VPC: the circuit breaker (drift/quality alarm → last-known-good),
the approval recorder (Approved/Rejected package decisions → evidence) and human-gated retraining requests.

The function code is `serving/guardrails` (standard library + boto3); the evidence log it appends to needs
pydantic, shipped as a layer built by `make lambda-layer` (build/lambda-deps.zip) before `pulumi up`.
Least-privilege grants come from `serving.guardrails.permissions`, the same data the handlers' tests check.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from clinops.config import project_root
from clinops.evidence.s3 import EVIDENCE_PREFIX
from clinops.names import BREAKER_ALARM_SUFFIXES, alarm_state_pattern
from infra.base import (
    Platform,
    allow,
    policy_document,
    service_trust,
    tracing_statement,
    vpc_network_interface_statements,
)
from infra.logs import encrypted_log_group
from serving.guardrails import permissions
from serving.guardrails.breaker import FUNCTION_TIMEOUT_SECONDS
from serving.guardrails.events import RECONCILE_EVENT, RECONCILE_SCHEDULE, approval_event_pattern
from serving.guardrails.retrain import RETRAINING_SIGNALS

RUNTIME = "python3.11"  # the layer's compiled wheels (pydantic-core) are built for CPython 3.11
LAYER_ZIP = Path("build") / "lambda-deps.zip"
BREAKER, RECORDER, RETRAINING = "circuit-breaker", "approval-recorder", "retraining"
# Functions that write evidence: their roles may seal entries with the evidence HMAC key (infra/keys.py).
EVIDENCE_WRITER_FUNCTIONS = (BREAKER, RECORDER, RETRAINING)
# The handlers (serving/guardrails) and the only thing they import: the shared core (an import-linter contract
# holds them to it), so the zip is small and what runs is obvious.
_CODE = (
    "serving/__init__.py",
    "serving/guardrails/*.py",
    "clinops/__init__.py",
    "clinops/names.py",
    "clinops/exitcodes.py",
    "clinops/identity.py",
    "clinops/evidence/*.py",
)


@dataclass(frozen=True)
class GuardrailArgs:
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    boundary_arn: pulumi.Input[str]
    topic_arn: pulumi.Input[str]
    evidence_bucket: pulumi.Input[str]
    keys: dict[str, aws.kms.Key]  # logs, audit, artifacts, phi, evidence-mac
    models: list[str]  # models with an endpoint in this stack
    all_models: list[str]


RESERVED_CONCURRENCY = 2  # at most two events at once per function (clinops:lambdaReservedConcurrency)


def function_purposes(platform: Platform, models: list[str]) -> list[str]:
    """The guardrail functions this stack gets: the breaker where endpoints are, the recorder and retraining where
    the registry and pipelines are. Key policies name their roles before they exist, so this is the one list."""
    cfg = platform.config
    purposes = [BREAKER] if models else []
    if cfg.registry_account == cfg.account_id:
        purposes += [RECORDER, RETRAINING]
    return purposes


def function_name(platform: Platform, purpose: str) -> str:
    """The function's name, which is also its role's name."""
    return f"{platform.prefix}-{purpose}"


def code_archive(root: Path | None = None) -> pulumi.AssetArchive:
    root = root or project_root()
    files = sorted({p for pattern in _CODE for p in root.glob(pattern) if p.name != "cli.py"})
    return pulumi.AssetArchive({str(p.relative_to(root)): pulumi.FileAsset(str(p)) for p in files})


class Guardrails(pulumi.ComponentResource):
    def __init__(
        self, name: str, platform: Platform, args: GuardrailArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("clinops:serving:Guardrails", name, None, opts)
        cfg = platform.config
        self._platform, self._args = platform, args
        self._layer = aws.lambda_.LayerVersion(
            "python-deps",
            layer_name=f"{platform.prefix}-python-deps",
            compatible_runtimes=[RUNTIME],
            code=pulumi.FileArchive(str(LAYER_ZIP)),
            description="pydantic for the evidence log",
            opts=platform.child(self),
        )
        self._code = code_archive()
        purposes = function_purposes(platform, args.models)
        if BREAKER in purposes:
            breaker = self._function(
                BREAKER,
                "serving.guardrails.breaker.handler",
                permissions.BREAKER,
                {"MODELS": ",".join(args.models), "COOLDOWN_SECONDS": "1800"},
            )
            self._on_events(BREAKER, alarm_state_pattern([cfg.stack], BREAKER_ALARM_SUFFIXES), breaker)
            # Without an alarm event nothing would look again: the schedule recovers an interrupted rollback,
            # confirms (or fails) one in flight and re-judges deferred and cooldown-refused alarms.
            self._on_schedule(f"{BREAKER}-reconcile", RECONCILE_SCHEDULE, RECONCILE_EVENT, breaker)
        # Drift/quality alarms of every environment open retraining requests where the pipelines live.
        retrain_pattern = alarm_state_pattern(cfg.retraining_stacks, RETRAINING_SIGNALS)
        if RECORDER in purposes:
            recorder = self._function(RECORDER, "serving.guardrails.recorder.handler", permissions.RECORDER, {})
            self._on_events(RECORDER, approval_event_pattern(args.all_models), recorder)
            retrain = self._function(
                RETRAINING,
                "serving.guardrails.retrain.handler",
                permissions.RETRAINING,
                {
                    "MODELS": ",".join(args.all_models),
                    "DATA_URI_TEMPLATE": f"s3://{platform.bucket_name('phi-data')}/{{model}}/latest/",
                },
            )
            self._on_events(RETRAINING, retrain_pattern, retrain)
            if cfg.reader_accounts:
                aws.cloudwatch.EventBusPolicy(
                    "retraining-forwarding",
                    event_bus_name="default",
                    policy=policy_document(
                        {
                            "Sid": "PromotionAccountsForwardAlarms",
                            "Effect": "Allow",
                            "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in cfg.reader_accounts]},
                            "Action": "events:PutEvents",
                            "Resource": f"arn:aws:events:{cfg.region}:{platform.account}:event-bus/default",
                        }
                    ),
                    opts=platform.child(self),
                )
        else:
            self._forward_to_registry(retrain_pattern)
        self.register_outputs({})

    def _function(
        self, purpose: str, handler: str, grants: list[permissions.Grant], env: dict[str, str]
    ) -> aws.lambda_.Function:
        platform, args = self._platform, self._args
        fn_name = function_name(platform, purpose)
        log_group = encrypted_log_group(f"{purpose}-logs", platform, self, f"/aws/lambda/{fn_name}", args.keys["logs"])
        role = aws.iam.Role(
            f"{purpose}-role",
            name=fn_name,
            assume_role_policy=service_trust("lambda.amazonaws.com", platform.account),
            permissions_boundary=args.boundary_arn,
            tags=platform.tags(),
            opts=platform.child(self),
        )
        values = {
            "topic": args.topic_arn,
            "evidence_bucket": args.evidence_bucket,
            "evidence_key_arn": args.keys["audit"].arn,
            "evidence_mac_key_arn": args.keys["evidence-mac"].arn,
            "alerts_key_arn": args.keys["logs"].arn,
            "volume_key_arn": args.keys["artifacts"].arn,
            "capture_key_arn": args.keys["phi"].arn,
            "own_logs": log_group.arn,
        }
        permissions_policy = aws.iam.RolePolicy(
            f"{purpose}-permissions",
            role=role.id,
            policy=pulumi.Output.all(**values).apply(lambda v: _document(platform, grants, v)),
            opts=platform.child(self),
        )
        environment = {
            "STACK": platform.config.stack,
            "ACTOR_ARN": platform.role_arn(fn_name),
            "EVIDENCE_BUCKET": args.evidence_bucket,
            "EVIDENCE_PREFIX": EVIDENCE_PREFIX,
            "EVIDENCE_KMS_KEY_ID": args.keys["audit"].arn,
            "EVIDENCE_MAC_KEY_ID": args.keys["evidence-mac"].arn,
            "TOPIC_ARN": args.topic_arn,
            **env,
        }
        # A decision that failed after Lambda's retries (evidence unreachable, throttling) must not vanish:
        # it waits in an encrypted dead-letter queue, and its depth pages the on-call.
        dlq = aws.sqs.Queue(
            f"{purpose}-dlq",
            name=f"{fn_name}-dlq",
            kms_master_key_id=args.keys["logs"].arn,
            message_retention_seconds=14 * 86400,
            tags=platform.tags(),
            opts=platform.child(self),
        )
        dead_letter_policy = aws.iam.RolePolicy(
            f"{purpose}-dead-letters",
            role=role.id,
            policy=policy_document(
                allow("DeadLetters", ["sqs:SendMessage"], dlq.arn),
                allow("EncryptDeadLetters", ["kms:Decrypt", "kms:GenerateDataKey"], args.keys["logs"].arn),
            ),
            opts=platform.child(self),
        )
        self._pages_on_any(
            f"{purpose}-dlq-depth",
            f"{fn_name}-dead-letters",
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 300),
            {"QueueName": dlq.name},
            f"{purpose} could not process an event; see RUNBOOK.md",
        )
        function = aws.lambda_.Function(
            purpose,
            name=fn_name,
            dead_letter_config={"target_arn": dlq.arn},
            runtime=RUNTIME,
            handler=handler,
            code=self._code,
            layers=[self._layer.arn],
            role=role.arn,
            timeout=FUNCTION_TIMEOUT_SECONDS,  # the breaker's recovery waits this long before taking a call over
            memory_size=256,
            reserved_concurrent_executions=RESERVED_CONCURRENCY
            if platform.config.lambda_reserved_concurrency
            else None,
            kms_key_arn=args.keys["logs"].arn,
            tracing_config={"mode": "Active"},
            environment={"variables": environment},
            vpc_config={"subnet_ids": args.subnet_ids, "security_group_ids": [args.security_group_id]},
            logging_config={"log_format": "JSON", "log_group": log_group.name},
            tags=platform.tags(**{"clinops:purpose": purpose}),
            # CreateFunction checks the role's ENI and dead-letter permissions: the policies must exist first.
            opts=platform.child(self, depends_on=[log_group, permissions_policy, dead_letter_policy]),
        )
        # Any failed invocation pages: an AWS error, a lost evidence record or alert, an interrupted rollback
        # (each raises after alerting) and a timeout or crash (which cannot alert by itself).
        self._pages_on_any(
            f"{purpose}-errors",
            f"{fn_name}-errors",
            ("AWS/Lambda", "Errors", "Sum", 60),
            {"FunctionName": function.name},
            f"{purpose} failed an invocation; see RUNBOOK.md (circuit breaker: failures)",
        )
        return function

    def _pages_on_any(
        self,
        logical: str,
        name: str,
        metric: tuple[str, str, str, int],  # namespace, metric name, statistic, period (s)
        dimensions: dict[str, pulumi.Input[str]],
        description: str,
    ) -> None:
        """An alarm that pages on the first occurrence (any value above 0) of a count that should stay at 0."""
        namespace, metric_name, statistic, period = metric
        aws.cloudwatch.MetricAlarm(
            logical,
            name=name,
            namespace=namespace,
            metric_name=metric_name,
            dimensions=dimensions,
            statistic=statistic,
            period=period,
            evaluation_periods=1,
            comparison_operator="GreaterThanThreshold",
            threshold=0,
            treat_missing_data="notBreaching",
            alarm_description=description,
            alarm_actions=[self._args.topic_arn],
            # A silent metric must reach a person too (AWS Config cloudwatch-alarm-action-check, HIPAA pack).
            insufficient_data_actions=[self._args.topic_arn],
            tags=self._platform.tags(),
            opts=self._platform.child(self),
        )

    def _on_schedule(
        self, purpose: str, schedule: str, payload: dict[str, str], function: aws.lambda_.Function
    ) -> None:
        platform = self._platform
        rule = aws.cloudwatch.EventRule(
            f"{purpose}-schedule",
            name=f"{platform.prefix}-{purpose}",
            schedule_expression=schedule,
            tags=platform.tags(),
            opts=platform.child(self),
        )
        aws.cloudwatch.EventTarget(
            f"{purpose}-target",
            rule=rule.name,
            arn=function.arn,
            input=json.dumps(payload, sort_keys=True),
            opts=platform.child(self),
        )
        aws.lambda_.Permission(
            f"{purpose}-invoke",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="events.amazonaws.com",
            source_arn=rule.arn,
            opts=platform.child(self),
        )

    def _on_events(self, purpose: str, pattern: dict[str, Any], function: aws.lambda_.Function) -> None:
        platform = self._platform
        rule = aws.cloudwatch.EventRule(
            f"{purpose}-events",
            name=f"{platform.prefix}-{purpose}",
            event_pattern=json.dumps(pattern, sort_keys=True),
            tags=platform.tags(),
            opts=platform.child(self),
        )
        aws.cloudwatch.EventTarget(f"{purpose}-target", rule=rule.name, arn=function.arn, opts=platform.child(self))
        aws.lambda_.Permission(
            f"{purpose}-invoke",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="events.amazonaws.com",
            source_arn=rule.arn,
            opts=platform.child(self),
        )

    def _forward_to_registry(self, pattern: dict[str, Any]) -> None:
        """Send this stack's drift/quality alarm events to the build account, where the training pipelines run."""
        platform, cfg = self._platform, self._platform.config
        bus = f"arn:aws:events:{cfg.region}:{cfg.registry_account}:event-bus/default"
        role = aws.iam.Role(
            "retraining-forwarder-role",
            name=f"{platform.prefix}-retraining-forwarder",
            assume_role_policy=service_trust("events.amazonaws.com", platform.account),
            permissions_boundary=self._args.boundary_arn,
            tags=platform.tags(),
            opts=platform.child(self),
        )
        aws.iam.RolePolicy(
            "retraining-forwarder-permissions",
            role=role.id,
            policy=policy_document(allow("ForwardToRegistryBus", ["events:PutEvents"], bus)),
            opts=platform.child(self),
        )
        rule = aws.cloudwatch.EventRule(
            "retraining-forward-events",
            name=f"{platform.prefix}-retraining-forward",
            event_pattern=json.dumps(pattern, sort_keys=True),
            tags=platform.tags(),
            opts=platform.child(self),
        )
        aws.cloudwatch.EventTarget(
            "retraining-forward-target", rule=rule.name, arn=bus, role_arn=role.arn, opts=platform.child(self)
        )


def _document(platform: Platform, grants: list[permissions.Grant], values: dict[str, str]) -> str:
    fill = {
        "partition": "aws",
        "region": platform.region,
        "account": platform.account,
        "stack": platform.config.stack,
        "prefix": platform.prefix,
        "evidence_prefix": EVIDENCE_PREFIX,
        **values,
    }
    statements = [
        allow(f"Grant{i}", grant["actions"], sorted({r.format(**fill) for r in grant["resources"]}))
        for i, grant in enumerate(grants)
    ]
    statements.append(allow("WriteOwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], f"{values['own_logs']}:*"))
    statements.append(tracing_statement())
    statements += vpc_network_interface_statements(platform)
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)
