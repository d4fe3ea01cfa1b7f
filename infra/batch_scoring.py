"""Nightly batch scoring in the cloud: per model, the batch-scoring pipeline (`pipelines.definitions.batch_scoring`)
as a SageMaker pipeline, started nightly by EventBridge Scheduler and on demand.

The transform runs the endpoint's own SageMaker Model (`ModelEndpoint.pinned_model`), so its mini-batches must
fit the inference container's body limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from clinops.models import ModelConfig
from clinops.names import batch_scoring_pipeline_name, batch_scoring_scheduler_role_name
from infra.base import Platform
from infra.scheduled import ScheduledPipeline, schedule_pipeline
from pipelines.definitions.batch_scoring import TransformSettings, input_uri, scoring_definition
from serving.container.settings import DEFAULT_MAX_BODY_BYTES

MAX_PAYLOAD_MB = DEFAULT_MAX_BODY_BYTES // (1024 * 1024)  # mini-batches within the container's body limit


@dataclass(frozen=True)
class BatchScoringArgs:
    role_arn: pulumi.Output[str]
    model_name: pulumi.Output[str]
    phi_key: aws.kms.Key
    data_bucket: pulumi.Output[str]
    boundary_arn: pulumi.Output[str]
    schedule_key: aws.kms.Key


class BatchScoring(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        platform: Platform,
        model: ModelConfig,
        args: BatchScoringArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("clinops:serving:BatchScoring", name, None, opts)
        cfg = model.batch_scoring
        definition = pulumi.Output.all(model_name=args.model_name, phi=args.phi_key.arn, data=args.data_bucket).apply(
            lambda v: scoring_definition(
                TransformSettings(
                    model=model.name,
                    model_name=v["model_name"],
                    phi_key_arn=v["phi"],
                    data_bucket=v["data"],
                    instance_type=cfg.instance_type,
                    instance_count=cfg.instances,
                    max_payload_mb=MAX_PAYLOAD_MB,
                )
            )
        )
        name_ = batch_scoring_pipeline_name(platform.config.stack, model.name)
        pipeline = schedule_pipeline(
            self,
            platform,
            ScheduledPipeline(
                model=model.name,
                kind="batch-scoring",
                pipeline_name=name_,
                scheduler_role_name=batch_scoring_scheduler_role_name(platform.config.stack, model.name),
                description=f"Nightly Batch Transform of {model.name} over the day's extract",
                start_sid="StartBatchScoring",
                role_arn=args.role_arn,
                definition=definition,
                schedule=cfg.schedule,
                schedule_key=args.schedule_key,
                boundary_arn=args.boundary_arn,
                parameters={"InputUri": args.data_bucket.apply(lambda b: input_uri(b, model.name))},
            ),
        )
        self.pipeline = pipeline
        self.register_outputs({"pipelineName": name_})
