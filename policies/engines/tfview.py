"""A Terraform-plan JSON view of a Pulumi plan, for checkov's `terraform_plan` runner.

pulumi-aws is bridged from the Terraform AWS provider, so a Pulumi resource is a Terraform resource under
other names: the type token maps to a Terraform type, camelCase inputs map to snake_case attributes, and
a handful of list blocks that Pulumi pluralised (`rules`) get their Terraform name back (`rule`).

Cross-resource links come from `propertyDependencies`, never from matching IDs (a real preview has unknown
IDs). Each link is written twice, as Terraform itself would: an address string (`aws_vpc.main.id`) in
`planned_values` where the attribute is a plain string or list of strings, and
`configuration.root_module.resources[].expressions.<attr>.references` always. checkov builds graph edges
from either, and its connection checks (flow logs on a VPC, public access block on a bucket) need them.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.plan import Plan, PlanResource

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # how a preview prints a value known only after apply
TERRAFORM_VERSION = "1.9.8"  # checkov recognises a plan file by the presence of this key

# Explicit for the types the platform uses (so a rename upstream shows up as a test failure, not silently).
TF_TYPES: dict[str, str] = {
    "aws:ec2/vpc:Vpc": "aws_vpc",
    "aws:ec2/subnet:Subnet": "aws_subnet",
    "aws:ec2/routeTable:RouteTable": "aws_route_table",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "aws_route_table_association",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "aws_vpc_endpoint",
    "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
    "aws:ec2/securityGroupRule:SecurityGroupRule": "aws_security_group_rule",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "aws_default_security_group",
    "aws:ec2/flowLog:FlowLog": "aws_flow_log",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "aws_vpc_security_group_ingress_rule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "aws_vpc_security_group_egress_rule",
    "aws:s3/bucket:Bucket": "aws_s3_bucket",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": "aws_s3_bucket_server_side_encryption_configuration",  # noqa: E501
    "aws:s3/bucketVersioning:BucketVersioning": "aws_s3_bucket_versioning",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "aws_s3_bucket_public_access_block",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "aws_s3_bucket_ownership_controls",
    "aws:s3/bucketPolicy:BucketPolicy": "aws_s3_bucket_policy",
    "aws:s3/bucketLogging:BucketLogging": "aws_s3_bucket_logging",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": "aws_s3_bucket_lifecycle_configuration",
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration": "aws_s3_bucket_object_lock_configuration",
    "aws:s3/bucketReplicationConfig:BucketReplicationConfig": "aws_s3_bucket_replication_configuration",
    "aws:s3/bucketNotification:BucketNotification": "aws_s3_bucket_notification",
    "aws:kms/key:Key": "aws_kms_key",
    "aws:kms/alias:Alias": "aws_kms_alias",
    "aws:cloudwatch/logGroup:LogGroup": "aws_cloudwatch_log_group",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "aws_cloudwatch_metric_alarm",
    "aws:cloudwatch/eventRule:EventRule": "aws_cloudwatch_event_rule",
    "aws:cloudwatch/eventTarget:EventTarget": "aws_cloudwatch_event_target",
    "aws:cloudtrail/trail:Trail": "aws_cloudtrail",  # not aws_cloudtrail_trail: the generic rule would be wrong
    "aws:iam/role:Role": "aws_iam_role",
    "aws:iam/rolePolicy:RolePolicy": "aws_iam_role_policy",
    "aws:iam/policy:Policy": "aws_iam_policy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "aws_iam_role_policy_attachment",
    "aws:sns/topic:Topic": "aws_sns_topic",
    "aws:sqs/queue:Queue": "aws_sqs_queue",
    "aws:sagemaker/domain:Domain": "aws_sagemaker_domain",
    "aws:sagemaker/userProfile:UserProfile": "aws_sagemaker_user_profile",
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup": "aws_sagemaker_model_package_group",
    "aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy": "aws_sagemaker_model_package_group_policy",
    "aws:sagemaker/model:Model": "aws_sagemaker_model",
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": "aws_sagemaker_endpoint_configuration",
    "aws:sagemaker/endpoint:Endpoint": "aws_sagemaker_endpoint",
    "aws:sagemaker/pipeline:Pipeline": "aws_sagemaker_pipeline",
    "aws:sagemaker/notebookInstance:NotebookInstance": "aws_sagemaker_notebook_instance",
    "aws:ecr/repository:Repository": "aws_ecr_repository",
    "aws:lambda/function:Function": "aws_lambda_function",
    "aws:lambda/permission:Permission": "aws_lambda_permission",
    "aws:ssm/parameter:Parameter": "aws_ssm_parameter",
    "aws:secretsmanager/secret:Secret": "aws_secretsmanager_secret",
    "aws:s3/bucketObjectv2:BucketObjectv2": "aws_s3_object",
    # Terraform spells API Gateway `api_gateway`; the generic rule would give `aws_apigateway_*`, which no check names
    "aws:apigateway/restApi:RestApi": "aws_api_gateway_rest_api",
    "aws:apigateway/restApiPolicy:RestApiPolicy": "aws_api_gateway_rest_api_policy",
    "aws:apigateway/resource:Resource": "aws_api_gateway_resource",
    "aws:apigateway/method:Method": "aws_api_gateway_method",
    "aws:apigateway/methodSettings:MethodSettings": "aws_api_gateway_method_settings",
    "aws:apigateway/integration:Integration": "aws_api_gateway_integration",
    "aws:apigateway/deployment:Deployment": "aws_api_gateway_deployment",
    "aws:apigateway/stage:Stage": "aws_api_gateway_stage",
}

# Pulumi names that differ from Terraform's, per Terraform type, applied at any depth: list blocks Pulumi
# pluralised (Terraform MaxItems != 1) and links named without Terraform's `_id`.
PLURAL_BLOCKS: dict[str, dict[str, str]] = {
    "aws_s3_bucket": {"lifecycleRules": "lifecycle_rule", "corsRules": "cors_rule", "grants": "grant"},
    "aws_s3_bucket_server_side_encryption_configuration": {"rules": "rule"},
    "aws_s3_bucket_lifecycle_configuration": {
        "rules": "rule",
        "transitions": "transition",
        "noncurrentVersionTransitions": "noncurrent_version_transition",
    },
    "aws_s3_bucket_replication_configuration": {"rules": "rule"},
    "aws_s3_bucket_logging": {"targetGrants": "target_grant"},
    "aws_route_table": {"routes": "route"},
    "aws_vpc_endpoint": {"subnetConfigurations": "subnet_configuration"},
    "aws_cloudtrail": {
        "eventSelectors": "event_selector",
        "dataResources": "data_resource",
        "advancedEventSelectors": "advanced_event_selector",
        "fieldSelectors": "field_selector",
        "insightSelectors": "insight_selector",
    },
    "aws_cloudwatch_metric_alarm": {"metricQueries": "metric_query"},
    "aws_iam_role": {"inlinePolicies": "inline_policy"},
    "aws_sagemaker_model": {"containers": "container"},
    "aws_ecr_repository": {"encryptionConfigurations": "encryption_configuration"},
    "aws_lambda_function": {"code": "filename"},  # an Archive in Pulumi, a file path in Terraform
    # Pulumi names API Gateway's links `restApi` / `deployment`; Terraform (and checkov's checks) `*_id`
    "aws_api_gateway_method": {"restApi": "rest_api_id"},
    "aws_api_gateway_method_settings": {"restApi": "rest_api_id"},
    "aws_api_gateway_integration": {"restApi": "rest_api_id"},
    "aws_api_gateway_resource": {"restApi": "rest_api_id"},
    "aws_api_gateway_deployment": {"restApi": "rest_api_id"},
    "aws_api_gateway_stage": {"restApi": "rest_api_id", "deployment": "deployment_id"},
}
# Inputs that are Pulumi assets/archives: their content is not configuration, only their presence is.
ARCHIVES: dict[str, tuple[str, ...]] = {"aws_lambda_function": ("code",), "aws_lambda_layer_version": ("code",)}

# Attributes whose value is a user map: keep its keys verbatim (tag keys, env var names are data).
MAP_KEYS = frozenset({"tags", "tagsAll", "variables", "environment", "dimensions", "defaultTags"})


@functools.lru_cache(maxsize=4096)  # a few hundred distinct names, converted ~45,000 times at 50 models
def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def tf_type(pulumi_type: str) -> str | None:
    """Terraform type of a pulumi-aws token; generic rule `aws:mod/camel:Cls` -> `aws_mod_camel` (ec2 drops
    its module, as the Terraform provider does). None for anything that is not an AWS resource."""
    if pulumi_type in TF_TYPES:
        return TF_TYPES[pulumi_type]
    m = re.fullmatch(r"aws:([a-z0-9]+)/(\w+):\w+", pulumi_type)
    if not m:
        return None
    module, member = m.groups()
    return "aws_" + snake(member) if module in ("ec2", "index") else f"aws_{module}_{snake(member)}"


@dataclass
class TfView:
    doc: dict[str, Any]
    urn_by_address: dict[str, str] = field(default_factory=dict)
    type_by_address: dict[str, str] = field(default_factory=dict)  # address -> Pulumi type
    generic: dict[str, str] = field(default_factory=dict)  # Pulumi type -> Terraform type, by the generic rule
    skipped: dict[str, str] = field(default_factory=dict)  # Pulumi type -> why it is not in the view

    def address_of(self, urn: str) -> str | None:
        return next((a for a, u in self.urn_by_address.items() if u == urn), None)


def _addresses(resources: list[PlanResource]) -> dict[str, str]:
    """URN -> `type.name`, names from the URN's last segment made into unique Terraform identifiers."""
    taken: set[str] = set()
    out: dict[str, str] = {}
    for r in sorted(resources, key=lambda r: r.urn):
        base = re.sub(r"[^A-Za-z0-9_]", "_", r.name) or "r"
        if not re.match(r"[A-Za-z_]", base):
            base = "r_" + base
        kind = tf_type(r.type)
        name, n = base, 1
        while f"{kind}.{name}" in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(f"{kind}.{name}")
        out[r.urn] = f"{kind}.{name}"
    return out


