"""Alerts: the KMS-encrypted SNS topic that alarms, the circuit breaker and the evidence recorder notify."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from clinops.names import alert_topic_name
from infra.base import Platform, policy_document


class Alerts(pulumi.ComponentResource):
    def __init__(
        self, name: str, platform: Platform, logs_key: aws.kms.Key, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("clinops:infra:Alerts", name, None, opts)
        self.topic = aws.sns.Topic(
            "alerts",
            name=alert_topic_name(platform.config.stack),
            kms_master_key_id=logs_key.arn,
            tags=platform.tags(),
            opts=platform.child(self),
        )
        aws.sns.TopicPolicy(
            "alerts-policy",
            arn=self.topic.arn,
            policy=policy_document(
                {
                    "Sid": "AlarmsAndEventsPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]},
                    "Action": "sns:Publish",
                    "Resource": self.topic.arn,
                    "Condition": {"StringEquals": {"aws:SourceAccount": platform.account}},
                },
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sns:Publish",
                    "Resource": self.topic.arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ),
            opts=platform.child(self),
        )
        self.register_outputs({"topicArn": self.topic.arn})
