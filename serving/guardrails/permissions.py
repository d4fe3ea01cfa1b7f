"""Least-privilege IAM for the three functions, as data the Pulumi wiring can turn into policy statements.

Resources are ARN templates: `{partition}`, `{region}`, `{account}`, `{stack}` and `{prefix}` (`clinops-<stack>`)
are filled by the wiring; `{topic}`, `{evidence_bucket}`, `{evidence_prefix}` and the key placeholders name
resources the stack already has. Tests hold the functions' real AWS calls to these lists.
Every function also needs the VPC execution basics (AWSLambdaVPCAccessExecutionRole: ENIs and its log group).
"""

from __future__ import annotations

from typing import TypedDict


class Grant(TypedDict):
    actions: list[str]
    resources: list[str]
    why: str


_SM = "arn:{partition}:sagemaker:{region}:{account}"
_SSM = "arn:{partition}:ssm:{region}:{account}:parameter/clinops/{stack}"
_EVIDENCE = [
    Grant(
        actions=["s3:ListBucket"],
        resources=["arn:{partition}:s3:::{evidence_bucket}"],
        why="the evidence log finds its head by listing its prefix",
    ),
    Grant(
        actions=["s3:GetObject", "s3:PutObject"],
        resources=["arn:{partition}:s3:::{evidence_bucket}/{evidence_prefix}/{stack}/*"],
        why="read the head entry, create the next one (IfNoneMatch, never overwrite)",
    ),
    Grant(
        actions=["kms:GenerateDataKey", "kms:Decrypt"],
        resources=["{evidence_key_arn}"],
        why="SSE-KMS on the evidence bucket",
    ),
    Grant(
        actions=["kms:GenerateMac", "kms:VerifyMac"],
        resources=["{evidence_mac_key_arn}"],
        why="seal each entry (and the published head) with the evidence HMAC key; check the head before linking",
    ),
    Grant(
        actions=["ssm:GetParameter", "ssm:PutParameter"],
        resources=["arn:{partition}:ssm:{region}:{account}:parameter/clinops/{stack}/evidence/head"],
        why="publish the new head outside the log (clinops.evidence.anchor.head_parameter_name)",
    ),
]
_ALERTS = [
    Grant(actions=["sns:Publish"], resources=["{topic}"], why="the alert topic"),
    Grant(
        actions=["kms:GenerateDataKey", "kms:Decrypt"],
        resources=["{alerts_key_arn}"],
        why="the alert topic is KMS-encrypted: publishing needs its key",
    ),
]

BREAKER: list[Grant] = [
    Grant(
        actions=["sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpoint"],
        resources=[f"{_SM}:endpoint/clinops-{{stack}}-*"],
        why="read the endpoint; switch it to the last-known-good configuration",
    ),
    Grant(
        actions=["sagemaker:DescribeEndpointConfig", "sagemaker:UpdateEndpoint"],
        resources=[f"{_SM}:endpoint-config/clinops-{{stack}}-*"],
        why="the target configuration must exist (UpdateEndpoint is authorised on it too)",
    ),
    Grant(
        actions=["kms:CreateGrant", "kms:DescribeKey"],
        resources=["{volume_key_arn}", "{capture_key_arn}"],
        why="UpdateEndpoint to a configuration with KmsKeyId/data capture: SageMaker uses the caller's grant",
    ),
    Grant(
        actions=["ssm:GetParameter", "ssm:GetParameterHistory"],
        resources=[f"{_SSM}/*"],
        why="last-known-good name, verification markers, the breaker's state history",
    ),
    Grant(
        actions=["ssm:PutParameter"],
        resources=[f"{_SSM}/*/circuit-breaker"],
        why="the compare-and-set state record (nothing else: markers belong to verify)",
    ),
    Grant(
        actions=["cloudwatch:DescribeAlarms"],
        resources=["arn:{partition}:cloudwatch:{region}:{account}:alarm:clinops-{stack}-*"],
        why="the alarm's current state before acting: an ALARM delivered after its own OK is not obeyed",
    ),
    *_ALERTS,
    *_EVIDENCE,
]

RECORDER: list[Grant] = [
    Grant(
        actions=["sagemaker:DescribeModelPackage"],
        resources=[f"{_SM}:model-package/*"],
        why="who decided, why, and who created the package",
    ),
    Grant(
        actions=["sagemaker:DescribePipelineExecution"],
        resources=[f"{_SM}:pipeline/clinops-*-training/execution/*"],
        why="who started the pipeline that built the package (segregation of duties)",
    ),
    Grant(
        actions=["ssm:PutParameter", "ssm:DeleteParameter"],
        resources=[f"{_SSM}/*/approval-records/*"],
        why="one claim per decision (Overwrite=False) against duplicate events",
    ),
    *_ALERTS,
    *_EVIDENCE,
]

RETRAINING: list[Grant] = [
    Grant(
        actions=["sagemaker:ListPipelineExecutions", "sagemaker:StartPipelineExecution"],
        resources=[f"{_SM}:pipeline/clinops-*-training"],
        why="one training run on fresh data; nothing that approves, registers or deploys",
    ),
    *_EVIDENCE,
]


def actions(grants: list[Grant]) -> set[str]:
    return {action for grant in grants for action in grant["actions"]}
