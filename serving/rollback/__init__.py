"""Circuit breaker, approval trail, human-gated retraining, rollback drills and pin reconciliation.

- `breaker`   (Lambda) drift / quality / rollback alarm -> verified last-known-good, safely and once; a persisted
              state machine (requested -> updating -> landed | failed) recovered by a 5-minute schedule;
- `recorder`  (Lambda) Approved / Rejected package decisions -> `approval` evidence, segregation of duties;
- `retrain`   (Lambda or CLI) sustained drift / quality drop -> one training pipeline execution, never approval;
- `drill`     `clinops drill rollback`: the quarterly failover exercise, measured against rollbackSloSeconds;
- `reconcile` `clinops rollback reconcile [--check]`: the stack file's pin follows a rollback;
- `verified`  the marker `clinops verify` writes and the breaker requires;
- `state`     the breaker's compare-and-set state record in SSM: phase, pending alarms, decided transitions;
- `events`    EventBridge patterns for the Pulumi wiring, and event parsers;
- `permissions` least-privilege IAM grants of the three functions, as data for the wiring.

The Lambda modules (breaker, recorder, retrain and what they import: events, names, outputs, state, verified,
and the release code's `serving/release/{identity,errors}.py`) use the standard library and boto3 only. Their
handlers write evidence through `clinops.evidence` (pydantic), opened lazily after the action, so the function
asset must bundle `clinops/evidence` and a Lambda-compatible pydantic (a layer).
"""
