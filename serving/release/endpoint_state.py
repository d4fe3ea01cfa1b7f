"""What SageMaker says about an endpoint right now, and whether it is safe to change it."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from clinops.exitcodes import EndpointBusy
from serving.release.aws import StackAws, error_code, error_message

# A deployment (or SageMaker's own maintenance) is in flight: a new update would fail or race it.
BUSY_STATUSES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
BROKEN_STATUSES = frozenset({"Failed", "OutOfService", "UpdateRollbackFailed"})


def describe_endpoint(aws: StackAws, name: str) -> dict[str, Any] | None:
    """The endpoint's description, or None when it does not exist (SageMaker says ValidationException)."""
    try:
        return aws.call("sagemaker", "describe_endpoint", EndpointName=name)
    except ClientError as exc:
        if error_code(exc) == "ValidationException" and "Could not find" in error_message(exc):
            return None
        raise


def ensure_not_busy(description: dict[str, Any] | None) -> None:
    if description is None:
        return
    status = description.get("EndpointStatus")
    if status in BUSY_STATUSES:
        raise EndpointBusy(
            f"endpoint {description['EndpointName']} is {status} (config {description.get('EndpointConfigName')}); "
            "a release now would race the running deployment. Fix: wait until it is InService, then retry",
            {"endpoint_status": status},
        )
