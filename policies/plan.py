"""Read a plan — our offline render or the JSON of a real `pulumi preview --json` — into one resource view.

Every engine (our rules, checkov, cdk-nag) reads the plan through this module, so all three judge the same
resources. Cross-resource links come from `propertyDependencies` (present in both sources), not from
guessing at IDs, because a real preview has unknown IDs for resources not yet created.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STACK_TYPE = "pulumi:pulumi:Stack"


class PlanError(Exception):
    """The plan file cannot be used (unreadable, not JSON, not preview-shaped)."""


@dataclass(frozen=True)
class PlanResource:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    inputs: dict[str, Any]
    dependencies: tuple[str, ...] = ()
    property_dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    protect: bool = False
    retain_on_delete: bool = False

    def refs(self, prop: str) -> tuple[str, ...]:
        """URNs the input property `prop` (top-level camelCase name) was computed from."""
        return self.property_dependencies.get(prop, ())


@dataclass
class Plan:
    resources: list[PlanResource]
    config: dict[str, Any]
    stack: str
    project: str

    def __post_init__(self) -> None:
        self.by_urn = {r.urn: r for r in self.resources}

    def of_type(self, *types: str) -> list[PlanResource]:
        return [r for r in self.resources if r.type in types]

    def referencing(self, target_urn: str, prop: str | None = None, type_: str | None = None) -> list[PlanResource]:
        """Resources whose input `prop` (any input when None) depends on `target_urn`."""
        found = []
        for r in self.resources:
            if type_ and r.type != type_:
                continue
            props = [prop] if prop else list(r.property_dependencies)
            if any(target_urn in r.property_dependencies.get(p, ()) for p in props):
                found.append(r)
        return found

    def stack_urn(self) -> str:
        for r in self.resources:
            if r.type == STACK_TYPE:
                return r.urn
        return f"urn:pulumi:{self.stack}::{self.project}::{STACK_TYPE}::{self.project}-{self.stack}"

    def platform_config(self) -> dict[str, Any]:
        """The `clinops:*` stack config carried by the plan, structured values decoded."""
        out: dict[str, Any] = {}
        for key, value in self.config.items():
            ns, _, name = key.partition(":")
            if ns != "clinops":
                continue
            if isinstance(value, str) and value[:1] in "[{":
                with contextlib.suppress(json.JSONDecodeError):
                    value = json.loads(value)
            out[name] = value
        return out


def parse_plan(doc: Any) -> Plan:
    if not isinstance(doc, dict) or not isinstance(doc.get("steps"), list):
        raise PlanError(
            "not a preview-shaped plan: expected a JSON object with a 'steps' list "
            "(from `clinops render` or `pulumi preview --json`)"
        )
    resources: list[PlanResource] = []
    stack = project = ""
    for i, step in enumerate(doc["steps"]):
        if not isinstance(step, dict):
            raise PlanError(f"steps[{i}] is not an object")
        if step.get("op") in ("delete", "discard", "remove-pending-replace", "delete-replaced"):
            continue
        state = step.get("newState")
        if not isinstance(state, dict):
            continue
        urn = state.get("urn") or step.get("urn")
        if not isinstance(urn, str) or not urn.startswith("urn:pulumi:"):
            raise PlanError(f"steps[{i}] has no valid URN")
        parts = urn.split("::")
        stack, project = parts[0].removeprefix("urn:pulumi:"), parts[1]
        resources.append(
            PlanResource(
                urn=urn,
                type=state.get("type", ""),
                name=parts[-1],
                custom=bool(state.get("custom", False)),
                parent=state.get("parent", "") or "",
                inputs=state.get("inputs") or {},
                dependencies=tuple(state.get("dependencies") or ()),
                property_dependencies={k: tuple(v or ()) for k, v in (state.get("propertyDependencies") or {}).items()},
                protect=bool(state.get("protect", False)),
                retain_on_delete=bool(state.get("retainOnDelete", False)),
            )
        )
    resources.sort(key=lambda r: r.urn)
    return Plan(resources=resources, config=doc.get("config") or {}, stack=stack, project=project)


def load_plan(path: Path) -> tuple[Plan, str]:
    """Load a plan file; returns the plan and its raw text (the evidence bundle hashes the text)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise PlanError(f"cannot read plan file {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path} is not JSON (line {exc.lineno}: {exc.msg})") from None
    return parse_plan(doc), text
