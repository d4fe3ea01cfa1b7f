"""The canary marks every request it sends as synthetic, in the two ways `clinops.traffic` defines; the request
shape is checked against botocore's service model by the Stubber. Its Lambda archive carries what it imports."""

from __future__ import annotations

import ast
from typing import Any

import boto3
from botocore.stub import ANY, Stubber

from clinops.traffic import SYNTHETIC_ATTRIBUTE, SYNTHETIC_INFERENCE_PREFIX, is_synthetic_attributes
from infra.canary import ARCHIVE_FILES
from serving.guardrails.canary import run_canary


def test_every_canary_request_is_marked_synthetic() -> None:
    sagemaker = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    runtime = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    seen: list[dict[str, Any]] = []
    runtime.meta.events.register(
        "provide-client-params.sagemaker-runtime.InvokeEndpoint", lambda params, **_: seen.append(dict(params))
    )
    with Stubber(sagemaker) as sm, Stubber(runtime) as rt:
        described = {
            "EndpointName": "e",
            "EndpointArn": "arn:aws:sagemaker:us-east-1:1:e",
            "EndpointConfigName": "c",
            "EndpointStatus": "Updating",
            "CreationTime": "2025-01-01",
            "LastModifiedTime": "2025-01-01",
        }
        sm.add_response("describe_endpoint", described)
        for _ in range(3):
            rt.add_response(
                "invoke_endpoint",
                {"Body": b"{}"},
                {
                    "EndpointName": "e",
                    "ContentType": "text/csv",
                    "Accept": "application/json",
                    "Body": ANY,
                    "CustomAttributes": SYNTHETIC_ATTRIBUTE,
                    "InferenceId": ANY,
                },
            )
        result = run_canary(sagemaker, runtime, "e", "age\n71\n", requests=3)
    assert result["sent"] == 3
    ids = [p["InferenceId"] for p in seen]
    assert all(i.startswith(SYNTHETIC_INFERENCE_PREFIX) and len(i) <= 64 for i in ids) and len(set(ids)) == 3
    assert all(is_synthetic_attributes(p["CustomAttributes"]) for p in seen)


def test_the_archive_carries_every_first_party_module_the_handler_imports() -> None:
    imported = {
        node.module
        for node in ast.walk(ast.parse(ARCHIVE_FILES["handler.py"].read_text()))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    first_party = {m for m in imported if m.split(".")[0] in {"clinops", "serving", "pipelines", "infra"}}
    assert first_party == {"clinops.traffic"}
    assert {"clinops/__init__.py", "clinops/traffic.py"} <= set(ARCHIVE_FILES)
    assert all(path.is_file() for path in ARCHIVE_FILES.values())
    traffic_imports = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(ARCHIVE_FILES["clinops/traffic.py"].read_text()))
        for alias in getattr(node, "names", [])
        if isinstance(node, ast.Import)
    } | {
        node.module.split(".")[0]
        for node in ast.walk(ast.parse(ARCHIVE_FILES["clinops/traffic.py"].read_text()))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    import sys

    assert traffic_imports <= set(sys.stdlib_module_names) | {"__future__"}  # the Lambda runtime has no more


def test_synthetic_rows_are_counted_apart_and_still_feed_the_alarms() -> None:
    from tests.conftest import rendered

    states = [s["newState"] for s in rendered("prod")["steps"]]
    filters = {
        s["inputs"]["metricTransformation"]["name"]: s["inputs"]["pattern"]
        for s in states
        if s["type"] == "aws:cloudwatch/logMetricFilter:LogMetricFilter"
    }
    assert filters["SyntheticScored"] == '{ ($.event = "invocation") && ($.synthetic IS TRUE) }'
    assert filters["Scored"] == filters["InvalidScores"] == '{ $.event = "invocation" }'  # the canary's purpose
