"""Audit: a multi-region CloudTrail with log-file validation, KMS, CloudWatch delivery and S3 data events.

Data events cover the PHI, artifact and capture buckets and the evidence log's prefix of the evidence bucket -
who read, wrote or tried to delete an entry. Only that prefix: the trail delivers its own files into the same
bucket (under `cloudtrail/`), and recording those deliveries would log the log without end.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from clinops.evidence.s3 import EVIDENCE_PREFIX
from infra.base import Platform
from infra.logs import delivery_role, encrypted_log_group


@dataclass(frozen=True)
class AuditArgs:
    audit_key: aws.kms.Key
    logs_key: aws.kms.Key
    evidence_bucket: aws.s3.Bucket
    evidence_policy: aws.s3.BucketPolicy  # CloudTrail checks the bucket policy when the trail is created
    data_event_buckets: list[pulumi.Output[str]]  # bucket ARNs whose object reads/writes are recorded
    boundary_arn: pulumi.Output[str]


class Audit(pulumi.ComponentResource):
    def __init__(
        self, name: str, platform: Platform, args: AuditArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("clinops:infra:Audit", name, None, opts)
        cfg = platform.config
        trail_name = f"{platform.prefix}-trail"
        self.log_group = encrypted_log_group(
            "cloudtrail-logs", platform, self, f"/clinops/{cfg.stack}/cloudtrail", args.logs_key
        )
        delivery = delivery_role(
            "cloudtrail",
            platform,
            self,
            role_name=f"{platform.prefix}-cloudtrail-logs",
            service="cloudtrail.amazonaws.com",
            source_arn=f"arn:aws:cloudtrail:{cfg.region}:{platform.account}:trail/{trail_name}",
            boundary_arn=args.boundary_arn,
            statement={
                "Sid": "DeliverTrailToLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": self.log_group.arn.apply(lambda a: f"{a}:log-stream:*"),
            },
        )
        objects = [arn.apply(lambda a: f"{a}/") for arn in args.data_event_buckets]
        objects.append(args.evidence_bucket.arn.apply(lambda a: f"{a}/{EVIDENCE_PREFIX}/"))
        self.trail = aws.cloudtrail.Trail(
            "trail",
            name=trail_name,
            s3_bucket_name=args.evidence_bucket.id,
            s3_key_prefix="cloudtrail",
            is_multi_region_trail=True,
            include_global_service_events=True,
            enable_log_file_validation=True,
            enable_logging=True,
            kms_key_id=args.audit_key.arn,
            cloud_watch_logs_group_arn=self.log_group.arn.apply(lambda a: f"{a}:*"),
            cloud_watch_logs_role_arn=delivery.arn,
            advanced_event_selectors=[
                {
                    "name": "Management events",
                    "field_selectors": [{"field": "eventCategory", "equals": ["Management"]}],
                },
                {
                    "name": "PHI, model and evidence object access",
                    "field_selectors": [
                        {"field": "eventCategory", "equals": ["Data"]},
                        {"field": "resources.type", "equals": ["AWS::S3::Object"]},
                        {"field": "resources.ARN", "starts_with": objects},
                    ],
                },
            ],
            tags=platform.tags(),
            opts=platform.child(self, stateful=True, depends_on=[args.evidence_policy]),
        )
        self.register_outputs({"trailArn": self.trail.arn})
