"""The stack program: wires the platform components together. Each concern lives in its own component."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from clinops.config import ConfigError, StackConfig
from clinops.models import ModelConfig
from clinops.names import (
    HUMAN_PERSONAS,
    batch_scoring_scheduler_role_name,
    canary_function_name,
    drift_scheduler_role_name,
)
from clinops.pricing import PriceTable, price_table
from infra.alerts import Alerts
from infra.audit import Audit, AuditArgs
from infra.base import Platform
from infra.batch_scoring import BatchScoring, BatchScoringArgs
from infra.cds_api import CdsApiArgs, CdsHooksApi
from infra.drift_monitoring import DriftMonitoring, DriftMonitoringArgs
from infra.endpoint import EndpointArgs, ModelEndpoint
from infra.guardrails import BREAKER, GuardrailArgs, Guardrails, function_name, function_purposes
from infra.identity import Grants, Identity, persona_role_name
from infra.keys import CDS_ENCOUNTER_MAC, Keys, KeyUsers, ServiceRoles, key_policy_problems
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
        schedule_roles=sorted(
            platform.role_arn(role(stack, m))
            for m in deployed
            for role in (drift_scheduler_role_name, batch_scoring_scheduler_role_name)
        ),
    )


def key_users(platform: Platform) -> KeyUsers:
    """Who uses the keys, as role ARNs derived from the config (the roles need not exist yet)."""
    config = platform.config
    persona = {p: platform.role_arn(persona_role_name(platform, p)) for p in ("execution", *HUMAN_PERSONAS)}
    return KeyUsers(
        execution=persona["execution"],
        author=persona["author"],
        approver=persona["approver"],
        deployer=persona["deployer"],
        reader_accounts=config.reader_accounts,
        deploy_identities=config.principals.deployers,
        services=service_roles(platform),
    )


def check_quotas(config: StackConfig) -> None:
    """Refuse, before any resource is declared, a stack whose key policies KMS would reject: they name each model's
    function and schedule roles, so a large enough mesh outgrows them (about 128 models at the shipped names)."""
    platform = Platform(config)
    problems = key_policy_problems(platform, key_users(platform))
    if problems:
        raise ConfigError(config.stack, problems)


@dataclass(frozen=True)
class Foundation:
    """The platform every model's resources stand on."""

    platform: Platform
    identity: Identity
    keys: Keys
    storage: Storage
    network: Network
    alerts: Alerts
    registry: Registry | None

    def bucket(self, purpose: str) -> pulumi.Output[str]:
        return self.storage.buckets[purpose].bucket.bucket

    def steps_image(self) -> str:
        c = self.platform.config
        return image_uri(c.registry_account, c.region, c.image_tag, STEPS_REPOSITORY)


def build_platform(config: StackConfig) -> None:
    f = _foundation(config)
    tracking = Tracking("tracking", f.platform, f.bucket("model-artifacts"), f.identity.roles["execution"].arn)
    if f.registry is not None:  # pipelines register into the groups, so they live beside them
        _training_pipelines(f, tracking)
    endpoints: dict[str, pulumi.Input[str]] = {}
    prices = price_table(config.instance_prices)
    for model in config.models:
        if not model.package_arn:
            # First deploy: the model has no approved package yet. Deploy everything else and say so.
            pulumi.log.info(f"model {model.name}: no package pinned, no endpoint deployed (clinops release pins one)")
            endpoints[model.name] = "not deployed: no package pinned"
            continue
        endpoints[model.name] = _served_model(f, model, prices)
    _guardrails(f)
    _cds_hooks(f, endpoints)
    _exports(f, endpoints)


def _foundation(config: StackConfig) -> Foundation:
    """Identity, keys, storage, network, audit, registry, grants, Studio and alerts: one per stack."""
    platform = Platform(config)
    identity = Identity("identity", platform)
    keys = Keys("keys", platform, key_users(platform), after=list(identity.roles.values()))
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
    alerts = Alerts("alerts", platform, keys.keys["logs"])
    return Foundation(platform, identity, keys, storage, network, alerts, registry)


def _training_pipelines(f: Foundation, tracking: Tracking) -> None:
    config = f.platform.config
    TrainingPipelines(
        "training",
        f.platform,
        list(config.models),
        PipelineArgs(
            role_arn=f.identity.roles["execution"].arn,
            subnet_ids=f.network.subnet_ids,
            security_group_id=f.network.workload_sg.id,
            phi_key=f.keys.keys["phi"],
            artifacts_key=f.keys.keys["artifacts"],
            data_bucket=f.bucket("phi-data"),
            artifact_bucket=f.bucket("model-artifacts"),
            step_image_uri=f.steps_image(),
            inference_image_uri=image_uri(config.registry_account, config.region, config.image_tag),
            tracking_server=tracking.server,
        ),
    )


