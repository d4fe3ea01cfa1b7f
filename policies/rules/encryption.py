"""Encryption at rest with customer-managed KMS keys of this stack: keys the platform rotates, audits and
can revoke. An AWS-managed key (alias/aws/...) or a key from elsewhere does not count: its policy and
rotation are outside the evidence this stack produces.

"A key of this stack" is read from `propertyDependencies`: the encrypting input must have been computed from
an `aws:kms/key:Key` (or replica key) declared here. In a real preview the key's ARN is unknown, so the
dependency is the only reliable link.
"""

from __future__ import annotations

from pulumi_policy import PolicyResource

from policies.controls import ENCRYPTION
from policies.rules.base import KMS_KEY_TYPES, UNKNOWN, Findings, StackView, as_list, dig, rule
from policies.rules.pipelines import PIPELINE, definition, expression, jobs, transforms

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
TOPIC = "aws:sns/topic:Topic"
DOMAIN = "aws:sagemaker/domain:Domain"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")


def _key_problem(
    stack: StackView, resource: PolicyResource, prop: str, value: object, shown: str | None = None
) -> str | None:
    """Why `value` (found in top-level input `prop`, shown as `shown`) is not a customer key of this stack."""
    shown = shown or prop
    if value is None or value == "":
        return f"{shown} is not set"
    if isinstance(value, str) and value.startswith("alias/aws/"):
        return f"{shown} is the AWS-managed key {value}"
    if not stack.uses_stack_key(resource, prop):
        return f"{shown} does not reference a KMS key declared in this stack"
    return None


def _require_stack_key(stack: StackView, findings: Findings, resource: PolicyResource, prop: str) -> None:
    problem = _key_problem(stack, resource, prop, stack.props(resource).get(prop))
    if problem:
        findings.fail(resource, f"'{resource.name}': {problem}")


@rule(
    id="CLIN-ENC-001",
    title="KMS keys rotate at least yearly",
    severity="high",
    controls=(ENCRYPTION,),
    types=("aws:kms/key:Key",),
    fix="Set enable_key_rotation=True (rotation_period_in_days at most 365) on the key.",
)
def key_rotation(stack: StackView, findings: Findings) -> None:
    for key in stack.of_type("aws:kms/key:Key"):
        props = stack.props(key)
        spec = props.get("customerMasterKeySpec") or "SYMMETRIC_DEFAULT"
        if spec != "SYMMETRIC_DEFAULT":
            findings.fail(
                key, f"key '{key.name}' is {spec}, which KMS cannot rotate; encrypt data with a symmetric key"
            )
        elif props.get("enableKeyRotation") is not True:
            findings.fail(key, f"key '{key.name}' has automatic rotation off")
        elif isinstance(props.get("rotationPeriodInDays"), int | float) and props["rotationPeriodInDays"] > 365:
            findings.fail(key, f"key '{key.name}' rotates only every {props['rotationPeriodInDays']} days")


@rule(
    id="CLIN-ENC-002",
    title="S3 buckets use SSE-KMS with a key of this stack",
    severity="critical",
    controls=(ENCRYPTION,),
    reads=(BUCKET_SSE, *KMS_KEY_TYPES),
    types=(BUCKET,),
    fix="Add an aws.s3.BucketServerSideEncryptionConfiguration with sse_algorithm='aws:kms' and "
    "kms_master_key_id=<a key of this stack>.arn.",
)
def bucket_encryption(stack: StackView, findings: Findings) -> None:
    for bucket in stack.of_type(BUCKET):
        configs = stack.referencing(bucket, "bucket", BUCKET_SSE)
        if not configs:
            findings.fail(bucket, f"bucket '{bucket.name}' has no server-side encryption configuration")
        for config in configs:
            for entry in as_list(stack.props(config).get("rules")):
                default = dig(entry, "applyServerSideEncryptionByDefault") or {}
                algorithm = default.get("sseAlgorithm")
                if algorithm not in KMS_ALGORITHMS:
                    findings.fail(bucket, f"bucket '{bucket.name}' default encryption is {algorithm}, not SSE-KMS")
                    continue
                problem = _key_problem(stack, config, "rules", default.get("kmsMasterKeyId"), "kmsMasterKeyId")
                if problem:
                    findings.fail(bucket, f"bucket '{bucket.name}' SSE-KMS: {problem}")


