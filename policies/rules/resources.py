"""Resource kinds no other engine judged: resource policies (topics, model package groups, VPC endpoints),
data capture, Studio sharing, MLflow auto-registration, the evidence bucket's lifetime and the blue/green
step sizes. One function per rule; each rule's docstring says what a violation would let happen.

SageMaker limits (API reference, TrafficRoutingConfig): CanarySize "must be less than or equal to 50% of the
variant's total instance count"; LinearStepSize "must be 10-50% of the variant's total instance count".
"""

from __future__ import annotations

import json
import re
from typing import Any

from pulumi_policy import PolicyResource

from policies.controls import ACCESS_CONTROL, AUDIT, CONTINGENCY, INTEGRITY, TRANSMISSION, WORKFORCE_SECURITY
from policies.rules.base import UNKNOWN, Findings, StackView, as_list, dig, rule
from policies.rules.documents import BadDocument, parse_json, statements

TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
GROUP_POLICY = "aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy"
VPC_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
DOMAIN = "aws:sagemaker/domain:Domain"
USER_PROFILE = "aws:sagemaker/userProfile:UserProfile"
MLFLOW = "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer"
BUCKET = "aws:s3/bucket:Bucket"
OBJECT_LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
KMS_KEY = "aws:kms/key:Key"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
# Each service's size quota for the resource policy it stores, in bytes of the document as sent: past it the
# deploy fails halfway. KMS Developer Guide (key policy, 32 KB), S3 User Guide (bucket policy, 20 KB), VPC
# quotas (endpoint policy, 20,480 characters), SageMaker PutModelPackageGroupPolicy (ResourcePolicy, 20,480).
POLICY_QUOTAS: dict[str, tuple[str, str, int]] = {
    KMS_KEY: ("key policy", "policy", 32_768),
    BUCKET_POLICY: ("bucket policy", "policy", 20_480),
    VPC_ENDPOINT: ("endpoint policy", "policy", 20_480),
    GROUP_POLICY: ("model package group policy", "resourcePolicy", 20_480),
}
CANARY_MAX_FRACTION = 0.5
LINEAR_FRACTION = (0.1, 0.5)
# Condition keys that pin a request to the caller's / resource's account: what makes "*" safe in a policy.
ACCOUNT_KEYS = ("aws:PrincipalAccount", "aws:SourceAccount", "aws:ResourceAccount", "aws:SourceOwner")
READ_ONLY_ACTIONS = re.compile(r"^sagemaker:(Describe|List|Get|Search|BatchDescribe)", re.IGNORECASE)
_ACCOUNT_IN_ARN = re.compile(r"^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):")


def _accounts(stack: StackView) -> set[str]:
    return {str(a) for a in stack.config["platformAccounts"]}


def _pinned_accounts(statement: dict[str, Any]) -> set[str] | None:
    """Accounts a condition pins the request to (via ACCOUNT_KEYS or aws:SourceArn), None when unpinned."""
    pinned: set[str] = set()
    condition = raw if isinstance(raw := statement.get("Condition"), dict) else {}
    for operator, entries in condition.items():
        if not isinstance(entries, dict) or operator.startswith(("StringNot", "ArnNot", "ForAnyValue")):
            continue
        for key, values in entries.items():
            if key in ACCOUNT_KEYS:
                pinned |= {str(v) for v in as_list(values)}
            elif key in ("aws:SourceArn",):
                pinned |= {str(v).split(":")[4] for v in as_list(values) if str(v).count(":") >= 5}
    return pinned or None


