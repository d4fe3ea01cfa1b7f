"""cdk-nag's HIPAA Security pack over the CloudFormation view: key rules pass on the secure plan, fire on
the broken one, and land on the right URNs. One jsii validation for all plans (module fixture): it is slow."""

from __future__ import annotations

import pytest

from policies import controls
from policies.engines import cdknag_engine
from policies.engines.cdknag_rules import PACK, RULES, controls_of
from policies.engines.cfnview import build_cfn_view
from policies.model import EngineReport
from tests.policies import enginefixtures as fx
from tests.policies.planbuilder import PlanBuilder

# (rule, resource name): what the secure plan passes and the broken plan fails.
KEY_RULES = [
    ("S3DefaultEncryptionKMS", fx.BROKEN_BUCKET),
    ("S3BucketPublicReadProhibited", fx.BROKEN_BUCKET),
    ("S3BucketPublicWriteProhibited", fx.BROKEN_BUCKET),
    ("S3BucketLoggingEnabled", fx.BROKEN_BUCKET),
    ("S3BucketVersioningEnabled", fx.BROKEN_BUCKET),
    ("VPCFlowLogsEnabled", fx.BROKEN_VPC),
    ("VPCDefaultSecurityGroupClosed", fx.BROKEN_VPC),
    ("EC2RestrictedSSH", fx.BROKEN_SG),
    ("CloudTrailLogFileValidationEnabled", fx.BROKEN_TRAIL),
    ("CloudTrailEncryptionEnabled", fx.BROKEN_TRAIL),
    ("CloudWatchLogGroupEncrypted", "flow-logs"),
    ("SNSEncryptedKMS", "alerts"),
    ("SageMakerEndpointConfigurationKMSKeyConfigured", "readmission-config"),
    ("VPCSubnetAutoAssignPublicIpDisabled", "private-a"),
    ("IAMPolicyNoStatementsWithFullAccess", "read-only"),
]


@pytest.fixture(scope="module")
def builders() -> dict[str, PlanBuilder]:
    return {"secure": fx.secure(), "broken": fx.broken(), "unknown": fx.unknown_ids(fx.secure())}


@pytest.fixture(scope="module")
def reports(builders: dict[str, PlanBuilder]) -> dict[str, EngineReport]:
    names = list(builders)
    return dict(zip(names, cdknag_engine.scan_plans([builders[n].plan() for n in names]), strict=True))


def status(report: EngineReport, rule: str, urn: str) -> set[str]:
    return {r.status for r in report.results if r.rule_id == f"{PACK}-{rule}" and r.urn == urn}


@pytest.mark.parametrize(("rule", "name"), KEY_RULES)
def test_secure_plan_passes_key_rules(
    reports: dict[str, EngineReport], builders: dict[str, PlanBuilder], rule: str, name: str
) -> None:
    assert status(reports["secure"], rule, builders["secure"].urn(name)) == {"passed"}


@pytest.mark.parametrize(("rule", "name"), KEY_RULES)
def test_broken_plan_fails_key_rules_on_the_culprit(
    reports: dict[str, EngineReport], builders: dict[str, PlanBuilder], rule: str, name: str
) -> None:
    assert status(reports["broken"], rule, builders["broken"].urn(name)) == {"failed"}


def test_tls_only_bucket_policy_is_matched_to_its_bucket(
    reports: dict[str, EngineReport], builders: dict[str, PlanBuilder]
) -> None:
    b = builders["secure"]
    assert status(reports["secure"], "S3BucketSSLRequestsOnly", b.urn("phi-data")) == {"passed"}
    assert status(reports["secure"], "S3BucketSSLRequestsOnly", b.urn("phi-data-policy")) == {"passed"}


def test_compliant_neighbours_in_the_broken_plan_are_not_blamed(
    reports: dict[str, EngineReport], builders: dict[str, PlanBuilder]
) -> None:
    b, report = builders["broken"], reports["broken"]
    for rule in ("S3DefaultEncryptionKMS", "S3BucketPublicReadProhibited", "S3BucketVersioningEnabled"):
        assert status(report, rule, b.urn("access-logs")) == {"passed"}, rule
    # two VPCs in one plan, only one with its default security group emptied: judged one by one
    assert status(report, "VPCDefaultSecurityGroupClosed", b.urn(fx.CLOSED_VPC)) == {"passed"}
    assert status(report, "VPCFlowLogsEnabled", b.urn(fx.CLOSED_VPC)) == {"passed"}