@rule(
    id="CLIN-ENC-003",
    title="Log groups are encrypted with a key of this stack",
    severity="high",
    controls=(ENCRYPTION,),
    reads=KMS_KEY_TYPES,
    types=(LOG_GROUP,),
    fix="Set kms_key_id=<a key of this stack>.arn on the log group (the key policy must allow logs.<region>).",
)
def log_group_encryption(stack: StackView, findings: Findings) -> None:
    for group in stack.of_type(LOG_GROUP):
        _require_stack_key(stack, findings, group, "kmsKeyId")


@rule(
    id="CLIN-ENC-004",
    title="SNS topics are encrypted with a key of this stack",
    severity="high",
    controls=(ENCRYPTION,),
    reads=KMS_KEY_TYPES,
    types=(TOPIC,),
    fix="Set kms_master_key_id=<a key of this stack>.arn on the topic.",
)
def topic_encryption(stack: StackView, findings: Findings) -> None:
    for topic in stack.of_type(TOPIC):
        _require_stack_key(stack, findings, topic, "kmsMasterKeyId")


@rule(
    id="CLIN-ENC-005",
    title="Studio domains are encrypted with a key of this stack",
    severity="high",
    controls=(ENCRYPTION,),
    reads=KMS_KEY_TYPES,
    types=(DOMAIN,),
    fix="Set kms_key_id=<a key of this stack>.arn on the SageMaker domain.",
)
def domain_encryption(stack: StackView, findings: Findings) -> None:
    for domain in stack.of_type(DOMAIN):
        _require_stack_key(stack, findings, domain, "kmsKeyId")


@rule(
    id="CLIN-ENC-006",
    title="Endpoint storage and data capture are encrypted with a key of this stack",
    severity="high",
    controls=(ENCRYPTION,),
    reads=KMS_KEY_TYPES,
    types=(ENDPOINT_CONFIG,),
    fix="Set kms_key_arn and data_capture_config.kms_key_id (and async output kms_key_id) to a key of this stack.",
)
def endpoint_encryption(stack: StackView, findings: Findings) -> None:
    for config in stack.of_type(ENDPOINT_CONFIG):
        props = stack.props(config)
        _require_stack_key(stack, findings, config, "kmsKeyArn")
        # Captured requests and async responses are PHI: their S3 objects need the stack's key too.
        nested = (("dataCaptureConfig", ("kmsKeyId",)), ("asyncInferenceConfig", ("outputConfig", "kmsKeyId")))
        for prop, path in nested:
            if props.get(prop) is None:
                continue
            problem = _key_problem(stack, config, prop, dig(props[prop], *path), ".".join((prop, *path)))
            if problem:
                findings.fail(config, f"'{config.name}': {problem}")


@rule(
    id="CLIN-ENC-007",
    title="Training, processing and transform volumes and outputs use a key of this stack",
    severity="high",
    controls=(ENCRYPTION,),
    reads=KMS_KEY_TYPES,
    types=(PIPELINE,),
    fix="In every Training/Processing/Transform step set ResourceConfig.VolumeKmsKeyId (ClusterConfig for "
    "processing, TransformResources for transform) and the output KmsKeyId to the literal ARN of a key of "
    "this stack.",
)
def job_encryption(stack: StackView, findings: Findings) -> None:
    for pipeline in stack.of_type(PIPELINE):
        doc = definition(stack, pipeline, findings)
        if doc is None:
            continue
        stack_key = stack.uses_stack_key(pipeline, "pipelineDefinition")
        for job in [*jobs(doc), *transforms(doc)]:
            settings = [job.setting("volume_key")] + ([job.setting("output_key")] if job.has_outputs else [])
            for path, value in settings:
                if expression(value):
                    findings.fail(pipeline, f"{path} comes from {expression(value)}, which an execution can override")
                elif value is UNKNOWN:
                    findings.unknown(pipeline, f"pipelineDefinition:{path}")
                elif not value or (isinstance(value, str) and value.startswith("alias/aws/")):
                    findings.fail(
                        pipeline, f"{path} is {value or 'not set'}: the job's data is not under a key of this stack"
                    )
                elif not stack_key:
                    findings.fail(
                        pipeline, f"{path} names a key, but the definition references no KMS key declared in this stack"
                    )


RULES = (
    key_rotation,
    bucket_encryption,
    log_group_encryption,
    topic_encryption,
    domain_encryption,
    endpoint_encryption,
    job_encryption,
)