def _convert(value: Any, renames: dict[str, str], in_map: bool = False) -> Any:
    """Pulumi input value -> Terraform plan value. Unknowns become None (dropped by the caller)."""
    if isinstance(value, dict):
        if in_map:  # keys are data; a nested user map (Lambda's environment.variables) stays one too
            return {k: _convert(v, renames, in_map=k in MAP_KEYS) for k, v in value.items() if v != UNKNOWN}
        return [_block(value, renames)]  # Terraform plans write every nested block as a list
    if isinstance(value, list):
        # a list of blocks is already a list: each block is not wrapped again
        return [_block(v, renames) if isinstance(v, dict) else _convert(v, renames) for v in value if v != UNKNOWN]
    return None if value == UNKNOWN else value


def _block(obj: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        converted = _convert(value, renames, in_map=key in MAP_KEYS)
        if converted is not None:
            out[renames.get(key, snake(key))] = converted
    return out


# For an unknown nested value, which referenced resource it most likely came from, by the key's name.
_HINTS = (
    ("kms", "aws_kms_key"),
    ("role", "aws_iam_role"),
    ("subnet", "aws_subnet"),
    ("securitygroup", "aws_security_group"),
    ("vpc", "aws_vpc"),
    ("loggroup", "aws_cloudwatch_log_group"),
    ("bucket", "aws_s3_bucket"),
    ("s3", "aws_s3_bucket"),
    ("topic", "aws_sns_topic"),
    ("model", "aws_sagemaker_model"),
    ("alarm", "aws_cloudwatch_metric_alarm"),
)


def _ref(target: str, key: str, value: Any) -> str:
    """`aws_kms_key.data.arn` for ARN-shaped inputs (by value or by name), else `....id`."""
    arn = (isinstance(value, str) and value.startswith("arn:")) or key.lower().endswith(("arn", "arns"))
    return f"{target}.{'arn' if arn else 'id'}"


def _fill(value: Any, key: str, targets: list[str], used: set[str]) -> Any:
    """Replace unknowns inside a nested input with references to the resources the input depends on."""
    if isinstance(value, dict):
        return {k: _fill(v, k, targets, used) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, key, targets, used) for v in value]
    if value != UNKNOWN:
        return value
    kind = next((t for hint, t in _HINTS if hint in key.lower()), None)
    fitting = [t for t in targets if kind and t.startswith(kind + ".")] or targets
    pick = next((t for t in fitting if t not in used), fitting[0])
    used.add(pick)
    return _ref(pick, key, value)