def _principal_problems(stack: StackView, statement: dict[str, Any]) -> list[str]:
    """Why an Allow statement lets a public or foreign principal in (empty: it does not)."""
    if statement.get("Effect") != "Allow":
        return []
    platform = _accounts(stack)
    pinned = _pinned_accounts(statement)
    if pinned is not None and not pinned <= platform:
        return [f"its condition admits account(s) {', '.join(sorted(pinned - platform))} outside the platform"]
    principal = statement.get("Principal", statement.get("NotPrincipal"))
    if "NotPrincipal" in statement:
        return ["it allows NotPrincipal: everyone but the listed principals"]
    entries: list[tuple[str, Any]] = []
    if principal == "*":
        entries = [("AWS", "*")]
    elif isinstance(principal, dict):
        entries = [(kind, value) for kind, values in principal.items() for value in as_list(values)]
    problems = []
    for kind, value in entries:
        if value == "*" and pinned is None:
            problems.append("it allows any principal ('*') with no account condition")
        elif kind == "AWS" and value != "*":
            match = _ACCOUNT_IN_ARN.match(str(value))
            account = match.group(1) if match else str(value) if re.fullmatch(r"\d{12}", str(value)) else None
            if account not in platform:
                problems.append(f"it allows {value}, outside the platform accounts")
        elif kind == "Service" and pinned is None:
            problems.append(f"it allows service {value} with no aws:SourceAccount/aws:SourceArn (confused deputy)")
        elif kind == "Federated":
            problems.append(f"it allows federated principal {value}")
    return problems


def _policy_statements(
    stack: StackView, findings: Findings, resource: PolicyResource, prop: str
) -> list[dict[str, Any]] | None:
    value = stack.props(resource).get(prop)
    if value is UNKNOWN:
        findings.unknown(resource, prop)
        return None
    try:
        doc = parse_json(value)
    except BadDocument as exc:
        findings.fail(resource, f"{resource.name}.{prop} {exc}")
        return None
    return statements(doc) if doc else []


def _judge_principals(stack: StackView, findings: Findings, resource: PolicyResource, prop: str) -> None:
    for i, statement in enumerate(_policy_statements(stack, findings, resource, prop) or []):
        sid = statement.get("Sid") or f"#{i}"
        for problem in _principal_problems(stack, statement):
            findings.fail(resource, f"{resource.name} statement {sid}: {problem}")


@rule(
    id="CLIN-RES-001",
    title="SNS topic policies admit no public or foreign principal",
    severity="high",
    controls=(ACCESS_CONTROL,),
    types=(TOPIC_POLICY,),
    config=("platformAccounts",),
    fix="Allow only this platform's accounts, or service principals with an aws:SourceAccount condition.",
)
def topic_policy_principals(stack: StackView, findings: Findings) -> None:
    """A public topic policy lets anyone publish forged alarms (or subscribe to them)."""
    for policy in stack.of_type(TOPIC_POLICY):
        _judge_principals(stack, findings, policy, "policy")


@rule(
    id="CLIN-RES-002",
    title="Model package group policies grant other platform accounts read-only access",
    severity="critical",
    controls=(ACCESS_CONTROL, WORKFORCE_SECURITY),
    types=(GROUP_POLICY,),
    config=("platformAccounts",),
    fix="Grant only sagemaker:Describe*/List* on the group and its packages, to the platform's accounts.",
)
def model_package_group_policies(stack: StackView, findings: Findings) -> None:
    """A foreign account, or a write action such as UpdateModelPackage, would let someone approve a model."""
    for policy in stack.of_type(GROUP_POLICY):
        _judge_principals(stack, findings, policy, "resourcePolicy")
        for i, statement in enumerate(_policy_statements(stack, findings, policy, "resourcePolicy") or []):
            if statement.get("Effect") != "Allow":
                continue
            if "NotAction" in statement:
                findings.fail(policy, f"{policy.name} statement {statement.get('Sid') or i} allows NotAction")
            writes = [str(a) for a in as_list(statement.get("Action")) if not READ_ONLY_ACTIONS.match(str(a))]
            if writes:
                findings.fail(
                    policy,
                    f"{policy.name} statement {statement.get('Sid') or i} allows "
                    f"{', '.join(writes)}: more than reading the registry",
                )


def _is_gateway(props: dict[str, Any]) -> bool:
    return props.get("vpcEndpointType") == "Gateway"


