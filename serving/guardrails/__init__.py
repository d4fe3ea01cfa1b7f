"""Guardrail Lambda handlers: circuit breaker, approval trail, human-gated retraining, synthetic-traffic canary.

- `breaker`   drift / quality alarm -> verified last-known-good, safely and once; a persisted state machine
              (requested -> updating -> landed | failed) recovered by a 5-minute schedule;
- `recorder`  Approved / Rejected package decisions -> `approval` evidence, segregation of duties;
- `retrain`   (Lambda or CLI) sustained drift / quality drop -> one training pipeline execution, never approval;
- `canary`    de-identified synthetic requests while an endpoint is updating, so its rollback alarms can judge;
- `verified`  the marker `clinops verify` writes and the breaker requires;
- `state`     the breaker's compare-and-set state record in SSM: phase, pending alarms, decided transitions;
- `events`    EventBridge patterns for the Pulumi wiring (infra/guardrails.py), and event parsers;
- `permissions` least-privilege IAM grants of the functions, as data for the wiring.

These modules import only the standard library, boto3 and the core (`clinops.names`, `clinops.exitcodes`,
`clinops.identity`, `clinops.evidence`; an import-linter contract holds them to it). Handlers write evidence
through `clinops.evidence` (pydantic), opened lazily after the action, so the function asset bundles
`clinops/evidence` and a Lambda-compatible pydantic (a layer).
"""
