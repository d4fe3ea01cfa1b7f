"""Clinicians' feedback on cards (CDS Hooks 2.0 `POST {service}/feedback`), recorded without PHI.

Each card the service issues is remembered (bounded, in memory) by its uuid with the model version, the
card's kind and band and a keyed hash of the encounter id - HMAC-SHA256, because a plain hash of a short
encounter number is reversed by trying them all. Feedback then becomes one evidence entry per item
(`clinician-feedback`: outcome, override reason code, no comment text - free text may hold PHI) and one
CloudWatch datapoint of `CardOverridden` (1 overridden, 0 accepted), whose average is the override rate the
monitoring alarms on (`clinops.names.CDS_OVERRIDE_ALARM_SUFFIX`).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clinops.evidence import EvidenceLog
from clinops.names import CDS_METRIC_NAMESPACE, CDS_OVERRIDDEN_METRIC

OUTCOMES = frozenset({"accepted", "overridden"})
MAX_ITEMS = 50


class FeedbackError(ValueError):
    """A feedback body the EHR must fix (400); the message names the field."""


@dataclass(frozen=True)
class IssuedCard:
    model: str
    model_version: str | None
    kind: str  # "risk" or the fallback's hold kind
    band: str | None
    encounter_hash: str | None


def encounter_hash(key: bytes, encounter_id: str | None) -> str | None:
    if not encounter_id:
        return None
    return hmac.new(key, encounter_id.encode(), hashlib.sha256).hexdigest()[:32]


class IssuedCards:
    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._cards: OrderedDict[str, IssuedCard] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, uuid: str, card: IssuedCard) -> None:
        with self._lock:
            self._cards[uuid] = card
            while len(self._cards) > self.capacity:
                self._cards.popitem(last=False)

    def get(self, uuid: str) -> IssuedCard | None:
        with self._lock:
            return self._cards.get(uuid)


@dataclass(frozen=True)
class FeedbackItem:
    card: str
    outcome: str
    override_reason: str | None
    has_comment: bool
    accepted_suggestions: int


def parse_feedback(body: Any) -> list[FeedbackItem]:
    items = body.get("feedback") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise FeedbackError("feedback: expected a non-empty list of {card, outcome, outcomeTimestamp}")
    if len(items) > MAX_ITEMS:
        raise FeedbackError(f"feedback: at most {MAX_ITEMS} items per call")
    out = []
    for i, item in enumerate(items):
        where = f"feedback[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("card"), str):
            raise FeedbackError(f"{where}.card: the uuid of the card is required")
        if item.get("outcome") not in OUTCOMES:
            raise FeedbackError(f"{where}.outcome: must be one of {sorted(OUTCOMES)}")
        if not isinstance(item.get("outcomeTimestamp"), str):
            raise FeedbackError(f"{where}.outcomeTimestamp: required (ISO 8601 instant)")
        override = item.get("overrideReason") or {}
        reason = override.get("reason") if isinstance(override, dict) else None
        code = reason.get("code") if isinstance(reason, dict) else None
        suggestions = item.get("acceptedSuggestions") or []
        out.append(
            FeedbackItem(
                card=item["card"],
                outcome=item["outcome"],
                override_reason=str(code)[:64] if code else None,
                has_comment=bool(isinstance(override, dict) and override.get("userComment")),
                accepted_suggestions=len(suggestions) if isinstance(suggestions, list) else 0,
            )
        )
    return out


class FeedbackRecorder:
    def __init__(
        self,
        stack: str,
        evidence: EvidenceLog | None,
        cloudwatch: Any | None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.stack, self.evidence, self.cloudwatch, self.clock = stack, evidence, cloudwatch, clock

    def record(self, model: str, actor: str, items: list[FeedbackItem], issued: IssuedCards) -> None:
        data = []
        for item in items:
            card = issued.get(item.card)
            if card is not None and card.model != model:
                card = None  # a card of another service: its outcome is not this model's
            details = {
                "card_kind": card.kind if card else "unknown-card",
                "band": card.band if card else None,
                "encounter_hash": card.encounter_hash if card else None,
                "outcome": item.outcome,
                "override_reason": item.override_reason,
                "has_comment": item.has_comment,
                "accepted_suggestions": item.accepted_suggestions,
            }
            if self.evidence is not None:
                self.evidence.append(
                    "clinician-feedback",
                    model=model,
                    model_version=card.model_version if card else None,
                    actor=actor,
                    reason=f"clinician {item.outcome} a {details['card_kind']} card",
                    details=details,
                )
            data.append(
                {
                    "MetricName": CDS_OVERRIDDEN_METRIC,
                    "Dimensions": [{"Name": "Stack", "Value": self.stack}, {"Name": "Model", "Value": model}],
                    "Timestamp": self.clock(),
                    "Value": 1.0 if item.outcome == "overridden" else 0.0,
                    "Unit": "None",
                }
            )
        if self.cloudwatch is not None and data:
            self.cloudwatch.put_metric_data(Namespace=CDS_METRIC_NAMESPACE, MetricData=data)
