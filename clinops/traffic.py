"""How synthetic traffic (the deployment canary's requests) is marked, so monitoring can leave it out; and how a
caller asks the container for explanations (`explain=N` among the Custom-Attributes parts).

The canary marks each request twice, because the two places that read it see different things:
- `X-Amzn-SageMaker-Custom-Attributes: clinops-traffic=synthetic` reaches the inference container, which counts
  synthetic requests apart in its log lines (and so in its metrics);
- an InferenceId starting `clinops-synthetic-` is written by SageMaker data capture into every captured record's
  `eventMetadata.inferenceId`, which drift, quality and shadow readers skip.

Standard library only: the canary Lambda, the container and the capture readers all import it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
SYNTHETIC_ATTRIBUTE = "clinops-traffic=synthetic"
SYNTHETIC_INFERENCE_PREFIX = "clinops-synthetic-"
EXPLAIN_ATTRIBUTE = "explain"  # `explain=N`: each row's N largest feature contributions come back with the scores
MAX_CUSTOM_ATTRIBUTES = 1024  # InvokeEndpoint's limit: visible US-ASCII characters
_VISIBLE_ASCII = re.compile(r"^[\x20-\x7e]*$")


def valid_custom_attributes(value: str) -> bool:
    return len(value) <= MAX_CUSTOM_ATTRIBUTES and _VISIBLE_ASCII.match(value) is not None


def is_synthetic_attributes(value: str | None) -> bool:
    """True when the Custom-Attributes value carries the synthetic mark among its `;`- or `,`-separated parts."""
    if not value:
        return False
    return any(part.lower() == SYNTHETIC_ATTRIBUTE for part in _parts(value))


def _parts(value: str | None) -> list[str]:
    return [part.strip() for part in re.split(r"[;,]", value)] if value else []


def explain_attribute(count: int) -> str:
    """The Custom-Attributes part asking for each row's `count` largest contributions."""
    return f"{EXPLAIN_ATTRIBUTE}={count}"


def requested_explanations(value: str | None) -> list[str]:
    """The raw N of every `explain=N` part (normally none or one; the container validates them)."""
    prefix = EXPLAIN_ATTRIBUTE + "="
    return [part[len(prefix) :].strip() for part in _parts(value) if part.lower().startswith(prefix)]


def synthetic_inference_id() -> str:
    """A fresh InferenceId for one synthetic request (InvokeEndpoint allows 64 characters)."""
    return f"{SYNTHETIC_INFERENCE_PREFIX}{uuid.uuid4().hex}"


def is_synthetic_capture(event_metadata: Mapping[str, Any] | None) -> bool:
    """True when a data-capture record's eventMetadata marks it as synthetic (inference id or attributes)."""
    if not isinstance(event_metadata, Mapping):
        return False
    inference_id = event_metadata.get("inferenceId")
    if isinstance(inference_id, str) and inference_id.startswith(SYNTHETIC_INFERENCE_PREFIX):
        return True
    attributes = event_metadata.get("customAttributes")
    if isinstance(attributes, list):
        attributes = ";".join(str(a) for a in attributes)
    return isinstance(attributes, str) and is_synthetic_attributes(attributes)
