"""A SageMaker pipeline started on a schedule by EventBridge Scheduler (the drift and batch-scoring pipelines).

The schedule is encrypted with a customer managed key, so its target role decrypts it; the role may start only
this pipeline. Resource names derive from `{model}-{kind}` exactly as the components named them before this
helper existed, so URNs do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.base import Platform, allow, policy_document, service_trust


@dataclass(frozen=True)
class ScheduledPipeline:
    model: str
    kind: str  # "drift", "batch-scoring": the middle of every resource name
    pipeline_name: str
    scheduler_role_name: str
    description: str
    start_sid: str  # the IAM statement id that says what the schedule starts
    role_arn: pulumi.Input[str]  # the pipeline's execution role
    definition: pulumi.Input[str]
    schedule: str
    schedule_key: aws.kms.Key
    boundary_arn: pulumi.Input[str]
    parameters: dict[str, pulumi.Input[str]]  # pipeline parameters each scheduled run sets


def schedule_pipeline(parent: pulumi.Resource, platform: Platform, spec: ScheduledPipeline) -> aws.sagemaker.Pipeline:
    prefix = f"{spec.model}-{spec.kind}"
    pipeline = aws.sagemaker.Pipeline(
        f"{prefix}-pipeline",
        pipeline_name=spec.pipeline_name,
        pipeline_display_name=spec.pipeline_name,
        pipeline_description=spec.description,
        role_arn=spec.role_arn,
        pipeline_definition=spec.definition,
        tags=platform.tags(**{"clinops:model": spec.model}),
        opts=platform.child(parent),
    )
    role = aws.iam.Role(
        f"{prefix}-scheduler-role",
        name=spec.scheduler_role_name,
        assume_role_policy=service_trust("scheduler.amazonaws.com", platform.account),
        permissions_boundary=spec.boundary_arn,
        tags=platform.tags(),
        opts=platform.child(parent),
    )
    aws.iam.RolePolicy(
        f"{prefix}-scheduler-permissions",
        role=role.id,
        policy=policy_document(
            allow(spec.start_sid, ["sagemaker:StartPipelineExecution"], pipeline.arn),
            # the schedule is encrypted with a customer managed key: its execution role decrypts it
            allow("DecryptSchedule", ["kms:Decrypt"], spec.schedule_key.arn),
        ),
        opts=platform.child(parent),
    )
    aws.scheduler.Schedule(
        f"{prefix}-schedule",
        name=spec.pipeline_name,
        schedule_expression=spec.schedule,
        schedule_expression_timezone="UTC",
        flexible_time_window={"mode": "FLEXIBLE", "maximum_window_in_minutes": 30},
        kms_key_arn=spec.schedule_key.arn,
        target={
            "arn": pipeline.arn,
            "role_arn": role.arn,
            "retry_policy": {"maximum_retry_attempts": 3},
            "sagemaker_pipeline_parameters": {
                "pipeline_parameters": [{"name": k, "value": v} for k, v in spec.parameters.items()]
            },
        },
        opts=platform.child(parent),
    )
    return pipeline
