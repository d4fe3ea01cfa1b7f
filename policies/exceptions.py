"""Reviewed exceptions: the one file (`policies/exceptions.yaml`) where a finding may be accepted.

Each entry names the engine, the rule, the resource (a URN or an fnmatch pattern over URNs), the reason, the
owner and an expiry date. An entry without reason or owner, or past its expiry, fails the gate itself: an
accepted risk must stay accountable and be reviewed again.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path(__file__).resolve().parent / "exceptions.yaml"


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

    def matches(self, engine: str, rule_id: str, urn: str, stack: str) -> bool:
        return (
            self.engine == engine
            and self.rule_id == rule_id
            and (not self.stacks or stack in self.stacks)
            and (urn == self.resource or fnmatch.fnmatchcase(urn, self.resource))
        )

    def label(self) -> str:
        return f"exceptions[{self.index}] {self.engine}/{self.rule_id} on {self.resource}"

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "ruleId": self.rule_id,
            "resource": self.resource,
            "reason": self.reason,
            "owner": self.owner,
            "expires": self.expires.isoformat() if self.expires else None,
            "stacks": list(self.stacks),
        }


class ExceptionsFileError(Exception):
    """The exceptions file cannot be read at all (unusable input, exit 2)."""


def load(
    path: Path = DEFAULT_PATH, today: dt.date | None = None, *, engines: Collection[str]
) -> tuple[list[Waiver], list[str]]:
    """Return the usable waivers and the problems that must fail the gate. `engines` are the engine names the
    gate knows (policies.gate.ENGINES, the one list; passed in because the gate imports this module)."""
    today = today or dt.date.today()
    if not path.exists():
        return [], []
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ExceptionsFileError(f"cannot read exceptions file {path}: {exc}") from None
    entries = doc.get("exceptions") or []
    if not isinstance(entries, list):
        raise ExceptionsFileError(f"{path}: 'exceptions' must be a list")
    waivers: list[Waiver] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        where = f"{path.name}: exceptions[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} is not a mapping")
            continue
        missing = [k for k in ("engine", "rule", "resource", "reason", "owner", "expires") if not entry.get(k)]
        if missing:
            problems.append(f"{where} ({entry.get('rule', '?')}) lacks {', '.join(missing)}; fix: fill them in")
            continue
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
                f"{where} ({entry['engine']}/{entry['rule']}) expired on {expires.isoformat()}; "
                "fix: review it and renew the date, or fix the finding"
            )
            continue
        stacks = entry.get("stacks") or []
        waivers.append(
            Waiver(
                i,
                entry["engine"],
                str(entry["rule"]),
                str(entry["resource"]),
                str(entry["reason"]).strip(),
                str(entry["owner"]),
                expires,
                tuple(stacks),
            )
        )
    return waivers, problems
