"""Engine 4: the allow side. Every access a platform flow needs must be allowed, and every access that must never
work must be denied, when AWS evaluates the plan's real policies.

The catalogue is `policies/intents.yaml` (reviewed like code). Each intent is expanded per stack against the plan
(ARNs resolved from the plan's own references), turned into a request with its context (encryption headers,
`kms:ViaService`, the caller's account), and evaluated by `@cloud-copilot/iam-simulate` with the principal's
identity policies, its permissions boundary, the resource policy (from whichever plan of the batch owns the
resource, so cross-account flows are judged on both sides) and the VPC endpoint policy of calls made from the
private subnets. All simulations of a gate run go to one Node process.

Beside IAM, three plan checks the evaluator cannot make: calls from the VPC need an endpoint for their service
(`via`), Lambda functions must be created after their role's policies (CreateFunction checks them), and data
flows: each pipeline input has a producer, each writer uses the key its bucket requires, and server access logs
go to a bucket S3 can deliver them to (SSE-S3).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clinops.config import YAML_LOADER
from policies import controls
from policies.engines import iam_evaluator
from policies.engines.access_model import (
    BUCKET_LOGGING,
    BUCKET_SSE,
    ENDPOINT,
    LOG_GROUP,
    PIPELINE,
    REST_API_POLICY,
    ROLE,
    ROLE_POLICY,
    TOPIC,
    AccessModel,
    build_model,
)
from policies.engines.pipeline_io import PipelineIO, pipeline_io
from policies.model import CheckResult, EngineReport
from policies.plan import Plan, PlanResource

ENGINE = "access"
TRACKING_SERVER = "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer"
CATALOGUE = Path(__file__).resolve().parents[1] / "intents.yaml"
OUTSIDER_ACCOUNT = "999999999999"
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Admin", "Effect": "Allow", "Action": "*", "Resource": "*"}],
}
_TEMPLATE = re.compile(r"\{([^{}]+)\}")
WHEN = ("all", "registry", "promotion", "served")
JUDGED_TYPES = (
    ROLE,
    ROLE_POLICY,
    "aws:iam/policy:Policy",
    "aws:kms/key:Key",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:sns/topicPolicy:TopicPolicy",
    "aws:ecr/repositoryPolicy:RepositoryPolicy",
    "aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy",
    "aws:cloudwatch/eventBusPolicy:EventBusPolicy",
    "aws:ec2/vpcEndpoint:VpcEndpoint",
    "aws:lambda/function:Function",
    REST_API_POLICY,
    PIPELINE,
    BUCKET_LOGGING,
    "aws:s3/bucketObjectv2:BucketObjectv2",
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
    "aws:cloudtrail/trail:Trail",
    # read to resolve ARNs, aliases, names and rules the intents and plan checks use
    "aws:s3/bucket:Bucket",
    BUCKET_SSE,
    "aws:kms/alias:Alias",
    "aws:sqs/queue:Queue",
    TOPIC,
    ENDPOINT,
    LOG_GROUP,
    "aws:scheduler/schedule:Schedule",
    "aws:lambda/permission:Permission",
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup",
    "aws:ecr/repository:Repository",
    TRACKING_SERVER,
)


class CatalogueError(Exception):
    """intents.yaml is unusable: the message names the entry, the field and the fix."""


class Unresolved(Exception):
    """A template names something the plan does not have."""


# ----------------------------------------------------------------------------------------------- catalogue
@dataclass(frozen=True)
class Intent:
    flow: str
    expect: str  # "allow" | "deny"
    principal: str
    action: str
    resource: str
    when: str = "all"
    each: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    via: str | None = None
    sse: str | None = None
    sse_key: str | None = None
    kms_via: str | None = None
    layer: str | None = None
    fix: str = ""
    why: str = ""
    index: int = 0


@dataclass(frozen=True)
class Catalogue:
    principals: dict[str, dict[str, Any]]
    intents: list[Intent]
    perimeter: dict[str, str]
    endpoint_probe: tuple[str, str]  # action, resource
    sources: list[tuple[str, str]]  # S3 URI template, who writes it


_INTENT_KEYS = {
    "principal",
    "action",
    "resource",
    "when",
    "each",
    "context",
    "via",
    "sse",
    "sse_key",
    "kms_via",
    "layer",
    "fix",
    "expect",
}
EACH = (
    "model",
    "served",
    "cds",
    "lambda",
    "traced_lambda",
    "lambda_with_dlq",
    "contract",
    "logged_bucket",
    "key",
    "platform_role",
    "training_output",
    "training_input",
    "drift_output",
    "drift_input",
)


def load_catalogue(path: Path = CATALOGUE) -> Catalogue:
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{path}: cannot read the intents catalogue ({exc})") from None
    if not isinstance(doc, dict):
        raise CatalogueError(f"{path}: expected a mapping with 'flows' and 'must_deny'")
    principals = doc.get("principals") or {}
    for name, declared in principals.items():
        if not isinstance(declared, dict) or not (isinstance(declared.get("arn"), str) or declared.get("anonymous")):
            raise CatalogueError(
                f"{path.name}: principals.{name}: needs 'arn' (a principal's ARN template) or 'anonymous: true' "
                "(an unsigned caller)"
            )
    intents: list[Intent] = []
    for section, expect in (("flows", "allow"), ("must_deny", "deny")):
        groups = doc.get(section) or {}
        if not isinstance(groups, dict):
            raise CatalogueError(f"{path}: '{section}' must map flow names to {{why, intents}}")
        for flow, group in groups.items():
            where = f"{path.name}: {section}.{flow}"
            if not isinstance(group, dict) or not isinstance(group.get("intents"), list):
                raise CatalogueError(f"{where}: needs an 'intents' list")
            for i, raw in enumerate(group["intents"]):
                at = f"{where}.intents[{i}]"
                if not isinstance(raw, dict):
                    raise CatalogueError(f"{at}: expected a mapping")
                unknown = sorted(set(raw) - _INTENT_KEYS)
                if unknown:
                    raise CatalogueError(
                        f"{at}: unknown field(s) {', '.join(unknown)}; fix: one of {sorted(_INTENT_KEYS)}"
                    )
                for required in ("principal", "action", "resource"):
                    if not isinstance(raw.get(required), str) or not raw[required]:
                        raise CatalogueError(f"{at}: '{required}' is missing; fix: give it as a string")
                when = raw.get("when", group.get("when", "all"))
                each = raw.get("each", group.get("each"))
                if when not in WHEN:
                    raise CatalogueError(f"{at}: when '{when}' is not one of {', '.join(WHEN)}")
                if each is not None and each not in EACH:
                    raise CatalogueError(f"{at}: each '{each}' is not one of {', '.join(EACH)}")
                principal = raw["principal"]
                if not principal.startswith(("role:", "service:")) and principal not in principals:
                    raise CatalogueError(
                        f"{at}: principal '{principal}' is not role:<name>, service:<name> or a "
                        f"declared principal ({', '.join(sorted(principals))})"
                    )
                intents.append(
                    Intent(
                        flow=flow,
                        expect=raw.get("expect", expect),
                        principal=principal,
                        action=raw["action"],
                        resource=raw["resource"],
                        when=when,
                        each=each,
                        context=dict(raw.get("context") or {}),
                        via=raw.get("via"),
                        sse=raw.get("sse"),
                        sse_key=raw.get("sse_key"),
                        kms_via=raw.get("kms_via"),
                        layer=raw.get("layer"),
                        fix=raw.get("fix", ""),
                        why=str(group.get("why", "")),
                        index=i,
                    )
                )
    perimeter = doc.get("perimeter") or {}
    return Catalogue(
        principals=principals,
        intents=intents,
        perimeter=dict(perimeter.get("actions") or {}),
        endpoint_probe=_probe(perimeter.get("endpoint_probe"), path),
        sources=_sources(doc.get("sources"), path),
    )


def _sources(raw: Any, path: Path) -> list[tuple[str, str]]:
    out = []
    for i, entry in enumerate(raw or []):
        if not isinstance(entry, dict) or not entry.get("uri") or not entry.get("producer"):
            raise CatalogueError(f"{path.name}: sources[{i}] needs 'uri' and 'producer' (who writes that prefix)")
        out.append((str(entry["uri"]), str(entry["producer"])))
    return out


def _probe(raw: Any, path: Path) -> tuple[str, str]:
    if raw is None:  # an outsider reading its own bucket: only an endpoint policy can stop that
        return "s3:GetObject", f"arn:aws:s3:::outsider-{OUTSIDER_ACCOUNT}/probe"
    if not isinstance(raw, dict) or not isinstance(raw.get("action"), str) or not isinstance(raw.get("resource"), str):
        raise CatalogueError(f"{path.name}: perimeter.endpoint_probe needs 'action' and 'resource' strings")
    return raw["action"], raw["resource"].replace("{outsider_account}", OUTSIDER_ACCOUNT)


# ----------------------------------------------------------------------------------------------- expansion
@dataclass
class Check:
    """One request to judge: an intent made concrete for one stack."""

    flow: str
    expect: str
    principal: str  # ARN or service principal
    principal_kind: str  # role | service | admin
    action: str
    resource: str
    context: dict[str, Any]
    urn: str
    fix: str
    why: str
    role: PlanResource | None = None
    boundary_of: PlanResource | None = None  # a declared principal placed under this managed policy
    via: str | None = None
    via_endpoint: PlanResource | None = None
    layer: str | None = None
    problem: str | None = None  # decided without simulation (e.g. no endpoint, unresolved reference)
    note: str | None = None
    subject: str = ""  # what the intent was expanded for (a model, a function, a pipeline step)
    simulation: dict[str, Any] | None = None


class Resolver:
    """Fills `{...}` templates of one intent for one stack (and one expansion item)."""

    def __init__(self, model: AccessModel, batch: dict[str, AccessModel], values: dict[str, str]) -> None:
        self.model, self.batch, self.values = model, batch, values
        self.accounts_of_buckets: dict[str, str] = {}
        # keys of a registry plan not in this run: aliases by the platform's naming (alias/<prefix>-<purpose>)
        self.assumed_aliases: dict[str, list[str]] = {}

    def __call__(self, text: str) -> str:
        previous = None
        while previous != text:
            previous, text = text, _TEMPLATE.sub(lambda m: self._one(m.group(1)), text)
        return text

    def deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        return value

    def registry(self) -> AccessModel | None:
        return self.batch.get(self.model.registry_account)

    def _one(self, ref: str) -> str:
        m = self.model
        simple = {
            "account": m.account,
            "region": m.region,
            "stack": m.stack,
            "prefix": m.prefix,
            "registry_account": m.registry_account,
            "outsider_account": OUTSIDER_ACCOUNT,
            **self.values,
        }
        if ref in simple:
            return simple[ref]
        if ref == "deploy_identity":
            return m.deploy_identity
        kind, _, arg = ref.partition(":")
        if kind == "bucket":
            name = m.bucket_name(arg)
            if name is None:
                raise Unresolved(f"the plan has no bucket '{arg}'")
            self.accounts_of_buckets[name] = m.account
            return name
        if kind == "registry_bucket":
            reg = self.registry()
            name = reg.bucket_name(arg) if reg else f"clinops-dev-{m.registry_account}-{arg}"
            if name is None:
                raise Unresolved(f"the registry plan has no bucket '{arg}'")
            self.accounts_of_buckets[name] = m.registry_account
            return name
        if kind == "key":
            arn = m.key_arn(arg)
            if arn is None:
                raise Unresolved(f"the plan has no key '{arg}-key' referenced by ARN")
            return arn
        if kind == "registry_key":
            reg = self.registry()
            if reg is None:
                arn = f"arn:aws:kms:{m.region}:{m.registry_account}:key/{arg}-key"
                self.assumed_aliases[arn] = [f"alias/clinops-dev-{arg}"]
                return arn
            arn = reg.key_arn(arg)
            if arn is None:
                raise Unresolved(f"the registry plan has no key '{arg}-key'")
            return arn
        if kind == "role":
            role = m.role(arg)
            if role is None:
                raise Unresolved(f"the plan has no role '{arg}'")
            return m.role_arn(role)
        if kind == "topic":
            topic = m.resource(TOPIC, arg)
            if topic is None:
                raise Unresolved(f"the plan has no SNS topic '{arg}'")
            return m.arn_of(topic, "sns") or f"arn:aws:sns:{m.region}:{m.account}:{topic.inputs.get('name')}"
        if kind == "pipeline":
            pipeline = m.resource(PIPELINE, arg)
            if pipeline is None:
                raise Unresolved(f"the plan has no pipeline '{arg}'")
            name = pipeline.inputs.get("pipelineName")
            return m.arn_of(pipeline, "sagemaker") or f"arn:aws:sagemaker:{m.region}:{m.account}:pipeline/{name}"
        if kind == "log_group":
            group = m.resource(LOG_GROUP, arg)
            if group is None:
                raise Unresolved(f"the plan has no log group '{arg}'")
            return f"arn:aws:logs:{m.region}:{m.account}:log-group:{group.inputs.get('name')}"
        if kind == "schedule":
            schedule = m.resource("aws:scheduler/schedule:Schedule", arg)
            if schedule is None:
                raise Unresolved(f"the plan has no schedule '{arg}'")
            schedule_group = schedule.inputs.get("groupName") or "default"
            return f"arn:aws:scheduler:{m.region}:{m.account}:schedule/{schedule_group}/{schedule.inputs.get('name')}"
        if ref == "tracking_server":
            server = next(iter(m.plan.of_type(TRACKING_SERVER)), None)
            if server is None:
                raise Unresolved("the plan has no MLflow tracking server")
            name = server.inputs.get("trackingServerName")
            return f"arn:aws:sagemaker:{m.region}:{m.account}:mlflow-tracking-server/{name}"
        if kind == "vpce":
            endpoint = m.vpc_endpoint(arg)
            if endpoint is None:
                raise Unresolved(f"the plan has no VPC endpoint for '{arg}'")
            # the id another resource's policy uses (aws:SourceVpce), or a stand-in when none refers to it: the
            # plan holds no endpoint ids before apply
            return m.endpoint_id(endpoint) or f"vpce-{endpoint.name}"
        if ref == "cds_api":
            arn = m.rest_api_arn()
            if arn is None:
                raise Unresolved("the plan has no CDS Hooks API with a resource policy")
            return arn
        if kind == "trail":
            trail = next(iter(m.plan.of_type("aws:cloudtrail/trail:Trail")), None)
            if trail is None:
                raise Unresolved("the plan has no CloudTrail trail")
            return f"arn:aws:cloudtrail:{m.region}:{m.account}:trail/{trail.inputs.get('name')}"
        raise Unresolved(f"unknown template '{{{ref}}}' (fix the intents catalogue)")


def _served_values(model: AccessModel, name: str) -> dict[str, str]:
    values = {"model": name, "endpoint": f"{model.prefix}-{name}"}
    endpoint = model.resource(ENDPOINT, f"{name}-endpoint")
    if endpoint is not None:
        values["endpoint"] = str(endpoint.inputs.get("name"))
        alarms = ((endpoint.inputs.get("deploymentConfig") or {}).get("autoRollbackConfiguration") or {}).get("alarms")
        if alarms:
            values["alarm"] = str(alarms[0].get("alarmName"))
    if name in model.packages:
        values["package"] = model.packages[name]
    return values


def _lambda_values(model: AccessModel, fn: PlanResource) -> dict[str, str]:
    role_arn = str(fn.inputs.get("role") or "")
    role = next((r for r in model.plan.of_type(ROLE) if role_arn.endswith(f"/{r.inputs.get('name')}")), None)
    values = {
        "function": str(fn.inputs.get("name")),
        "function_arn": f"arn:aws:lambda:{model.region}:{model.account}:function:{fn.inputs.get('name')}",
        "function_role": role.name if role else f"<no role {role_arn}>",
        "function_key": str(fn.inputs.get("kmsKeyArn") or ""),
        "function_dlq": str((fn.inputs.get("deadLetterConfig") or {}).get("targetArn") or ""),
    }
    group = (fn.inputs.get("loggingConfig") or {}).get("logGroup") or f"/aws/lambda/{fn.inputs.get('name')}"
    values["function_log_group"] = f"arn:aws:logs:{model.region}:{model.account}:log-group:{group}"
    return values


def _io_values(model: AccessModel, io: PipelineIO) -> dict[str, str]:
    role_arn = str(io.role_arn or "")
    role = next((r for r in model.plan.of_type(ROLE) if role_arn.endswith(f"/{r.inputs.get('name')}")), None)
    return {
        "io_object": io.example_object(),
        "io_key": str(io.kms_key or ""),
        "io_role": role.name if role else f"<no role {role_arn}>",
        "io_step": f"{io.pipeline}/{io.step}",
    }


def expansions(model: AccessModel, each: str | None) -> list[dict[str, str]]:
    plan = model.plan
    if each is None:
        return [{}]
    if each == "model":
        return [_served_values(model, name) for name in model.models]
    if each == "served":
        return [_served_values(model, name) for name in model.served_models]
    if each == "cds":
        return [_served_values(model, name) for name in model.cds_models]
    if each in ("lambda", "traced_lambda", "lambda_with_dlq"):
        functions = plan.of_type("aws:lambda/function:Function")
        if each == "traced_lambda":
            functions = [f for f in functions if (f.inputs.get("tracingConfig") or {}).get("mode") == "Active"]
        if each == "lambda_with_dlq":
            functions = [f for f in functions if (f.inputs.get("deadLetterConfig") or {}).get("targetArn")]
        if each == "lambda":
            functions = [f for f in functions if f.inputs.get("kmsKeyArn")] or functions
        return [_lambda_values(model, f) for f in functions]
    if each == "contract":
        return [
            {"contract_object": f"arn:aws:s3:::{o.inputs.get('bucket')}/{o.inputs.get('key')}"}
            for o in plan.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
            if "/contract/" in str(o.inputs.get("key"))
        ]
    if each == "logged_bucket":
        return [{"logged_bucket": str(b.inputs.get("bucket"))} for b in plan.of_type(BUCKET_LOGGING)]
    if each == "key":
        return [{"key_purpose": k.name.removesuffix("-key")} for k in plan.of_type("aws:kms/key:Key")]
    if each == "platform_role":
        return [{"platform_role": r.name} for r in plan.of_type(ROLE)]
    kind, direction = each.split("_")
    suffix = "-training" if kind == "training" else "-drift-pipeline"
    found = []
    for pipeline in plan.of_type(PIPELINE):
        if pipeline.name.endswith(suffix):
            found += [_io_values(model, io) for io in pipeline_io(pipeline) if io.direction == direction]
    return found


def applies(model: AccessModel, when: str) -> bool:
    return (
        when == "all"
        or (when == "registry" and model.is_registry)
        or (when == "promotion" and not model.is_registry)
        or (when == "served" and bool(model.served_models))
    )


def expand(catalogue: Catalogue, model: AccessModel, batch: dict[str, AccessModel]) -> list[Check]:
    checks: list[Check] = []
    for intent in catalogue.intents:
        if not applies(model, intent.when):
            continue
        for values in expansions(model, intent.each):
            checks.append(_check(catalogue, intent, model, batch, values))
    return checks


def _check(
    catalogue: Catalogue, intent: Intent, model: AccessModel, batch: dict[str, AccessModel], values: dict[str, str]
) -> Check:
    resolve = Resolver(model, batch, values)
    stack_urn = model.plan.stack_urn()
    try:
        principal, kind, role = _principal(catalogue, intent, model, resolve)
        action = resolve(intent.action)
        resource = resolve(intent.resource)
        context = {k: resolve.deep(v) for k, v in intent.context.items()}
        if intent.sse or intent.sse_key:
            key = resolve(intent.sse_key) if intent.sse_key else resolve(f"{{key:{intent.sse}}}")
            context["s3:x-amz-server-side-encryption"] = "aws:kms"
            context["s3:x-amz-server-side-encryption-aws-kms-key-id"] = key
        fix = resolve(intent.fix) if intent.fix else ""
    except Unresolved as exc:
        return Check(
            flow=intent.flow,
            expect=intent.expect,
            principal=intent.principal,
            principal_kind="?",
            action=intent.action,
            resource=intent.resource,
            context={},
            urn=stack_urn,
            fix=intent.fix,
            why=intent.why,
            problem=f"{exc}; the flow cannot be judged",
        )
    account = principal.split(":")[4] if principal.startswith("arn:") else model.account
    if kind not in ("service", "anonymous"):
        context.setdefault("aws:PrincipalArn", principal)
        context.setdefault("aws:PrincipalAccount", account)
        context.setdefault("aws:RequestedRegion", model.region)
    context.setdefault("aws:SecureTransport", "true")
    if action.startswith("s3:"):
        context.setdefault("s3:TlsVersion", "1.3")
    if intent.kms_via:
        context["kms:ViaService"] = f"{intent.kms_via}.{model.region}.amazonaws.com"
    if action.startswith("kms:") and kind not in ("service", "anonymous"):
        context.setdefault("kms:CallerAccount", account)  # KMS sets it on every request
    boundary = None
    if kind == "admin" and catalogue.principals[intent.principal].get("boundary"):
        boundary = model.resource("aws:iam/policy:Policy", str(catalogue.principals[intent.principal]["boundary"]))
        if boundary is None:
            return Check(
                flow=intent.flow,
                expect=intent.expect,
                principal=principal,
                principal_kind=kind,
                action=action,
                resource=resource,
                context={},
                urn=stack_urn,
                fix=intent.fix,
                why=intent.why,
                problem="the plan has no permissions boundary policy to judge",
            )
    owner = role or boundary
    urn = owner.urn if owner is not None else None
    urn = urn or _resource_urn(model, batch, resource, resolve) or stack_urn
    check = Check(
        subject=_subject(values),
        flow=intent.flow,
        expect=intent.expect,
        principal=principal,
        principal_kind=kind,
        action=action,
        resource=resource,
        context=context,
        urn=urn,
        fix=fix,
        why=intent.why,
        role=role,
        via=intent.via,
        layer=intent.layer,
        boundary_of=boundary,
    )
    if intent.via:
        check.via_endpoint = model.vpc_endpoint(intent.via)
        if check.via_endpoint is None and intent.expect == "allow":
            check.problem = (
                f"called from the private subnets, but the plan has no VPC endpoint for '{intent.via}' "
                "(no NAT, no internet): the call cannot reach AWS"
            )
            check.fix = check.fix or f"add an interface endpoint for {intent.via} with the data-perimeter policy"
            return check
    check.simulation = _simulation(check, model, batch, resolve)
    return check


SUBJECT_KEYS = ("io_step", "function", "contract_object", "logged_bucket", "key_purpose", "platform_role", "model")


def _subject(values: dict[str, str]) -> str:
    return next((values[k] for k in SUBJECT_KEYS if values.get(k)), "")


def _principal(
    catalogue: Catalogue, intent: Intent, model: AccessModel, resolve: Resolver
) -> tuple[str, str, PlanResource | None]:
    name = resolve(intent.principal)
    if name.startswith("role:"):
        role = model.role(name.removeprefix("role:"))
        if role is None:
            raise Unresolved(f"the plan has no role '{name.removeprefix('role:')}'")
        return model.role_arn(role), "role", role
    if name.startswith("service:"):
        return name.removeprefix("service:"), "service", None
    declared = catalogue.principals[intent.principal]
    if declared.get("anonymous"):
        return "anonymous", "anonymous", None
    return resolve(str(declared["arn"])), "admin", None


def _resource_account(model: AccessModel, resource: str, resolve: Resolver) -> str:
    if resource.startswith("arn:aws:s3:::"):
        bucket = resource.removeprefix("arn:aws:s3:::").split("/", 1)[0]
        if bucket in resolve.accounts_of_buckets:
            return resolve.accounts_of_buckets[bucket]
        for other in resolve.batch.values():
            if any(b.inputs.get("bucket") == bucket for b in other.plan.of_type("aws:s3/bucket:Bucket")):
                return other.account
        return OUTSIDER_ACCOUNT  # a bucket no platform plan declares is somebody else's
    parts = resource.split(":")
    return parts[4] if len(parts) > 4 and parts[4] else model.account


def _resource_urn(model: AccessModel, batch: dict[str, AccessModel], resource: str, resolve: Resolver) -> str | None:
    if not resource.startswith("arn:"):
        return None
    owner = batch.get(_resource_account(model, resource, resolve))
    found = owner.resource_policy(resource) if owner is not None and owner.plan is model.plan else None
    return found[0].urn if found else None


def _simulation(check: Check, model: AccessModel, batch: dict[str, AccessModel], resolve: Resolver) -> dict[str, Any]:
    identity: list[dict[str, Any]] = []
    boundaries: list[dict[str, Any]] = []
    if check.principal_kind == "role" and check.role is not None:
        identity = [{"name": n, "policy": d} for n, d in model.identity_policies(check.role)]
        boundary = model.boundary(check.role)
        if boundary:
            boundaries = [{"name": boundary[0], "policy": boundary[1]}]
    elif check.principal_kind == "admin":
        identity = [{"name": "administrator", "policy": ADMIN_POLICY}]
        if check.boundary_of is not None:
            doc = model.document(check.boundary_of, "policy")
            boundaries = [{"name": check.boundary_of.name, "policy": doc or {"Version": "2012-10-17", "Statement": []}}]
    resource_account = _resource_account(model, check.resource, resolve)
    resource_policy = None
    owner = batch.get(resource_account)
    principal_account = check.principal.split(":")[4] if check.principal.startswith("arn:") else model.account
    if owner is not None:
        found = owner.resource_policy(check.resource) if check.resource.startswith("arn:") else None
        resource_policy = found[1] if found else None
        if found and found[0].type == "aws:kms/key:Key":
            # KMS puts the key's aliases in every request on it (kms:ResourceAliases)
            aliases = owner.aliases(found[0])
            if aliases:
                check.context.setdefault("kms:ResourceAliases", aliases)
    elif resource_account != principal_account and resource_account != OUTSIDER_ACCOUNT:
        # The owning plan is not in this gate run: judge the caller's side alone and say so.
        resource_policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "OtherSideNotInThisRun",
                    "Effect": "Allow",
                    "Principal": {"AWS": check.principal},
                    "Action": check.action,
                    "Resource": check.resource,
                }
            ],
        }
        check.note = f"resource policy in account {resource_account} not in this gate run: caller side only"
        if check.resource in resolve.assumed_aliases:
            check.context.setdefault("kms:ResourceAliases", resolve.assumed_aliases[check.resource])
    simulation: dict[str, Any] = {
        "request": {
            "principal": {"type": "Anonymous"} if check.principal_kind == "anonymous" else check.principal,
            "action": check.action,
            "resource": {"resource": check.resource, "accountId": resource_account},
            "contextVariables": check.context,
        },
        "identityPolicies": identity,
        "serviceControlPolicies": [],
        "resourceControlPolicies": [],
    }
    if resource_policy is not None:
        simulation["resourcePolicy"] = resource_policy
    if boundaries:
        simulation["permissionBoundaryPolicies"] = boundaries
    if check.via_endpoint is not None:
        doc = model.document(check.via_endpoint, "policy")
        if doc is not None:
            simulation["vpcEndpointPolicies"] = [{"name": check.via_endpoint.name, "policy": doc}]
    return simulation


# ----------------------------------------------------------------------------------------------- perimeter
def perimeter_checks(catalogue: Catalogue, model: AccessModel) -> list[Check]:
    """Every resource policy: no anonymous caller, no outsider. Every interface endpoint: no outsider."""
    checks: list[Check] = []
    outsider = f"arn:aws:iam::{OUTSIDER_ACCOUNT}:role/outsider"
    for resource, arn, doc in model.resource_policies():
        service = arn.split(":")[2] if arn.startswith("arn:") else "sqs"
        action = catalogue.perimeter.get(service)
        if action is None or not arn.startswith("arn:"):
            continue
        for who, kind in (("anonymous", "anonymous"), (outsider, "admin")):
            request_context: dict[str, Any] = {"aws:SecureTransport": "true", "aws:RequestedRegion": model.region}
            if action.startswith("s3:"):
                request_context["s3:TlsVersion"] = "1.3"
            if kind == "admin":
                request_context.update({"aws:PrincipalArn": who, "aws:PrincipalAccount": OUTSIDER_ACCOUNT})
            request = {
                "principal": {"type": "Anonymous"} if kind == "anonymous" else who,
                "action": action,
                "resource": {"resource": arn, "accountId": model.account},
                "contextVariables": request_context,
            }
            simulation = {
                "request": request,
                "identityPolicies": [] if kind == "anonymous" else [{"name": "administrator", "policy": ADMIN_POLICY}],
                "serviceControlPolicies": [],
                "resourceControlPolicies": [],
                "resourcePolicy": doc,
            }
            checks.append(
                Check(
                    flow="perimeter",
                    expect="deny",
                    principal=who,
                    principal_kind=kind,
                    action=action,
                    resource=arn,
                    context=request_context,
                    urn=resource.urn,
                    fix="remove the statement that lets this principal in (name the platform accounts' roles only)",
                    why="no resource policy allows a public or foreign principal",
                    simulation=simulation,
                )
            )
    for endpoint in model.plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint"):
        endpoint_policy = model.document(endpoint, "policy")
        if endpoint.inputs.get("vpcEndpointType") != "Interface":
            continue
        probe, probe_resource = catalogue.endpoint_probe
        context = {
            "aws:PrincipalArn": outsider,
            "aws:PrincipalAccount": OUTSIDER_ACCOUNT,
            "aws:SecureTransport": "true",
        }
        simulation = {
            "request": {
                "principal": outsider,
                "action": probe,
                "resource": {"resource": probe_resource, "accountId": OUTSIDER_ACCOUNT},
                "contextVariables": context,
            },
            "identityPolicies": [{"name": "administrator", "policy": ADMIN_POLICY}],
            "serviceControlPolicies": [],
            "resourceControlPolicies": [],
            "vpcEndpointPolicies": [
                {
                    "name": endpoint.name,
                    "policy": endpoint_policy
                    or {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}],
                    },
                }
            ],
        }
        checks.append(
            Check(
                flow="perimeter",
                expect="deny",
                principal=outsider,
                principal_kind="admin",
                action=probe,
                resource=f"{probe_resource} through {endpoint.inputs.get('serviceName')}",
                context=context,
                urn=endpoint.urn,
                fix="give the endpoint a data-perimeter policy (aws:PrincipalAccount in the platform accounts)",
                why="no VPC endpoint lets a foreign principal through",
                layer="endpoint",
                simulation=simulation,
            )
        )
    return checks


# ----------------------------------------------------------------------------------------------- plan checks
def ordering_results(model: AccessModel) -> list[CheckResult]:
    """CreateFunction checks the role's ENI and dead-letter permissions when it runs: the function must be
    created after every policy attached to its role, or the first deploy fails intermittently."""
    results = []
    for fn in model.plan.of_type("aws:lambda/function:Function"):
        role_arn = str(fn.inputs.get("role") or "")
        role = next((r for r in model.plan.of_type(ROLE) if role_arn.endswith(f"/{r.inputs.get('name')}")), None)
        if role is None:
            continue
        attached = [p for p in model.plan.of_type(ROLE_POLICY) if role.urn in p.refs("role")]
        missing = sorted(p.name for p in attached if p.urn not in fn.dependencies)
        results.append(
            _result(
                "CLIN-ACCESS-ORDER",
                "Lambda functions are created after their role's permissions",
                "high",
                (controls.CONTINGENCY,),
                fn,
                not missing,
                f"deploy: {fn.inputs.get('name')} does not depend on {', '.join(missing)}: CreateFunction checks the "
                "role's ENI and dead-letter permissions at creation, so the first deploy fails intermittently",
                "add the role's RolePolicy resources to the function's depends_on",
            )
        )
    return results


SG_RULE_TYPES = {
    "egress": (
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
    ),
    "ingress": (
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
    ),
}


def security_group_results(model: AccessModel) -> list[CheckResult]:
    """A security group with inline rules must not also have separate rule resources: Pulumi documents that the
    combination overwrites rules, so after a refresh the next `up` strips the separate ones (e.g. the S3 egress
    every call through the gateway endpoint needs)."""
    results = []
    for group in model.plan.of_type("aws:ec2/securityGroup:SecurityGroup"):
        clashes = []
        for direction, types in SG_RULE_TYPES.items():
            if not group.inputs.get(direction):
                continue
            for rule in model.plan.of_type(*types):
                if group.urn in rule.refs("securityGroupId") and (
                    rule.type != types[1] or rule.inputs.get("type") == direction
                ):
                    clashes.append(f"{rule.name} ({direction})")
        results.append(
            _result(
                "CLIN-ACCESS-SG-RULES",
                "Security group rules are declared one way only",
                "high",
                (controls.TRANSMISSION,),
                group,
                not clashes,
                f"calls: {group.name} has inline rules and separate rule resources {', '.join(sorted(clashes))}; "
                "Pulumi overwrites one with the other, so after a refresh `up` removes the separate rules",
                "move every rule of the group into separate rule resources (or all inline)",
            )
        )
    return results


def data_flow_results(catalogue: Catalogue, model: AccessModel) -> list[CheckResult]:
    plan = model.plan
    results: list[CheckResult] = []
    resolve = Resolver(model, {model.account: model}, {})
    required_key = {}
    for sse in plan.of_type(BUCKET_SSE):
        for rule in sse.inputs.get("rules") or []:
            default = rule.get("applyServerSideEncryptionByDefault") or {}
            required_key[str(sse.inputs.get("bucket"))] = (default.get("sseAlgorithm"), default.get("kmsMasterKeyId"))
    ios = [io for p in plan.of_type(PIPELINE) for io in pipeline_io(p)]
    # writers: pipeline outputs, endpoint data capture, declared objects, the trail
    writers: list[tuple[PlanResource, str, str, str | None]] = []  # resource, what, bucket, key
    by_name = {p.name: p for p in plan.of_type(PIPELINE)}
    for io in ios:
        if io.direction == "output":
            writers.append((by_name[io.pipeline], f"{io.pipeline}/{io.step} writes {io.uri}", io.bucket, io.kms_key))
    for config in plan.of_type("aws:sagemaker/endpointConfiguration:EndpointConfiguration"):
        capture = config.inputs.get("dataCaptureConfig") or {}
        if isinstance(capture, dict) and capture.get("destinationS3Uri"):
            uri = str(capture["destinationS3Uri"])
            writers.append(
                (config, f"data capture to {uri}", uri.removeprefix("s3://").split("/")[0], capture.get("kmsKeyId"))
            )
    for obj in plan.of_type("aws:s3/bucketObjectv2:BucketObjectv2"):
        writers.append(
            (obj, f"object {obj.inputs.get('key')}", str(obj.inputs.get("bucket")), obj.inputs.get("kmsKeyId"))
        )
    for trail in plan.of_type("aws:cloudtrail/trail:Trail"):
        writers.append(
            (trail, "CloudTrail log files", str(trail.inputs.get("s3BucketName")), trail.inputs.get("kmsKeyId"))
        )
    for resource, what, bucket, key in writers:
        algorithm, wanted = required_key.get(bucket, (None, None))
        if algorithm != "aws:kms":
            continue
        ok = key == wanted
        results.append(
            _result(
                "CLIN-DATAFLOW-KEY",
                "Every writer uses the key its bucket requires",
                "high",
                (controls.ENCRYPTION,),
                resource,
                ok,
                f"data flow: {what} encrypted with {key or 'no key'}, but bucket {bucket} requires "
                f"{wanted} (its policy denies uploads naming another key)",
                f"encrypt with {wanted}, or write to a bucket whose key is {key}",
            )
        )
    # readers: every pipeline input prefix has a producer in the platform (or a declared external feed)
    producers = [io.uri for io in ios if io.direction == "output"]
    producers += [
        str((c.inputs.get("dataCaptureConfig") or {}).get("destinationS3Uri") or "")
        for c in plan.of_type("aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    ]
    producers += [
        f"s3://{o.inputs.get('bucket')}/{o.inputs.get('key')}"
        for o in plan.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    ]
    for model_name in model.models:
        for source, _producer in catalogue.sources:
            try:
                producers.append(Resolver(model, {model.account: model}, {"model": model_name})(source))
            except Unresolved:
                continue
    # a producer's literal prefix (up to its first wildcard) covers a reader it starts, or that starts it
    prefixes = list(dict.fromkeys(p.split("*", 1)[0] for p in producers if p.startswith("s3://")))
    for io in ios:
        if io.direction != "input":
            continue
        literal = io.literal()
        produced = any(literal.startswith(prefix) or prefix.startswith(literal) for prefix in prefixes)
        results.append(
            _result(
                "CLIN-DATAFLOW-SOURCE",
                "Every S3 prefix a job reads has a producer",
                "high",
                (controls.INTEGRITY,),
                by_name[io.pipeline],
                produced,
                f"data flow: {io.pipeline}/{io.step} reads {io.uri}, but nothing in the platform writes there",
                "publish it from the flow that owns it (e.g. release publishes the drift baseline), or declare the "
                "writer in policies/intents.yaml sources (with an intent proving it may write there)",
            )
        )
    # S3 server access logs: S3 documents SSE-KMS as unsupported for the target bucket
    for logging in plan.of_type(BUCKET_LOGGING):
        target = str(logging.inputs.get("targetBucket"))
        algorithm, key = required_key.get(target, (None, None))
        results.append(
            _result(
                "CLIN-DATAFLOW-ACCESS-LOGS",
                "Server access logs go to a bucket S3 can deliver to",
                "medium",
                (controls.AUDIT,),
                logging,
                algorithm != "aws:kms",
                f"data flow: access logs of {logging.inputs.get('bucket')} go to {target}, whose default encryption "
                f"is SSE-KMS ({key}); S3 documents SSE-KMS as unsupported for server access log target buckets",
                "encrypt the access-log bucket with SSE-S3 (AES256), or prove delivery after deploy",
            )
        )
    del resolve
    return results


def _result(
    rule_id: str,
    title: str,
    severity: str,
    control_ids: tuple[str, ...],
    resource: PlanResource,
    ok: bool,
    message: str,
    fix: str,
) -> CheckResult:
    return CheckResult(
        engine=ENGINE,
        rule_id=rule_id,
        title=title,
        severity=severity,  # type: ignore[arg-type]
        controls=control_ids,
        urn=resource.urn,
        resource_type=resource.type,
        status="passed" if ok else "failed",
        message="" if ok else message,
        fix="" if ok else fix,
    )


# ----------------------------------------------------------------------------------------------- judging
def _flow_controls(check: Check) -> tuple[str, ...]:
    if check.flow == "segregation-of-duties":
        return (controls.WORKFORCE_SECURITY, controls.ACCESS_CONTROL)
    if check.flow in ("phi-stays-inside", "keys-are-used-only-by-their-users"):
        return (controls.ACCESS_CONTROL, controls.ENCRYPTION)
    if check.flow == "evidence-is-immutable":
        return (controls.INTEGRITY, controls.AUDIT)
    if check.flow == "perimeter":
        return (controls.ACCESS_CONTROL, controls.TRANSMISSION)
    if check.flow in ("circuit-breaker", "endpoint", "canary"):
        return (controls.CONTINGENCY, controls.ACCESS_CONTROL)
    if check.flow in ("cloudtrail", "s3-access-logging", "flow-logs"):
        return (controls.AUDIT,)
    return (controls.ACCESS_CONTROL,)


def _explain(check: Check, decision: iam_evaluator.Decision) -> str:
    if decision.ignored:
        return (
            f"the evaluator does not accept context key(s) {', '.join(decision.ignored)} for {check.action}, so "
            "the request would be judged without them (fix the intent in policies/intents.yaml)"
        )
    if decision.result == "Error":
        return (
            f"the evaluator refused the request: {str(decision.errors)[:300]} (fix the intent in policies/intents.yaml)"
        )
    if decision.result == "ExplicitlyDenied":
        return "denied by " + ", ".join(decision.deny)
    missing = [layer for layer, result in decision.layers.items() if result not in ("Allowed", "NotApplicable")]
    if check.principal_kind in ("service", "anonymous"):
        missing = [m for m in missing if m not in ("identity", "boundary")]
    names = {
        "identity": "the role's policies",
        "resource": "the resource policy",
        "boundary": "the permissions boundary",
        "endpoint": "the VPC endpoint policy",
    }
    return "no allow in " + (", ".join(names.get(m, m) for m in missing) or "any policy")


def judge(check: Check, decision: iam_evaluator.Decision | None) -> CheckResult:
    rule = f"CLIN-{'ACCESS' if check.expect == 'allow' else 'DENY'}-{check.flow.upper()}"
    title = f"{check.flow}: {check.why}" if check.why else check.flow
    who = check.principal if check.principal_kind != "role" else check.principal.rsplit("/", 1)[-1]
    what = f"{who} {check.action} on {check.resource}" + (f" (for {check.subject})" if check.subject else "")
    note = f" [{check.note}]" if check.note else ""
    if check.problem is not None:
        ok, message = False, f"{check.flow}: {what}: {check.problem}"
    elif decision is None:
        ok, message = False, f"{check.flow}: {what}: not evaluated"
    elif decision.ignored:
        ok, message = False, f"{check.flow}: {what}: {_explain(check, decision)}"
    elif check.expect == "allow":
        ok = decision.allowed
        message = f"{check.flow}: {what} is {decision.result}: {_explain(check, decision)}{note}"
    else:
        allowed = decision.layers.get(check.layer) == "Allowed" if check.layer else decision.allowed
        ok = not allowed and decision.result != "Error"
        message = (
            f"{check.flow}: {what} must be denied but is allowed by {', '.join(decision.allow) or 'the policies'}"
            if decision.result != "Error"
            else f"{check.flow}: {what}: {_explain(check, decision)}"
        )
    fix = check.fix or (
        f"grant {check.action} on {check.resource} to {who} in every policy that must allow it (identity, "
        "boundary, resource, endpoint)"
        if check.expect == "allow"
        else "remove the allow that lets it through"
    )
    return CheckResult(
        engine=ENGINE,
        rule_id=rule,
        title=title[:160],
        severity="high" if check.expect == "allow" else "critical",
        controls=_flow_controls(check),
        urn=check.urn,
        resource_type=_type_of(check),
        status="passed" if ok else "failed",
        message="" if ok else message,
        fix="" if ok else fix,
    )


def _type_of(check: Check) -> str:
    return check.role.type if check.role is not None else "access-intent"


@dataclass
class Judgement:
    """Everything the engine decided for one plan (tests read the checks and decisions directly)."""

    checks: list[Check]
    decisions: list[iam_evaluator.Decision | None]
    results: list[CheckResult]
    unreadable: list[str]  # policies the model could not read while the checks were built (said in the notes)


def judge_plans(plans: Sequence[Plan], catalogue: Catalogue | None = None) -> tuple[list[Judgement], float, int]:
    catalogue = catalogue or load_catalogue()
    evaluator = iam_evaluator.Evaluator()  # Node loads the evaluator while the intents are expanded here
    try:
        return _judge(plans, catalogue, evaluator)
    finally:
        evaluator.close()


def _judge(
    plans: Sequence[Plan], catalogue: Catalogue, evaluator: iam_evaluator.Evaluator
) -> tuple[list[Judgement], float, int]:
    models = [build_model(p) for p in plans]
    batch = {m.account: m for m in models}
    per_plan = [expand(catalogue, m, batch) + perimeter_checks(catalogue, m) for m in models]
    flat = [(i, c) for i, checks in enumerate(per_plan) for c in checks if c.simulation is not None]
    started = time.perf_counter()
    # identical requests (the same key call made for several functions) are evaluated once, by the evaluator
    decisions = evaluator.evaluate([c.simulation or {} for _, c in flat])
    distinct = len(evaluator.batch.distinct) if evaluator.batch is not None else len(decisions)
    simulate_seconds = time.perf_counter() - started
    by_check = {id(c): d for (_, c), d in zip(flat, decisions, strict=True)}
    judgements = []
    for model, checks in zip(models, per_plan, strict=True):
        ds = [by_check.get(id(c)) for c in checks]
        results = [judge(c, d) for c, d in zip(checks, ds, strict=True)]
        results += ordering_results(model) + security_group_results(model) + data_flow_results(catalogue, model)
        judgements.append(Judgement(checks, ds, results, list(model.unreadable)))
    return judgements, simulate_seconds, distinct


def scan_plans(plans: Sequence[Plan]) -> list[EngineReport]:
    started = time.perf_counter()
    try:
        judgements, simulate_seconds, simulations = judge_plans(plans)
    except (iam_evaluator.EvaluatorUnavailable, CatalogueError) as exc:
        return [_unavailable(plan, str(exc)) for plan in plans]
    seconds = round((time.perf_counter() - started) / max(len(plans), 1), 3)
    reports = []
    for plan, judgement in zip(plans, judgements, strict=True):
        results = sorted(_dedupe(judgement.results), key=CheckResult.sort_key)
        notes = [
            f"{simulations} IAM simulations in one evaluator process for the batch ({simulate_seconds:.2f} s)",
            f"{sum(1 for c in judgement.checks if c.expect == 'allow')} allow intents, "
            f"{sum(1 for c in judgement.checks if c.expect == 'deny')} must-deny checks on this plan",
            *sorted({c.note for c in judgement.checks if c.note}),
            *judgement.unreadable,
        ]
        types = {r.type for r in plan.resources if r.custom}
        reports.append(
            EngineReport(
                engine=ENGINE,
                results=results,
                coverage={t: "seen" if t in JUDGED_TYPES else "unseen" for t in sorted(types)},
                seconds=seconds,
                notes=notes,
            )
        )
    return reports


def _dedupe(results: list[CheckResult]) -> Iterator[CheckResult]:
    seen = set()
    for r in results:
        key = (r.rule_id, r.urn, r.status, r.message)
        if key not in seen:
            seen.add(key)
            yield r


def _unavailable(plan: Plan, why: str) -> EngineReport:
    result = CheckResult(
        engine=ENGINE,
        rule_id="CLIN-ACCESS-ENGINE",
        title="The access engine could judge the plan",
        severity="high",
        controls=(controls.ACCESS_CONTROL,),
        urn=plan.stack_urn(),
        resource_type="policies/intents.yaml",
        status="failed",
        message=why,
        fix="see the message",
    )
    return EngineReport(engine=ENGINE, results=[result], notes=[why])


def scan(plan: Plan) -> EngineReport:
    return scan_plans([plan])[0]
