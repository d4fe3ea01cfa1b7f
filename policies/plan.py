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

from policies.inputtypes import boolean_inputs

STACK_TYPE = "pulumi:pulumi:Stack"
SECRET = "[secret]"  # how `pulumi preview --json` prints a secret value


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
    # The stack's own validated config (clinops.config.StackConfig), bound by the gate from outside the plan:
    # the facts rules judge by (environment, data classification, rollback SLO) come from here, not from the
    # config the plan carries.
    stack_config: Any = None

    def __post_init__(self) -> None:
        self.by_urn = {r.urn: r for r in self.resources}
        self._index_key: tuple[int, int] | None = None
        self._by_type: dict[str, list[PlanResource]] = {}

    def _types(self) -> dict[str, list[PlanResource]]:
        """Resources by type, rebuilt if `resources` was replaced or resized. Engines ask `of_type` once per
        check, so a scan per call made a 50-model gate quadratic (the access engine alone: 8 s of 27)."""
        key = (id(self.resources), len(self.resources))
        if key != self._index_key:
            self._by_type = {}
            for r in self.resources:
                self._by_type.setdefault(r.type, []).append(r)
            self._index_key = key
        return self._by_type

    def of_type(self, *types: str) -> list[PlanResource]:
        index = self._types()
        found = [index[t] for t in dict.fromkeys(types) if t in index]
        if len(found) == 1:
            return list(found[0])
        return [r for r in self.resources if r.type in types] if found else []

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
        stacks = self._types().get(STACK_TYPE)
        if stacks:
            return stacks[0].urn
        return f"urn:pulumi:{self.stack}::{self.project}::{STACK_TYPE}::{self.project}-{self.stack}"

    def require_resources(self) -> None:
        """An empty plan proves nothing: the gate refuses it instead of passing it."""
        if not any(r.custom for r in self.resources):
            raise PlanError(
                "the plan declares no resources (empty or only components); fix: gate the plan of "
                "a real stack: `clinops gate STACK` or `pulumi preview --json`"
            )

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
        if len(parts) < 4:
            raise PlanError(f"steps[{i}] URN '{urn}' is not urn:pulumi:STACK::PROJECT::TYPE::NAME")
        stack, project = parts[0].removeprefix("urn:pulumi:"), parts[1]
        resources.append(_resource(i, urn, state))
    resources.sort(key=lambda r: r.urn)
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise PlanError("the plan's 'config' is not an object of stack config keys")
    return Plan(resources=resources, config=config, stack=stack, project=project)


def _resource(i: int, urn: str, state: dict[str, Any]) -> PlanResource:
    """One step's new state, every field the engines read checked for its shape first."""
    where = f"steps[{i}] ({urn.split('::')[-1]})"
    inputs = state.get("inputs")
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise PlanError(
            f"{where}: newState.inputs is a {type(inputs).__name__}, not an object; fix: re-create "
            "the plan with `clinops render` or `pulumi preview --json`"
        )
    resource_type = state.get("type")
    if not isinstance(resource_type, str) or not resource_type:
        raise PlanError(f"{where}: newState.type is missing or not a string")
    dependencies = state.get("dependencies") or []
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise PlanError(f"{where}: newState.dependencies must be a list of URNs")
    prop_deps = state.get("propertyDependencies") or {}
    if not isinstance(prop_deps, dict) or not all(
        isinstance(v, list | None) and all(isinstance(u, str) for u in v or ()) for v in prop_deps.values()
    ):
        raise PlanError(f"{where}: newState.propertyDependencies must map input names to lists of URNs")
    _refuse_secret_booleans(where, resource_type, inputs)
    parts = urn.split("::")
    return PlanResource(
        urn=urn,
        type=resource_type,
        name=parts[-1],
        custom=bool(state.get("custom", False)),
        parent=state.get("parent", "") or "",
        inputs=inputs,
        dependencies=tuple(dependencies),
        property_dependencies={k: tuple(v or ()) for k, v in prop_deps.items()},
        protect=bool(state.get("protect", False)),
        retain_on_delete=bool(state.get("retainOnDelete", False)),
    )


def _refuse_secret_booleans(where: str, resource_type: str, inputs: dict[str, Any]) -> None:
    """A boolean the plan hides as "[secret]" cannot be judged on or off: refuse it rather than guess."""
    if SECRET not in json.dumps(inputs):
        return
    top, nested = boolean_inputs(resource_type)

    def walk(value: Any, path: str, depth: int) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                here = f"{path}.{key}" if path else str(key)
                if item == SECRET and key in (top if depth == 0 else nested):
                    raise PlanError(
                        f'{where}: boolean input {here} of {resource_type} is "[secret]", so the gate cannot '
                        "tell whether it is on; fix: do not mark this input secret (pulumi.unsecret) and re-plan"
                    )
                walk(item, here, depth + 1)
        elif isinstance(value, list):
            for n, item in enumerate(value):
                walk(item, f"{path}[{n}]", depth + 1 if depth == 0 else depth)

    walk(inputs, "", 0)


def load_plan(path: Path) -> tuple[Plan, str]:
    """Load a plan file; returns the plan and its raw text (the evidence bundle hashes the text)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PlanError(f"cannot read plan file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(
            f"{path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); fix: "
            "write the plan with `pulumi preview --json > FILE` or `clinops render`"
        ) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path} is not JSON (line {exc.lineno}: {exc.msg})") from None
    return parse_plan(doc), text
