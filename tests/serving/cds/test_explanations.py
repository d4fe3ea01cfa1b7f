"""The CDS service asks the model for as many reasons as its card shows, in the container's own request format."""

from __future__ import annotations

import io
import json

import boto3
from botocore.response import StreamingBody
from botocore.stub import Stubber

from serving.cds.scoring import SageMakerScorer, parse_answer


def _answer(body: dict) -> dict:
    raw = json.dumps(body).encode()
    return {"Body": StreamingBody(io.BytesIO(raw), len(raw)), "ContentType": "application/json",
            "InvokedProductionVariant": "AllTraffic"}  # fmt: skip


def test_invoke_endpoint_asks_for_explanations_only_when_the_card_shows_them() -> None:
    runtime = boto3.client("sagemaker-runtime", "us-east-1")
    reasons = [{"feature": "charlson_index", "contribution": 0.4}, {"feature": "age", "contribution": -0.1}]
    body = {"model": "m", "model_version": "3", "scores": [0.2], "threshold": 0.3, "flags": [False],
            "explanations": [reasons], "explanation_units": "calibrated log-odds"}  # fmt: skip
    common = {"EndpointName": "ep", "ContentType": "application/json", "Accept": "application/json",
              "Body": json.dumps({"age": 70}).encode()}  # fmt: skip
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", _answer(body), {**common, "CustomAttributes": "explain=2"})
        stub.add_response("invoke_endpoint", _answer(body), common)
        score = SageMakerScorer(runtime, "ep", explain=2).score({"age": 70}, 0.5)
        assert [(f.feature, f.contribution) for f in score.factors] == [("charlson_index", 0.4), ("age", -0.1)]
        SageMakerScorer(runtime, "ep").score({"age": 70}, 0.5)  # no CustomAttributes at all
        stub.assert_no_pending_responses()


def test_a_model_that_cannot_explain_still_gives_a_score_without_reasons() -> None:
    body = {"model": "m", "model_version": "3", "scores": [0.2], "threshold": 0.3, "flags": [False],
            "explanations_unavailable": "no explanations (Unexplainable: ...)"}  # fmt: skip
    score = parse_answer(json.dumps(body).encode())
    assert score.probability == 0.2 and score.factors == ()
