"""Where the Lambda functions' decisions go: the evidence log, the KMS-encrypted SNS topic and the function log.

Messages carry names, counts and times only - never request payloads or anything patient-level (the alarm
reason CloudWatch writes is a threshold sentence). Standard library + boto3; `clinops.evidence` (pydantic) is
imported only when a handler opens the S3 evidence log, so the decision code stays importable without it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol

SUBJECT_MAX = 100  # SNS Subject limit


class EvidenceSink(Protocol):
    """The part of `clinops.evidence.EvidenceLog` the functions use; the entry returned has `.seq`."""

    def append(
        self,
        kind: str,
        *,
        model: str,
        actor: str,
        reason: str,
        model_version: str | int | None = None,
        package_arn: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Any: ...


class LazyEvidence:
    """An EvidenceSink that opens the real log on the first append, so opening it cannot fail before the action;
    a failure to open surfaces where appends fail (and is reported the same way)."""

    def __init__(self, opener: Callable[[], EvidenceSink]) -> None:
        self._opener = opener
        self._log: EvidenceSink | None = None

    def append(self, kind: str, **fields: Any) -> Any:
        if self._log is None:
            self._log = self._opener()
        return self._log.append(kind, **fields)


def publish(sns: Any, topic_arn: str, subject: str, fields: Mapping[str, Any]) -> str | None:
    """Publish one alert; returns the error text instead of raising (the caller records it)."""
    try:
        sns.publish(
            TopicArn=topic_arn,
            Subject=subject[:SUBJECT_MAX],
            Message=json.dumps(dict(fields), sort_keys=True, indent=1, default=str),
        )
    except Exception as exc:  # a failed alert must not undo or hide the action already taken
        return f"{type(exc).__name__}: {exc}"
    return None


def log_line(event: str, fields: Mapping[str, Any]) -> None:
    print(json.dumps({"event": event, **fields}, sort_keys=True, default=str))


def s3_evidence_from_env(stack: str, env: Mapping[str, str] | None = None) -> EvidenceSink:
    """The stack's S3 evidence log, from EVIDENCE_BUCKET / EVIDENCE_PREFIX / EVIDENCE_KMS_KEY_ID (SSE-KMS) /
    EVIDENCE_MAC_KEY_ID (the KMS HMAC key that seals entries; the head goes to the stack's SSM parameter). The
    Lambda asset must bundle `clinops/evidence` and pydantic (see serving/guardrails/__init__.py)."""
    from clinops.evidence import EvidenceLog
    from clinops.evidence.s3 import EVIDENCE_PREFIX

    env = os.environ if env is None else env
    return EvidenceLog.s3(
        env["EVIDENCE_BUCKET"],
        env.get("EVIDENCE_PREFIX", EVIDENCE_PREFIX),
        stack,
        kms_key_id=env["EVIDENCE_KMS_KEY_ID"],
        mac_key_id=env["EVIDENCE_MAC_KEY_ID"],
    )
