"""What a rule is, and the small toolkit every rule uses to read a stack without tripping over unknowns.

A rule is one CrossGuard stack validation: `validate(args: StackValidationArgs, report_violation)`. The same
function runs inside `pulumi preview --policy-pack policies` and, through `policies.crossguard`, over a plan
file offline. Rules read resource properties through `StackView.props`, which turns values that are unknown
until apply into `UNKNOWN` instead of raising; a rule that meets one records it with `Findings.unknown`, and
after judging everything it can the rule raises `NotKnownAtPreview` (a CrossGuard `UnknownValueError`), which
CrossGuard reports as an advisory "can't run during preview" and the offline gate reports as a failure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyResource, ReportViolation, StackValidation, StackValidationArgs
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

from clinops.config import INTERFACE_ENDPOINT_SERVICES, RETENTION_FLOORS, S3_ENDPOINT_SERVICE, StackConfig
from clinops.names import HUMAN_PERSONAS
from policies.model import Severity

KMS_KEY_TYPES = ("aws:kms/key:Key", "aws:kms/replicaKey:ReplicaKey")

# Endpoints the platform needs when the VPC has no route out ({region} is filled in from config): exactly the
# ones the network component creates (one source: clinops.config). S3 may be a gateway endpoint; every other
# service needs an interface endpoint with private DNS so the SDKs' default hostnames resolve inside the VPC.
REQUIRED_ENDPOINT_SERVICES = (*INTERFACE_ENDPOINT_SERVICES, S3_ENDPOINT_SERVICE)
PERSONAS = HUMAN_PERSONAS

# The platform facts rules read from policy config, as JSON schema. Defaults are prod with PHI floors (the
# rollback SLO: the stack config's own default), so a pack run without `--policy-pack-config` errs on the
# safe side.
CONFIG_SCHEMA: dict[str, dict[str, Any]] = {
    "environment": {"type": "string", "enum": ["dev", "staging", "prod"], "default": "prod"},
    "logRetentionFloorDays": {"type": "integer", "minimum": 1, "default": RETENTION_FLOORS["phi"]["log"]},
    "evidenceRetentionFloorDays": {"type": "integer", "minimum": 1, "default": RETENTION_FLOORS["phi"]["evidence"]},
    "rollbackSloSeconds": {
        "type": "integer",
        "minimum": 60,
        "default": StackConfig.model_fields["rollback_slo_seconds"].default,
    },
    "region": {"type": "string", "default": "", "description": "empty: endpoints may be in any region"},
    "requiredEndpointServices": {
        "type": "array",
        "items": {"type": "string"},
        "default": list(REQUIRED_ENDPOINT_SERVICES),
    },
    "platformAccounts": {
        "type": "array",
        "items": {"type": "string", "pattern": "^[0-9]{12}$"},
        "default": [],
        "description": "accounts resource policies may admit; empty: none",
    },
    "personas": {"type": "array", "items": {"type": "string", "enum": list(PERSONAS)}, "default": list(PERSONAS)},
    "sloModels": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "windowDays": {"type": "integer"},
                "errorBudget": {"type": "number"},
                "costPer1000Usd": {"type": "number"},
                "exhaustedAction": {"type": "string", "enum": ["breaker", "freeze", "none"]},
            },
            "required": ["name", "windowDays", "errorBudget", "costPer1000Usd", "exhaustedAction"],
        },
        "default": [],
        "description": "served models (package pinned) and their resolved SLOs, from the stack config",
    },
}


class _Unknown:
    """A value that is computed during apply (e.g. the ARN of a key created in the same update)."""

    def __repr__(self) -> str:
        return "<unknown until apply>"


UNKNOWN: Any = _Unknown()
_SENTINELS = frozenset(
    {
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_STRING_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_OBJECT_VALUE,
    }
)


def plain(value: Any) -> Any:
    """Copy CrossGuard's unknown-checking proxies into plain dicts and lists, unknowns as `UNKNOWN`.

    Integral floats become ints: protobuf carries every number as a double, and messages should say 30 days.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return UNKNOWN if value in _SENTINELS else value
    if isinstance(value, Mapping):
        return {key: plain(_item(value, key)) for key in value}
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return [plain(_item(value, i)) for i in range(len(value))]
    return value


