"""What the access engine needs from a plan: who the principals are, which policies bind them, which resource
policy guards each resource, which VPC endpoints a call from the private subnets goes through.

Everything is read from the plan's inputs (the same view every engine judges). ARNs are taken from the plan's
own references where it has them (a key's ARN appears wherever the key is used), so a simulation compares the
strings the deployed policies will hold; names with a fixed ARN form (buckets, roles, log groups) are formed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from policies.plan import Plan, PlanResource

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
MANAGED_POLICY = "aws:iam/policy:Policy"
KEY = "aws:kms/key:Key"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
BUCKET_SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
BUCKET_LOGGING = "aws:s3/bucketLogging:BucketLogging"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
ECR_POLICY = "aws:ecr/repositoryPolicy:RepositoryPolicy"
GROUP_POLICY = "aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy"
BUS_POLICY = "aws:cloudwatch/eventBusPolicy:EventBusPolicy"
VPC_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
LAMBDA_PERMISSION = "aws:lambda/permission:Permission"
REST_API_POLICY = "aws:apigateway/restApiPolicy:RestApiPolicy"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
PIPELINE = "aws:sagemaker/pipeline:Pipeline"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
TOPIC = "aws:sns/topic:Topic"

_VPCE_ID = re.compile(r"vpce-[0-9a-f]+")
_ARN = re.compile(r"arn:aws:[a-z0-9-]+:[a-z0-9-]*:\d{0,12}:[^\"'\s,\]}]+")


class AccessModelError(Exception):
    """A policy in the plan cannot be read (not JSON, a secret, unknown at preview): name it and the fix."""


@dataclass
class AccessModel:
    plan: Plan
    account: str
    region: str
    registry_account: str
    models: list[str]
    served_models: list[str]
    cds_models: list[str] = field(default_factory=list)  # served models with a CDS Hooks function
    deployers: list[str] = field(default_factory=list)  # principals.deployers: who runs `pulumi up`
    packages: dict[str, str] = field(default_factory=dict)  # model -> its pinned package ARN
    unreadable: list[str] = field(default_factory=list)  # policies that could not be read, with why
    _arns: dict[tuple[str, str], str | None] = field(default_factory=dict, repr=False)
    _assigned: dict[tuple[str, str], dict[str, str | None]] = field(default_factory=dict, repr=False)
    # Parsed policy documents by (URN, input): every check of a role re-reads its policies, and parsing the same
    # JSON again for each was a tenth of a 50-model gate's access engine. Nothing mutates a parsed document.
    _docs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)
    # A role's identity policies by role URN: checks of one role repeat the scan of every RolePolicy in the plan.
    _identity: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict, repr=False)
    # Who each input property was computed from, by target URN, in plan order: finding ARNs for every key or
    # topic otherwise walks every resource's dependencies once per target.
    _dependents: dict[str, list[tuple[PlanResource, str, tuple[str, ...]]]] | None = field(default=None, repr=False)

    @property
    def stack(self) -> str:
        return self.plan.stack

    @property
    def prefix(self) -> str:
        return f"clinops-{self.plan.stack}"

    @property
    def deploy_identity(self) -> str:
        """Who runs `pulumi up`: the first configured deployer, else a role of this account (not a persona)."""
        if self.deployers:
            return self.deployers[0]
        return f"arn:aws:iam::{self.account}:role/clinops-pulumi-deploy"

    @property
    def is_registry(self) -> bool:
        return self.registry_account == self.account

    # ----- lookups by logical (URN) name -----
    def resource(self, type_: str, logical: str) -> PlanResource | None:
        return next((r for r in self.plan.of_type(type_) if r.name == logical), None)

    def role(self, logical: str) -> PlanResource | None:
        return self.resource(ROLE, logical)

    def role_arn(self, role: PlanResource) -> str:
        return f"arn:aws:iam::{self.account}:role/{role.inputs.get('name') or role.name}"

    def bucket_name(self, purpose: str) -> str | None:
        bucket = self.resource(BUCKET, purpose)
        return str(bucket.inputs.get("bucket")) if bucket else None

    def arn_of(self, target: PlanResource, service: str) -> str | None:
        """The ARN other resources use for `target`: strings in inputs computed from it, preferring properties
        computed from it alone. None when nothing in the plan names it."""
        if (target.urn, service) not in self._arns:
            self._arns[(target.urn, service)] = self._find_arn(target, service)
        return self._arns[(target.urn, service)]

    def _find_arn(self, target: PlanResource, service: str) -> str | None:
        """The ARN string computed from `target`: one its dependents hold alone (a property computed from it
        only), else one every property computed from it (and others) holds, once the ARNs that resources of the
        same type own are set aside (e.g. a key named in one policy beside other keys)."""
        return self._assign(target.type, service).get(target.urn)

    def _assign(self, type_: str, service: str) -> dict[str, str | None]:
        if (type_, service) in self._assigned:
            return self._assigned[(type_, service)]
        candidates: dict[str, set[str]] = {}
        counts: dict[str, Counter[str]] = {}
        dependents = self._dependents_by_urn()
        for target in self.plan.of_type(type_):
            sole: Counter[str] = Counter()
            shared: Counter[str] = Counter()
            common: set[str] | None = None
            for r, prop, urns in dependents.get(target.urn, ()):
                if prop not in r.inputs:
                    continue
                found = [a for a in _arns(r.inputs[prop]) if a.startswith(f"arn:aws:{service}:") and "*" not in a]
                if not found:
                    continue
                (sole if len(urns) == 1 else shared).update(found)
                if len(urns) > 1:
                    common = set(found) if common is None else common & set(found)
            candidates[target.urn] = {sole.most_common(1)[0][0]} if sole else (common or set(shared))
            counts[target.urn] = sole or shared
        assigned: dict[str, str | None] = {}
        changed = True
        while changed:  # settle the unambiguous ones, then take their ARNs away from the others
            changed = False
            for urn, options in candidates.items():
                if urn not in assigned and len(options) == 1:
                    assigned[urn] = next(iter(options))
                    changed = True
            owned = {a for a in assigned.values() if a}
            for urn, options in candidates.items():
                if urn in assigned or not options & owned:
                    continue
                # every ARN common to its dependents is another's: look among all it was named beside
                left = (options - owned) or (set(counts[urn]) - owned)
                if left and left != options:
                    candidates[urn] = left
                    changed = True
        for urn, options in candidates.items():
            if urn not in assigned:
                ranked = [a for a, _ in counts[urn].most_common() if a in options]
                assigned[urn] = ranked[0] if ranked else None
        self._assigned[(type_, service)] = assigned
        return assigned

    def _dependents_by_urn(self) -> dict[str, list[tuple[PlanResource, str, tuple[str, ...]]]]:
        if self._dependents is None:
            self._dependents = {}
            for r in self.plan.resources:
                for prop, urns in r.property_dependencies.items():
                    for urn in dict.fromkeys(urns):
                        self._dependents.setdefault(urn, []).append((r, prop, urns))
        return self._dependents

    def key_arn(self, purpose: str) -> str | None:
        key = self.resource(KEY, f"{purpose}-key")
        return self.arn_of(key, "kms") if key else None

    def aliases(self, key: PlanResource) -> list[str]:
        return sorted(
            str(a.inputs.get("name"))
            for a in self.plan.of_type("aws:kms/alias:Alias")
            if key.urn in a.refs("targetKeyId") and a.inputs.get("name")
        )

    # ----- policies -----
    def document(self, resource: PlanResource, prop: str) -> dict[str, Any] | None:
        raw = resource.inputs.get(prop)
        if raw is None:
            return None
        if isinstance(raw, dict):
            return raw
        if not isinstance(raw, str) or raw == "[secret]" or raw.startswith("[unknown"):
            self.unreadable.append(f"{resource.urn} input '{prop}' is not a readable policy ({str(raw)[:40]})")
            return None
        if (resource.urn, prop) in self._docs:
            return self._docs[(resource.urn, prop)]
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            self.unreadable.append(f"{resource.urn} input '{prop}' is not JSON ({exc.msg})")
            return None
        if not isinstance(doc, dict):
            self.unreadable.append(f"{resource.urn} input '{prop}' is not a policy object")
            return None
        self._docs[(resource.urn, prop)] = doc
        return doc

    def identity_policies(self, role: PlanResource) -> list[tuple[str, dict[str, Any]]]:
        if role.urn in self._identity:
            return list(self._identity[role.urn])
        name = role.inputs.get("name") or role.name
        out = []
        for rp in self.plan.of_type(ROLE_POLICY):
            if rp.inputs.get("role") == name or role.urn in rp.refs("role"):
                doc = self.document(rp, "policy")
                if doc is not None:
                    out.append((rp.name, doc))
        self._identity[role.urn] = out
        return list(out)

    def boundary(self, role: PlanResource) -> tuple[str, dict[str, Any]] | None:
        arn = role.inputs.get("permissionsBoundary")
        if not arn:
            return None
        for policy in self.plan.of_type(MANAGED_POLICY):
            if policy.urn in role.refs("permissionsBoundary") or str(arn).endswith(f"/{policy.inputs.get('name')}"):
                doc = self.document(policy, "policy")
                if doc is not None:
                    return policy.name, doc
        # a boundary that is not in the plan cannot be judged: deny rather than guess
        return "missing-boundary", {"Version": "2012-10-17", "Statement": []}

    def resource_policy(self, arn: str) -> tuple[PlanResource, dict[str, Any] | None] | None:
        """The resource policy guarding `arn` in this plan, or None when the resource is not this plan's.
        Returns (resource, None) for a resource of this plan that has no policy."""
        service = arn.split(":")[2]
        if service == "s3":
            bucket = arn.split(":::", 1)[1].split("/", 1)[0]
            owner = next((b for b in self.plan.of_type(BUCKET) if b.inputs.get("bucket") == bucket), None)
            if owner is None:
                return None
            policy = next((p for p in self.plan.of_type(BUCKET_POLICY) if p.inputs.get("bucket") == bucket), None)
            return owner, self.document(policy, "policy") if policy else None
        if service == "kms":
            for key in self.plan.of_type(KEY):
                if self.arn_of(key, "kms") == arn:
                    return key, self.document(key, "policy")
            return None
        if service == "sns":
            for tp in self.plan.of_type(TOPIC_POLICY):
                if tp.inputs.get("arn") == arn:
                    return tp, self.document(tp, "policy")
            topic = next((t for t in self.plan.of_type(TOPIC) if arn.endswith(f":{t.inputs.get('name')}")), None)
            return (topic, None) if topic else None
        if service == "sqs":
            for queue in self.plan.of_type(QUEUE):
                if arn.endswith(f"/{queue.inputs.get('name')}") or arn.endswith(f":{queue.inputs.get('name')}"):
                    policy = next((p for p in self.plan.of_type(QUEUE_POLICY) if queue.urn in p.refs("queueUrl")), None)
                    return queue, self.document(policy, "policy") if policy else None
            return None
        if service == "ecr":
            repo = arn.rsplit("repository/", 1)[-1]
            for rp in self.plan.of_type(ECR_POLICY):
                if rp.inputs.get("repository") == repo:
                    return rp, self.document(rp, "policy")
            owner = next(
                (r for r in self.plan.of_type("aws:ecr/repository:Repository") if r.inputs.get("name") == repo), None
            )
            return (owner, None) if owner else None
        if service == "sagemaker" and ":model-package" in arn:
            group = (
                arn.split(":model-package-group/")[-1]
                if "model-package-group/" in arn
                else arn.split(":model-package/")[1].split("/")[0]
            )
            for gp in self.plan.of_type(GROUP_POLICY):
                if gp.inputs.get("modelPackageGroupName") == group:
                    return gp, self.document(gp, "resourcePolicy")
            owner = next(
                (
                    g
                    for g in self.plan.of_type("aws:sagemaker/modelPackageGroup:ModelPackageGroup")
                    if g.inputs.get("modelPackageGroupName") == group
                ),
                None,
            )
            return (owner, None) if owner else None
        if service == "events" and ":event-bus/" in arn:
            for bp in self.plan.of_type(BUS_POLICY):
                if arn.endswith(f"event-bus/{bp.inputs.get('eventBusName') or 'default'}"):
                    return bp, self.document(bp, "policy")
            return None
        if service == "lambda":
            return self._lambda_policy(arn)
        if service == "execute-api":
            api_id = arn.split(":", 5)[5].split("/", 1)[0]
            for policy in self.plan.of_type(REST_API_POLICY):
                if policy.inputs.get("restApiId") == api_id:
                    return policy, self.document(policy, "policy")
            return None
        return None

    def rest_api_arn(self) -> str | None:
        """The execute-api ARN of the plan's API (from its resource policy's `restApiId`), without stage/path."""
        policy = next(iter(self.plan.of_type(REST_API_POLICY)), None)
        api_id = policy.inputs.get("restApiId") if policy else None
        return f"arn:aws:execute-api:{self.region}:{self.account}:{api_id}" if api_id else None

    def endpoint_id(self, endpoint: PlanResource) -> str | None:
        """The `vpce-...` id other resources use for `endpoint` (inputs computed from it alone)."""
        for r in self.plan.resources:
            for prop, urns in r.property_dependencies.items():
                if urns == (endpoint.urn,) or list(urns) == [endpoint.urn]:
                    found = _VPCE_ID.findall(json.dumps(r.inputs.get(prop)))
                    if found:
                        return found[0]
        return None

    def _lambda_policy(self, arn: str) -> tuple[PlanResource, dict[str, Any] | None] | None:
        name = arn.rsplit(":", 1)[-1]
        function = next(
            (f for f in self.plan.of_type("aws:lambda/function:Function") if f.inputs.get("name") == name), None
        )
        if function is None:
            return None
        statements = []
        for permission in self.plan.of_type(LAMBDA_PERMISSION):
            if permission.inputs.get("function") != name:
                continue
            statement: dict[str, Any] = {
                "Sid": permission.name,
                "Effect": "Allow",
                "Principal": {"Service": permission.inputs.get("principal")},
                "Action": permission.inputs.get("action"),
                "Resource": arn,
            }
            if permission.inputs.get("sourceArn"):
                statement["Condition"] = {"ArnLike": {"aws:SourceArn": permission.inputs["sourceArn"]}}
            statements.append(statement)
        return function, {"Version": "2012-10-17", "Statement": statements}

    def vpc_endpoint(self, service: str) -> PlanResource | None:
        """The endpoint serving `service` ("s3", "kms", "sagemaker.api", "xray", ...) in this VPC."""
        wanted = {
            f"com.amazonaws.{self.region}.{service}",
            f"aws.sagemaker.{self.region}.{service.removeprefix('sagemaker.')}",
        }
        return next((e for e in self.plan.of_type(VPC_ENDPOINT) if e.inputs.get("serviceName") in wanted), None)

    def resource_policies(self) -> list[tuple[PlanResource, str, dict[str, Any]]]:
        """Every resource policy in the plan with the ARN it guards (for the perimeter must-denies)."""
        out: list[tuple[PlanResource, str, dict[str, Any]]] = []
        for p in self.plan.of_type(BUCKET_POLICY):
            doc = self.document(p, "policy")
            if doc:
                out.append((p, f"arn:aws:s3:::{p.inputs.get('bucket')}/probe", doc))
        for key in self.plan.of_type(KEY):
            doc, arn = self.document(key, "policy"), self.arn_of(key, "kms")
            if doc and arn:
                out.append((key, arn, doc))
        for p in self.plan.of_type(TOPIC_POLICY):
            doc = self.document(p, "policy")
            if doc:
                out.append((p, str(p.inputs.get("arn")), doc))
        for p in self.plan.of_type(ECR_POLICY):
            doc = self.document(p, "policy")
            if doc:
                out.append(
                    (p, f"arn:aws:ecr:{self.region}:{self.account}:repository/{p.inputs.get('repository')}", doc)
                )
        for p in self.plan.of_type(GROUP_POLICY):
            doc = self.document(p, "resourcePolicy")
            if doc:
                group = p.inputs.get("modelPackageGroupName")
                out.append((p, f"arn:aws:sagemaker:{self.region}:{self.account}:model-package/{group}/1", doc))
        for p in self.plan.of_type(BUS_POLICY):
            doc = self.document(p, "policy")
            if doc:
                bus = p.inputs.get("eventBusName") or "default"
                out.append((p, f"arn:aws:events:{self.region}:{self.account}:event-bus/{bus}", doc))
        for p in self.plan.of_type(QUEUE_POLICY):
            doc = self.document(p, "policy")
            if doc:
                out.append((p, "queue", doc))
        for p in self.plan.of_type(REST_API_POLICY):
            doc = self.document(p, "policy")
            if doc:
                arn = f"arn:aws:execute-api:{self.region}:{self.account}:{p.inputs.get('restApiId')}/probe/GET/probe"
                out.append((p, arn, doc))
        return out


def _arns(value: Any) -> list[str]:
    if isinstance(value, str):
        return _ARN.findall(value)
    if isinstance(value, dict):
        return [a for v in value.values() for a in _arns(v)]
    if isinstance(value, list):
        return [a for v in value for a in _arns(v)]
    return []


def build_model(plan: Plan) -> AccessModel:
    """Accounts, models and deployers from the stack facts the gate bound from outside the plan (the stack's own
    Pulumi.<stack>.yaml, `policies.gate.bind_stack`) when there are some, else from the plan's own config."""
    bound = plan.stack_config
    if bound is not None:
        return AccessModel(
            plan=plan,
            account=str(bound.account_id),
            region=str(bound.region),
            registry_account=str(bound.registry_account),
            models=[m.name for m in bound.models],
            served_models=[m.name for m in bound.models if m.package_arn],
            cds_models=[m.name for m in bound.models if m.package_arn and m.cds is not None]
            if bound.cds is not None
            else [],
            deployers=[str(d) for d in bound.principals.deployers],
            packages={m.name: str(m.package_arn) for m in bound.models if m.package_arn},
        )
    config = plan.platform_config()
    raw_accounts, raw_models = config.get("accounts"), config.get("models")
    accounts: dict[str, Any] = raw_accounts if isinstance(raw_accounts, dict) else {}
    account = str(config.get("accountId") or "")
    models: list[Any] = raw_models if isinstance(raw_models, list) else []
    names = [m["name"] for m in models if isinstance(m, dict) and m.get("name")]
    packages = {
        str(m["name"]): str(m["packageArn"])
        for m in models
        if isinstance(m, dict) and m.get("name") and m.get("packageArn")
    }
    principals = config.get("principals")
    deployers = principals.get("deployers") if isinstance(principals, dict) else None
    cds_models = [
        str(m["name"])
        for m in models
        if isinstance(m, dict) and m.get("name") and m.get("packageArn") and m.get("cds") and config.get("cds")
    ]
    return AccessModel(
        plan=plan,
        account=account,
        region=str(plan.config.get("aws:region") or "us-east-1"),
        registry_account=str(accounts.get("dev") or account),
        models=names,
        served_models=list(packages),
        cds_models=cds_models,
        deployers=[d for d in deployers if isinstance(d, str)] if isinstance(deployers, list) else [],
        packages=packages,
    )
