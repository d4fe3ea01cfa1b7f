"""Customer-managed KMS keys, one per purpose, rotated yearly, with key policies that name every user.

The account root may administer a key but not use it: usage is granted here, in the key policy, to the
exact roles and service principals (with conditions) that need it, so no IAM policy can widen it.

Besides the four encryption keys, an HMAC key (`evidence-mac`) seals evidence entries: `kms:GenerateMac` for
the writers only (deployer, guardrail Lambdas), `kms:VerifyMac` for the verifiers (approver, deployer), so a
role that can read (or even write) the bucket cannot forge an entry. KMS cannot rotate HMAC keys (automatic
rotation is for symmetric encryption keys only); the reviewed exception is in policies/exceptions.yaml.

A second HMAC key (`cds-encounter-mac`, only in stacks that serve a CDS Hooks model) hashes encounter ids for
the CDS service's issuance records and feedback: `kms:GenerateMac` for the models' CDS functions only. It is not
the evidence key: a role that may seal evidence could otherwise compute encounter hashes (and the reverse), and
this key's policy names nobody but the CDS roles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from clinops.names import cds_function_name
from infra.base import Platform, Statement, policy_document, policy_json
from infra.guardrails import EVIDENCE_WRITER_FUNCTIONS, function_name

# What the account root (and so IAM policies in the account) may do: administer, never use. Listed one by one:
# `kms:Create*` would include CreateGrant (a grant to oneself is use) and `kms:Put*` PutKeyPolicy (rewrite the
# policy to allow oneself), so neither wildcard may appear. Changing a key policy is the deploy identities' alone.
ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
]
# Only these may change a key policy. KMS's lockout safety check also requires the identity that creates or
# updates a key to keep this right, so it is the identity `pulumi up` runs as.
POLICY_ACTIONS = ["kms:GetKeyPolicy", "kms:PutKeyPolicy"]
USE_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
# SageMaker (endpoint volumes, data capture, Studio), Lambda, ECR create a grant for themselves on the caller's
# behalf; GrantIsForAWSResource is only in CreateGrant's request context, so nothing else sits under it.
GRANT_ACTIONS = ["kms:CreateGrant"]
_SCHEDULE_CONTEXT = "kms:EncryptionContext:aws:scheduler:schedule-arn"
EVIDENCE_MAC = "evidence-mac"
CDS_ENCOUNTER_MAC = "cds-encounter-mac"
MAC_ALGORITHM = {"StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_256"}}  # clinops.evidence.mac.MAC_ALGORITHM


@dataclass(frozen=True)
class ServiceRoles:
    """Roles created after the keys (Lambda functions, schedules): KMS refuses a principal that does not exist
    yet, so key policies name them by exact ARN in an `aws:PrincipalArn` condition (never a name pattern)."""

    functions: list[str] = field(default_factory=list)  # every platform Lambda: environment, DLQ, alert topic
    endpoint_updaters: list[str] = field(default_factory=list)  # circuit breaker: UpdateEndpoint needs grants
    schedule_roles: list[str] = field(default_factory=list)  # EventBridge Scheduler target roles


@dataclass(frozen=True)
class KeyUsers:
    """Role ARNs (strings: known before the roles' policies exist) that use each key."""

    execution: str
    author: str
    approver: str
    deployer: str
    reader_accounts: list[str] = field(default_factory=list)
    # the identities `pulumi up` runs as (clinops:principals.deployers): they create what uses the keys
    deploy_identities: list[str] = field(default_factory=list)
    services: ServiceRoles = field(default_factory=ServiceRoles)


class Keys(pulumi.ComponentResource):
    """Four encryption keys (PHI data, model artifacts, logs, audit/evidence), the evidence HMAC key and, when a
    model serves CDS Hooks, the encounter HMAC key; every policy comes from `key_policies`."""

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
        policies = key_policies(platform, users)
        descriptions = {
            "phi": "PHI at rest: training data, inference data capture, Studio volumes",
            "artifacts": "Model artifacts, model cards, evaluation reports",
            "logs": "CloudWatch Logs and alarm notifications",
            "audit": "CloudTrail and the Object Lock evidence store",
        }
        self.keys: dict[str, aws.kms.Key] = {}
        for purpose, description in descriptions.items():
            key = aws.kms.Key(
                f"{purpose}-key",
                description=f"clinops {platform.config.stack}: {description}",
                enable_key_rotation=True,
                rotation_period_in_days=365,
                deletion_window_in_days=30 if platform.config.retain_on_delete else 7,
                policy=policy_document(*policies[purpose]),
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
        hmac_descriptions = {
            EVIDENCE_MAC: "seals evidence entries (HMAC; writers generate, verifiers verify)",
            # Keyed, deterministic encounter hashes (the same encounter always gives the same hash, so feedback can
            # be correlated with its card and outcomes), computed in KMS: the key never leaves it.
            CDS_ENCOUNTER_MAC: "hashes encounter ids for CDS Hooks issuance and feedback (HMAC; "
            "the CDS functions only)",
        }
        for purpose, description in hmac_descriptions.items():
            if purpose in policies:
                self.keys[purpose] = self._hmac_key(
                    platform, purpose, f"clinops {platform.config.stack}: {description}", policies[purpose], after
                )
        self.register_outputs({p: k.arn for p, k in self.keys.items()})

    def _hmac_key(
        self,
        platform: Platform,
        purpose: str,
        description: str,
        statements: list[Statement],
        after: list[pulumi.Resource],
    ) -> aws.kms.Key:
        """An HMAC key and its alias. KMS rotates symmetric encryption keys only, and rotating an HMAC key by hand
        would break every earlier seal or hash, so rotation is off (reviewed in policies/exceptions.yaml)."""
        key = aws.kms.Key(
            f"{purpose}-key",
            description=description,
            customer_master_key_spec="HMAC_256",
            key_usage="GENERATE_VERIFY_MAC",
            enable_key_rotation=False,
            deletion_window_in_days=30 if platform.config.retain_on_delete else 7,
            policy=policy_document(*statements),
            tags=platform.tags(**{"clinops:purpose": purpose}),
            opts=platform.child(self, stateful=True, depends_on=after),
        )
        aws.kms.Alias(
            f"{purpose}-key-alias",
            name=f"alias/{platform.prefix}-{purpose}",
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
    return _stmt(sid, {"AWS": sorted(set(roles))}, GRANT_ACTIONS, condition)


def _named_roles(
    sid: str, role_arns: list[str], actions: list[str], account: str, condition: dict[str, dict]
) -> list[Statement]:
    """Roles that do not exist when the key is created: any principal, but only these exact role ARNs of this
    account (`aws:PrincipalArn` is the role ARN for its sessions), and only under `condition`."""
    if not role_arns:
        return []
    merged: dict[str, dict] = {op: dict(values) for op, values in condition.items()}
    merged.setdefault("StringEquals", {}).update(
        {"aws:PrincipalArn": sorted(set(role_arns)), "kms:CallerAccount": account}
    )
    return [_stmt(sid, {"AWS": "*"}, actions, merged)]


def _all_of(*conditions: dict) -> dict:
    """One IAM Condition block requiring every given condition (keys of one operator merged)."""
    merged: dict[str, dict] = {}
    for condition in conditions:
        for operator, keys in condition.items():
            merged[operator] = {**merged.get(operator, {}), **keys}
    return merged


# KMS's size quota for a key policy (KMS Developer Guide, quotas): past it `pulumi up` fails on the key.
KEY_POLICY_MAX_BYTES = 32_768


def key_policies(platform: Platform, users: KeyUsers) -> dict[str, list[Statement]]:
    """Every key's whole policy (administration first), by purpose: plain data from the config alone, so the
    render can measure it against KMS's quota before it declares a resource (`key_policy_problems`)."""
    documents, functions = key_statements(platform, users)
    deployers = sorted(set(users.deploy_identities))
    administration = [_stmt("KeyAdministration", {"AWS": platform.account_root}, ADMIN_ACTIONS)]
    # With no deploy identity configured, the root keeps the policy (else KMS refuses the key: lockout check).
    administration.append(_stmt("KeyPolicyChanges", {"AWS": deployers or platform.account_root}, POLICY_ACTIONS))
    policies = {purpose: [*administration, *statements] for purpose, statements in documents.items()}
    seal = ["kms:GenerateMac", "kms:VerifyMac"]  # both carry kms:MacAlgorithm (DescribeKey does not)
    policies[EVIDENCE_MAC] = [
        *administration,
        _stmt("EvidenceSealers", {"AWS": [users.deployer]}, seal, MAC_ALGORITHM),
        _stmt("EvidenceSealingFunctions", {"AWS": "*"}, seal, _all_of(functions, MAC_ALGORITHM)),
        _stmt("EvidenceVerifiers", {"AWS": [users.approver]}, ["kms:VerifyMac"], MAC_ALGORITHM),
    ]
    cds_roles = cds_role_arns(platform)
    if cds_roles:  # only the CDS functions compute encounter hashes; nobody verifies them, so no VerifyMac
        policies[CDS_ENCOUNTER_MAC] = [
            *administration,
            *_named_roles(
                "CdsFunctionsHashEncounters", cds_roles, ["kms:GenerateMac"], platform.account, MAC_ALGORITHM
            ),
        ]
    return policies


def key_policy_problems(platform: Platform, users: KeyUsers) -> list[str]:
    """Key policies the stack's models would push past KMS's quota, each with its size and the fix."""
    problems = []
    for purpose, statements in key_policies(platform, users).items():
        size = len(policy_json(*statements).encode())
        if size > KEY_POLICY_MAX_BYTES:
            problems.append(
                f"models: the {purpose} key's policy would be {size:,} bytes, over KMS's {KEY_POLICY_MAX_BYTES:,} "
                f"(it names each model's function and schedule roles, about 240 bytes a model); fix: split the "
                f"{len(platform.config.models)} models across stacks (each stack is its own account)"
            )
    return problems


def cds_role_arns(platform: Platform) -> list[str]:
    """The roles of the models' CDS Hooks functions (infra.cds_api creates one per served model with `cds`)."""
    cfg = platform.config
    if cfg.cds is None:
        return []
    return [
        platform.role_arn(cds_function_name(cfg.stack, m.name))
        for m in cfg.models
        if m.cds is not None and m.package_arn
    ]


def key_statements(platform: Platform, users: KeyUsers) -> tuple[dict[str, list[Statement]], dict]:
    """Each encryption key's use statements (administration comes separately), and the condition naming the
    evidence-writing functions, which the HMAC key's policy reuses."""
    acct, region = platform.account, platform.region
    via = lambda *services: {  # noqa: E731
        "StringEquals": {"kms:ViaService": sorted(f"{s}.{region}.amazonaws.com" for s in services)}
    }
    s3_via = via("s3")
    aws_resource = {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    deployers = sorted(set(users.deploy_identities))
    svc = users.services
    trail_arn = f"arn:aws:cloudtrail:{region}:{acct}:trail/{platform.prefix}-trail"
    # Guardrail Lambdas are created after the keys: named by ARN in a condition (KMS needs principals to exist).
    functions = {
        "StringEquals": {"kms:CallerAccount": acct},
        "ArnEquals": {
            "aws:PrincipalArn": [
                *(platform.role_arn(function_name(platform, f)) for f in EVIDENCE_WRITER_FUNCTIONS),
                *cds_role_arns(platform),
            ]
        },
    }
    documents: dict[str, list[Statement]] = {
        "phi": [
            _use("DataScienceAndJobs", [users.execution, users.author]),
            _grant("SageMakerVolumesAndCapture", [users.execution, users.deployer, *deployers], aws_resource),
            # shadow reports compare both variants' captured responses (read only, through S3 only)
            _stmt("ReleaseReadsCapture", {"AWS": users.deployer}, ["kms:Decrypt", "kms:DescribeKey"], s3_via),
            *_named_roles("CircuitBreakerGrantsEndpoint", svc.endpoint_updaters, GRANT_ACTIONS, acct, aws_resource),
        ],
        "artifacts": [
            _use("BuildAndReview", [users.execution, users.author, users.approver, users.deployer]),
            _grant("SageMakerModels", [users.execution, users.deployer, *deployers], aws_resource),
            # the deploy uploads the data contracts (SSE-KMS) and creates the KMS-encrypted ECR repositories
            *(
                [_stmt("DeployUploadsArtifacts", {"AWS": deployers}, USE_ACTIONS, via("s3", "ecr"))]
                if deployers
                else []
            ),
            *_named_roles("CircuitBreakerGrantsEndpoint", svc.endpoint_updaters, GRANT_ACTIONS, acct, aws_resource),
            *(
                [
                    _stmt(
                        "PromotionAccountsReadArtifacts",
                        {"AWS": [f"arn:aws:iam::{a}:root" for a in users.reader_accounts]},
                        ["kms:Decrypt", "kms:DescribeKey"],
                        # promoted models: artifacts from S3, the inference image from ECR
                        via("s3", "ecr"),
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
            *(
                [
                    # Lambda encrypts a function's environment as its creator and keeps a grant for it
                    _stmt("DeployEncryptsFunctions", {"AWS": deployers}, USE_ACTIONS, via("lambda")),
                    _grant("DeployGrantsFunctions", deployers, aws_resource),
                ]
                if deployers
                else []
            ),
            # Lambdas: environment (Lambda), dead letters (SQS), the alert topic (SNS). Named, not a pattern.
            *_named_roles(
                "PlatformFunctions",
                svc.functions,
                ["kms:Decrypt", "kms:GenerateDataKey"],
                acct,
                via("lambda", "sns", "sqs"),
            ),
            # EventBridge Scheduler encrypts a schedule's target as its creator and decrypts it as the
            # schedule's execution role, with the schedule's ARN as encryption context.
            *(
                [
                    _stmt(
                        "DeployEncryptsSchedules",
                        {"AWS": deployers},
                        ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                        {"StringLike": {_SCHEDULE_CONTEXT: platform.schedule_arn(f"{platform.prefix}-*")}},
                    )
                ]
                if deployers and svc.schedule_roles
                else []
            ),
            # ... and decrypts it as the schedule's target role: one statement naming every target role, with any
            # of this stack's schedules as context (one statement per schedule outgrew KMS's 32 KB key policy
            # at about 35 models).
            *_named_roles(
                "ScheduleTargets",
                svc.schedule_roles,
                ["kms:Decrypt"],
                acct,
                {"StringLike": {_SCHEDULE_CONTEXT: platform.schedule_arn(f"{platform.prefix}-*")}},
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
                    "StringEquals": {"aws:SourceArn": trail_arn},
                    "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn": f"arn:aws:cloudtrail:*:{acct}:trail/*"},
                },
            ),
            # The evidence bucket uses an S3 Bucket Key: CloudTrail then needs Decrypt to create/update the
            # trail and deliver (CloudTrail user guide, "Granting decrypt permissions for trails").
            _stmt(
                "CloudTrailDecryptWithBucketKey",
                {"Service": "cloudtrail.amazonaws.com"},
                ["kms:Decrypt"],
                {"StringEquals": {"aws:SourceArn": trail_arn}},
            ),
            _stmt(
                "CloudTrailDescribe",
                {"Service": "cloudtrail.amazonaws.com"},
                ["kms:DescribeKey"],
                {"StringEquals": {"aws:SourceArn": trail_arn}},
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
            # guardrail Lambdas read the log's head entry and append the next one
            _stmt(
                "EvidenceWritingFunctions",
                {"AWS": "*"},
                ["kms:Decrypt", "kms:GenerateDataKey"],
                _all_of(functions, s3_via),
            ),
        ],
    }
    return documents, functions