def test_bucket_parts_fold_into_the_bucket(reports: dict[str, EngineReport], builders: dict[str, PlanBuilder]) -> None:
    urns = {r.urn for r in reports["secure"].results}
    assert builders["secure"].urn("phi-data-encryption") not in urns  # judged as part of the bucket
    coverage = reports["secure"].coverage
    assert coverage[fx.S3.format("ServerSideEncryptionConfiguration", "ServerSideEncryptionConfiguration")] == "seen"
    assert coverage[fx.DEFAULT_SG] == "seen"  # through the VPC's VPCDefaultSecurityGroupClosed


def test_what_the_pack_cannot_see_is_reported_unseen(reports: dict[str, EngineReport]) -> None:
    report = reports["broken"]
    assert report.coverage[fx.KEY] == "unseen"  # no KMS rules: the unrotated key goes unnoticed by cdk-nag
    assert report.coverage[fx.ENDPOINT] == "unseen"
    assert any(n.startswith(fx.KEY) and "no KMS rules" in n for n in report.notes)


def test_links_hold_when_ids_are_unknown_as_in_a_real_preview(
    reports: dict[str, EngineReport], builders: dict[str, PlanBuilder]
) -> None:
    b, report = builders["unknown"], reports["unknown"]
    for rule, name in (
        ("VPCFlowLogsEnabled", "vpc"),
        ("VPCDefaultSecurityGroupClosed", "vpc"),
        ("S3BucketLoggingEnabled", "phi-data"),
        ("S3BucketLoggingEnabled", "access-logs"),
        ("CloudTrailEncryptionEnabled", "trail"),
    ):
        assert status(report, rule, b.urn(name)) == {"passed"}, rule


def test_rule_table_matches_the_installed_pack(reports: dict[str, EngineReport]) -> None:
    """Every rule that fired is in the table, on a type the table lists, citing what the table cites."""
    failed = [r for r in reports["broken"].results if r.status == "failed"]
    assert failed
    view = build_cfn_view(fx.broken().plan())
    cfn_type_of = {view.urn_by_logical_id[lid]: res["Type"] for lid, res in view.template["Resources"].items()}
    for r in failed:
        name = r.rule_id.removeprefix(f"{PACK}-")
        assert name in RULES, name
        assert cfn_type_of[r.urn] in RULES[name].types, name
        assert r.controls == controls_of(RULES[name].citations), name


def test_controls_are_normalised_to_the_standards() -> None:
    assert controls_of("164.312(a)(2)(iv), 164.312(e)(2)(ii)") == (controls.ENCRYPTION, controls.TRANSMISSION)
    assert controls_of("164.308(a)(7)(ii)(A), 164.312(c)(2)") == (controls.INTEGRITY, controls.CONTINGENCY)
    assert controls_of("164.308(a)(4)(ii)(B)") == ("164.308(a)(4)(i)",)


def test_real_stack_findings_land_on_its_urns_and_its_controls_hold() -> None:
    """The rendered prod stack: every finding on one of its URNs; what the platform promises passes."""
    promised = [
        ("VPCFlowLogsEnabled", fx.VPC),
        ("VPCDefaultSecurityGroupClosed", fx.VPC),
        ("S3BucketSSLRequestsOnly", fx.BUCKET),
        ("S3BucketVersioningEnabled", fx.BUCKET),
        ("S3BucketPublicReadProhibited", fx.BUCKET),
        ("S3BucketLoggingEnabled", fx.BUCKET),
        ("CloudTrailLogFileValidationEnabled", fx.TRAIL),
        ("CloudWatchLogGroupEncrypted", fx.LOG_GROUP),
    ]
    fx.assert_real_stack_promises(cdknag_engine.scan, promised, lambda rule: f"{PACK}-{rule}")


def test_policy_documents_are_judged_whatever_their_key_order(
    reports: dict[str, EngineReport], builders: dict[str, PlanBuilder]
) -> None:
    urn = builders["broken"].urn("admin")
    assert status(reports["broken"], "IAMPolicyNoStatementsWithAdminAccess", urn) == {"failed"}
    assert status(reports["broken"], "IAMPolicyNoStatementsWithFullAccess", urn) == {"failed"}