def _link(inputs: dict[str, Any], prop: str, targets: list[str]) -> list[str]:
    """Write references for one input into `inputs`; returns the expression's reference list."""
    raw = inputs.get(prop)
    sample = raw[0] if isinstance(raw, list) and raw else raw
    refs = [_ref(t, prop, sample) for t in targets]
    if raw is None:  # only the link is known (a preview may omit unknown inputs): write it as Terraform would
        inputs[prop] = refs[0] if len(refs) == 1 else sorted(refs)
    elif isinstance(raw, str) and len(targets) == 1:
        inputs[prop] = refs[0]
    elif isinstance(raw, list) and raw and all(isinstance(v, str) for v in raw):
        if len(raw) == len(targets) or all(v == UNKNOWN for v in raw):
            inputs[prop] = sorted(refs)  # PD order is not the input order; no check depends on it
    elif isinstance(raw, dict | list):
        inputs[prop] = _fill(raw, prop, targets, set())
    return refs + targets  # Terraform lists both `aws_vpc.main.id` and `aws_vpc.main`


def build_tf_view(plan: Plan) -> TfView:
    """The Terraform plan JSON checkov reads, with the address <-> URN table to map findings back."""
    view = TfView(doc={})
    aws = []
    for r in plan.resources:
        if not r.custom or r.type.startswith("pulumi:"):
            continue  # components, the stack and providers are not cloud resources
        if tf_type(r.type) is None:
            view.skipped[r.type] = "not an AWS resource: no Terraform type"
            continue
        aws.append(r)
        if r.type not in TF_TYPES:
            view.generic[r.type] = tf_type(r.type) or ""
    addresses = _addresses(aws)
    planned: list[dict[str, Any]] = []
    configured: list[dict[str, Any]] = []
    for r in aws:
        address, kind = addresses[r.urn], tf_type(r.type) or ""
        renames = PLURAL_BLOCKS.get(kind, {})
        inputs = dict(r.inputs)
        inputs.update({p: "pulumi-archive.zip" for p in ARCHIVES.get(kind, ()) if p in inputs})
        expressions: dict[str, Any] = {}
        for prop, urns in sorted(r.property_dependencies.items()):
            targets = sorted(addresses[u] for u in urns if u in addresses)
            if targets:
                expressions[renames.get(prop, snake(prop))] = {"references": _link(inputs, prop, targets)}
        values = _block(inputs, renames)
        base = {"address": address, "mode": "managed", "type": kind, "name": address.split(".", 1)[1]}
        planned.append({**base, "values": values})
        if expressions:  # checkov pairs the two by type and name; a resource without links needs no entry
            configured.append({**base, "expressions": expressions})
        view.urn_by_address[address] = r.urn
        view.type_by_address[address] = r.type
    view.doc = {
        "format_version": "1.2",
        "terraform_version": TERRAFORM_VERSION,
        "planned_values": {"root_module": {"resources": planned}},
        "configuration": {"root_module": {"resources": configured}},
    }
    return view


def write_tf_view(plan: Plan, path: Path, indent: int | None = 2) -> TfView:
    """Write the view for a plain `checkov -f PATH --framework terraform_plan --skip-download` run (the
    engine writes it unindented: fewer bytes to write and to read; its worker leaves out what no check reads)."""
    view = build_tf_view(plan)
    path.write_text(json.dumps(view.doc, indent=indent, sort_keys=True) + "\n")
    return view
