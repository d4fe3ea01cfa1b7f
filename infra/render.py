"""Offline render: run the real Pulumi program under Pulumi's mock runtime and write a preview-shaped plan.

The plan has the shape of `pulumi preview --json` (top-level `config`, `steps`, `diagnostics`,
`changeSummary`; each step with `op`, `urn`, `provider`, `newState`), so the gate reads our render and a
real preview the same way. What only the engine knows (provider defaults, AWS-side validation, real IDs)
is not in it: see the README.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from clinops.config import StackConfig, parse_pulumi_values, project_root, read_stack_file, validate
from clinops.mesh import check_mesh

PROJECT = "clinops"
STACK_TYPE = "pulumi:pulumi:Stack"
SECRET = "[secret]"
# Signature keys of Pulumi's wire format (sdk/go/common/resource/sig).
_SIG = "4dabf18193072939515e22adb298388d"
_SIG_SECRET = "1b47061264138c4ac30d75fd1eb44270"
_SIG_RESOURCE_REF = "5cf8f73096256a8f31e491e813e4eb8e"
_SIG_OUTPUT = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
_SIG_ASSET = "c44067f5952c0a294b673a41bacd8c17"
_SIG_ARCHIVE = "0def7320c3a5731c473e5ecbe6d01bc7"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def normalize(value: Any) -> Any:
    """Wire values to plan values: secrets redacted, integral floats as ints, references as their id/urn."""
    if isinstance(value, dict):
        sig = value.get(_SIG)
        if sig == _SIG_SECRET:
            return SECRET
        if sig == _SIG_OUTPUT:
            return SECRET if value.get("secret") else normalize(value.get("value", UNKNOWN))
        if sig == _SIG_RESOURCE_REF:
            return value.get("id") or value.get("urn")
        if sig == _SIG_ASSET:
            return {"asset": _asset(value)}
        if sig == _SIG_ARCHIVE:
            if "path" in value:  # a built file (e.g. a Lambda layer zip): named, not hashed — it may not exist yet
                return {"archive": {"path": _relative(Path(value["path"]))}}
            return {"archive": {k: normalize(v) for k, v in sorted(value.get("assets", {}).items())}}
        return {k: normalize(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _asset(value: dict[str, Any]) -> dict[str, Any]:
    """File assets by repository-relative path and content hash: the same bytes on every clone."""
    if "path" not in value:
        return {k: v for k, v in sorted(value.items()) if k != _SIG}
    path = Path(value["path"])
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return {"path": _relative(path), "sha256": digest}


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project_root()))
    except ValueError:
        return path.name


# EC2 IDs carry a type prefix that AWS validates (and pipeline definitions check): keep the shape.
_EC2_ID_PREFIX = {
    "vpc": "vpc",
    "subnet": "subnet",
    "securitygroup": "sg",
    "routetable": "rtb",
    "vpcendpoint": "vpce",
    "flowlog": "fl",
    "defaultsecuritygroup": "sg",
}


def _physical_id(kind: str, logical: str) -> str:
    prefix = _EC2_ID_PREFIX.get(kind)
    if prefix is None:
        return f"{logical}-id"
    return f"{prefix}-{hashlib.sha256(logical.encode()).hexdigest()[:17]}"


def qualified_type(urn: str) -> str:
    return urn.split("::")[2]


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    inputs: dict[str, Any]
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    protect: bool
    retain_on_delete: bool
    outputs: dict[str, Any] = field(default_factory=dict)


_PLAIN_SCALARS = (str, bool, int, float)


def _is_plain(value: Any) -> bool:
    """JSON-shaped all the way down: what the SDK's serialiser passes through unchanged."""
    kind = type(value)  # exact types: subclasses (enums, input types) keep the SDK's path
    if value is None or kind in _PLAIN_SCALARS:
        return True
    if kind is dict:
        return all(type(k) is str and _is_plain(v) for k, v in value.items())
    if kind is list:
        return all(_is_plain(v) for v in value)
    return False


def _plain_struct(state: dict[str, Any]) -> Any:
    """The struct the SDK's serialiser makes of plain state: top-level None values are left out, nested ones kept."""
    from google.protobuf import struct_pb2

    struct = struct_pb2.Struct()
    struct.update({k: v for k, v in state.items() if v is not None})
    return struct