def _served_model(f: Foundation, model: ModelConfig, prices: PriceTable) -> pulumi.Output[str]:
    """One served model: its blue/green endpoint, SLOs, monitoring, drift pipeline and batch scoring."""
    platform, identity, keys = f.platform, f.identity, f.keys
    endpoint = ModelEndpoint(
        model.name,
        platform,
        EndpointArgs(
            model=model,
            execution_role_arn=identity.roles["execution"].arn,
            subnet_ids=f.network.subnet_ids,
            security_group_id=f.network.workload_sg.id,
            volume_key=keys.keys["artifacts"],
            capture_key=keys.keys["phi"],
            logs_key=keys.keys["logs"],
            capture_bucket=f.bucket("data-capture"),
            alert_topic_arn=f.alerts.topic.arn,
            boundary_arn=identity.boundary.arn,
        ),
    )
    slo = ModelSlo(
        f"{model.name}-slo",
        platform,
        model,
        platform.config.slo_for(model),
        prices.instance(model.serving.instance_type),
        f.alerts.topic.arn,
    )
    ModelMonitoring(
        f"{model.name}-monitoring", platform, model, f.alerts.topic.arn, endpoint.alarms.alarms, slo.cost_queries
    )
    DriftMonitoring(
        f"{model.name}-drift",
        platform,
        model,
        DriftMonitoringArgs(
            role_arn=identity.roles["execution"].arn,
            image_uri=f.steps_image(),
            subnet_ids=f.network.subnet_ids,
            security_group_id=f.network.workload_sg.id,
            phi_key=keys.keys["phi"],
            artifacts_key=keys.keys["artifacts"],
            capture_bucket=f.bucket("data-capture"),
            artifact_bucket=f.bucket("model-artifacts"),
            data_bucket=f.bucket("phi-data"),
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
            data_bucket=f.bucket("phi-data"),
            boundary_arn=identity.boundary.arn,
            schedule_key=keys.keys["logs"],
        ),
    )
    return endpoint.endpoint.name


def _guardrails(f: Foundation) -> None:
    models = f.platform.config.models
    Guardrails(
        "guardrails",
        f.platform,
        GuardrailArgs(
            subnet_ids=f.network.subnet_ids,
            security_group_id=f.network.workload_sg.id,
            boundary_arn=f.identity.boundary.arn,
            topic_arn=f.alerts.topic.arn,
            evidence_bucket=f.bucket("evidence"),
            keys=f.keys.keys,
            models=[m.name for m in models if m.package_arn],
            all_models=[m.name for m in models],
        ),
    )


def _cds_hooks(f: Foundation, endpoints: dict[str, pulumi.Input[str]]) -> None:
    config = f.platform.config
    cds_models = [m for m in config.models if m.cds is not None]
    if config.cds is None or not cds_models:
        return
    cds_api = CdsHooksApi(
        "cds-hooks",
        f.platform,
        CdsApiArgs(
            subnet_ids=f.network.subnet_ids,
            security_group_id=f.network.workload_sg.id,
            execute_api_endpoint_id=f.network.interface_endpoints["com.amazonaws.{region}.execute-api"].id,
            boundary_arn=f.identity.boundary.arn,
            logs_key=f.keys.keys["logs"],
            evidence_key=f.keys.keys["audit"],
            evidence_mac_key=f.keys.keys["evidence-mac"],
            encounter_mac_key=f.keys.keys.get(CDS_ENCOUNTER_MAC),
            evidence_bucket=f.bucket("evidence"),
            endpoints={m.name: endpoints[m.name] for m in cds_models if m.package_arn},
            models=cds_models,
            topic_arn=f.alerts.topic.arn,
        ),
    )
    pulumi.export("cdsHooksUrl", cds_api.base_url)


def _exports(f: Foundation, endpoints: dict[str, pulumi.Input[str]]) -> None:
    network, keys, storage = f.network, f.keys, f.storage
    pulumi.export("vpcId", network.vpc.id)
    pulumi.export("endpoints", endpoints)
    pulumi.export("alertTopicArn", f.alerts.topic.arn)
    pulumi.export("privateSubnetIds", network.subnet_ids)
    pulumi.export("workloadSecurityGroupId", network.workload_sg.id)
    pulumi.export("buckets", {p: b.bucket.bucket for p, b in sorted(storage.buckets.items())})
    pulumi.export("keys", {p: k.arn for p, k in sorted(keys.keys.items())})
    pulumi.export("evidenceMacKeyArn", keys.arn("evidence-mac"))  # CLINOPS_EVIDENCE_MAC_KEY for verify/release
    pulumi.export("roles", {p: r.arn for p, r in sorted(f.identity.roles.items())})
    groups = f.registry.groups if f.registry else {}
    pulumi.export("modelPackageGroups", {n: g.arn for n, g in sorted(groups.items())})
