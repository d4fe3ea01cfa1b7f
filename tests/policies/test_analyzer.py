"""The real CrossGuard analyzer (policies/__main__.py, as `pulumi preview --policy-pack` starts it), driven
over gRPC the way the Pulumi CLI drives it, agrees with the offline adapter on the same plan."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.empty_pb2 import Empty
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policies.crossguard import CONFIG_DIR, evaluate
from policies.plan import Plan
from policies.rules import ALL_RULES
from tests.conftest import REPO
from tests.policies.baseline import compliant

PACK_DIR = REPO / "policies"


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    server = subprocess.Popen(
        [sys.executable, str(PACK_DIR / "__main__.py")],
        cwd=PACK_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]  # the pack prints its port, then serves
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _configure(stub: analyzer_pb2_grpc.AnalyzerStub, stack: str) -> None:
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for name, properties in json.loads((CONFIG_DIR / f"{stack}.json").read_text()).items():
        request.policyConfig[name].properties.update(properties)
        request.policyConfig[name].enforcementLevel = analyzer_pb2.MANDATORY
    stub.Configure(request)


def _analyze(stub: analyzer_pb2_grpc.AnalyzerStub, plan: Plan) -> set[tuple[str, str]]:
    resources = []
    for r in plan.resources:
        resource = analyzer_pb2.AnalyzerResource(
            type=r.type, urn=r.urn, name=r.name, parent=r.parent, dependencies=list(r.dependencies)
        )
        resource.properties.update(r.inputs)
        for prop, urns in r.property_dependencies.items():
            resource.propertyDependencies[prop].urns.extend(urns)
        resources.append(resource)
    response = stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources))
    return {(d.policyName, d.urn) for d in response.diagnostics}


def test_pack_offers_every_rule(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(Empty())
    assert info.name == "clinops-hipaa"
    assert [p.name for p in info.policies] == [r.id for r in ALL_RULES]


def test_crossguard_and_offline_gate_agree(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    b = compliant()
    b.set("studio", "appNetworkAccessType", "PublicInternetOnly")
    b.set("flow-logs", "retentionInDays", 30)
    b.set("readmission-errors", "period", 300)
    b.remove("evidence-lock")
    plan = b.plan()
    _configure(analyzer, "prod")
    offline = {(r.rule_id, r.urn) for r in evaluate(plan).results if r.status == "failed"}
    crossguard = {(rule, urn or plan.stack_urn()) for rule, urn in _analyze(analyzer, plan)}
    assert crossguard == offline
    assert {rule for rule, _ in offline} == {
        "CLIN-NET-005",
        "CLIN-AUD-003",
        "CLIN-DEP-004",
        "CLIN-DEP-005",
        "CLIN-AUD-004",
    }