def _mock_classes() -> tuple[type, type]:
    """Build the mock classes lazily: importing pulumi costs ~0.3 s and the CLI should not pay it for --help."""
    import pulumi
    from pulumi.runtime import rpc
    from pulumi.runtime.mocks import MockMonitor, MockResourceArgs
    from pulumi.runtime.proto import resource_pb2
    from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

    class PlanMocks(pulumi.runtime.Mocks):
        """Deterministic physical IDs and ARNs derived from names, so references stay recognisable."""

        def __init__(self, config: StackConfig) -> None:
            self.region, self.account = config.region, config.account_id
            self.zones = [f"{config.region}{c}" for c in "abcdef"]

        def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
            inputs = dict(args.inputs)
            module = args.typ.split(":")[1].split("/")[0]
            kind = args.typ.split(":")[-1].lower()
            physical = inputs.get("bucket") or inputs.get("name") or inputs.get("pipelineName") or args.name
            arn = self._arn(module, kind, str(physical), args.name)
            outputs = {"arn": arn, **inputs}
            if module == "kms" and kind == "key":
                outputs["keyId"] = f"{args.name}-key-id"
            if kind == "vpcendpoint" and inputs.get("vpcEndpointType") == "Gateway":
                outputs["prefixListId"] = f"pl-{args.name}"
            resource_id = str(physical) if module in ("s3", "iam") else _physical_id(kind, args.name)
            return resource_id, outputs

        def _arn(self, module: str, kind: str, physical: str, logical: str) -> str:
            """ARNs in the shape AWS gives them, so policies that embed them read like the real thing."""
            where = f"{self.region}:{self.account}"
            special = {
                ("s3", "bucket"): f"arn:aws:s3:::{physical}",
                ("cloudwatch", "loggroup"): f"arn:aws:logs:{where}:log-group:{physical}",
                ("cloudwatch", "metricalarm"): f"arn:aws:cloudwatch:{where}:alarm:{physical}",
                ("kms", "key"): f"arn:aws:kms:{where}:key/{logical}",
                ("kms", "alias"): f"arn:aws:kms:{where}:{physical}",
                ("sns", "topic"): f"arn:aws:sns:{where}:{physical}",
                ("cloudtrail", "trail"): f"arn:aws:cloudtrail:{where}:trail/{physical}",
                ("sqs", "queue"): f"arn:aws:sqs:{where}:{physical}",
                ("lambda", "function"): f"arn:aws:lambda:{where}:function:{physical}",
                ("cloudwatch", "eventrule"): f"arn:aws:events:{where}:rule/{physical}",
            }
            if (module, kind) in special:
                return special[(module, kind)]
            if module == "iam":
                return f"arn:aws:iam::{self.account}:{kind}/{physical}"
            if module == "sagemaker":
                sm_kind = {
                    "modelpackagegroup": "model-package-group",
                    "endpointconfiguration": "endpoint-config",
                    "userprofile": "user-profile",
                }.get(kind, kind)
                return f"arn:aws:sagemaker:{where}:{sm_kind}/{physical}"
            return f"arn:aws:{module}:{where}:{kind}/{physical}"

        def call(self, args: Any) -> Any:  # a dict (Pulumi also accepts a (dict, dependencies) tuple)
            if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
                names = self.zones[:6]
                return {"names": names, "zoneIds": [f"az{i + 1}" for i in range(len(names))]}
            raise NotImplementedError(f"the offline render has no mock for invoke {args.token}")

    class RecordingMonitor(MockMonitor):
        """The stock mock monitor, with engine-accurate URNs and a record of what each request carried."""

        def __init__(self, mocks: Any, stack: str) -> None:
            super().__init__(mocks)
            # The monitor runs on executor threads where Pulumi's context variables are not set.
            self.stack = stack
            self.registrations: dict[str, Registration] = {}

        def make_urn(self, parent: str, type_: str, name: str) -> str:
            qualified = type_
            if parent and qualified_type(parent) != STACK_TYPE:
                qualified = qualified_type(parent) + "$" + type_
            return f"urn:pulumi:{self.stack}::{PROJECT}::{qualified}::{name}"

        def RegisterResource(self, request: Any) -> Any:
            response = self._register_with_mocks(request)
            raw = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
            self.registrations[response.urn] = Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent,
                inputs=normalize(raw),
                dependencies=sorted(set(request.dependencies)),
                property_dependencies={
                    k: sorted(set(v.urns)) for k, v in sorted(request.propertyDependencies.items()) if v.urns
                },
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
            )
            return response

        def _register_with_mocks(self, request: Any) -> Any:
            """`MockMonitor.RegisterResource` of pulumi 3.223.0 (uv.lock), answering plain state without its serialiser.

            The stock monitor serialises every answer with the SDK's async `serialize_properties`, run to
            completion on this thread's event loop: about 0.8 s of a 50-model render for state that is nearly
            always plain JSON values. For those (strings, numbers, booleans, None, lists, string-keyed dicts)
            the serialiser's answer is the same struct a protobuf `Struct.update` builds once top-level None
            values are dropped; anything else (unknowns, assets, resources) takes the SDK's path.
            """
            if request.type == STACK_TYPE:
                return super().RegisterResource(request)
            urn = self.make_urn(request.parent, request.type, request.name)
            _ensure_event_loop()  # deserialising resource references needs one on this thread
            inputs = rpc.deserialize_properties(request.object)
            args = MockResourceArgs(
                typ=request.type,
                name=request.name,
                inputs=inputs,
                provider=request.provider,
                resource_id=request.importId,
                custom=request.custom or False,
            )
            id_: Any  # the Mocks interface allows None, passed on as the stock monitor does
            id_, state = self.mocks.new_resource(args)
            plain = _is_plain(state)
            obj_proto = _plain_struct(state) if plain else _sync_await(rpc.serialize_properties(state, {}))
            self.resources[urn] = MockMonitor.ResourceRegistration(urn, id_, state)
            return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj_proto)

        def RegisterResourceOutputs(self, request: Any) -> Any:
            reg = self.registrations.get(request.urn)
            if reg is not None:
                reg.outputs = normalize(json_format.MessageToDict(request.outputs))
            return super().RegisterResourceOutputs(request)

    return PlanMocks, RecordingMonitor


