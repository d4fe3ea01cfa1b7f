"""Names of what a stack deploys for a model, as `serving.endpoint` and `serving.alarms` create them.

The shared, dependency-free definitions live in `serving.rollback.names` (the circuit breaker's Lambdas import
them); this module adds what release and verify need on top. The release gate renders the stack, and
`GateResult.declared` lists the names the plan really declares; the release tests check these against it.
"""

from __future__ import annotations

from serving.rollback.names import ROLLBACK_ALARM_SUFFIXES, VARIANT, alarm_name, config_name, endpoint_name, parameter

SHADOW_VARIANT = "Shadow"  # serving.endpoint.SHADOW_VARIANT
PINNED_PARAMETER = "pinned-endpoint-config"
LAST_KNOWN_GOOD_PARAMETER = "last-known-good-endpoint-config"

__all__ = [
    "LAST_KNOWN_GOOD_PARAMETER",
    "PINNED_PARAMETER",
    "SHADOW_VARIANT",
    "VARIANT",
    "alarm_names",
    "config_name",
    "endpoint_name",
    "model_name",
    "parameter_name",
]


def model_name(stack: str, model: str, package_arn: str) -> str:
    """The SageMaker model of one package version (named like its endpoint configuration)."""
    return config_name(stack, model, package_arn)


def alarm_names(stack: str, model: str) -> list[str]:
    """The three rollback alarms of `serving.alarms.RollbackAlarms`, in its order."""
    return [alarm_name(stack, model, suffix) for suffix in ROLLBACK_ALARM_SUFFIXES]


def parameter_name(stack: str, model: str, key: str) -> str:
    return parameter(stack, model, key)