@rule(
    id="CLIN-NET-008",
    title="Interface VPC endpoint policies admit only the platform's accounts",
    severity="high",
    controls=(ACCESS_CONTROL, TRANSMISSION),
    types=(VPC_ENDPOINT,),
    config=("platformAccounts",),
    fix="Give each interface endpoint a policy whose Allow statements carry an aws:PrincipalAccount condition "
    "listing the platform accounts.",
)
def interface_endpoint_policies(stack: StackView, findings: Findings) -> None:
    """Without a policy an endpoint is a path for any AWS credentials (a stolen foreign key) out of the VPC."""
    for endpoint in stack.of_type(VPC_ENDPOINT):
        props = stack.props(endpoint)
        if _is_gateway(props):
            continue
        if props.get("policy") is None:
            findings.fail(endpoint, f"endpoint '{endpoint.name}' has no policy: any AWS principal may use it")
            continue
        _judge_principals(stack, findings, endpoint, "policy")


@rule(
    id="CLIN-NET-009",
    title="The S3 gateway endpoint reaches only named buckets",
    severity="high",
    controls=(ACCESS_CONTROL, TRANSMISSION),
    types=(VPC_ENDPOINT,),
    config=("platformAccounts",),
    fix="List the platform's bucket ARNs (and the ECR layer bucket) in the gateway endpoint policy's Resource; "
    "no '*' and no bucket wildcard.",
)
def s3_gateway_endpoint_policy(stack: StackView, findings: Findings) -> None:
    """An open S3 gateway endpoint lets a compromised job copy PHI to any bucket in the world."""
    for endpoint in stack.of_type(VPC_ENDPOINT):
        props = stack.props(endpoint)
        if not _is_gateway(props) or not str(props.get("serviceName", "")).endswith(".s3"):
            continue
        if props.get("policy") is None:
            findings.fail(endpoint, f"S3 gateway endpoint '{endpoint.name}' has no policy: every bucket is reachable")
            continue
        for i, statement in enumerate(_policy_statements(stack, findings, endpoint, "policy") or []):
            if statement.get("Effect") != "Allow":
                continue
            sid = statement.get("Sid") or f"#{i}"
            if "NotResource" in statement:
                findings.fail(endpoint, f"S3 gateway endpoint statement {sid} allows NotResource")
            for arn in as_list(statement.get("Resource")):
                bucket = str(arn).removeprefix("arn:aws:s3:::").split("/")[0]
                if arn == "*" or not bucket or "*" in bucket or "?" in bucket:
                    findings.fail(endpoint, f"S3 gateway endpoint statement {sid} allows {arn}: not a named bucket")


@rule(
    id="CLIN-SM-006",
    title="Endpoints capture inputs and outputs for monitoring",
    severity="high",
    controls=(AUDIT,),
    types=(ENDPOINT_CONFIG,),
    fix="Set data_capture_config.enable_capture=True with capture_options Input and Output and a "
    "sampling percentage above 0.",
)
def data_capture_on(stack: StackView, findings: Findings) -> None:
    """Without capture, drift and quality monitoring see nothing and the circuit breaker never trips on them."""
    for config in stack.of_type(ENDPOINT_CONFIG):
        capture = stack.props(config).get("dataCaptureConfig")
        if capture is UNKNOWN:
            findings.unknown(config, "dataCaptureConfig")
            continue
        if not isinstance(capture, dict) or capture.get("enableCapture") is not True:
            findings.fail(config, f"endpoint configuration '{config.name}' does not capture inferences")
            continue
        modes = {dig(o, "captureMode") for o in as_list(capture.get("captureOptions"))}
        if not {"Input", "Output"} <= modes:
            findings.fail(
                config,
                f"endpoint configuration '{config.name}' captures {sorted(map(str, modes))}, not both Input and Output",
            )
        sampling = capture.get("initialSamplingPercentage")
        if isinstance(sampling, int | float) and sampling <= 0:
            findings.fail(config, f"endpoint configuration '{config.name}' samples {sampling}% of requests")