class OutstandingOutputs:
    """Pulumi's register of unresolved outputs (`SETTINGS.outputs`) with O(1) removal.

    The SDK keeps every output's future in a deque and removes each one when it resolves: `deque.remove` is a
    linear scan, so a render's cost grew with the square of its outputs (about 15% of a 10-model render, most of
    a 50-model one). Upstream replaced the deque with a set (pulumi/pulumi#22946); until the lock moves to that
    release the render installs this drop-in with the operations the SDK uses (append, remove, popleft, clear,
    len). Only the order in which the SDK waits for outputs depends on it, never what the plan contains.
    """

    def __init__(self) -> None:
        self._futures: OrderedDict[Any, None] = OrderedDict()

    def append(self, future: Any) -> None:
        self._futures[future] = None

    def remove(self, future: Any) -> None:
        try:
            del self._futures[future]
        except KeyError:
            raise ValueError("not an outstanding output") from None  # deque.remove's contract, caught by the SDK

    def popleft(self) -> Any:
        try:
            return self._futures.popitem(last=False)[0]
        except KeyError:
            raise IndexError("pop from an empty register of outputs") from None

    def clear(self) -> None:
        self._futures.clear()

    def __len__(self) -> int:
        return len(self._futures)


def _cache_sdk_type_hints() -> None:
    """Resolve each Pulumi type's property types once per process instead of once per serialisation.

    The SDK recomputes `typing.get_type_hints` for every property of every input/output type each time a
    resource's inputs are serialised or its outputs translated (about 50 calls per resource, a quarter of a
    render's CPU); the answer depends on the class alone, which the generated SDK never changes after import.
    Upstream caches the same function (pulumi/pulumi#22422, after the version uv.lock pins). Callers get a
    copy, so one caller mutating its dict cannot leak into the next.
    """
    from pulumi import _types

    original = _types._types_from_py_properties
    if getattr(original, "_clinops_cached", False):
        return
    cached = functools.cache(original)

    def types_from_py_properties(cls: type) -> dict[str, type]:
        return dict(cached(cls))

    types_from_py_properties._clinops_cached = True  # type: ignore[attr-defined]
    _types._types_from_py_properties = types_from_py_properties


