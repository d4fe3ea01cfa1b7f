"""Build small preview-shaped plans by hand: resources by name, links as propertyDependencies.

    b = PlanBuilder("prod")
    b.add("aws:kms/key:Key", "data-key", {"enableKeyRotation": True})
    b.add("aws:cloudwatch/logGroup:LogGroup", "app-logs", {"kmsKeyId": b.arn("data-key")}, {"kmsKeyId": ["data-key"]})
    plan = b.plan()

Links name other resources and resolve to URNs when the document is built, so a test may add, change or
remove resources in any order.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from policies.plan import STACK_TYPE, Plan, parse_plan

PROJECT = "clinops"
DELETE = object()  # `set(name, path, DELETE)` removes the input at path


def stack_config(
    environment: str = "prod", classification: str = "phi", rollback_slo: int = 600, region: str = "us-east-1"
) -> dict[str, str]:
    """Flat stack config as a plan carries it (every value a string, structured values as JSON)."""
    return {
        "aws:region": region,
        "clinops:environment": environment,
        "clinops:rollbackSloSeconds": str(rollback_slo),
        "clinops:tags": json.dumps({"dataClassification": classification, "owner": "ml-platform@example.org"}),
        "clinops:accountId": "333333333333",
        "clinops:accounts": json.dumps({"dev": "111111111111", "prod": "333333333333"}),
    }


@dataclass
class _Resource:
    type: str
    inputs: dict[str, Any]
    links: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # protect, retainOnDelete


class PlanBuilder:
    def __init__(self, stack: str = "prod", config: dict[str, str] | None = None) -> None:
        self.stack = stack
        self.config = config if config is not None else stack_config(stack)
        self.resources: dict[str, _Resource] = {}

    def urn(self, name: str) -> str:
        return f"urn:pulumi:{self.stack}::{PROJECT}::{self.resources[name].type}::{name}"

    @property
    def stack_urn(self) -> str:
        return f"urn:pulumi:{self.stack}::{PROJECT}::{STACK_TYPE}::{PROJECT}-{self.stack}"

    def arn(self, name: str) -> str:
        """A plausible ARN for `name` (the offline render's mocks make ARNs known the same way)."""
        service = self.resources[name].type.split(":")[1].split("/")[0] if name in self.resources else "kms"
        return f"arn:aws:{service}:us-east-1:333333333333:{name}"

    def add(
        self, type_: str, name: str, inputs: dict[str, Any] | None = None, links: dict[str, list[str]] | None = None
    ) -> str:
        if name in self.resources:
            raise ValueError(f"duplicate resource name {name}")
        links = {prop: list(targets) for prop, targets in (links or {}).items()}
        self.resources[name] = _Resource(type_, copy.deepcopy(inputs or {}), links)
        return self.urn(name)

    def options(self, name: str, **options: Any) -> None:
        """Resource options a preview records beside the inputs (`protect=True`, `retainOnDelete=True`)."""
        self.resources[name].options.update(options)

    def remove(self, name: str) -> None:
        del self.resources[name]

    def set(self, name: str, path: str, value: Any) -> None:
        """Set (or with DELETE remove) the input at a dotted path; integer segments index lists, and the index
        one past the end appends."""
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = self.resources[name].inputs
        for step in parents:
            if isinstance(step, str) and step not in node:
                node[step] = {}
            node = node[step]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list) and last == len(node):
            node.append(value)
        else:
            node[last] = value

    def edit_json(self, name: str, prop: str, edit: Callable[[dict[str, Any]], None]) -> None:
        """Change a JSON-string input (a policy, a pipeline definition) through its parsed form."""
        doc = json.loads(self.resources[name].inputs[prop])
        edit(doc)
        self.resources[name].inputs[prop] = json.dumps(doc, sort_keys=True)

    def link(self, name: str, prop: str, *targets: str) -> None:
        self.resources[name].links[prop] = list(targets)

    def unlink(self, name: str, prop: str) -> None:
        self.resources[name].links.pop(prop, None)

    def document(self) -> dict[str, Any]:
        steps = [self._step(self.stack_urn, STACK_TYPE, {}, {}, custom=False)]
        for name, resource in sorted(self.resources.items()):
            links = {
                prop: [self.urn(t) for t in targets if t in self.resources] for prop, targets in resource.links.items()
            }
            step = self._step(self.urn(name), resource.type, resource.inputs, links, custom=True)
            step["newState"].update(resource.options)
            steps.append(step)
        return {"config": dict(self.config), "steps": steps, "diagnostics": [], "changeSummary": {}}

    def plan(self) -> Plan:
        return parse_plan(self.document())

    def _step(
        self, urn: str, type_: str, inputs: dict[str, Any], links: dict[str, list[str]], custom: bool
    ) -> dict[str, Any]:
        state = {
            "urn": urn,
            "type": type_,
            "custom": custom,
            "inputs": copy.deepcopy(inputs),
            "parent": "" if type_ == STACK_TYPE else self.stack_urn,
            "dependencies": sorted({u for urns in links.values() for u in urns}),
            "propertyDependencies": links,
        }
        return {"op": "create", "urn": urn, "newState": state}
