"""The stack program: wires the platform components together. Each concern lives in its own component."""

from __future__ import annotations

import pulumi

from clinops.config import StackConfig
from clinops.names import (
    batch_scoring_pipeline_name,
    batch_scoring_scheduler_role_name,
    canary_function_name,
    drift_pipeline_name,
    drift_scheduler_role_name,
)
from clinops.pricing import price_table
from infra.alerts import Alerts
from infra.audit import Audit, AuditArgs
from infra.base import Platform
from infra.batch_scoring import BatchScoring, BatchScoringArgs
from infra.cds_api import CdsApiArgs, CdsHooksApi
from infra.drift_monitoring import DriftMonitoring, DriftMonitoringArgs
from infra.endpoint import EndpointArgs, ModelEndpoint
from infra.guardrails import BREAKER, GuardrailArgs, Guardrails, function_name, function_purposes
from infra.identity import Grants, Identity
from infra.keys import Keys, KeyUsers, ServiceRoles
from infra.model_monitoring import ModelMonitoring
from infra.network import Network, NetworkArgs
from infra.registry import STEPS_REPOSITORY, Registry, image_uri
from infra.slo import ModelSlo
from infra.storage import Storage, StorageKeys
from infra.studio import Studio, StudioArgs
from infra.tracking import Tracking
from infra.training_pipelines import PipelineArgs, TrainingPipelines


def service_roles(platform: Platform) -> ServiceRoles:
    """The roles of the Lambdas and schedules this stack will create, by the names their components give them."""
    deployed = [m.name for m in platform.config.models if m.package_arn]
    guardrails = [platform.role_arn(function_name(platform, p)) for p in function_purposes(platform, deployed)]
    stack = platform.config.stack
    canaries = [platform.role_arn(canary_function_name(stack, m)) for m in deployed]
    return ServiceRoles(
        functions=sorted([*guardrails, *canaries]),
        endpoint_updaters=[platform.role_arn(function_name(platform, BREAKER))] if deployed else [],
        schedules={
            **{
                platform.role_arn(drift_scheduler_role_name(stack, m)): platform.schedule_arn(
                    drift_pipeline_name(stack, m)
                )
                for m in deployed
            },
            **{
                platform.role_arn(batch_scoring_scheduler_role_name(stack, m)): platform.schedule_arn(
                    batch_scoring_pipeline_name(stack, m)
                )
                for m in deployed
            },
        },
    )