def _item(container: Any, key: Any) -> Any:
    try:
        return container[key]
    except UnknownValueError:
        return UNKNOWN


def dig(value: Any, *path: str | int) -> Any:
    """`value[p0][p1]...`, or None where a step is missing; UNKNOWN if a step is unknown."""
    for step in path:
        if value is UNKNOWN:
            return UNKNOWN
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and -len(value) <= step < len(value) else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
    return value


class NotKnownAtPreview(UnknownValueError):
    """Raised after a rule has judged everything it could; lists what only apply will know."""

    def __init__(self, unknowns: list[tuple[str, str]]) -> None:
        super().__init__(UNKNOWN_STRING_VALUE, [])
        self.unknowns = unknowns
        self.message = "unknown until apply, judged again by `pulumi up`: " + "; ".join(
            f"{urn.split('::')[-1]}.{path}" for urn, path in unknowns
        )

    def __str__(self) -> str:
        return self.message


# What rules accepted by design, by URN (e.g. a pipeline step without network isolation that only logs to the
# stack's MLflow server through its VPC endpoint). The offline gate collects them into the passed result's
# message, so the acceptance is in the evidence; under `pulumi preview` nobody collects them.
ACCEPTED: ContextVar[dict[str, list[str]] | None] = ContextVar("accepted", default=None)


class Findings:
    """Wraps CrossGuard's `report_violation` so rules speak in resources, not URN strings."""

    def __init__(self, report_violation: ReportViolation) -> None:
        self._report = report_violation
        self._unknowns: list[tuple[str, str]] = []

    def fail(self, resource: PolicyResource | None, message: str) -> None:
        """A violation on `resource`, or on the stack as a whole when None."""
        self._report(message, resource.urn if resource is not None else None)

    def accept(self, resource: PolicyResource, message: str) -> None:
        """Something the rule would fail, accepted because it meets the rule's stated narrower condition."""
        collected = ACCEPTED.get()
        if collected is not None:
            collected.setdefault(resource.urn, []).append(message)

    def unknown(self, resource: PolicyResource, path: str) -> None:
        self._unknowns.append((resource.urn, path))

    @property
    def unknown_count(self) -> int:
        return len(self._unknowns)

    def finish(self) -> None:
        if self._unknowns:
            raise NotKnownAtPreview(self._unknowns)


class ResourceCaches:
    """What a StackView derives from the resources alone: URN order, plain props, lookup indexes. Converting
    CrossGuard's proxies is most of a rule's cost, and it does not depend on the rule, so `shared_caches` lets
    every rule of one evaluation share it (at 50 models, once instead of 50 times). Rules read props and never
    change them (tests/policies/test_rules.py holds them to it)."""

    def __init__(self, resources: list[PolicyResource]) -> None:
        self.source = resources
        self.resources = sorted(resources, key=lambda r: r.urn)
        self.props: dict[str, dict[str, Any]] = {}
        self.indexes: dict[tuple[str, str], dict[Any, PolicyResource]] = {}
        self.referencing: dict[tuple[str, tuple[str, ...]], dict[str, list[PolicyResource]]] = {}


_SHARED: ContextVar[ResourceCaches | None] = ContextVar("shared_caches", default=None)


@contextmanager
def shared_caches(resources: list[PolicyResource]) -> Iterator[ResourceCaches]:
    """Within the block, rules given exactly this resource list share one ResourceCaches (the offline gate
    evaluates every rule over one list; CrossGuard gives each policy its own, which then gets its own)."""
    caches = ResourceCaches(resources)
    token = _SHARED.set(caches)
    try:
        yield caches
    finally:
        _SHARED.reset(token)


