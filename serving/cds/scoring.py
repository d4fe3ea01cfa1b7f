"""The model's answer for one patient: the inference container over HTTP locally, SageMaker InvokeEndpoint in
the cloud. Both speak the container's JSON (`serving/container/app.py`): one record in, `{"model",
"model_version", "scores", "threshold", "flags"}` out, plus per-feature contributions when asked for
(`explain=N` in the Custom-Attributes, N = the card's `top_factors`) and the served bundle explains
(`explanations`/`contributions`: per row a list of {"feature", "contribution"} or a feature -> value map); a
model that cannot explain still scores, and the card then shows no reasons. Anything else - a status other
than 200, no finite score, an answer from the shadow variant - is a `ScoringError`, and the card falls back.
"""

from __future__ import annotations

import http.client
import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from clinops.models import ModelConfig
from clinops.names import SHADOW_VARIANT
from clinops.traffic import CUSTOM_ATTRIBUTES_HEADER, explain_attribute


def explanations_wanted(model: ModelConfig) -> int:
    """How many contributions the model's risk card shows (0: ask for none)."""
    return model.cds.top_factors if model.cds is not None else 0


class ScoringError(Exception):
    """The endpoint did not give a usable answer; the message names why, never the request's content."""


@dataclass(frozen=True)
class Factor:
    feature: str
    contribution: float


@dataclass(frozen=True)
class Score:
    probability: float
    model: str
    model_version: str
    threshold: float | None = None
    factors: tuple[Factor, ...] = field(default=())


class Scorer(Protocol):
    def score(self, features: dict[str, Any], timeout: float) -> Score: ...


def _factors(body: dict[str, Any]) -> tuple[Factor, ...]:
    rows = body.get("explanations") or body.get("contributions")
    if not isinstance(rows, list) or not rows:
        return ()
    row = rows[0]
    pairs: list[tuple[Any, Any]]
    if isinstance(row, dict):
        pairs = list(row.items())
    elif isinstance(row, list):
        pairs = [(r.get("feature"), r.get("contribution")) for r in row if isinstance(r, dict)]
    else:
        return ()
    out = [
        Factor(str(name), float(value))
        for name, value in pairs
        if isinstance(name, str) and isinstance(value, int | float) and math.isfinite(value)
    ]
    return tuple(sorted(out, key=lambda f: abs(f.contribution), reverse=True))


def parse_answer(payload: bytes, variant: str | None = None) -> Score:
    if variant == SHADOW_VARIANT:  # never show a shadow's score to a clinician
        raise ScoringError("the answer came from the shadow variant")
    try:
        body = json.loads(payload)
        score = body["scores"][0]
        model, version = str(body["model"]), str(body["model_version"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise ScoringError("the endpoint's answer is not the container's JSON") from None
    if not isinstance(score, int | float) or not 0.0 <= float(score) <= 1.0:
        raise ScoringError("the endpoint returned no valid score")
    threshold = body.get("threshold")
    return Score(float(score), model, version, float(threshold) if threshold is not None else None, _factors(body))


class HttpScorer:
    """The local inference container (`clinops serve --local`): POST /invocations, one keep-alive connection
    per thread."""

    def __init__(self, url: str, explain: int = 0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"inference URL {url!r} must be http://HOST:PORT")
        self.host, self.port = parts.hostname, parts.port or 80
        self.explain = explain
        self._local = threading.local()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def score(self, features: dict[str, Any], timeout: float) -> Score:
        body = json.dumps(features).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.explain:
            headers[CUSTOM_ATTRIBUTES_HEADER] = explain_attribute(self.explain)
        for attempt in range(2):  # a keep-alive connection the server closed is retried once, fresh
            conn = self._connection(timeout)
            try:
                conn.request("POST", "/invocations", body, headers)
                response = conn.getresponse()
                payload = response.read()
                break
            except TimeoutError:
                conn.close()
                self._local.conn = None
                raise ScoringError("the endpoint did not answer in time") from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn = None
                if attempt:
                    raise ScoringError(f"the endpoint could not be reached ({type(exc).__name__})") from None
        if response.status != 200:
            raise ScoringError(f"the endpoint answered HTTP {response.status}")
        return parse_answer(payload)


class SageMakerScorer:
    """InvokeEndpoint through the runtime VPC endpoint. No TargetVariant: production variants answer; a
    shadow variant's answer never comes back from InvokeEndpoint, and is refused if it ever did."""

    def __init__(self, runtime: Any, endpoint_name: str, explain: int = 0) -> None:
        self.runtime, self.endpoint_name, self.explain = runtime, endpoint_name, explain

    def score(self, features: dict[str, Any], timeout: float) -> Score:
        options = {"CustomAttributes": explain_attribute(self.explain)} if self.explain else {}
        try:
            answer = self.runtime.invoke_endpoint(
                EndpointName=self.endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=json.dumps(features).encode(),
                **options,
            )
            payload = answer["Body"].read()
        except Exception as exc:  # ModelError, throttling, timeouts: the card falls back either way
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
            raise ScoringError(f"InvokeEndpoint failed ({code or type(exc).__name__})") from None
        return parse_answer(payload, answer.get("InvokedProductionVariant"))
