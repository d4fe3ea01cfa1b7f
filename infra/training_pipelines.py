"""The training pipeline of every configured model as a SageMaker pipeline, provisioned by Pulumi.

The definition is built by `pipelines.definitions.training` (sagemaker SDK, no network) from the same step code the
local run uses, once the platform's IDs and ARNs are known. Building it imports the SDK (~6 s), so results are
cached by content: settings + the pipelines package's source + the SDK version. Same inputs, same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from clinops.config import project_root
from clinops.models import ModelConfig
from clinops.names import tracking_server_arn, training_pipeline_name
from infra.base import Platform
from pipelines.definitions.settings import PipelineDefinitionSettings
from pipelines.definitions.training import build_pipeline_definition
from pipelines.settings import GateSettings

CACHE_DIR = Path(".cache") / "pipeline-definitions"


@dataclass(frozen=True)
class PipelineArgs:
    role_arn: pulumi.Output[str]
    subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Output[str]
    phi_key: aws.kms.Key
    artifacts_key: aws.kms.Key
    data_bucket: pulumi.Output[str]
    artifact_bucket: pulumi.Output[str]
    step_image_uri: str
    inference_image_uri: str
    tracking_server: aws.sagemaker.MlflowTrackingServer  # TrackRun logs each run there (infra.tracking)


def cached_definition(settings: PipelineDefinitionSettings, root: Path | None = None) -> str:
    root = root or project_root()
    sources = sorted((root / "pipelines").rglob("*.py"))
    digest = hashlib.sha256(repr(settings).encode())
    digest.update(importlib.metadata.version("sagemaker").encode())
    for source in sources:
        digest.update(source.read_bytes())
    path = root / CACHE_DIR / f"{digest.hexdigest()}.json"
    if path.is_file():
        return path.read_text()
    definition = build_pipeline_definition(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(definition)
    tmp.replace(path)
    return definition


def _definition(
    resolved: dict[str, Any], model: str, gate: GateSettings, platform: Platform, args: PipelineArgs
) -> str:
    """The pipeline definition once the platform's ARNs and names are known (inside Output.apply)."""
    return cached_definition(
        PipelineDefinitionSettings(
            model_name=model,
            region=platform.region,
            role_arn=resolved["role"],
            subnet_ids=tuple(resolved["subnets"]),
            security_group_ids=(resolved["sg"],),
            volume_kms_key_arn=resolved["phi"],
            data_kms_key_arn=resolved["phi"],
            artifact_kms_key_arn=resolved["artifacts"],
            data_bucket=resolved["data"],
            artifact_bucket=resolved["artifact_bucket"],
            model_package_group_name=model,
            step_image_uri=args.step_image_uri,
            inference_image_uri=args.inference_image_uri,
            # the name-derived ARN (clinops.names, as the IAM grant and the endpoint policy use): known at preview
            tracking_server_arn=tracking_server_arn(platform.config.stack, platform.region, platform.account),
            gate=gate,
        )
    )


class TrainingPipelines(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        platform: Platform,
        models: list[ModelConfig],
        args: PipelineArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("clinops:pipelines:TrainingPipelines", name, None, opts)
        self.pipelines: dict[str, aws.sagemaker.Pipeline] = {}
        for model in models:
            contract = project_root() / "pipelines" / "contracts" / f"{model.name}.yaml"
            if contract.is_file():  # the pipeline's first step reads the contract from the artifact bucket
                aws.s3.BucketObjectv2(
                    f"{model.name}-contract",
                    bucket=args.artifact_bucket,
                    key=f"{model.name}/contract/{contract.name}",
                    source=pulumi.FileAsset(str(contract)),
                    server_side_encryption="aws:kms",
                    kms_key_id=args.artifacts_key.arn,
                    tags=platform.tags(**{"clinops:model": model.name}),
                    opts=platform.child(self),
                )
            gate = GateSettings(min_auc=model.quality.min_auc, max_subgroup_auc_gap=model.quality.max_subgroup_auc_gap)
            definition = pulumi.Output.all(
                role=args.role_arn,
                subnets=pulumi.Output.all(*args.subnet_ids),
                sg=args.security_group_id,
                phi=args.phi_key.arn,
                artifacts=args.artifacts_key.arn,
                data=args.data_bucket,
                artifact_bucket=args.artifact_bucket,
            ).apply(functools.partial(_definition, model=model.name, gate=gate, platform=platform, args=args))
            self.pipelines[model.name] = aws.sagemaker.Pipeline(
                f"{model.name}-training",
                pipeline_name=training_pipeline_name(model.name),
                pipeline_display_name=training_pipeline_name(model.name),
                role_arn=args.role_arn,
                pipeline_description=f"Train, evaluate, check fairness and register (pending approval): {model.name}",
                pipeline_definition=definition,
                tags=platform.tags(**{"clinops:model": model.name}),
                opts=platform.child(self, depends_on=[args.tracking_server]),  # its runs log to the server
            )
        self.register_outputs({m: p.arn for m, p in self.pipelines.items()})