def _cache_sdk_type_unwrapping() -> None:
    """Unwrap each annotation (`Optional[Input[T]]` -> `T`) once per process instead of once per value.

    The SDK unwraps the declared type of every property value it serialises (about 90,000 calls in a 50-model
    render, each walking `typing` origins and arguments and defining two helper functions). The answer depends
    on the annotation alone, and the generated SDK's annotations never change after import. An annotation that
    cannot be hashed is unwrapped as before, uncached.
    """
    from pulumi import _types

    original = _types.unwrap_type
    if getattr(original, "_clinops_cached", False):
        return
    cached = functools.cache(original)

    def unwrap_type(val: type) -> type:
        try:
            return cached(val)
        except TypeError:  # unhashable annotation
            return original(val)

    unwrap_type._clinops_cached = True  # type: ignore[attr-defined]
    unwrap_type.__wrapped__ = original  # type: ignore[attr-defined]  # the SDK's, for tests
    _types.unwrap_type = unwrap_type


# The SDK's per-class name tables (Python name <-> Pulumi name), read for every input type serialised and every
# resource whose outputs are translated.
_SDK_NAME_TABLES = (
    "input_type_py_to_pulumi_names",
    "_pulumi_to_py_names_from_py_properties",
    "_py_to_pulumi_names_from_py_properties",
)


def _cache_sdk_name_tables() -> None:
    """Build each class's property-name table once per process instead of once per use.

    Each table walks the class's MRO for properties carrying a Pulumi name (about 130,000 walks in a 50-model
    render). The names come from the `@pulumi.getter` decorators in the class body, fixed once the class exists
    (the SDK's later swap of input-type setters keeps each getter, and so its name). Callers get a copy, as with
    the type-hints cache.
    """
    from pulumi import _types

    for name in _SDK_NAME_TABLES:
        original = getattr(_types, name)
        if getattr(original, "_clinops_cached", False):
            continue
        cached = functools.cache(original)

        def table(cls: type, cached: Callable[[type], dict[str, str]] = cached) -> dict[str, str]:
            return dict(cached(cls))

        table._clinops_cached = True  # type: ignore[attr-defined]
        table.__wrapped__ = original  # type: ignore[attr-defined]  # the SDK's, for tests
        setattr(_types, name, table)


def _skip_sdk_stack_traces() -> None:
    """Register resources without walking the Python stack for their source positions.

    The SDK extracts and converts the whole call stack for every resource (`traceback.extract_stack`, about 7%
    of a render) so the engine can show where a resource was declared; a plan carries no source positions and
    the recording monitor ignores them. The SDK's own answer for "no position found" is an empty trace."""
    from pulumi.runtime import resource as sdk_resource
    from pulumi.runtime.proto import source_pb2

    if getattr(sdk_resource._get_stack_trace, "_clinops_skipped", False):
        return

    def no_stack_trace() -> source_pb2.StackTrace:
        return source_pb2.StackTrace()

    no_stack_trace._clinops_skipped = True  # type: ignore[attr-defined]
    sdk_resource._get_stack_trace = no_stack_trace


