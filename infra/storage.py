"""Locked-down S3: one `SecureBucket` recipe, five buckets with their own keys and lifecycles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from clinops.evidence.s3 import EVIDENCE_PREFIX
from infra.base import Platform, Statement, policy_document


@dataclass(frozen=True)
class BucketSpec:
    purpose: str
    key: aws.kms.Key | None  # None: SSE-S3 (only for the server-access-log target, which S3 cannot deliver SSE-KMS to)
    expire_current_days: int | None = None  # PHI-minimisation: captured requests do not live forever
    noncurrent_days: int = 90
    archive_after_days: int | None = None
    object_lock_days: int | None = None
    readers: list[str] = field(default_factory=list)  # other accounts allowed to read (promotion)
    service_writers: list[Statement] = field(default_factory=list)
    append_only_prefix: str | None = None  # objects under it can be created, never replaced or deleted


class SecureBucket(pulumi.ComponentResource):
    """A bucket with SSE-KMS (own key, bucket keys), versioning, public access block, owner-enforced
    ownership, TLS-only and right-key-only policy, access logging, lifecycle and optional Object Lock."""

    def __init__(
        self,
        name: str,
        platform: Platform,
        spec: BucketSpec,
        log_bucket: aws.s3.Bucket | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("clinops:infra:SecureBucket", name, None, opts)
        child = platform.child(self)
        self.bucket = aws.s3.Bucket(
            name,
            bucket=platform.bucket_name(spec.purpose),
            object_lock_enabled=spec.object_lock_days is not None,
            force_destroy=False,
            tags=platform.tags(**{"clinops:purpose": spec.purpose}),
            opts=platform.child(self, stateful=True),
        )
        bucket_id = self.bucket.id
        if spec.key is None:
            rule: dict[str, Any] = {"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}
        else:
            sse = {"sse_algorithm": "aws:kms", "kms_master_key_id": spec.key.arn}
            rule = {"apply_server_side_encryption_by_default": sse, "bucket_key_enabled": True}
        aws.s3.BucketServerSideEncryptionConfiguration(f"{name}-encryption", bucket=bucket_id, rules=[rule], opts=child)
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning", bucket=bucket_id, versioning_configuration={"status": "Enabled"}, opts=child
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bucket_id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
        )
        self.policy = aws.s3.BucketPolicy(
            f"{name}-policy", bucket=bucket_id, policy=bucket_policy(self.bucket.arn, spec), opts=child
        )
        if log_bucket is not None:
            aws.s3.BucketLogging(
                f"{name}-access-logging",
                bucket=bucket_id,
                target_bucket=log_bucket.id,
                target_prefix=f"{spec.purpose}/",
                target_object_key_format={"partitioned_prefix": {"partition_date_source": "EventTime"}},
                opts=child,
            )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket_id,
            rules=lifecycle_rules(spec),
            opts=platform.child(self, depends_on=[versioning]),
        )
        if spec.object_lock_days is not None:
            aws.s3.BucketObjectLockConfiguration(
                f"{name}-object-lock",
                bucket=bucket_id,
                rule={"default_retention": {"mode": "COMPLIANCE", "days": spec.object_lock_days}},
                opts=platform.child(self, depends_on=[versioning]),
            )
        self.register_outputs({"bucket": self.bucket.bucket, "arn": self.bucket.arn})


def bucket_policy(bucket_arn: pulumi.Output[str], spec: BucketSpec) -> pulumi.Output[str]:
    objects = bucket_arn.apply(lambda a: f"{a}/*")
    statements: list[Statement] = [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, objects],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyOutdatedTls",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, objects],
            "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
        },
    ]
    # Uploads without encryption headers get the bucket's default (its key); uploads that name another algorithm
    # or key are refused. Each deny fires only when its header is present (`Null: false`): a negated operator,
    # with or without IfExists, is true when the key is absent, which refused every header-less upload (S3
    # access-log delivery, MLflow artifacts) while the comment here promised the default key.
    sse, key_id = "s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id"
    statements.append(
        {
            "Sid": "DenyOtherEncryption",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": objects,
            "Condition": {
                "StringNotEquals": {sse: "AES256" if spec.key is None else "aws:kms"},
                "Null": {sse: "false"},
            },
        }
    )
    if spec.key is not None:
        statements += [
            {
                "Sid": "DenyOtherKmsKey",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": objects,
                "Condition": {"StringNotEquals": {key_id: spec.key.arn}, "Null": {key_id: "false"}},
            },
            {
                # `aws:kms` without a key id means the AWS managed key aws/s3, not the bucket's key
                "Sid": "DenyAwsManagedKey",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": objects,
                "Condition": {"Null": {sse: "false", key_id: "true"}},
            },
        ]
    if spec.append_only_prefix is not None:
        statements += append_only_statements(bucket_arn, spec.append_only_prefix)
    if spec.readers:
        statements.append(
            {
                "Sid": "PromotionAccountsRead",
                "Effect": "Allow",
                "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in spec.readers]},
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [bucket_arn, objects],
            }
        )
    statements += [{**s, "Resource": s.get("Resource", objects)} for s in spec.service_writers]
    return policy_document(*statements)


def append_only_statements(bucket_arn: pulumi.Output[str], prefix: str) -> list[Statement]:
    """Deny, for every principal (the account's admins included), deleting or replacing evidence objects.

    Object Lock (COMPLIANCE) already keeps every version; these denies keep the *current* view honest too: no
    delete marker can hide an entry and no new version can replace one. An upload must carry `If-None-Match`
    (bucket policies support the `s3:if-none-match` condition key; S3 then refuses to write over an existing
    key), exactly what `clinops.evidence.s3` sends. `s3:ObjectCreationOperation` keeps the deny on PutObject
    and CompleteMultipartUpload requests (the part uploads of a multipart upload carry no such header).
    """
    under = bucket_arn.apply(lambda a: f"{a}/{prefix}/*")
    return [
        {
            "Sid": "DenyEvidenceDelete",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            "Resource": under,
        },
        {
            "Sid": "DenyEvidenceOverwrite",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": under,
            "Condition": {"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}},
        },
    ]


def lifecycle_rules(spec: BucketSpec) -> list[dict[str, Any]]:
    rule: dict[str, Any] = {
        "id": f"{spec.purpose}-retention",
        "status": "Enabled",
        "filter": {"prefix": ""},
        "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
    }
    if spec.object_lock_days is None:  # locked evidence is never expired by lifecycle
        rule["noncurrent_version_expiration"] = {"noncurrent_days": spec.noncurrent_days}
    if spec.expire_current_days:
        rule["expiration"] = {"days": spec.expire_current_days}
    if spec.archive_after_days:
        rule["transitions"] = [{"days": spec.archive_after_days, "storage_class": "GLACIER_IR"}]
    return [rule]


@dataclass(frozen=True)
class StorageKeys:
    phi: aws.kms.Key
    artifacts: aws.kms.Key
    audit: aws.kms.Key


class Storage(pulumi.ComponentResource):
    """PHI data, model artifacts, inference data capture, evidence (Object Lock) and access logs."""

    def __init__(
        self, name: str, platform: Platform, keys: StorageKeys, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("clinops:infra:Storage", name, None, opts)
        cfg = platform.config
        evidence_arn = f"arn:aws:s3:::{platform.bucket_name('evidence')}"
        trail_arn = f"arn:aws:cloudtrail:{platform.region}:{platform.account}:trail/{platform.prefix}-trail"
        self.access_logs = SecureBucket(
            "access-logs",
            platform,
            BucketSpec(
                "access-logs",
                # SSE-S3, not the logs key: S3 documents SSE-KMS default encryption as unsupported for
                # server-access-log target buckets (logs would silently not arrive). Reviewed exception:
                # policies/exceptions.yaml (CLIN-ENC-002 and the engines' SSE-KMS checks on this bucket).
                key=None,
                expire_current_days=cfg.log_retention_days,
                service_writers=[
                    {
                        "Sid": "S3ServerAccessLogs",
                        "Effect": "Allow",
                        "Principal": {"Service": "logging.s3.amazonaws.com"},
                        "Action": "s3:PutObject",
                        "Condition": {"StringEquals": {"aws:SourceAccount": platform.account}},
                    }
                ],
            ),
            log_bucket=None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        log_bucket = self.access_logs.bucket
        specs = [
            BucketSpec("phi-data", key=keys.phi, noncurrent_days=30),
            BucketSpec("model-artifacts", key=keys.artifacts, noncurrent_days=365, readers=cfg.reader_accounts),
            BucketSpec(
                "data-capture", key=keys.phi, expire_current_days=max(cfg.log_retention_days, 90), noncurrent_days=7
            ),
            BucketSpec(
                "evidence",
                key=keys.audit,
                object_lock_days=cfg.evidence_retention_days,
                archive_after_days=90,
                append_only_prefix=EVIDENCE_PREFIX,
                service_writers=[
                    {
                        "Sid": "CloudTrailAclCheck",
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudtrail.amazonaws.com"},
                        "Action": "s3:GetBucketAcl",
                        "Resource": evidence_arn,
                        "Condition": {"StringEquals": {"aws:SourceArn": trail_arn}},
                    },
                    {
                        "Sid": "CloudTrailWrite",
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudtrail.amazonaws.com"},
                        "Action": "s3:PutObject",
                        "Resource": f"{evidence_arn}/cloudtrail/AWSLogs/{platform.account}/*",
                        "Condition": {
                            "StringEquals": {"aws:SourceArn": trail_arn, "s3:x-amz-acl": "bucket-owner-full-control"}
                        },
                    },
                ],
            ),
        ]
        self.buckets: dict[str, SecureBucket] = {
            s.purpose: SecureBucket(s.purpose, platform, s, log_bucket, opts=pulumi.ResourceOptions(parent=self))
            for s in specs
        }
        self.buckets["access-logs"] = self.access_logs
        self.register_outputs({p: b.bucket.bucket for p, b in self.buckets.items()})

    def arn(self, purpose: str) -> pulumi.Output[str]:
        return self.buckets[purpose].bucket.arn
