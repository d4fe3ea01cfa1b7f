"""Synthetic-traffic canary (Lambda, in the VPC). While an endpoint is being updated, a low-traffic clinical
endpoint may see too few requests for its rollback alarms to judge the new fleet; this sends de-identified
synthetic requests then, and nothing otherwise. Standard library + boto3 only (the Lambda runtime's), plus
`clinops.traffic` (shipped beside this file in the function's archive).

Every request is marked synthetic (`clinops.traffic`): Custom-Attributes for the container's metrics, an
InferenceId prefix for data capture, so drift, quality and shadow comparisons leave it out. The rollback alarms
still see it: that is what it is for."""

from __future__ import annotations

import json
import os
from typing import Any

from clinops.traffic import SYNTHETIC_ATTRIBUTE, synthetic_inference_id

IN_PROGRESS = {"Updating", "SystemUpdating"}


def run_canary(sagemaker: Any, runtime: Any, endpoint: str, payload: str, requests: int) -> dict[str, Any]:
    """Pure with respect to its clients: describe the endpoint; if it is mid-deployment, invoke it."""
    status = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
    if status not in IN_PROGRESS:
        return {"endpoint": endpoint, "status": status, "sent": 0, "errors": 0}
    errors = 0
    for _ in range(requests):
        try:
            runtime.invoke_endpoint(
                EndpointName=endpoint,
                ContentType="text/csv",
                Accept="application/json",
                Body=payload.encode(),
                CustomAttributes=SYNTHETIC_ATTRIBUTE,
                InferenceId=synthetic_inference_id(),
            )
        except runtime.exceptions.ModelError:
            errors += 1  # the rollback alarms count these; the canary only has to create the datapoints
    return {"endpoint": endpoint, "status": status, "sent": requests, "errors": errors}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:  # pragma: no cover - Lambda entry point
    import boto3

    result = run_canary(
        boto3.client("sagemaker"),
        boto3.client("sagemaker-runtime"),
        os.environ["ENDPOINT_NAME"],
        os.environ["CANARY_PAYLOAD"],
        int(os.environ.get("CANARY_REQUESTS", "30")),
    )
    print(json.dumps({"event": "canary", **result}))  # counts only: the payload is synthetic but never logged
    return result