@rule(
    id="CLIN-SM-007",
    title="Studio never shares notebook output",
    severity="high",
    controls=(ACCESS_CONTROL,),
    types=(DOMAIN, USER_PROFILE),
    fix="Set sharing_settings.notebook_output_option='Disabled' in the domain's default user settings and "
    "in every user profile.",
)
def studio_notebook_sharing(stack: StackView, findings: Findings) -> None:
    """Shared notebook snapshots copy cell outputs (PHI) to S3 and to anyone holding the link."""
    for resource, path in [(d, "defaultUserSettings") for d in stack.of_type(DOMAIN)] + [
        (p, "userSettings") for p in stack.of_type(USER_PROFILE)
    ]:
        option = dig(stack.props(resource), path, "sharingSettings", "notebookOutputOption")
        if option is UNKNOWN:
            findings.unknown(resource, f"{path}.sharingSettings.notebookOutputOption")
        elif resource.resource_type == DOMAIN and option != "Disabled":
            findings.fail(resource, f"domain '{resource.name}' notebook output sharing is {option or 'not disabled'}")
        elif resource.resource_type == USER_PROFILE and option not in (None, "Disabled"):
            findings.fail(resource, f"user profile '{resource.name}' allows notebook output sharing ({option})")


@rule(
    id="CLIN-SM-008",
    title="MLflow never registers models automatically",
    severity="critical",
    controls=(INTEGRITY, WORKFORCE_SECURITY),
    types=(MLFLOW,),
    fix="Set automatic_model_registration=False: models reach the registry only through the gated "
    "registration step, pending manual approval.",
)
def mlflow_no_auto_registration(stack: StackView, findings: Findings) -> None:
    """Automatic registration puts every logged model in the SageMaker registry, past the gated pipeline step."""
    for server in stack.of_type(MLFLOW):
        value = stack.props(server).get("automaticModelRegistration")
        if value is UNKNOWN:
            findings.unknown(server, "automaticModelRegistration")
        elif value is True:
            findings.fail(server, f"MLflow server '{server.name}' registers models automatically")


@rule(
    id="CLIN-AUD-005",
    title="The evidence bucket survives a destroy",
    severity="critical",
    controls=(AUDIT, INTEGRITY),
    reads=(OBJECT_LOCK,),
    types=(BUCKET,),
    config=("environment",),
    fix="Keep force_destroy=False on the evidence bucket and, in prod, retain_on_delete=True and protect=True on it.",
)
def evidence_bucket_kept(stack: StackView, findings: Findings) -> None:
    """forceDestroy empties the bucket on `pulumi destroy`; without retain-on-delete prod evidence goes with it."""
    evidence = {b.urn for lock in stack.of_type(OBJECT_LOCK) for b in stack.refs(lock, "bucket", BUCKET)}
    for bucket in stack.of_type(BUCKET):
        if bucket.urn not in evidence:
            continue
        if stack.props(bucket).get("forceDestroy") is True:  # the provider's default is false
            findings.fail(bucket, f"evidence bucket '{bucket.name}' sets forceDestroy: a destroy empties it")
        if stack.config["environment"] != "prod":
            continue
        if not bucket.opts.protect:
            findings.fail(bucket, f"prod evidence bucket '{bucket.name}' is not protected")
        retain = getattr(bucket, "retain_on_delete", None)  # only the offline plan carries it
        if retain is None:
            findings.unknown(bucket, "retainOnDelete")
        elif retain is not True:
            findings.fail(bucket, f"prod evidence bucket '{bucket.name}' is not retained on delete")


def _instances(stack: StackView, endpoint: PolicyResource) -> int:
    configs = stack.refs(endpoint, "endpointConfigName", ENDPOINT_CONFIG)
    return sum(
        v.get("initialInstanceCount") or 0
        for c in configs
        for v in as_list(stack.props(c).get("productionVariants"))
        if isinstance(v, dict)
    )


