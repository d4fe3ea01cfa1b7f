"""The offline render: preview-shaped, engine-accurate URNs, deterministic, several stacks per process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infra.render import SECRET, dumps, normalize, render, summarize
from tests.conftest import REPO, rendered

ROOT = REPO


def test_plan_has_preview_shape(stack_plan: tuple[str, dict]) -> None:
    _, plan = stack_plan
    assert set(plan) >= {"config", "steps", "diagnostics", "changeSummary"}
    for step in plan["steps"]:
        assert step["op"] == "create"
        state = step["newState"]
        assert {"type", "urn", "parent", "inputs", "dependencies", "propertyDependencies"} <= set(state)
    assert plan["changeSummary"]["create"] == len(plan["steps"])


def test_urns_follow_engine_rules() -> None:
    plan = rendered("prod")
    urns = {s["newState"]["type"]: s["urn"] for s in plan["steps"]}
    assert urns["pulumi:pulumi:Stack"] == "urn:pulumi:prod::clinops::pulumi:pulumi:Stack::clinops-prod"
    # children of the root stack carry no stack type; nested children chain the full qualified type
    assert urns["clinops:infra:Network"] == "urn:pulumi:prod::clinops::clinops:infra:Network::network"
    bucket = next(s["urn"] for s in plan["steps"] if s["urn"].endswith("aws:s3/bucket:Bucket::phi-data"))
    assert bucket == (
        "urn:pulumi:prod::clinops::clinops:infra:Storage$clinops:infra:SecureBucket$aws:s3/bucket:Bucket::phi-data"
    )
    by_urn = {s["urn"]: s for s in plan["steps"]}
    for step in plan["steps"]:
        parent = step["newState"]["parent"]
        assert parent == "" or parent in by_urn, step["urn"]


def test_same_stack_renders_to_same_bytes_and_stacks_do_not_leak() -> None:
    first = dumps(render("dev"))
    prod = dumps(render("prod"))
    again = dumps(render("dev"))
    assert first == again
    # nothing of prod is declared in dev (dev's retraining rule does listen to prod's alarm names: by design)
    assert not [s["urn"] for s in json.loads(first)["steps"] if not s["urn"].startswith("urn:pulumi:dev::")]
    assert "clinops-prod-" not in first.split('"steps"')[0]
    assert not [s["urn"] for s in json.loads(prod)["steps"] if not s["urn"].startswith("urn:pulumi:prod::")]
    assert '"clinops:environment": "dev"' in again


def test_integral_numbers_are_ints() -> None:
    plan = rendered("prod")
    group = next(s for s in plan["steps"] if s["urn"].endswith("LogGroup::flow-logs"))
    assert group["newState"]["inputs"]["retentionInDays"] == 731
    assert isinstance(group["newState"]["inputs"]["retentionInDays"], int)


def test_secrets_are_redacted() -> None:
    wire = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "hunter2"}
    assert normalize({"password": wire, "n": 3.0, "x": 1.5}) == {"n": 3, "password": SECRET, "x": 1.5}


def test_secret_config_is_redacted_in_plan(tmp_path: Path, monkeypatch) -> None:
    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    doc["config"]["aws:secretKey"] = {"secure": "v1:abcdef"}
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(doc))
    plan = render("dev", root=tmp_path)
    assert plan["config"]["aws:secretKey"] == SECRET


def test_cross_resource_references_are_recognisable() -> None:
    plan = rendered("prod")
    flow = next(s for s in plan["steps"] if s["newState"]["type"] == "aws:ec2/flowLog:FlowLog")
    vpc = next(s for s in plan["steps"] if s["newState"]["type"] == "aws:ec2/vpc:Vpc")
    assert flow["newState"]["propertyDependencies"]["vpcId"] == [vpc["urn"]]


def test_summary_counts_by_component_and_type() -> None:
    by_component, by_type = summarize(rendered("dev"))
    assert by_type["aws:s3/bucket:Bucket"] == 5
    contracts = by_type["aws:s3/bucketObjectv2:BucketObjectv2"]  # uploaded by the training component
    assert (
        by_component["clinops:infra:Storage::storage"]
        == sum(n for t, n in by_type.items() if t.startswith("aws:s3/")) - contracts
    )
    assert by_type["aws:sagemaker/modelPackageGroup:ModelPackageGroup"] == 2


def test_outstanding_outputs_register_keeps_the_sdks_deque_contract() -> None:
    from infra.render import OutstandingOutputs

    register = OutstandingOutputs()
    first, second, third = object(), object(), object()
    for future in (first, second, third):
        register.append(future)
    register.remove(second)
    assert len(register) == 2
    with pytest.raises(ValueError):
        register.remove(second)  # the SDK catches ValueError for an output already drained
    assert register.popleft() is first  # oldest first, as the SDK's wait loop expects
    register.append(first)  # a pending output goes back to the end
    assert [register.popleft(), register.popleft()] == [third, first]
    with pytest.raises(IndexError):
        register.popleft()
    register.append(third)
    register.clear()
    assert len(register) == 0


def test_render_restores_the_garbage_collector() -> None:
    import gc

    assert gc.isenabled()
    render("dev", program=lambda config: None)
    assert gc.isenabled()
    gc.disable()
    try:
        render("dev", program=lambda config: None)
        assert not gc.isenabled()  # a caller's choice is left as it was
    finally:
        gc.enable()


def test_a_render_leaves_no_cyclic_garbage_behind() -> None:
    """The SDK's objects die by reference counting when the render ends (110,000 cyclic objects per dev
    render before), so the collector has nothing to find when it resumes."""
    import gc

    render("dev")  # imports and caches first
    gc.collect()
    gc.disable()
    try:
        render("dev")
        found = gc.collect()
    finally:
        gc.enable()
    assert found < 10_000


def test_declared_resources_are_emptied_only_after_the_program_has_run() -> None:
    import pulumi

    seen: list[object] = []

    def program(config) -> None:
        topic = pulumi.ComponentResource("test:index:Thing", "thing")
        assert topic.urn is not None  # usable while the program runs
        seen.append(topic)

    plan = render("dev", program=program)
    assert [s["urn"].split("::")[-1] for s in plan["steps"][1:]] == ["thing"]
    assert vars(seen[0]) == {}


def test_unknown_checks_answer_as_the_sdks_do() -> None:
    from pulumi import FileAsset, Output, Resource
    from pulumi.output import UNKNOWN
    from pulumi.runtime import known_types, rpc

    render("dev", program=lambda config: None)  # installs the render's versions
    ours, sdks = rpc.contains_unknowns, rpc.contains_unknowns.__wrapped__
    assert ours is not sdks
    shared: dict = {"a": 1}
    looped: list = [1, "x"]
    looped.append(looped)
    values = [
        None,
        1,
        "text",
        UNKNOWN,
        [1, [2, {"k": UNKNOWN}]],
        {"a": [1, 2], "b": {"c": "d"}},
        {"a": shared, "b": shared, "c": [shared]},
        looped,
        [looped, UNKNOWN],
        (UNKNOWN,),  # tuples are not walked
        {UNKNOWN: 1},  # nor are keys
        [[], {}, [[{}]]],
    ]
    for value in values:
        assert ours(value) == sdks(value), value
    assert ours([1, [2, {"k": UNKNOWN}]]) and not ours({"a": shared, "b": shared})

    asset = FileAsset(__file__)
    assert known_types.is_unknown(UNKNOWN) and not known_types.is_unknown("x")
    assert known_types.is_asset(asset) and not known_types.is_archive(asset)
    assert known_types.is_output(Output.from_input(1)) and not known_types.is_output(1)
    assert not known_types.is_resource(asset) and known_types.is_resource.__closure__[0].cell_contents is Resource


def test_the_render_backports_install_once() -> None:
    from pulumi.runtime import known_types, rpc

    from infra.render import _closure_free_unknown_checks

    render("dev", program=lambda config: None)
    installed = (rpc.contains_unknowns, known_types.is_unknown)
    _closure_free_unknown_checks()
    assert (rpc.contains_unknowns, known_types.is_unknown) == installed


def test_type_unwrapping_is_cached_with_the_sdks_answers() -> None:
    from typing import Annotated, Optional

    import pulumi
    from pulumi import _types

    render("dev", program=lambda config: None)  # installs the cache
    cached, original = _types.unwrap_type, _types.unwrap_type.__wrapped__
    assert cached is not original
    sdk_style = (str, Optional[str], pulumi.Input[str], Optional[pulumi.Input[str]], pulumi.Output[int])  # noqa: UP045
    for annotation in sdk_style:
        assert cached(annotation) == original(annotation)
    assert cached(pulumi.Output[int]) is int
    unhashable = Annotated[str, {"metadata": "a dict"}]
    with pytest.raises(TypeError):
        hash(unhashable)
    assert cached(unhashable) == original(unhashable)  # answered uncached


def test_plain_mock_state_is_answered_as_the_sdks_serialiser_answers() -> None:
    from pulumi.runtime import rpc
    from pulumi.runtime.sync_await import _sync_await

    from infra.render import _SIG, _SIG_SECRET, _is_plain, _plain_struct

    states = [
        {
            "arn": "arn:aws:sns:us-east-1:111111111111:topic",
            "retentionInDays": 731.0,
            "count": 2,
            "enabled": True,
            "absent": None,
            "nested": {"gone": None, "items": [1.5, None, "x", {"flag": False}], "empty": {}},
            "list": [],
        },
        {"password": {_SIG: _SIG_SECRET, "value": "plaintext"}},  # a wire secret is a plain dict to the serialiser
        {},
    ]
    for state in states:
        assert _is_plain(state)
        assert _plain_struct(state) == _sync_await(rpc.serialize_properties(state, {}))


def test_state_the_sdk_must_serialise_is_not_plain() -> None:
    import enum

    from pulumi import FileAsset
    from pulumi.output import UNKNOWN

    from infra.render import _is_plain

    class Kind(str, enum.Enum):  # noqa: UP042 - as pulumi_aws generates its enums
        GATEWAY = "Gateway"

    for value in (UNKNOWN, FileAsset(__file__), Kind.GATEWAY, ("a", "tuple"), {1: "int key"}, object()):
        assert not _is_plain({"key": value}), value
        assert not _is_plain({"key": [value]}), value
    assert _is_plain({"key": ["a", 1, 2.5, True, None, {"k": "v"}]})


def test_name_tables_are_cached_with_the_sdks_answers_and_copied() -> None:
    import pulumi_aws as aws
    from pulumi import _types

    from infra.render import _SDK_NAME_TABLES

    render("dev", program=lambda config: None)  # installs the caches
    for name in _SDK_NAME_TABLES:
        cached = getattr(_types, name)
        for cls in (aws.sagemaker.EndpointDeploymentConfigArgs, aws.cloudwatch.MetricAlarm):
            if name.startswith("input_type") and not _types.is_input_type(cls):
                continue
            table = cached(cls)
            assert table == cached.__wrapped__(cls) and table
            table["mutated"] = "by a caller"
            assert "mutated" not in cached(cls)


REGISTER_RESOURCE_DIGEST = "707d879ff5c1ca70"  # pulumi 3.223.0's MockMonitor.RegisterResource


def test_the_mock_monitor_shortcut_follows_the_locked_sdk() -> None:
    """RecordingMonitor._register_with_mocks restates the SDK's MockMonitor.RegisterResource with a faster answer
    for plain state; it was written against this SDK's code. A lock that moves pulumi fails here on purpose:
    compare the new RegisterResource with the shortcut, then update the digest."""
    import hashlib
    import inspect

    from pulumi.runtime.mocks import MockMonitor

    source = inspect.getsource(MockMonitor.RegisterResource)
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == REGISTER_RESOURCE_DIGEST


def test_a_render_does_not_load_the_data_stack() -> None:
    """`clinops render` and `clinops gate STACK` start cold each time: pandas (about 0.4 s to import) is for the
    pipeline steps, not for declaring resources. A pipeline-definition import that pulls it in fails here."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = (
        "import sys; from infra.render import render; render('dev'); "
        "print(sorted(m for m in ('pandas', 'sklearn') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_on_valid_runs_once_the_config_passed_and_never_for_a_bad_one() -> None:
    """`clinops gate STACK` starts the gate's engines in `on_valid`: before the program, and not for a config the
    render refuses."""
    from clinops.config import ConfigError

    calls: list[str] = []
    render("dev", program=lambda config: calls.append("program"), on_valid=lambda: calls.append("valid"))
    assert calls == ["valid", "program"]
    calls.clear()
    with pytest.raises(ConfigError):
        render("dev", overrides={"clinops:environment": "nowhere"}, on_valid=lambda: calls.append("valid"))
    assert calls == []