def _closure_free_unknown_checks() -> None:
    """Check values for unknowns without building a recursive closure (and a cycle) on every call.

    The SDK's `rpc.contains_unknowns` defines a nested function that calls itself, so each call leaves a
    function/cell/annotation cycle that only the cyclic collector frees: about 100,000 calls and 600,000 cyclic
    objects in a 50-model render, half of what the collector had to find afterwards. Its type predicates
    (`known_types.is_unknown`, `is_resource`, `is_asset`, `is_archive`, `is_output`) import their class on every
    call, about 700,000 imports per render. The same answers with the classes bound once and a set of visited
    containers: true when an `Unknown` is reachable through dicts and lists, each container visited once.
    """
    from pulumi import Archive, Asset, Output, Resource
    from pulumi.output import Unknown
    from pulumi.runtime import known_types, rpc

    if getattr(rpc.contains_unknowns, "_clinops_closure_free", False):
        return

    def contains_unknowns(val: Any) -> bool:  # the SDK's parameter name
        return _reaches(val, Unknown, set())

    contains_unknowns._clinops_closure_free = True  # type: ignore[attr-defined]
    contains_unknowns.__wrapped__ = rpc.contains_unknowns  # type: ignore[attr-defined]  # the SDK's, for tests
    rpc.contains_unknowns = contains_unknowns
    for name, cls in (
        ("is_unknown", Unknown),
        ("is_resource", Resource),
        ("is_asset", Asset),
        ("is_archive", Archive),
        ("is_output", Output),
    ):
        setattr(known_types, name, _instance_check(cls))


def _reaches(value: Any, cls: type, seen: set[int]) -> bool:
    """Whether an instance of `cls` is reachable from `value` through dicts and lists (each visited once)."""
    if isinstance(value, cls):
        return True
    if isinstance(value, dict | list):
        if id(value) in seen:
            return False
        seen.add(id(value))
        for item in value.values() if isinstance(value, dict) else value:
            if _reaches(item, cls, seen):
                return True
    return False


def _instance_check(cls: type) -> Callable[[Any], bool]:
    def is_instance(obj: Any) -> bool:
        return isinstance(obj, cls)

    return is_instance


class _DeclaredResources:
    """Every resource the program declares, so the render can let them die by reference counting.

    A resource and its outputs form cycles (each output's future holds the set of resources it depends on, the
    resource holds its outputs), so after a render the SDK's whole object graph (~430,000 objects at 50 models:
    outputs, futures, tasks, contexts) was garbage only the cyclic collector could find, in one pause of about
    a second when the collector resumed. Emptying each resource's attributes once the program has finished breaks
    those cycles and reference counting frees the graph as it goes. A stack transformation (Python-side only,
    never sent to the engine) sees each resource as it is constructed; it returns None, so nothing changes.
    The plan is built from what the monitor recorded, never from these objects, which are unusable after the
    render's event loop has ended anyway.
    """

    def __init__(self) -> None:
        self._resources: list[Any] = []

    def remember(self, args: Any) -> None:
        self._resources.append(args.resource)

    def release(self) -> None:
        for resource in self._resources:
            vars(resource).clear()
        self._resources.clear()


def _topological(regs: dict[str, Registration]) -> list[Registration]:
    """Parents and dependencies first (as the engine orders creates); ties broken by URN for stable bytes."""
    edges = {u: {d for d in {r.parent, *r.dependencies} if d in regs and d != u} for u, r in regs.items()}
    order: list[Registration] = []
    done: set[str] = set()
    remaining = dict(edges)
    while remaining:
        ready = sorted(u for u, deps in remaining.items() if deps <= done)
        if not ready:  # a cycle cannot come from Pulumi, but never loop forever
            ready = sorted(remaining)
        for u in ready:
            order.append(regs[u])
            done.add(u)
            del remaining[u]
    return order


def _step(reg: Registration, stack: str) -> dict[str, Any]:
    provider = ""
    if reg.custom and reg.type.startswith("aws:"):
        provider = f"urn:pulumi:{stack}::{PROJECT}::pulumi:providers:aws::default::{UNKNOWN}"
    state = {
        "urn": reg.urn,
        "custom": reg.custom,
        "delete": False,
        "id": "",
        "type": reg.type,
        "inputs": reg.inputs,
        "outputs": reg.outputs,
        "parent": reg.parent,
        "protect": reg.protect,
        "retainOnDelete": reg.retain_on_delete,
        "dependencies": reg.dependencies,
        "propertyDependencies": reg.property_dependencies,
    }
    if provider:
        state["provider"] = provider
    return {"op": "create", "urn": reg.urn, "provider": provider, "newState": state}


ProgramFn = Callable[[StackConfig], None]


def _default_program(config: StackConfig) -> None:
    from infra.stack import build_platform

    build_platform(config)


