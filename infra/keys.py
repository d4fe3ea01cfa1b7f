"""Customer-managed KMS keys, one per purpose, rotated yearly, with key policies that name every user.

The account root may administer a key but not use it: usage is granted here, in the key policy, to the
exact roles and service principals (with conditions) that need it, so no IAM policy can widen it.

Besides the four encryption keys, an HMAC key (`evidence-mac`) seals evidence entries: `kms:GenerateMac` for
the writers only (deployer, guardrail Lambdas), `kms:VerifyMac` for the verifiers (approver, deployer), so a
role that can read (or even write) the bucket cannot forge an entry. KMS cannot rotate HMAC keys (automatic
rotation is for symmetric encryption keys only); the reviewed exception is in policies/exceptions.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.base import Platform, Statement, policy_document
from infra.guardrails import EVIDENCE_WRITER_FUNCTIONS

ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion",
    "kms:Create*",
    "kms:Delete*",
    "kms:Describe*",
    "kms:Disable*",
    "kms:Enable*",
    "kms:Get*",
    "kms:List*",
    "kms:Put*",
    "kms:Revoke*",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:Update*",
]
USE_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
EVIDENCE_MAC = "evidence-mac"
MAC_ALGORITHM = {"StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_256"}}  # clinops.evidence.mac.MAC_ALGORITHM


@dataclass(frozen=True)
class KeyUsers:
    """Role ARNs (strings: known before the roles' policies exist) that use each key."""

    execution: str
    author: str
    approver: str
    deployer: str
    reader_accounts: list[str] = field(default_factory=list)


class Keys(pulumi.ComponentResource):
    """Four encryption keys (PHI data, model artifacts, logs, audit/evidence) and the evidence HMAC key."""

    def __init__(
        self,
        name: str,
        platform: Platform,
        users: KeyUsers,
        after: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`after`: the roles the key policies name — KMS rejects a policy whose principal does not exist."""
        super().__init__("clinops:infra:Keys", name, None, opts)
        self._platform = platform
        acct, region = platform.account, platform.region
        s3_via = {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}
        aws_resource = {"Bool": {"kms:GrantIsForAWSResource": "true"}}
        # Guardrail Lambdas are created after the keys: named by ARN in a condition (KMS needs principals to exist).
        functions = {
            "StringEquals": {"kms:CallerAccount": acct},
            "ArnEquals": {
                "aws:PrincipalArn": [platform.role_arn(f"{platform.prefix}-{f}") for f in EVIDENCE_WRITER_FUNCTIONS]
            },
        }
        documents: dict[str, list[Statement]] = {
            "phi": [
                _use("DataScienceAndJobs", [users.execution, users.author]),
                _grant("SageMakerVolumesAndCapture", [users.execution, users.deployer], aws_resource),
                # shadow reports compare both variants' captured responses (read only, through S3 only)
                _stmt("ReleaseReadsCapture", {"AWS": users.deployer}, ["kms:Decrypt", "kms:DescribeKey"], s3_via),
            ],
            "artifacts": [
                _use("BuildAndReview", [users.execution, users.author, users.approver, users.deployer]),
                _grant("SageMakerModels", [users.execution, users.deployer], aws_resource),
                *(
                    [
                        _stmt(
                            "PromotionAccountsReadArtifacts",
                            {"AWS": [f"arn:aws:iam::{a}:root" for a in users.reader_accounts]},
                            ["kms:Decrypt", "kms:DescribeKey"],
                            # promoted models: artifacts from S3, the inference image from ECR
                            {
                                "StringEquals": {
                                    "kms:ViaService": [f"s3.{region}.amazonaws.com", f"ecr.{region}.amazonaws.com"]
                                }
                            },
                        )
                    ]
                    if users.reader_accounts
                    else []
                ),
            ],
            "logs": [
                _stmt(
                    "CloudWatchLogs",
                    {"Service": f"logs.{region}.amazonaws.com"},
                    ["kms:Decrypt*", "kms:Describe*", "kms:Encrypt*", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
                    {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{acct}:log-group:*"}},
                ),
                # Platform Lambdas (canary, circuit breaker) are created after the keys, so the statement names
                # them by ARN pattern in a condition rather than as principals (KMS requires principals to exist).
                _stmt(
                    "PlatformLambdaEnvironmentAndQueues",
                    {"AWS": "*"},
                    ["kms:Decrypt", "kms:GenerateDataKey"],
                    {
                        "StringEquals": {
                            "kms:ViaService": [f"lambda.{region}.amazonaws.com", f"sqs.{region}.amazonaws.com"],
                            "kms:CallerAccount": acct,
                        },
                        "ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{acct}:role/{platform.prefix}-*"},
                    },
                ),
                _stmt(
                    "S3ServerAccessLogs",
                    {"Service": "logging.s3.amazonaws.com"},
                    ["kms:GenerateDataKey*"],
                    {"StringEquals": {"aws:SourceAccount": acct}},
                ),
                _stmt(
                    "SchedulerSchedules",
                    {"Service": "scheduler.amazonaws.com"},
                    ["kms:Decrypt"],
                    {"StringEquals": {"aws:SourceAccount": acct}},
                ),
                _stmt(
                    "AlarmNotifications",
                    {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]},
                    ["kms:Decrypt", "kms:GenerateDataKey*"],
                    {"StringEquals": {"aws:SourceAccount": acct}},
                ),
            ],
            "audit": [
                _stmt(
                    "CloudTrailEncrypt",
                    {"Service": "cloudtrail.amazonaws.com"},
                    ["kms:GenerateDataKey*"],
                    {
                        "StringEquals": {
                            "aws:SourceArn": f"arn:aws:cloudtrail:{region}:{acct}:trail/{platform.prefix}-trail"
                        },
                        "StringLike": {
                            "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:aws:cloudtrail:*:{acct}:trail/*"
                        },
                    },
                ),
                _stmt(
                    "CloudTrailDescribe",
                    {"Service": "cloudtrail.amazonaws.com"},
                    ["kms:DescribeKey"],
                    {"StringEquals": {"aws:SourceAccount": acct}},
                ),
                _stmt(
                    "EvidenceWriters",
                    {"AWS": [users.deployer]},
                    ["kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*"],
                    s3_via,
                ),
                _stmt(
                    "EvidenceReaders",
                    {"AWS": sorted([users.approver, users.deployer])},
                    ["kms:Decrypt", "kms:DescribeKey"],
                    s3_via,
                ),
                _stmt(
                    "EvidenceWritingFunctions",
                    {"AWS": "*"},
                    ["kms:Decrypt", "kms:GenerateDataKey"],
                    _all_of(functions, s3_via),
                ),
            ],
        }
        descriptions = {
            "phi": "PHI at rest: training data, inference data capture, Studio volumes",
            "artifacts": "Model artifacts, model cards, evaluation reports",
            "logs": "CloudWatch Logs and alarm notifications",
            "audit": "CloudTrail and the Object Lock evidence store",
        }
        self.keys: dict[str, aws.kms.Key] = {}
        for purpose, statements in documents.items():
            key = aws.kms.Key(
                f"{purpose}-key",
                description=f"clinops {platform.config.stack}: {descriptions[purpose]}",
                enable_key_rotation=True,
                rotation_period_in_days=365,
                deletion_window_in_days=30 if platform.config.retain_on_delete else 7,
                policy=policy_document(
                    _stmt("KeyAdministration", {"AWS": platform.account_root}, ADMIN_ACTIONS), *statements
                ),
                tags=platform.tags(**{"clinops:purpose": purpose}),
                opts=platform.child(self, stateful=True, depends_on=after),
            )
            aws.kms.Alias(
                f"{purpose}-key-alias",
                name=f"alias/{platform.prefix}-{purpose}",
                target_key_id=key.key_id,
                opts=platform.child(self),
            )
            self.keys[purpose] = key
        self.keys[EVIDENCE_MAC] = self._evidence_mac_key(platform, users, functions, after)
        self.register_outputs({p: k.arn for p, k in self.keys.items()})

    def _evidence_mac_key(
        self, platform: Platform, users: KeyUsers, functions: dict, after: list[pulumi.Resource]
    ) -> aws.kms.Key:
        seal = ["kms:GenerateMac", "kms:VerifyMac"]  # both carry kms:MacAlgorithm (DescribeKey does not)
        statements = [
            _stmt("KeyAdministration", {"AWS": platform.account_root}, ADMIN_ACTIONS),
            _stmt("EvidenceSealers", {"AWS": [users.deployer]}, seal, MAC_ALGORITHM),
            _stmt("EvidenceSealingFunctions", {"AWS": "*"}, seal, _all_of(functions, MAC_ALGORITHM)),
            _stmt("EvidenceVerifiers", {"AWS": [users.approver]}, ["kms:VerifyMac"], MAC_ALGORITHM),
        ]
        key = aws.kms.Key(
            f"{EVIDENCE_MAC}-key",
            description=f"clinops {platform.config.stack}: seals evidence entries (HMAC; writers generate, "
            "verifiers verify)",
            customer_master_key_spec="HMAC_256",
            key_usage="GENERATE_VERIFY_MAC",
            enable_key_rotation=False,  # KMS rotates symmetric encryption keys only; see policies/exceptions.yaml
            deletion_window_in_days=30 if platform.config.retain_on_delete else 7,
            policy=policy_document(*statements),
            tags=platform.tags(**{"clinops:purpose": EVIDENCE_MAC}),
            opts=platform.child(self, stateful=True, depends_on=after),
        )
        aws.kms.Alias(
            f"{EVIDENCE_MAC}-key-alias",
            name=f"alias/{platform.prefix}-{EVIDENCE_MAC}",
            target_key_id=key.key_id,
            opts=platform.child(self),
        )
        return key

    def arn(self, purpose: str) -> pulumi.Output[str]:
        return self.keys[purpose].arn


def _stmt(sid: str, principal: dict[str, object], actions: list[str], condition: dict | None = None) -> Statement:
    statement: Statement = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": sorted(actions),
        "Resource": "*",
    }
    if condition:
        statement["Condition"] = condition
    return statement


def _use(sid: str, roles: list[str]) -> Statement:
    return _stmt(sid, {"AWS": sorted(set(roles))}, USE_ACTIONS)


def _grant(sid: str, roles: list[str], condition: dict) -> Statement:
    return _stmt(sid, {"AWS": sorted(set(roles))}, ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], condition)


def _all_of(*conditions: dict) -> dict:
    """One IAM Condition block requiring every given condition (keys of one operator merged)."""
    merged: dict[str, dict] = {}
    for condition in conditions:
        for operator, keys in condition.items():
            merged[operator] = {**merged.get(operator, {}), **keys}
    return merged
