"""The HIPAA Security pack rules (cdk-nag 3.0.x) that apply to the CloudFormation types cfnview emits.

The pack reports violations only, so a rule "passed" on a resource when it applies to the resource's type
and did not fire; that needs this table of which rule judges which type. Citations are the pack's own
("Control IDs" in each rule's message), normalised to the standard they implement (see `normalise`).
A violation of a rule missing here is still reported, with citations parsed from its message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from policies import controls as c
from policies.model import Severity

PACK = "HIPAA.Security"

_PUBLIC = "164.308(a)(3)(i), 164.308(a)(4)(ii)(A), 164.308(a)(4)(ii)(C), 164.312(a)(1), 164.312(e)(1)"
_IAM = (
    "164.308(a)(3)(i), 164.308(a)(3)(ii)(A), 164.308(a)(3)(ii)(B), 164.308(a)(4)(i), 164.308(a)(4)(ii)(A), "
    "164.308(a)(4)(ii)(B), 164.308(a)(4)(ii)(C), 164.312(a)(1)"
)
_PORTS = (
    "164.308(a)(3)(i), 164.308(a)(3)(ii)(B), 164.308(a)(4)(i), 164.308(a)(4)(ii)(A), 164.308(a)(4)(ii)(B), "
    "164.308(a)(4)(ii)(C), 164.312(a)(1), 164.312(e)(1)"
)
_AT_REST = "164.312(a)(2)(iv), 164.312(e)(2)(ii)"
_BACKUP = "164.308(a)(7)(i), 164.308(a)(7)(ii)(A), 164.308(a)(7)(ii)(B)"


@dataclass(frozen=True)
class Rule:
    types: tuple[str, ...]  # CloudFormation types the rule judges
    citations: str  # as the pack's message states them
    severity: Severity


RULES: dict[str, Rule] = {
    "CloudTrailCloudWatchLogsEnabled": Rule(("AWS::CloudTrail::Trail",), "164.308(a)(3)(ii)(A), 164.312(b)", "high"),
    "CloudTrailEncryptionEnabled": Rule(("AWS::CloudTrail::Trail",), _AT_REST, "high"),
    "CloudTrailLogFileValidationEnabled": Rule(("AWS::CloudTrail::Trail",), "164.312(c)(1), 164.312(c)(2)", "high"),
    "CloudWatchAlarmAction": Rule(("AWS::CloudWatch::Alarm",), "164.312(b)", "medium"),
    "CloudWatchLogGroupEncrypted": Rule(("AWS::Logs::LogGroup",), _AT_REST, "high"),
    "CloudWatchLogGroupRetentionPeriod": Rule(("AWS::Logs::LogGroup",), "164.312(b)", "medium"),
    "EC2RestrictedCommonPorts": Rule(("AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress"), _PORTS, "critical"),
    "EC2RestrictedSSH": Rule(("AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress"), _PORTS, "critical"),
    "IAMNoInlinePolicy": Rule(("AWS::IAM::Role", "AWS::IAM::Policy"), _IAM, "low"),
    "IAMPolicyNoStatementsWithAdminAccess": Rule(
        ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"), _IAM, "critical"
    ),
    "IAMPolicyNoStatementsWithFullAccess": Rule(
        ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"), _IAM, "high"
    ),
    "IAMUserNoPolicies": Rule(("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"), _IAM, "medium"),
    "LambdaConcurrency": Rule(("AWS::Lambda::Function",), "164.312(b)", "low"),
    "LambdaDLQ": Rule(("AWS::Lambda::Function",), "164.312(b)", "low"),
    "LambdaFunctionPublicAccessProhibited": Rule(("AWS::Lambda::Permission",), _PUBLIC, "critical"),
    "LambdaInsideVPC": Rule(("AWS::Lambda::Function",), _PUBLIC, "high"),
    "S3BucketLevelPublicAccessProhibited": Rule(("AWS::S3::Bucket",), _PUBLIC, "critical"),
    "S3BucketLoggingEnabled": Rule(("AWS::S3::Bucket",), "164.308(a)(3)(ii)(A), 164.312(b)", "high"),
    "S3BucketPublicReadProhibited": Rule(("AWS::S3::Bucket",), _PUBLIC, "critical"),
    "S3BucketPublicWriteProhibited": Rule(("AWS::S3::Bucket",), _PUBLIC, "critical"),
    "S3BucketReplicationEnabled": Rule(("AWS::S3::Bucket",), _BACKUP, "low"),
    "S3BucketSSLRequestsOnly": Rule(
        ("AWS::S3::Bucket", "AWS::S3::BucketPolicy"),
        "164.312(a)(2)(iv), 164.312(c)(2), 164.312(e)(1), 164.312(e)(2)(i), 164.312(e)(2)(ii)",
        "high",
    ),
    "S3BucketVersioningEnabled": Rule(("AWS::S3::Bucket",), _BACKUP + ", 164.312(c)(1), 164.312(c)(2)", "high"),
    "S3DefaultEncryptionKMS": Rule(("AWS::S3::Bucket",), _AT_REST, "high"),
    "SageMakerEndpointConfigurationKMSKeyConfigured": Rule(("AWS::SageMaker::EndpointConfig",), _AT_REST, "high"),
    "SageMakerNotebookInstanceKMSKeyConfigured": Rule(("AWS::SageMaker::NotebookInstance",), _AT_REST, "high"),
    "SageMakerNotebookNoDirectInternetAccess": Rule(("AWS::SageMaker::NotebookInstance",), _PUBLIC, "high"),
    "SecretsManagerRotationEnabled": Rule(("AWS::SecretsManager::Secret",), "164.308(a)(4)(ii)(B)", "medium"),
    "SecretsManagerUsingKMSKey": Rule(("AWS::SecretsManager::Secret",), _AT_REST, "high"),
    "SNSEncryptedKMS": Rule(("AWS::SNS::Topic",), _AT_REST, "high"),
    "VPCDefaultSecurityGroupClosed": Rule(("AWS::EC2::VPC",), "164.312(e)(1)", "medium"),  # a warning in the pack
    "VPCFlowLogsEnabled": Rule(("AWS::EC2::VPC",), "164.308(a)(3)(ii)(A), 164.312(b)", "high"),
    "VPCNoUnrestrictedRouteToIGW": Rule(("AWS::EC2::Route",), "164.312(e)(1)", "high"),
    "VPCSubnetAutoAssignPublicIpDisabled": Rule(("AWS::EC2::Subnet",), _PUBLIC, "high"),
}


def rules_for(cfn_type: str) -> list[str]:
    return [name for name, rule in RULES.items() if cfn_type in rule.types]


def normalise(citation: str) -> str:
    """An implementation specification -> the standard it implements, unless the matrix lists it itself
    (164.312(e)(2)(ii) -> 164.312(e)(1); 164.308(a)(7)(ii)(A) -> 164.308(a)(7)(i); 164.312(a)(2)(iv) stays)."""
    if citation in c.TITLES:
        return citation
    m = re.match(r"164\.(308|312)\(([a-e])\)(?:\((\d+)\))?", citation)
    if not m:
        return citation
    part, para, num = m.groups()
    if part == "308":
        return f"164.308(a)({num})(i)"
    return f"164.312({para})" if para in ("b", "d") else f"164.312({para})(1)"


def controls_of(citations: str) -> tuple[str, ...]:
    """Normalised, de-duplicated, matrix order first."""
    found = {normalise(x) for x in re.findall(r"164\.\d+(?:\([0-9a-zA-Z]+\))+", citations)}
    ordered = [x for x in c.MATRIX_ORDER if x in found]
    return tuple(ordered + sorted(found - set(ordered)))