@rule(
    id="CLIN-DEP-006",
    title="Canary and linear steps fit SageMaker's limits",
    severity="high",
    controls=(CONTINGENCY,),
    reads=(ENDPOINT_CONFIG,),
    types=(ENDPOINT,),
    fix="Keep canary_size at most 50% of the fleet and linear_step_size between 10% and 50%.",
)
def step_size_limits(stack: StackView, findings: Findings) -> None:
    """SageMaker rejects the update (the release fails mid-deploy) when a step exceeds its documented limit."""
    for endpoint in stack.of_type(ENDPOINT):
        routing = dig(stack.props(endpoint), "deploymentConfig", "blueGreenUpdatePolicy", "trafficRoutingConfiguration")
        mode = dig(routing, "type")
        if mode not in ("CANARY", "LINEAR"):
            continue
        size = dig(routing, "canarySize" if mode == "CANARY" else "linearStepSize")
        kind, value = dig(size, "type"), dig(size, "value")
        if UNKNOWN in (kind, value):
            findings.unknown(
                endpoint, f"trafficRoutingConfiguration.{'canarySize' if mode == 'CANARY' else 'linearStepSize'}"
            )
            continue
        if not isinstance(value, int | float):
            continue  # a missing size is CLIN-DEP-001's finding
        instances = _instances(stack, endpoint)
        if kind == "CAPACITY_PERCENT":
            fraction = value / 100
        elif instances:
            fraction = value / instances
        else:
            continue
        within = (
            fraction <= CANARY_MAX_FRACTION
            if mode == "CANARY"
            else LINEAR_FRACTION[0] <= fraction <= LINEAR_FRACTION[1]
        )
        if not within:
            shown = f"{value}%" if kind == "CAPACITY_PERCENT" else f"{value} of {instances} instances"
            findings.fail(
                endpoint,
                f"endpoint '{endpoint.name}' {mode} step is {shown}; SageMaker accepts "
                f"{'at most 50%' if mode == 'CANARY' else '10-50%'} of the fleet",
            )


@rule(
    id="CLIN-DEP-007",
    title="Canary and linear deployments bake before shifting more traffic",
    severity="high",
    controls=(CONTINGENCY,),
    types=(ENDPOINT,),
    fix="Set wait_interval_in_seconds above 0 (at least the rollback alarms' detection time).",
)
def bake_is_not_zero(stack: StackView, findings: Findings) -> None:
    """A wait of 0 shifts all traffic before any alarm could fire: the canary protects nobody."""
    for endpoint in stack.of_type(ENDPOINT):
        routing = dig(stack.props(endpoint), "deploymentConfig", "blueGreenUpdatePolicy", "trafficRoutingConfiguration")
        if dig(routing, "type") not in ("CANARY", "LINEAR"):
            continue
        wait = dig(routing, "waitIntervalInSeconds")
        if wait is UNKNOWN:
            findings.unknown(endpoint, "trafficRoutingConfiguration.waitIntervalInSeconds")
        elif not isinstance(wait, int | float) or wait <= 0:
            findings.fail(endpoint, f"endpoint '{endpoint.name}' waits {wait} s between traffic steps")


@rule(
    id="CLIN-RES-003",
    title="Resource policies fit their service's size quota",
    severity="high",
    controls=(ACCESS_CONTROL,),
    types=tuple(POLICY_QUOTAS),
    fix="Name principals or resources by pattern (the stack's name prefix) instead of one statement or ARN per "
    "model; KMS key policies hold 32 KB, bucket, VPC endpoint and model package group policies 20 KB.",
)
def resource_policy_size_quotas(stack: StackView, findings: Findings) -> None:
    for kind, (what, prop, quota) in POLICY_QUOTAS.items():
        for resource in stack.of_type(kind):
            value = stack.props(resource).get(prop)
            if value is UNKNOWN:
                findings.unknown(resource, prop)
                continue
            if isinstance(value, dict):
                value = json.dumps(value)
            size = len(value.encode()) if isinstance(value, str) else 0
            if size > quota:
                findings.fail(
                    resource,
                    f"'{resource.name}' {what} is {size:,} bytes; the service accepts {quota:,}, so the deploy "
                    "would fail",
                )


RULES = (
    topic_policy_principals,
    model_package_group_policies,
    interface_endpoint_policies,
    s3_gateway_endpoint_policy,
    data_capture_on,
    studio_notebook_sharing,
    mlflow_no_auto_registration,
    evidence_bucket_kept,
    step_size_limits,
    bake_is_not_zero,
    resource_policy_size_quotas,
)
