"""Reviewed exceptions: the one file (`policies/exceptions.yaml`) where a finding may be accepted.

An exception waives exactly what was reviewed, for a bounded time:
- `engine`, `rule`: the check. For checkov and cdk-nag a check ID is one property check already; our own
  rules report several distinct findings per resource, so a `clinops` exception must also list `findings`:
  the exact finding texts reviewed (the `details` of the result). A result is waived only when every one of
  its findings is listed, so a new violation of the same rule on the same resource is not absorbed. Other
  engines' exceptions may list `findings` too; they must then equal the finding's message.
- `resource`: one URN, or an fnmatch pattern whose type is literal (`*$aws:s3/bucket:Bucket::name`). A
  pattern whose name part has a wildcard must say how many resources it may cover (`maxResources`, plus
  `maxResourcesPerModel` for resources each model adds, so a review scales with the model mesh); a gate run
  where it matches more fails. `*`, or a wildcard in the type, is refused.
- `reason`, `owner`, `expires` (YYYY-MM-DD, at most `maxLifetimeDays` from today; the file may lower the
  default of 365, never raise it above 730).
An entry that breaks any of this, or is past its expiry, fails the gate itself: an accepted risk must stay
accountable, narrow, and be reviewed again.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clinops.config import YAML_LOADER

DEFAULT_PATH = Path(__file__).resolve().parent / "exceptions.yaml"
# Engines whose rules report several findings per resource: their exceptions must name the findings.
ENGINES_NEEDING_FINDINGS = ("clinops",)
DEFAULT_MAX_LIFETIME_DAYS = 365
CEILING_LIFETIME_DAYS = 730
_WILDCARDS = set("*?[")


@dataclass(frozen=True)
class Waiver:
    index: int
    engine: str
    rule_id: str
    resource: str
    reason: str
    owner: str
    expires: dt.date | None
    stacks: tuple[str, ...] = ()  # empty: every stack
    findings: tuple[str, ...] = ()  # empty: the whole check (checkov, cdk-nag: one check per ID)
    max_resources: int = 1
    max_resources_per_model: int = 0  # per-model resources (a canary, a drift pipeline): the cap grows with the mesh

    def cap(self, models: int) -> int:
        """How many resources the review covers in a stack with `models` models."""
        return self.max_resources + self.max_resources_per_model * models

    def matches(self, engine: str, rule_id: str, urn: str, stack: str, details: Iterable[str] = ()) -> bool:
        return (
            self.engine == engine
            and self.rule_id == rule_id
            and (not self.stacks or stack in self.stacks)
            and (urn == self.resource or fnmatch.fnmatchcase(urn, self.resource))
            and (not self.findings or set(details) <= set(self.findings))
        )

    def label(self) -> str:
        return f"exceptions[{self.index}] {self.engine}/{self.rule_id} on {self.resource}"

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "ruleId": self.rule_id,
            "resource": self.resource,
            "findings": list(self.findings),
            "maxResources": self.max_resources,
            "maxResourcesPerModel": self.max_resources_per_model,
            "reason": self.reason,
            "owner": self.owner,
            "expires": self.expires.isoformat() if self.expires else None,
            "stacks": list(self.stacks),
        }


class ExceptionsFileError(Exception):
    """The exceptions file cannot be read at all (unusable input, exit 2)."""


def breadth_problem(resource: str) -> str | None:
    """Why a resource pattern is too broad to be a reviewed exception, or None."""
    type_part, sep, name = resource.rpartition("::")
    type_token = type_part.rpartition("$")[2] if "$" in type_part else type_part.rpartition("::")[2]
    if not sep or not name or not type_token or _WILDCARDS & set(type_token) or type_token.count(":") < 2:
        return (
            f"resource '{resource}' does not name a resource type; fix: write it as "
            "'*$<type>::<name>' (e.g. '*$aws:s3/bucket:Bucket::access-logs') or a full URN"
        )
    return None


def is_pattern(resource: str) -> bool:
    return bool(_WILDCARDS & set(resource.rpartition("::")[2]))


def load(
    path: Path = DEFAULT_PATH,
    today: dt.date | None = None,
    max_lifetime_days: int | None = None,
    *,
    engines: Collection[str],
) -> tuple[list[Waiver], list[str]]:
    """Return the usable waivers and the problems that must fail the gate. `engines`: the engine names an
    entry may name (the gate passes its registry, policies.gate.ENGINES; it imports this module, not back)."""
    today = today or dt.date.today()
    if not path.exists():
        return [], []
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ExceptionsFileError(f"cannot read exceptions file {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise ExceptionsFileError(f"{path}: expected a mapping with an 'exceptions' list")
    entries = doc.get("exceptions") or []
    if not isinstance(entries, list):
        raise ExceptionsFileError(f"{path}: 'exceptions' must be a list")
    lifetime = max_lifetime_days or doc.get("maxLifetimeDays") or DEFAULT_MAX_LIFETIME_DAYS
    if not isinstance(lifetime, int) or not 1 <= lifetime <= CEILING_LIFETIME_DAYS:
        raise ExceptionsFileError(
            f"{path}: maxLifetimeDays {lifetime!r} must be a whole number of days from 1 to {CEILING_LIFETIME_DAYS}"
        )
    waivers: list[Waiver] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        where = f"{path.name}: exceptions[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} is not a mapping")
            continue
        missing = [k for k in ("engine", "rule", "resource", "reason", "owner", "expires") if not entry.get(k)]
        if entry.get("engine") in ENGINES_NEEDING_FINDINGS and not entry.get("findings"):
            missing.append("findings (the exact finding texts reviewed)")
        if missing:
            problems.append(f"{where} ({entry.get('rule', '?')}) lacks {', '.join(missing)}; fix: fill them in")
            continue
        label = f"{where} ({entry['engine']}/{entry['rule']})"
        if entry["engine"] not in engines:
            problems.append(f"{where}: engine '{entry['engine']}' is not one of {', '.join(engines)}")
            continue
        expires = entry["expires"]
        if not isinstance(expires, dt.date):
            try:
                expires = dt.date.fromisoformat(str(expires))
            except ValueError:
                problems.append(f"{where}: expires '{expires}' is not a YYYY-MM-DD date")
                continue
        if expires < today:
            problems.append(
                f"{label} expired on {expires.isoformat()}; fix: review it and renew the date, or fix the finding"
            )
            continue
        if expires > today + dt.timedelta(days=lifetime):
            problems.append(
                f"{label} expires {expires.isoformat()}, more than {lifetime} days from {today.isoformat()}; "
                f"fix: review it again by {(today + dt.timedelta(days=lifetime)).isoformat()} at the latest"
            )
            continue
        resource = str(entry["resource"])
        too_broad = breadth_problem(resource)
        if too_broad:
            problems.append(f"{label}: {too_broad}")
            continue
        if is_pattern(resource) and "maxResources" not in entry and "maxResourcesPerModel" not in entry:
            problems.append(
                f"{label}: resource '{resource}' is a pattern that may match many resources; fix: add "
                "maxResources (how many resources were reviewed) or name one resource"
            )
            continue
        max_resources = entry.get("maxResources", 0 if "maxResourcesPerModel" in entry else 1)
        per_model = entry.get("maxResourcesPerModel", 0)
        counts = (max_resources, per_model)
        if any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in counts) or sum(counts) < 1:
            problems.append(
                f"{label}: maxResources {max_resources!r} / maxResourcesPerModel {per_model!r} must be whole "
                "numbers, at least one of them positive"
            )
            continue
        findings = entry.get("findings") or []
        if not isinstance(findings, list) or not all(isinstance(f, str) and f.strip() for f in findings):
            problems.append(f"{label}: findings must be a list of finding texts")
            continue
        stacks = entry.get("stacks") or []
        waivers.append(
            Waiver(
                i,
                entry["engine"],
                str(entry["rule"]),
                resource,
                str(entry["reason"]).strip(),
                str(entry["owner"]),
                expires,
                tuple(stacks),
                tuple(f.strip() for f in findings),
                max_resources,
                per_model,
            )
        )
    return waivers, problems
