"""Experiment tracking: a SageMaker-managed MLflow tracking server, reached only through the VPC endpoint.

Runs, parameters, metrics and model cards go to the artifact bucket (SSE-KMS with the artifacts key) under
`mlflow/`. The server runs as the SageMaker execution role, which already holds exactly that access.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.base import Platform


class Tracking(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        platform: Platform,
        artifacts_bucket: pulumi.Input[str],
        execution_role_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("clinops:infra:Tracking", name, None, opts)
        size = platform.config.tracking_server_size
        self.server = aws.sagemaker.MlflowTrackingServer(
            "mlflow",
            tracking_server_name=f"{platform.prefix}-mlflow",
            role_arn=execution_role_arn,
            artifact_store_uri=pulumi.Output.concat("s3://", artifacts_bucket, "/mlflow"),
            tracking_server_size=size,
            # The pipeline registers packages itself, PendingManualApproval; MLflow must not register behind it.
            automatic_model_registration=False,
            weekly_maintenance_window_start="Sun:03:00",
            tags=platform.tags(),
            opts=platform.child(self, stateful=True),
        )
        self.register_outputs({"trackingServerArn": self.server.arn})
