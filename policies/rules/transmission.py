"""Transmission security: PHI moves only over TLS, including between the containers of a training cluster."""

from __future__ import annotations

from policies.controls import ENCRYPTION, TRANSMISSION
from policies.rules.base import UNKNOWN, Findings, StackView, rule
from policies.rules.documents import denies_insecure_transport, read_document, statements
from policies.rules.pipelines import PIPELINE, definition, expression, jobs

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"


@rule(
    id="CLIN-TLS-001",
    title="Bucket policies refuse requests without TLS",
    severity="high",
    controls=(TRANSMISSION,),
    reads=(BUCKET_POLICY,),
    types=(BUCKET,),
    fix="Attach an aws.s3.BucketPolicy with a Deny of s3:* for Principal '*' when aws:SecureTransport is false.",
)
def buckets_require_tls(stack: StackView, findings: Findings) -> None:
    for bucket in stack.of_type(BUCKET):
        policies = stack.referencing(bucket, "bucket", BUCKET_POLICY)
        if not policies:
            findings.fail(bucket, f"bucket '{bucket.name}' has no bucket policy, so plain-HTTP requests are allowed")
            continue
        enforced = False
        for policy in policies:
            doc = read_document(stack, findings, policy, "policy", f"policy '{policy.name}'", bucket)
            if doc is UNKNOWN:
                enforced = True  # judged at apply instead; do not also report it as missing
            enforced = enforced or any(denies_insecure_transport(s) for s in statements(doc))
        if not enforced:
            findings.fail(bucket, f"bucket '{bucket.name}' policy does not deny aws:SecureTransport=false")


@rule(
    id="CLIN-TLS-002",
    title="Inter-container traffic of jobs is encrypted",
    severity="high",
    controls=(TRANSMISSION, ENCRYPTION),
    types=(PIPELINE,),
    fix="Set EnableInterContainerTrafficEncryption=true in every Training step "
    "(NetworkConfig.EnableInterContainerTrafficEncryption for Processing).",
)
def job_traffic_encryption(stack: StackView, findings: Findings) -> None:
    for pipeline in stack.of_type(PIPELINE):
        doc = definition(stack, pipeline, findings)
        for job in jobs(doc) if doc else []:
            path, value = job.setting("inter_container_encryption")
            if expression(value):
                findings.fail(pipeline, f"{path} comes from {expression(value)}, which an execution can override")
            elif value is not True:
                shown = "not set" if value is None else f"{value}"
                findings.fail(pipeline, f"{path} is {shown}: distributed workers exchange PHI in plaintext")


RULES = (buckets_require_tls, job_traffic_encryption)
