"""HIPAA Security Rule citations the gate reports against (45 CFR Part 164)."""

from __future__ import annotations

ACCESS_CONTROL = "164.312(a)(1)"
ENCRYPTION = "164.312(a)(2)(iv)"
AUDIT = "164.312(b)"
INTEGRITY = "164.312(c)(1)"
AUTHENTICATION = "164.312(d)"
TRANSMISSION = "164.312(e)(1)"
ACTIVITY_REVIEW = "164.308(a)(1)(ii)(D)"
WORKFORCE_SECURITY = "164.308(a)(3)(i)"
CONTINGENCY = "164.308(a)(7)(i)"

TITLES: dict[str, str] = {
    ACCESS_CONTROL: "Access control",
    ENCRYPTION: "Encryption and decryption",
    AUDIT: "Audit controls",
    INTEGRITY: "Integrity",
    AUTHENTICATION: "Person or entity authentication",
    TRANSMISSION: "Transmission security",
    ACTIVITY_REVIEW: "Information system activity review",
    WORKFORCE_SECURITY: "Workforce security (segregation of duties)",
    CONTINGENCY: "Contingency plan (rollback, recovery)",
}

# The controls matrix in every evidence bundle lists at least these, in this order.
MATRIX_ORDER: tuple[str, ...] = (
    ACCESS_CONTROL,
    ENCRYPTION,
    AUDIT,
    INTEGRITY,
    AUTHENTICATION,
    TRANSMISSION,
    ACTIVITY_REVIEW,
    WORKFORCE_SECURITY,
    CONTINGENCY,
)