class StackView:
    """The stack a rule judges: resources in URN order, props as plain data, links via propertyDependencies."""

    def __init__(self, args: StackValidationArgs) -> None:
        shared = _SHARED.get()
        caches = shared if shared is not None and shared.source is args.resources else ResourceCaches(args.resources)
        self.resources = caches.resources
        defaults = {key: schema["default"] for key, schema in CONFIG_SCHEMA.items()}
        self.config: dict[str, Any] = {**defaults, **dict(args.get_config() or {})}
        self._props = caches.props
        self._indexes = caches.indexes
        self._referencing = caches.referencing

    def of_type(self, *types: str) -> list[PolicyResource]:
        return [r for r in self.resources if r.resource_type in types]

    def by_input(self, type_: str, prop: str) -> dict[Any, PolicyResource]:
        """Resources of `type_` by the value of their input `prop` (e.g. alarms by name), built once per rule
        run: looking them up per endpoint made rules quadratic in a mesh of models. Last one wins on a tie."""
        key = (type_, prop)
        if key not in self._indexes:
            index: dict[Any, PolicyResource] = {}
            for r in self.of_type(type_):
                index[self.props(r).get(prop)] = r
            self._indexes[key] = index
        return self._indexes[key]

    def props(self, resource: PolicyResource) -> dict[str, Any]:
        if resource.urn not in self._props:
            self._props[resource.urn] = plain(resource.props)
        return self._props[resource.urn]

    def refs(self, resource: PolicyResource, prop: str, *types: str) -> list[PolicyResource]:
        """Resources (of `types`, any if none) the input `prop` of `resource` was computed from."""
        found = resource.property_dependencies.get(prop) or []
        return [r for r in found if not types or r.resource_type in types]

    def referencing(self, target: PolicyResource, prop: str, *types: str) -> list[PolicyResource]:
        """Resources of `types` whose input `prop` was computed from `target` (e.g. flow logs of a VPC)."""
        key = (prop, types)
        index = self._referencing.get(key)
        if index is None:  # built once per (prop, types): rules ask it for every role or bucket of a stack
            index = {}
            for resource in self.of_type(*types):
                for urn in dict.fromkeys(d.urn for d in self.refs(resource, prop)):
                    index.setdefault(urn, []).append(resource)
            self._referencing[key] = index
        return list(index.get(target.urn, []))

    def uses_stack_key(self, resource: PolicyResource, prop: str) -> bool:
        """True when input `prop` was computed from a customer-managed KMS key declared in this stack."""
        return bool(self.refs(resource, prop, *KMS_KEY_TYPES))

    def number(self, key: str) -> int:
        """A numeric config fact (policy config arrives through protobuf, so integers come as floats)."""
        return int(self.config[key])


Check = Callable[[StackView, Findings], None]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: Severity
    controls: tuple[str, ...]
    fix: str
    resource_types: tuple[str, ...]
    validate: StackValidation
    mandatory: bool = True
    config_keys: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()  # types consulted to judge `resource_types` (counted as coverage, not results)


def rule(
    *,
    id: str,
    title: str,
    severity: Severity,
    controls: tuple[str, ...],
    fix: str,
    types: tuple[str, ...],
    mandatory: bool = True,
    config: tuple[str, ...] = (),
    reads: tuple[str, ...] = (),
) -> Callable[[Check], Rule]:
    """Turn a `check(stack, findings)` function into a `Rule` whose `validate` has CrossGuard's signature."""

    def build(check: Check) -> Rule:
        def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            findings = Findings(report_violation)
            check(StackView(args), findings)
            findings.finish()

        validate.__name__ = validate.__qualname__ = check.__name__
        validate.__doc__ = check.__doc__
        return Rule(
            id=id,
            title=title,
            severity=severity,
            controls=controls,
            fix=fix,
            resource_types=types,
            validate=validate,
            mandatory=mandatory,
            config_keys=config,
            reads=reads,
        )

    return build


def is_cidr_everywhere(cidr: Any) -> bool:
    """0.0.0.0/0 or ::/0 (in any spelling): a prefix of length zero covers the whole internet."""
    if not isinstance(cidr, str):
        return False
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False).prefixlen == 0
    except ValueError:
        return False


def as_list(value: Any) -> list[Any]:
    """IAM and AWS APIs accept a scalar where a list is meant; None means an empty list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