def _validated(
    stack: str, root: Path | None, overrides: dict[str, str] | None
) -> tuple[dict[str, str], list[str], StackConfig]:
    raw, secret_keys = read_stack_file(stack, root)
    raw.update(overrides or {})
    config = validate(stack, parse_pulumi_values(raw, stack))
    check_mesh(config)  # contracts, derived names and quotas: refuse in milliseconds, not after the render
    from infra.stack import check_quotas  # the program's own modules: pulumi_aws, which the render needs anyway

    check_quotas(config)  # key policies within KMS's quota
    return raw, secret_keys, config


def render(
    stack: str,
    program: ProgramFn | None = None,
    root: Path | None = None,
    overrides: dict[str, str] | None = None,
    on_valid: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Render one stack to a preview-shaped plan. Config is validated before any resource is declared.

    `overrides` replaces flat config keys (tests use it to render deliberately broken variants). `on_valid` runs
    once the config has passed, before the program: `clinops gate` starts the gate's engines there, so their
    start-up uses the core the single-threaded render leaves idle, and a bad config starts nothing.
    """
    import pulumi
    from pulumi.runtime import settings as runtime_settings
    from pulumi.runtime.config import set_all_config

    from clinops.config import load_from_pulumi_runtime

    raw, secret_keys, config = _validated(stack, root, overrides)
    if on_valid is not None:
        on_valid()
    program = program or _default_program

    plan_mocks_cls, monitor_cls = _mock_classes()
    _cache_sdk_type_hints()
    _skip_sdk_stack_traces()
    _cache_sdk_type_unwrapping()
    _cache_sdk_name_tables()
    _closure_free_unknown_checks()
    runtime_settings.ROOT.set(None)
    set_all_config(dict(raw), secret_keys)
    monitor = monitor_cls(plan_mocks_cls(config), stack)
    pulumi.runtime.set_mocks(plan_mocks_cls(config), project=PROJECT, stack=stack, preview=True, monitor=monitor)
    runtime_settings.SETTINGS.outputs = OutstandingOutputs()

    @pulumi.runtime.test
    def _run() -> None:
        program(load_from_pulumi_runtime())

    # The SDK keeps every resource's outputs, futures and tasks alive until the program ends, so each full
    # cyclic collection rescans a heap that grows with the stack: half of a 50-model render's CPU (27.9 s ->
    # 13.5 s measured) went to collections that found ~1 MB of cycles. Reference counting still frees the rest;
    # the collector resumes when the render returns, after the program's resources are released (their cycles
    # broken, see _DeclaredResources), so it finds nothing left to collect instead of pausing ~1 s at 50 models.
    declared = _DeclaredResources()
    pulumi.runtime.register_stack_transformation(declared.remember)
    collecting = gc.isenabled()
    gc.disable()
    try:
        _run()
    finally:
        declared.release()
        if collecting:
            gc.enable()
    steps = [_step(r, stack) for r in _topological(monitor.registrations)]
    creates = sum(1 for s in steps if s["op"] == "create")
    return {
        "config": {k: (SECRET if k in secret_keys else v) for k, v in sorted(raw.items())},
        "steps": steps,
        "diagnostics": [],
        "duration": 0,
        "changeSummary": {"create": creates},
    }


def dumps(plan: dict[str, Any]) -> str:
    return json.dumps(plan, indent=2, sort_keys=True) + "\n"


def summarize(plan: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """Resources counted by top-level component (`Type::name`) and by type."""
    by_component: dict[str, int] = defaultdict(int)
    by_type: dict[str, int] = defaultdict(int)
    parents = {s["urn"]: s["newState"].get("parent", "") for s in plan["steps"]}
    types = {s["urn"]: s["newState"]["type"] for s in plan["steps"]}
    for step in plan["steps"]:
        state = step["newState"]
        if not state.get("custom"):
            continue
        by_type[state["type"]] += 1
        urn = step["urn"]
        while parents.get(urn) and types.get(parents[urn]) != STACK_TYPE:
            urn = parents[urn]
        by_component[f"{types[urn]}::{urn.split('::')[-1]}" if types.get(urn) != STACK_TYPE else "(stack)"] += 1
    return dict(sorted(by_component.items())), dict(sorted(by_type.items()))
