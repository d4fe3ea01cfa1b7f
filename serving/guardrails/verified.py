"""The "verified" marker of an endpoint configuration: the one thing that lets the circuit breaker (and a drill)
switch an endpoint to it.

Marker: SSM parameter `/clinops/<stack>/<model>/verified/<endpoint-config-name>`, a JSON object
`{endpoint_config, package_arn, config_created_at, verified_at, verified_by, evidence}` written by
`clinops verify` (through `mark_verified`) once a release has passed verification.

Why SSM and not a `clinops:verified=true` tag on the endpoint configuration: the configurations' tags belong to
Pulumi, so an out-of-band tag is drift that the next `pulumi up --refresh` removes - silently disarming the
breaker exactly when it is needed. The marker also pins the configuration's CreationTime: a configuration deleted
and re-created under the same name (different content, same name) no longer matches and is refused. Only the
deployer (verify) role may write under `/clinops/<stack>/*/verified/`; the breaker only reads.
Standard library + boto3 only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from clinops.names import verified_parameter
from serving.guardrails.events import iso, parse_time


@dataclass(frozen=True)
class VerifiedMarker:
    endpoint_config: str
    package_arn: str
    config_created_at: str
    verified_at: str
    verified_by: str
    evidence: str  # anchor `seq:hash` of the verification evidence entry

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, separators=(",", ":"))


def creation_stamp(created: datetime) -> str:
    """SageMaker's CreationTime, to the millisecond, as stored in the marker and compared by the breaker."""
    return iso(created)


def mark_verified(
    ssm: Any,
    sagemaker: Any,
    *,
    stack: str,
    model: str,
    endpoint_config: str,
    package_arn: str,
    evidence_anchor: str,
    actor: str,
    clock: Callable[[], datetime],
) -> VerifiedMarker:
    """Record that `endpoint_config` (serving `package_arn`) passed verification. Call after the verification
    evidence entry is appended, with its anchor. Raises if the configuration does not exist."""
    created = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint_config)["CreationTime"]
    marker = VerifiedMarker(
        endpoint_config=endpoint_config,
        package_arn=package_arn,
        config_created_at=creation_stamp(created),
        verified_at=iso(clock()),
        verified_by=actor,
        evidence=evidence_anchor,
    )
    ssm.put_parameter(
        Name=verified_parameter(stack, model, endpoint_config),
        Value=marker.to_json(),
        Type="String",
        Overwrite=True,
        Description="clinops: this endpoint configuration passed release verification",
    )
    return marker


def read_marker(ssm: Any, stack: str, model: str, endpoint_config: str) -> VerifiedMarker | None:
    try:
        value = ssm.get_parameter(Name=verified_parameter(stack, model, endpoint_config))["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise
    try:
        return VerifiedMarker(**json.loads(value))
    except (ValueError, TypeError):
        return None


def check_verified(
    ssm: Any, stack: str, model: str, endpoint_config: str, config_created: datetime
) -> tuple[VerifiedMarker | None, str]:
    """(marker, "") when the configuration is verified as it exists now, else (None, why not)."""
    marker = read_marker(ssm, stack, model, endpoint_config)
    where = verified_parameter(stack, model, endpoint_config)
    if marker is None:
        return None, f"no readable verification marker at {where}"
    if marker.endpoint_config != endpoint_config:
        return None, f"marker at {where} names {marker.endpoint_config}"
    if parse_time(marker.config_created_at) != parse_time(creation_stamp(config_created)):
        return None, (
            f"{endpoint_config} was created at {creation_stamp(config_created)}, after the verified one "
            f"({marker.config_created_at}): it was re-created and is unverified"
        )
    return marker, ""
