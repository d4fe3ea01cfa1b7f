"""A model's endpoint: pinned package → model → endpoint config → blue/green endpoint with alarm auto-rollback.

The last-known-good package keeps its own model and endpoint configuration declared (and retained on delete),
so the rollback target always exists; both names are recorded in SSM for `clinops verify` and the circuit
breaker. Endpoint configurations are named by package version and are immutable: a release adds one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from clinops.models import ModelConfig, package_version
from clinops.names import (
    LAST_KNOWN_GOOD_PARAMETER,
    NONE,
    PINNED_PARAMETER,
    SHADOW_VARIANT,
    VARIANT,
    config_name,
    endpoint_name,
    parameter,
)
from infra.base import Platform
from infra.canary import SyntheticTrafficCanary
from infra.logs import encrypted_log_group
from infra.rollback_alarms import RollbackAlarms


@dataclass(frozen=True)
class EndpointArgs:
    model: ModelConfig
    execution_role_arn: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    volume_key: aws.kms.Key  # endpoint ML storage (model weights)
    capture_key: aws.kms.Key  # captured requests and responses are PHI
    logs_key: aws.kms.Key
    capture_bucket: pulumi.Input[str]
    alert_topic_arn: pulumi.Input[str]
    boundary_arn: pulumi.Input[str]


class ModelEndpoint(pulumi.ComponentResource):
    def __init__(
        self, name: str, platform: Platform, args: EndpointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("clinops:serving:ModelEndpoint", name, None, opts)
        model, serving = args.model, args.model.serving
        assert model.package_arn, "ModelEndpoint needs a pinned package"
        release = serving.release
        self.endpoint_name = endpoint_name(platform.config.stack, model.name)
        self._platform, self._args = platform, args
        tags = platform.tags(**{"clinops:model": model.name})

        current = self._config(model.package_arn, "pinned", shadow=serving.shadow_package_arn)
        last_known_good = (
            self._config(model.last_known_good_package_arn, "last-known-good")
            if model.last_known_good_package_arn
            else None
        )

        # SageMaker would create this log group itself, unencrypted and kept forever: create it first.
        self.log_group = encrypted_log_group(
            f"{model.name}-endpoint-logs",
            platform,
            self,
            f"/aws/sagemaker/Endpoints/{self.endpoint_name}",
            args.logs_key,
            **{"clinops:model": model.name},
        )
        self.alarms = RollbackAlarms(
            f"{model.name}-alarms",
            platform,
            self.endpoint_name,
            VARIANT,
            release,
            self.log_group,
            args.alert_topic_arn,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.endpoint = aws.sagemaker.Endpoint(
            f"{model.name}-endpoint",
            name=self.endpoint_name,
            endpoint_config_name=current.name,
            deployment_config={
                "blue_green_update_policy": {
                    "traffic_routing_configuration": _routing(release),
                    "termination_wait_in_seconds": release.termination_wait_seconds,
                    "maximum_execution_timeout_in_seconds": release.execution_timeout_seconds,
                },
                "auto_rollback_configuration": {"alarms": [{"alarm_name": a.name} for a in self.alarms.alarms]},
            },
            tags=tags,
            opts=platform.child(self, depends_on=[self.log_group, *self.alarms.alarms]),
        )
        self._autoscaling(serving.min_instances, serving.max_instances, serving.target_invocations_per_instance)
        self._record(PINNED_PARAMETER, current.name, "endpoint configuration the stack pins")
        self._record(
            LAST_KNOWN_GOOD_PARAMETER,
            last_known_good.name if last_known_good else NONE,
            "verified previous configuration: the rollback target",
        )
        SyntheticTrafficCanary(
            f"{model.name}-canary",
            platform,
            model.name,
            self.endpoint,
            args.subnet_ids,
            args.security_group_id,
            args.logs_key,
            args.boundary_arn,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"endpointName": self.endpoint.name, "pinnedConfig": current.name})

    def _config(self, package_arn: str, role: str, shadow: str | None = None) -> aws.sagemaker.EndpointConfiguration:
        platform, args, model = self._platform, self._args, self._args.model
        serving = model.serving
        primary = self._model(package_arn, role)
        shadows = []
        if shadow:
            shadows = [
                {
                    "variant_name": SHADOW_VARIANT,
                    "model_name": self._model(shadow, "shadow").name,
                    "initial_instance_count": 1,
                    "instance_type": serving.instance_type,
                    "initial_variant_weight": serving.shadow_percent / 100,
                }
            ]
        name = config_name(platform.config.stack, model.name, package_arn)
        return aws.sagemaker.EndpointConfiguration(
            f"{model.name}-config-v{package_version(package_arn)}",
            name=name,
            kms_key_arn=args.volume_key.arn,
            production_variants=[
                {
                    "variant_name": VARIANT,
                    "model_name": primary.name,
                    "initial_instance_count": serving.min_instances,
                    "instance_type": serving.instance_type,
                    "initial_variant_weight": 1,
                }
            ],
            shadow_production_variants=shadows or None,
            data_capture_config={
                "enable_capture": True,
                "initial_sampling_percentage": serving.data_capture_percent,
                "destination_s3_uri": pulumi.Output.concat("s3://", args.capture_bucket, f"/{model.name}/"),
                "kms_key_id": args.capture_key.arn,
                "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
                "capture_content_type_header": {
                    "csv_content_types": ["text/csv"],
                    "json_content_types": ["application/json"],
                },
            },
            tags=platform.tags(
                **{"clinops:model": model.name, "clinops:config-role": role, "clinops:package": package_arn}
            ),
            # An old configuration may be what SageMaker (or the circuit breaker) rolled back to: never delete it.
            opts=platform.child(self, retain_on_delete=True),
        )

    def _model(self, package_arn: str, role: str) -> aws.sagemaker.Model:
        platform, args, model = self._platform, self._args, self._args.model
        version = package_version(package_arn)
        created = aws.sagemaker.Model(
            f"{model.name}-model-v{version}",
            name=config_name(platform.config.stack, model.name, package_arn),  # a model per package version
            # The container names its endpoint in every log line, so metric filters can dimension by it.
            primary_container={
                "model_package_name": package_arn,
                "environment": {
                    "CLINOPS_ENDPOINT": endpoint_name(platform.config.stack, model.name),
                    "CLINOPS_MODEL": model.name,
                },
            },
            execution_role_arn=args.execution_role_arn,
            vpc_config={"subnets": args.subnet_ids, "security_group_ids": [args.security_group_id]},
            enable_network_isolation=True,
            tags=platform.tags(
                **{"clinops:model": model.name, "clinops:package": package_arn, "clinops:config-role": role}
            ),
            opts=platform.child(self, retain_on_delete=True),
        )
        if role == "pinned":
            self.pinned_model = created  # batch scoring runs this same Model (infra.batch_scoring)
        return created

    def _autoscaling(self, low: int, high: int, target: int) -> None:
        platform, model = self._platform, self._args.model
        resource_id = self.endpoint.name.apply(lambda n: f"endpoint/{n}/variant/{VARIANT}")
        scaling_target = aws.appautoscaling.Target(
            f"{model.name}-scaling-target",
            service_namespace="sagemaker",
            resource_id=resource_id,
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=low,
            max_capacity=high,
            opts=platform.child(self),
        )
        aws.appautoscaling.Policy(
            f"{model.name}-scaling-policy",
            policy_type="TargetTrackingScaling",
            resource_id=resource_id,
            service_namespace="sagemaker",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            target_tracking_scaling_policy_configuration={
                "target_value": target,
                "predefined_metric_specification": {"predefined_metric_type": "SageMakerVariantInvocationsPerInstance"},
                "scale_in_cooldown": 600,
                "scale_out_cooldown": 120,  # scale out fast, in slowly: clinicians wait
            },
            opts=platform.child(self, depends_on=[scaling_target]),
        )

    def _record(self, key: str, value: pulumi.Input[str], description: str) -> None:
        platform, model = self._platform, self._args.model
        aws.ssm.Parameter(
            f"{model.name}-{key}",
            name=parameter(platform.config.stack, model.name, key),
            type="String",
            value=value,
            description=description,
            tags=platform.tags(**{"clinops:model": model.name}),
            opts=platform.child(self),
        )


def _routing(release) -> dict[str, object]:
    if release.strategy == "CANARY":
        return {
            "type": "CANARY",
            "wait_interval_in_seconds": release.wait_seconds,
            "canary_size": {"type": "CAPACITY_PERCENT", "value": release.canary_percent},
        }
    if release.strategy == "LINEAR":
        return {
            "type": "LINEAR",
            "wait_interval_in_seconds": release.wait_seconds,
            "linear_step_size": {"type": "CAPACITY_PERCENT", "value": release.linear_step_percent},
        }
    return {"type": "ALL_AT_ONCE", "wait_interval_in_seconds": release.wait_seconds}
