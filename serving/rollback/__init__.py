"""Operator commands on live endpoints: rollback drills and pin reconciliation.

- `drill`     `clinops drill rollback`: the quarterly failover exercise, measured against rollbackSloSeconds;
- `reconcile` `clinops rollback reconcile [--check]`: the stack file's pin follows a rollback.

The circuit breaker they exercise and follow, and its state record, live in `serving/guardrails`.
"""