def build_platform(config: StackConfig) -> None:
    platform = Platform(config)
    identity = Identity("identity", platform)
    keys = Keys(
        "keys",
        platform,
        KeyUsers(
            execution=identity.role_arn("execution"),
            author=identity.role_arn("author"),
            approver=identity.role_arn("approver"),
            deployer=identity.role_arn("deployer"),
            reader_accounts=config.reader_accounts,
            deploy_identities=config.principals.deployers,
            services=service_roles(platform),
        ),
        after=list(identity.roles.values()),
    )
    storage = Storage(
        "storage",
        platform,
        StorageKeys(phi=keys.keys["phi"], artifacts=keys.keys["artifacts"], audit=keys.keys["audit"]),
    )
    # promoted models are read from the build account
    registry_artifacts = [platform.registry_artifacts_bucket_arn()] if platform.promotes_from_registry else []
    network = Network(
        "network",
        platform,
        NetworkArgs(
            logs_key=keys.keys["logs"],
            bucket_arns=[b.bucket.arn for b in storage.buckets.values()],
            extra_bucket_arns=registry_artifacts,
            boundary_arn=identity.boundary.arn,
        ),
    )
    evidence = storage.buckets["evidence"]
    Audit(
        "audit",
        platform,
        AuditArgs(
            audit_key=keys.keys["audit"],
            logs_key=keys.keys["logs"],
            evidence_bucket=evidence.bucket,
            evidence_policy=evidence.policy,
            data_event_buckets=[storage.arn("phi-data"), storage.arn("model-artifacts"), storage.arn("data-capture")],
            boundary_arn=identity.boundary.arn,
        ),
    )
    registry = (
        Registry("registry", platform, keys.keys["artifacts"]) if config.registry_account == config.account_id else None
    )
    identity.grant(
        Grants(
            phi_bucket=storage.arn("phi-data"),
            artifacts_bucket=storage.arn("model-artifacts"),
            capture_bucket=storage.arn("data-capture"),
            evidence_bucket=storage.arn("evidence"),
            phi_key=keys.arn("phi"),
            artifacts_key=keys.arn("artifacts"),
            audit_key=keys.arn("audit"),
            evidence_mac_key=keys.arn("evidence-mac"),
        ),
        model_groups=[m.name for m in config.models],
    )
    Studio(
        "studio",
        platform,
        StudioArgs(
            vpc_id=network.vpc.id,
            subnet_ids=network.subnet_ids,
            security_group_id=network.workload_sg.id,
            phi_key=keys.keys["phi"],
            persona_roles={
                "data-scientist": identity.roles["author"].arn,
                "clinical-approver": identity.roles["approver"].arn,
            },
        ),
    )

    if registry is not None:  # pipelines register into the groups, so they live beside them
        TrainingPipelines(
            "training",
            platform,
            list(config.models),
            PipelineArgs(
                role_arn=identity.roles["execution"].arn,
                subnet_ids=network.subnet_ids,
                security_group_id=network.workload_sg.id,
                phi_key=keys.keys["phi"],
                artifacts_key=keys.keys["artifacts"],
                data_bucket=storage.buckets["phi-data"].bucket.bucket,
                artifact_bucket=storage.buckets["model-artifacts"].bucket.bucket,
                step_image_uri=image_uri(config.registry_account, config.region, config.image_tag, STEPS_REPOSITORY),
                inference_image_uri=image_uri(config.registry_account, config.region, config.image_tag),
            ),
        )
    Tracking("tracking", platform, storage.buckets["model-artifacts"].bucket.bucket, identity.roles["execution"].arn)
    alerts = Alerts("alerts", platform, keys.keys["logs"])
    endpoints: dict[str, pulumi.Input[str]] = {}
    prices = price_table(config.instance_prices)
    for model in config.models:
        if not model.package_arn:
            # First deploy: the model has no approved package yet. Deploy everything else and say so.
            pulumi.log.info(f"model {model.name}: no package pinned, no endpoint deployed (clinops release pins one)")
            endpoints[model.name] = "not deployed: no package pinned"
            continue
        endpoint = ModelEndpoint(
            model.name,
            platform,
            EndpointArgs(
                model=model,
                execution_role_arn=identity.roles["execution"].arn,
                subnet_ids=network.subnet_ids,
                security_group_id=network.workload_sg.id,
                volume_key=keys.keys["artifacts"],
                capture_key=keys.keys["phi"],
                logs_key=keys.keys["logs"],
                capture_bucket=storage.buckets["data-capture"].bucket.bucket,
                alert_topic_arn=alerts.topic.arn,
                boundary_arn=identity.boundary.arn,
            ),
        )
        slo = ModelSlo(
            f"{model.name}-slo",
            platform,
            model,
            config.slo_for(model),
            prices.instance(model.serving.instance_type),
            alerts.topic.arn,
        )
        ModelMonitoring(
            f"{model.name}-monitoring", platform, model, alerts.topic.arn, endpoint.alarms.alarms, slo.cost_queries
        )
        DriftMonitoring(
            f"{model.name}-drift",
            platform,
            model,
            DriftMonitoringArgs(
                role_arn=identity.roles["execution"].arn,
                image_uri=image_uri(config.registry_account, config.region, config.image_tag, STEPS_REPOSITORY),
                subnet_ids=network.subnet_ids,
                security_group_id=network.workload_sg.id,
                phi_key=keys.keys["phi"],
                artifacts_key=keys.keys["artifacts"],
                capture_bucket=storage.buckets["data-capture"].bucket.bucket,
                artifact_bucket=storage.buckets["model-artifacts"].bucket.bucket,
                data_bucket=storage.buckets["phi-data"].bucket.bucket,
                boundary_arn=identity.boundary.arn,
                schedule_key=keys.keys["logs"],
            ),
        )
        BatchScoring(
            f"{model.name}-batch-scoring",
            platform,
            model,
            BatchScoringArgs(
                role_arn=identity.roles["execution"].arn,
                model_name=endpoint.pinned_model.name,
                phi_key=keys.keys["phi"],
                data_bucket=storage.buckets["phi-data"].bucket.bucket,
                boundary_arn=identity.boundary.arn,
                schedule_key=keys.keys["logs"],
            ),
        )
        endpoints[model.name] = endpoint.endpoint.name

    Guardrails(
        "guardrails",
        platform,
        GuardrailArgs(
            subnet_ids=network.subnet_ids,
            security_group_id=network.workload_sg.id,
            boundary_arn=identity.boundary.arn,
            topic_arn=alerts.topic.arn,
            evidence_bucket=storage.buckets["evidence"].bucket.bucket,
            keys=keys.keys,
            models=[m.name for m in config.models if m.package_arn],
            all_models=[m.name for m in config.models],
        ),
    )
    cds_models = [m for m in config.models if m.cds is not None]
    if config.cds is not None and cds_models:
        cds_api = CdsHooksApi(
            "cds-hooks",
            platform,
            CdsApiArgs(
                subnet_ids=network.subnet_ids,
                security_group_id=network.workload_sg.id,
                execute_api_endpoint_id=network.interface_endpoints["com.amazonaws.{region}.execute-api"].id,
                boundary_arn=identity.boundary.arn,
                logs_key=keys.keys["logs"],
                evidence_key=keys.keys["audit"],
                evidence_mac_key=keys.keys["evidence-mac"],
                evidence_bucket=storage.buckets["evidence"].bucket.bucket,
                endpoints={m.name: endpoints[m.name] for m in cds_models if m.package_arn},
                models=cds_models,
                topic_arn=alerts.topic.arn,
            ),
        )
        pulumi.export("cdsHooksUrl", cds_api.base_url)

    pulumi.export("vpcId", network.vpc.id)
    pulumi.export("endpoints", endpoints)
    pulumi.export("alertTopicArn", alerts.topic.arn)
    pulumi.export("privateSubnetIds", network.subnet_ids)
    pulumi.export("workloadSecurityGroupId", network.workload_sg.id)
    pulumi.export("buckets", {p: b.bucket.bucket for p, b in sorted(storage.buckets.items())})
    pulumi.export("keys", {p: k.arn for p, k in sorted(keys.keys.items())})
    pulumi.export("evidenceMacKeyArn", keys.arn("evidence-mac"))  # CLINOPS_EVIDENCE_MAC_KEY for verify/release
    pulumi.export("roles", {p: r.arn for p, r in sorted(identity.roles.items())})
    pulumi.export("modelPackageGroups", {n: g.arn for n, g in sorted((registry.groups if registry else {}).items())})
