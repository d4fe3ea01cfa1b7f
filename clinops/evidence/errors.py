"""Errors of the evidence trail. Each says what is wrong and what to do."""

from __future__ import annotations


class EvidenceError(Exception):
    """Base class: evidence could not be recorded or read."""


class PHIError(EvidenceError, ValueError):
    """An entry would carry patient identifiers. A ValueError too, so pydantic validators surface it."""


class EvidenceConflictError(EvidenceError):
    """Other writers kept taking the next sequence number; `append` gave up after its bounded retries."""


class EvidenceUnavailable(EvidenceError):
    """The log cannot be read or written at all (missing directory or bucket, no access, no credentials)."""


class DamagedLogError(EvidenceError):
    """The head entry does not verify, so new evidence is not linked to it (fail closed)."""


class EntryFormatError(EvidenceError):
    """Stored bytes are not an evidence entry (bad UTF-8, bad JSON, duplicate keys, schema violation)."""
