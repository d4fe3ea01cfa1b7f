"""What every engine reports: one result per (rule, resource), passed or failed, mapped to a Pulumi URN."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "high", "medium", "low"]
Status = Literal["passed", "failed"]
SEVERITY_ORDER: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}


@dataclass(frozen=True)
class CheckResult:
    engine: str  # a name registered in policies.gate.ENGINES
    rule_id: str
    title: str
    severity: Severity
    controls: tuple[str, ...]
    urn: str
    resource_type: str
    status: Status
    message: str = ""
    fix: str = ""
    mandatory: bool = True
    # The distinct findings joined in `message` (our rules report several per resource); an exception must
    # name each of them to waive the result. Engines with one check per rule ID leave it empty.
    details: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["controls"] = list(self.controls)
        data["details"] = list(self.details)
        return data

    def sort_key(self) -> tuple[Any, ...]:
        return (self.engine, self.rule_id, self.urn, self.status, self.message)


@dataclass
class EngineReport:
    engine: str
    results: list[CheckResult] = field(default_factory=list)
    # resource type -> "seen" (some rule evaluated it) or "unseen" (the engine has no view of it)
    coverage: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
