"""Clinicians' feedback on cards (CDS Hooks 2.0 `POST {service}/feedback`), recorded without PHI.

Each card the service issues is recorded by its uuid with the model, its version, the card's kind and band,
the issue time and a keyed hash of the encounter id - HMAC-SHA256, because a plain hash of a short encounter
number is reversed by trying them all; in the cloud the HMAC is computed by KMS (`KmsEncounterHasher`, the
stack's `cds-encounter-mac` key, which only the CDS functions may use). The record holds no PHI and goes to a
store every instance reads (`S3IssuanceStore`: the evidence bucket under `clinops.names.CDS_ISSUANCE_PREFIX`),
so feedback that reaches another instance of the function still finds its card. Feedback then becomes one
evidence entry per item
(`clinician-feedback`: outcome, override reason code, no comment text - free text may hold PHI) and one
CloudWatch datapoint of `CardOverridden` (1 overridden, 0 accepted), whose average is the override rate the
monitoring alarms on (`clinops.names.CDS_OVERRIDE_ALARM_SUFFIX`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from clinops.evidence import EvidenceLog
from clinops.names import CDS_ISSUANCE_PREFIX, CDS_METRIC_NAMESPACE, CDS_OVERRIDDEN_METRIC

OUTCOMES = frozenset({"accepted", "overridden"})
MAX_ITEMS = 50


class FeedbackError(ValueError):
    """A feedback body the EHR must fix (400); the message names the field."""


@dataclass(frozen=True)
class IssuedCard:
    """What feedback needs to know about a card; no PHI (the encounter only as its keyed hash)."""

    model: str
    model_version: str | None
    kind: str  # "risk" or the fallback's hold kind
    band: str | None
    encounter_hash: str | None
    issued_at: str | None = None  # ISO 8601, UTC

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> IssuedCard:
        doc = json.loads(data)
        return cls(**{f.name: doc.get(f.name) for f in dataclasses.fields(cls)})


HASH_HEX_CHARS = 32


class EncounterHasher(Protocol):
    def hash(self, encounter_id: str) -> str:
        """The encounter's keyed, deterministic hash (never the id itself)."""
        ...


class KeyedHasher:
    """HMAC-SHA256 with key bytes held here: `clinops cds serve --local` and tests (a file key, 0600)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the encounter hash key must be at least 32 bytes")
        self._key = key

    def hash(self, encounter_id: str) -> str:
        return hmac.new(self._key, encounter_id.encode(), hashlib.sha256).hexdigest()[:HASH_HEX_CHARS]


class KmsEncounterHasher:
    """HMAC-SHA256 computed by KMS GenerateMac with the stack's `cds-encounter-mac` key (the key never leaves
    KMS; only the CDS functions may use it). A discharge list asks about the same encounters again and again, so
    answers are cached (bounded) under an unkeyed digest of the id - the raw id is never kept."""

    def __init__(self, key_id: str, client: Any, capacity: int = 10_000) -> None:
        if not key_id:
            raise ValueError("ENCOUNTER_MAC_KEY_ID is empty; fix: the component sets the stack's cds-encounter-mac key")
        self.key_id, self.client, self.capacity = key_id, client, capacity
        self._cache: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def hash(self, encounter_id: str) -> str:
        slot = hashlib.sha256(encounter_id.encode()).digest()
        with self._lock:
            if slot in self._cache:
                self._cache.move_to_end(slot)
                return self._cache[slot]
        mac = self.client.generate_mac(KeyId=self.key_id, Message=encounter_id.encode(), MacAlgorithm="HMAC_SHA_256")
        hashed = bytes(mac["Mac"]).hex()[:HASH_HEX_CHARS]
        with self._lock:
            self._cache[slot] = hashed
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return hashed


def card_uuid(value: str) -> str | None:
    """The EHR's card id as a canonical uuid, or None: it names a storage key, so nothing else may pass."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


class IssuanceStore(Protocol):
    def put(self, model: str, card_id: str, card: IssuedCard) -> None: ...

    def get(self, model: str, card_id: str) -> IssuedCard | None: ...


class S3IssuanceStore:
    """`s3://<evidence bucket>/cds-issued/<stack>/<model>/<uuid>.json`, SSE-KMS with the evidence key; written
    once (If-None-Match) under the bucket's Object Lock, like the evidence entries beside it."""

    def __init__(self, bucket: str, stack: str, kms_key_id: str, client: Any) -> None:
        self.bucket, self.stack, self.kms_key_id, self.client = bucket, stack, kms_key_id, client

    def key(self, model: str, card_id: str) -> str:
        return f"{CDS_ISSUANCE_PREFIX}/{self.stack}/{model}/{card_id}.json"

    def put(self, model: str, card_id: str, card: IssuedCard) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=self.key(model, card_id),
            Body=card.to_json(),
            IfNoneMatch="*",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self.kms_key_id,
            ChecksumAlgorithm="SHA256",  # Object Lock buckets refuse uploads without an integrity checksum
            ContentType="application/json",
        )

    def get(self, model: str, card_id: str) -> IssuedCard | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(model, card_id))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        return IssuedCard.from_json(body)


class LocalIssuanceStore:
    """The same records as files (`clinops cds serve --local`, tests): DIR/<model>/<uuid>.json."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, model: str, card_id: str, card: IssuedCard) -> None:
        path = self.root / model / f"{card_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        temp.write_bytes(card.to_json())
        temp.replace(path)

    def get(self, model: str, card_id: str) -> IssuedCard | None:
        path = self.root / model / f"{card_id}.json"
        return IssuedCard.from_json(path.read_bytes()) if path.is_file() else None


class IssuedCards:
    """Issued cards by uuid: a bounded in-memory cache in front of the shared store (when there is one)."""

    def __init__(self, store: IssuanceStore | None = None, capacity: int = 20_000) -> None:
        self.store, self.capacity = store, capacity
        self._cards: OrderedDict[tuple[str, str], IssuedCard] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, model: str, card_id: str, card: IssuedCard) -> None:
        """Remember, then record in the shared store (the store's errors reach the caller)."""
        with self._lock:
            self._cards[(model, card_id)] = card
            while len(self._cards) > self.capacity:
                self._cards.popitem(last=False)
        if self.store is not None:
            self.store.put(model, card_id, card)

    def get(self, model: str, card_id: str) -> IssuedCard | None:
        canonical = card_uuid(card_id)
        if canonical is None:
            return None
        with self._lock:
            found = self._cards.get((model, canonical))
        if found is None and self.store is not None:
            found = self.store.get(model, canonical)
        return found


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
        # every card looked up before anything is written: a store that cannot answer fails the call whole (the
        # EHR retries), never half-recorded
        cards = [issued.get(model, item.card) for item in items]
        for item, card in zip(items, cards, strict=True):
            if card is not None and card.model != model:
                card = None  # a card of another service: its outcome is not this model's
            details = {
                "card_kind": card.kind if card else "unknown-card",
                "band": card.band if card else None,
                "encounter_hash": card.encounter_hash if card else None,
                "card_issued_at": card.issued_at if card else None,
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
