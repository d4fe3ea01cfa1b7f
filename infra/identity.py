"""Persona roles with segregation of duties enforced in IAM, all under one permissions boundary.

Roles are created first (trust only) so key and bucket policies can name them; their permissions attach
later (`grant`) once the keys and buckets they are scoped to exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from clinops.evidence.anchor import head_parameter_name
from clinops.names import PERSONAS, tracking_server_arn
from infra.base import Platform, Statement, allow, deny, policy_document, vpc_network_interface_statements

# Approval is a change of a model package's status: only the approver persona may make it.
APPROVAL_ACTIONS = ["sagemaker:UpdateModelPackage"]
BUILD_ACTIONS = [
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateTransformJob",
    "sagemaker:CreateHyperParameterTuningJob",
    "sagemaker:CreatePipeline",
    "sagemaker:UpdatePipeline",
    "sagemaker:StartPipelineExecution",
    "sagemaker:CreateModelPackage",
    "sagemaker:CreateModelPackageGroup",
    "sagemaker:DeleteModelPackage",
]
DEPLOY_ACTIONS = [
    "sagemaker:CreateModel",
    "sagemaker:CreateEndpointConfig",
    "sagemaker:CreateEndpoint",
    "sagemaker:UpdateEndpoint",
    "sagemaker:UpdateEndpointWeightsAndCapacities",
    "sagemaker:DeleteEndpoint",
]
# The List calls authors use that IAM cannot scope to a resource (the scoped ones stay under BuildModels).
UNSCOPED_LIST_ACTIONS = [
    "sagemaker:ListApps",
    "sagemaker:ListDomains",
    "sagemaker:ListEndpointConfigs",
    "sagemaker:ListEndpoints",
    "sagemaker:ListExperiments",
    "sagemaker:ListHyperParameterTuningJobs",
    "sagemaker:ListMlflowTrackingServers",
    "sagemaker:ListModelCards",
    "sagemaker:ListModelPackageGroups",
    "sagemaker:ListModels",
    "sagemaker:ListPipelines",
    "sagemaker:ListProcessingJobs",
    "sagemaker:ListSpaces",
    "sagemaker:ListTrainingJobs",
    "sagemaker:ListTransformJobs",
    "sagemaker:ListTrials",
    "sagemaker:ListUserProfiles",
]
KEY_USE = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]


@dataclass(frozen=True)
class Grants:
    """The resources persona permissions are scoped to (ARNs; Outputs allowed)."""

    phi_bucket: Any
    artifacts_bucket: Any
    capture_bucket: Any
    evidence_bucket: Any
    phi_key: Any
    artifacts_key: Any
    audit_key: Any
    evidence_mac_key: Any  # the HMAC key that seals evidence entries


def persona_role_name(platform: Platform, persona: str) -> str:
    """`clinops-<stack>-<persona>` (the execution persona's role is `...-sagemaker-execution`): known before the
    role exists, so key policies can name it."""
    return f"{platform.prefix}-{'sagemaker-execution' if persona == 'execution' else persona}"


class Identity(pulumi.ComponentResource):
    """Permissions boundary, persona roles and their segregation-of-duties guard rails."""

    def __init__(self, name: str, platform: Platform, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("clinops:infra:Identity", name, None, opts)
        self._platform = platform
        cfg = platform.config
        self.boundary = aws.iam.Policy(
            "permissions-boundary",
            name=f"{platform.prefix}-permissions-boundary",
            description="Ceiling for every clinops role: no IAM escalation, no audit tampering, VPC-only jobs",
            policy=boundary_document(platform),
            tags=platform.tags(),
            opts=platform.child(self),
        )
        self.role_names = {p: persona_role_name(platform, p) for p in PERSONAS}
        humans = {
            "author": cfg.principals.authors,
            "approver": cfg.principals.approvers,
            "deployer": cfg.principals.deployers,
        }
        self.roles: dict[str, aws.iam.Role] = {}
        for persona in PERSONAS:
            role_name = self.role_names[persona]
            # Studio runs notebooks as the author's and approver's role, so SageMaker must assume those too.
            services = ["sagemaker.amazonaws.com"] if persona in ("execution", "author", "approver") else []
            self.roles[persona] = aws.iam.Role(
                f"{persona}-role",
                name=role_name,
                description=f"clinops {persona} persona",
                assume_role_policy=trust_document(platform.account, services, humans.get(persona, [])),
                permissions_boundary=self.boundary.arn,
                max_session_duration=3600,
                tags=platform.tags(**{"clinops:persona": persona}),
                opts=platform.child(self),
            )
        self.register_outputs({p: r.arn for p, r in self.roles.items()})

    def role_arn(self, persona: str) -> str:
        return self._platform.role_arn(self.role_names[persona])

    def grant(self, grants: Grants, model_groups: list[str]) -> None:
        """Attach each persona's least-privilege policy (with its segregation-of-duties denies)."""
        documents = persona_statements(self._platform, grants, model_groups, self.role_arn("execution"))
        for persona, statements in documents.items():
            aws.iam.RolePolicy(
                f"{persona}-permissions",
                name=f"{persona}-permissions",
                role=self.roles[persona].id,
                policy=policy_document(*statements),
                opts=self._platform.child(self),
            )


def trust_document(account: str, services: list[str], principals: list[str]) -> pulumi.Output[str]:
    statements: list[Statement] = []
    if services:
        statements.append(
            {
                "Sid": "ServiceAssume",
                "Effect": "Allow",
                "Principal": {"Service": services},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            }
        )
    if principals:
        statements.append(
            {
                "Sid": "PersonaAssume",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(principals)},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            }
        )
    if not statements:  # a persona nobody may assume yet: trust no one rather than the whole account
        statements.append({"Sid": "NobodyYet", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})
    return policy_document(*statements)


def boundary_document(platform: Platform) -> pulumi.Output[str]:
    return policy_document(
        allow(
            "PlatformServices",
            [
                "sagemaker:*",
                "sagemaker-mlflow:*",  # pipeline steps log runs to the managed MLflow server
                "s3:*",
                "logs:*",
                "cloudwatch:*",
                "events:*",
                "application-autoscaling:*",
                "kms:Decrypt",
                "kms:DescribeKey",
                "kms:Encrypt",
                "kms:GenerateDataKey*",
                "kms:ReEncrypt*",
                "kms:CreateGrant",
                "kms:GenerateMac",  # evidence sealing (writers) and checking (verifiers); key policy narrows it
                "kms:VerifyMac",
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetAuthorizationToken",
                "ecr:GetDownloadUrlForLayer",
                "ec2:AssignPrivateIpAddresses",
                "ec2:CreateNetworkInterface",
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
                "ec2:Describe*",
                "ec2:UnassignPrivateIpAddresses",
                "iam:GetRole",
                "iam:PassRole",
                "sts:GetCallerIdentity",
                "sns:Publish",
                "ssm:DeleteParameter",
                "ssm:GetParameter*",
                "ssm:PutParameter",
                "xray:PutTelemetryRecords",
                "xray:PutTraceSegments",
                "lambda:InvokeFunction",
                "sqs:SendMessage",
            ],
            "*",
        ),
        deny(
            "DenyIamEscalation",
            [
                "iam:AttachRolePolicy",
                "iam:CreateAccessKey",
                "iam:CreatePolicyVersion",
                "iam:CreateRole",
                "iam:CreateUser",
                "iam:DeleteRolePermissionsBoundary",
                "iam:PutRolePermissionsBoundary",
                "iam:PutRolePolicy",
                "iam:UpdateAssumeRolePolicy",
            ],
        ),
        deny(
            "DenyAuditTampering",
            [
                "cloudtrail:DeleteTrail",
                "cloudtrail:PutEventSelectors",
                "cloudtrail:StopLogging",
                "cloudtrail:UpdateTrail",
                "kms:DisableKey",
                "kms:DisableKeyRotation",
                "kms:PutKeyPolicy",
                "kms:ScheduleKeyDeletion",
                "logs:DeleteLogGroup",
                "logs:DeleteRetentionPolicy",
                "logs:PutRetentionPolicy",
                "s3:BypassGovernanceRetention",
                "s3:DeleteBucketPolicy",
                "s3:PutBucketObjectLockConfiguration",
                "s3:PutBucketPolicy",
                "s3:PutBucketPublicAccessBlock",
                "s3:PutEncryptionConfiguration",
            ],
        ),
        deny(
            "DenyNetworkEgress",
            [
                "ec2:AttachInternetGateway",
                "ec2:CreateEgressOnlyInternetGateway",
                "ec2:CreateInternetGateway",
                "ec2:CreateNatGateway",
                "ec2:CreateRoute",
                "ec2:CreateVpcPeeringConnection",
            ],
        ),
        deny(
            "DenyJobsOutsideVpc",
            [
                "sagemaker:CreateModel",
                "sagemaker:CreateProcessingJob",
                "sagemaker:CreateTrainingJob",
                "sagemaker:CreateHyperParameterTuningJob",
            ],
            Condition={"Null": {"sagemaker:VpcSubnets": "true"}},
        ),
        deny(
            "DenyUnencryptedJobVolumes",
            ["sagemaker:CreateProcessingJob", "sagemaker:CreateTrainingJob"],
            # the key is VolumeKmsKeyArn: a key no request carries made this Null test always true, so the deny
            # refused every training and processing job, encrypted or not
            Condition={"Null": {"sagemaker:VolumeKmsKeyArn": "true"}},
        ),
        deny(
            "DenyPlaintextInterContainer",
            ["sagemaker:CreateTrainingJob"],
            Condition={"Bool": {"sagemaker:InterContainerTrafficEncryption": "false"}},
        ),
        # Each API has its own key: a domain's network mode is AppNetworkAccessType, a notebook instance's is
        # DirectInternetAccess (CreateDomain's request carries no DirectInternetAccess, so that deny never fired).
        deny(
            "DenyInternetFacingStudio",
            ["sagemaker:CreateDomain", "sagemaker:UpdateDomain"],
            Condition={"StringEquals": {"sagemaker:AppNetworkAccessType": "PublicInternetOnly"}},
        ),
        deny(
            "DenyInternetFacingNotebooks",
            ["sagemaker:CreateNotebookInstance"],
            Condition={"StringEquals": {"sagemaker:DirectInternetAccess": "Enabled"}},
        ),
        deny(
            "DenyOtherRegions", ["sagemaker:*"], Condition={"StringNotEquals": {"aws:RequestedRegion": platform.region}}
        ),
    )


def promoted_artifacts_statements(platform: Platform) -> list[Statement]:
    """Cross-account reads need both sides: the build account's bucket and key policies allow this account;
    these are this account's side, for the roles that fetch a promoted model (endpoint download, release)."""
    if not platform.promotes_from_registry:
        return []
    bucket = platform.registry_artifacts_bucket_arn()
    return [
        allow("ReadPromotedModels", ["s3:GetObject"], f"{bucket}/*"),
        allow(
            "DecryptPromotedModels",
            ["kms:Decrypt", "kms:DescribeKey"],
            f"arn:aws:kms:{platform.region}:{platform.config.registry_account}:key/*",
            Condition={"ForAnyValue:StringEquals": {"kms:ResourceAliases": platform.registry_artifacts_key_alias()}},
        ),
    ]


@dataclass(frozen=True)
class _Shared:
    """What several personas' policies name alike: ARNs, the registry they read, Studio, evidence checks."""

    acct: str
    region: str
    sm: str
    packages: list[str]
    package_groups: list[str]
    pass_execution: Statement
    read_registry: Statement
    list_registry: Statement
    studio: list[Statement]
    stack_alarms: str
    promoted: list[Statement]
    cannot_approve: Statement
    register_pending_only: Statement
    evidence_objects: list[Any]
    verify_evidence: list[Statement]
    job_logs: Statement


def _objects(*buckets: Any) -> list[Any]:
    return [b.apply(lambda a: f"{a}/*") for b in buckets]


def persona_statements(
    platform: Platform, g: Grants, model_groups: list[str], execution_arn: str
) -> dict[str, list[Statement]]:
    """Each persona's permission statements (clinops.names.PERSONAS): least privilege per duty, with the
    segregation-of-duties denies that keep author, approver and deployer apart."""
    c = _shared(platform, g, model_groups, execution_arn)
    return {
        "execution": _execution_statements(platform, g, c),
        "author": _author_statements(g, c),
        "approver": _approver_statements(g, c),
        "deployer": _deployer_statements(platform, g, c),
    }


def _shared(platform: Platform, g: Grants, model_groups: list[str], execution_arn: str) -> _Shared:
    acct, region = platform.account, platform.region
    sm = f"arn:aws:sagemaker:{region}:{acct}"
    registry = f"arn:aws:sagemaker:{region}:{platform.config.registry_account}"
    # The registry account's packages by pattern, not one ARN per model: IAM caps a role's inline policies at
    # 10,240 characters, which per-model ARNs passed at about 20 models (CLIN-IAM-004 checks the quota). Across
    # accounts each group's resource policy (infra.registry) still admits only the platform's own groups.
    packages = [f"{registry}:model-package/{'*' if model_groups else 'none'}/*"]
    package_groups = [f"{registry}:model-package-group/{'*' if model_groups else 'none'}"]
    pass_execution = allow(
        "PassExecutionRoleToSageMaker",
        ["iam:PassRole"],
        execution_arn,
        Condition={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    )
    read_registry = allow(
        "ReadRegistry",
        ["sagemaker:DescribeModelPackage", "sagemaker:DescribeModelPackageGroup", "sagemaker:ListModelPackages"],
        [*packages, *package_groups],
    )
    # List calls without a resource type in IAM are authorised on "*" only: scoped to ARNs they never match.
    list_registry = allow("ListRegistry", ["sagemaker:ListModelPackageGroups"], "*")
    studio = [
        allow(
            "UseStudioSpaces",
            ["sagemaker:CreateSpace", "sagemaker:DeleteSpace", "sagemaker:DescribeSpace", "sagemaker:UpdateSpace"],
            f"{sm}:space/*",
        ),
        allow("ListStudio", ["sagemaker:ListApps", "sagemaker:ListSpaces", "sagemaker:ListUserProfiles"], "*"),
    ]
    stack_alarms = f"arn:aws:cloudwatch:{region}:{acct}:alarm:{platform.prefix}-*"
    promoted = promoted_artifacts_statements(platform)
    cannot_approve = deny("SodCannotApprove", APPROVAL_ACTIONS)
    register_pending_only = deny(
        "SodRegisterPendingOnly",
        ["sagemaker:CreateModelPackage"],
        Condition={"StringEquals": {"sagemaker:ModelApprovalStatus": "Approved"}},
    )
    # What `clinops evidence verify` calls (clinops.evidence.s3 / anchor / mac): every version, the lock, the head.
    evidence_objects = _objects(g.evidence_bucket)
    head_parameter = f"arn:aws:ssm:{region}:{acct}:parameter{head_parameter_name(platform.config.stack)}"
    verify_evidence = [
        allow(
            "VerifyEvidenceBucket",
            ["s3:GetBucketObjectLockConfiguration", "s3:ListBucket", "s3:ListBucketVersions"],
            g.evidence_bucket,
        ),
        allow("VerifyEvidenceObjects", ["s3:GetObject", "s3:GetObjectVersion"], evidence_objects),
        allow("VerifyEvidenceMacs", ["kms:VerifyMac"], g.evidence_mac_key),
        allow("ReadEvidenceHead", ["ssm:GetParameter"], head_parameter),
    ]
    job_logs = allow(
        "JobLogs",
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
        f"arn:aws:logs:{region}:{acct}:log-group:/aws/sagemaker/*",
    )
    return _Shared(
        acct=acct,
        region=region,
        sm=sm,
        packages=packages,
        package_groups=package_groups,
        pass_execution=pass_execution,
        read_registry=read_registry,
        list_registry=list_registry,
        studio=studio,
        stack_alarms=stack_alarms,
        promoted=promoted,
        cannot_approve=cannot_approve,
        register_pending_only=register_pending_only,
        evidence_objects=evidence_objects,
        verify_evidence=verify_evidence,
        job_logs=job_logs,
    )


def _execution_statements(platform: Platform, g: Grants, c: _Shared) -> list[Statement]:
    return [
        # endpoints write captured requests and responses as this role; the drift jobs read them
        allow(
            "ReadWriteCapture",
            ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
            [g.capture_bucket, *_objects(g.capture_bucket)],
        ),
        # pipeline steps write patient-level intermediates (validated table, splits, test scores) here
        allow(
            "ReadWriteTrainingData",
            ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
            [g.phi_bucket, *_objects(g.phi_bucket)],
        ),
        allow(
            "WriteArtifacts",
            ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
            [g.artifacts_bucket, *_objects(g.artifacts_bucket)],
        ),
        # no evidence rights: jobs record nothing in the evidence log (the writers are the deployer and the
        # guardrail Lambdas, which hold the HMAC key)
        allow("UseKeys", [*KEY_USE], [g.phi_key, g.artifacts_key, g.audit_key]),
        allow(
            "GrantKeysToSageMaker",
            ["kms:CreateGrant"],
            [g.phi_key, g.artifacts_key],
            Condition={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        allow(
            "RunPipelineSteps",
            [
                "sagemaker:AddTags",
                "sagemaker:CreateModelPackage",
                "sagemaker:CreateProcessingJob",
                "sagemaker:CreateTrainingJob",
                "sagemaker:CreateTransformJob",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:DescribeTrainingJob",
                "sagemaker:DescribeTransformJob",
            ],
            [
                f"{c.sm}:training-job/*",
                f"{c.sm}:processing-job/*",
                f"{c.sm}:transform-job/*",
                *c.packages,
                *c.package_groups,
            ],
        ),
        c.read_registry,
        c.list_registry,
        *c.promoted,
        c.job_logs,
        c.pass_execution,
        # pipeline steps log runs, metrics and models to the stack's SageMaker-managed MLflow server
        allow("TrackExperiments", ["sagemaker-mlflow:*"], tracking_server_arn(platform.config.stack, c.region, c.acct)),
        # blue/green deployment guardrails read the auto-rollback alarms as the execution role
        allow("DeploymentGuardrailAlarms", ["cloudwatch:DescribeAlarms"], c.stack_alarms),
        allow(
            "PublishMetrics",
            ["cloudwatch:PutMetricData"],
            "*",
            Condition={"StringLike": {"cloudwatch:namespace": "clinops/*"}},
        ),
        allow(
            "PullImages",
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            f"arn:aws:ecr:{c.region}:{platform.config.registry_account}:repository/clinops-*",
        ),
        allow("EcrLogin", ["ecr:GetAuthorizationToken"], "*"),
        *vpc_network_interface_statements(platform),
        c.cannot_approve,
        c.register_pending_only,
    ]


def _author_statements(g: Grants, c: _Shared) -> list[Statement]:
    return [
        allow("ExploreData", ["s3:GetObject", "s3:ListBucket"], [g.phi_bucket, *_objects(g.phi_bucket)]),
        allow(
            "ReadWriteArtifacts",
            ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
            [g.artifacts_bucket, *_objects(g.artifacts_bucket)],
        ),
        allow("UseKeys", [*KEY_USE], [g.phi_key, g.artifacts_key]),
        allow(
            "BuildModels",
            [
                *BUILD_ACTIONS,
                "sagemaker:AddTags",
                "sagemaker:Describe*",
                "sagemaker:ListPipelineExecutionSteps",
                "sagemaker:ListPipelineExecutions",
            ],
            [f"{c.sm}:*", *c.packages, *c.package_groups],
        ),
        allow("ListSageMaker", UNSCOPED_LIST_ACTIONS, "*"),
        allow(
            "UseStudio",
            [
                "sagemaker:CreateApp",
                "sagemaker:CreatePresignedDomainUrl",
                "sagemaker:DeleteApp",
                "sagemaker:DescribeApp",
                "sagemaker:DescribeDomain",
                "sagemaker:DescribeUserProfile",
            ],
            [f"{c.sm}:domain/*", f"{c.sm}:user-profile/*", f"{c.sm}:app/*"],
        ),
        *c.studio,
        c.read_registry,
        c.job_logs,
        c.pass_execution,
        deny("SodAuthorsCannotApprove", APPROVAL_ACTIONS),
        c.register_pending_only,
        deny("SodAuthorsCannotDeploy", DEPLOY_ACTIONS),
    ]


def _approver_statements(g: Grants, c: _Shared) -> list[Statement]:
    return [
        c.read_registry,
        c.list_registry,
        *c.studio,
        allow("ApproveOrReject", APPROVAL_ACTIONS, c.packages),
        allow("ReadModelCards", ["s3:GetObject", "s3:ListBucket"], [g.artifacts_bucket, *_objects(g.artifacts_bucket)]),
        *c.verify_evidence,
        allow("DecryptForReview", ["kms:Decrypt", "kms:DescribeKey"], [g.artifacts_key, g.audit_key]),
        allow(
            "UseStudio",
            [
                "sagemaker:CreateApp",
                "sagemaker:CreatePresignedDomainUrl",
                "sagemaker:DescribeApp",
                "sagemaker:DescribeDomain",
                "sagemaker:DescribeUserProfile",
            ],
            [f"{c.sm}:domain/*", f"{c.sm}:user-profile/*", f"{c.sm}:app/*"],
        ),
        deny("SodApproversCannotBuild", BUILD_ACTIONS),
        deny("SodApproversCannotDeploy", DEPLOY_ACTIONS),
    ]


def _deployer_statements(platform: Platform, g: Grants, c: _Shared) -> list[Statement]:
    return [
        c.read_registry,
        c.list_registry,
        *c.promoted,
        c.pass_execution,
        allow(
            "Release",
            [
                *DEPLOY_ACTIONS,
                "sagemaker:AddTags",
                "sagemaker:DescribeEndpoint",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:DescribeModel",
            ],
            [f"{c.sm}:model/*", f"{c.sm}:endpoint-config/*", f"{c.sm}:endpoint/*"],
        ),
        allow(
            "WatchAlarms",
            ["cloudwatch:DescribeAlarmHistory", "cloudwatch:DescribeAlarms", "cloudwatch:SetAlarmState"],
            f"arn:aws:cloudwatch:{c.region}:{c.acct}:alarm:clinops-*",
        ),
        # GetMetricData cannot be scoped to a resource; shadow reports read latency and error rates.
        allow("ReadMetrics", ["cloudwatch:GetMetricData"], "*"),
        allow(
            "ReadCaptureForShadowReports",
            ["s3:GetObject", "s3:ListBucket"],
            [g.capture_bucket, *_objects(g.capture_bucket)],
        ),
        *c.verify_evidence,
        allow("RecordEvidence", ["s3:PutObject"], c.evidence_objects),
        # append reads the head entry before linking to it: reading SSE-KMS objects needs Decrypt too
        allow(
            "EncryptEvidence",
            ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*"],
            [g.audit_key],
        ),
        allow("SealEvidence", ["kms:GenerateMac"], g.evidence_mac_key),
        allow(
            "GrantEndpointKeys",
            ["kms:CreateGrant"],
            [g.artifacts_key, g.phi_key],
            Condition={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        # DescribeKey carries no GrantIsForAWSResource: under that condition it was never allowed
        allow("DescribeEndpointKeys", ["kms:DescribeKey"], [g.artifacts_key, g.phi_key]),
        # a release copies the package's drift baseline out of its model bundle (serving/release/baseline.py)
        allow(
            "ReadReleasedBundles",
            ["s3:GetObject"],
            g.artifacts_bucket.apply(lambda a: f"{a}/*/runs/*"),
        ),
        allow("PublishDriftBaselines", ["s3:PutObject"], g.artifacts_bucket.apply(lambda a: f"{a}/*/baseline/*")),
        allow("EncryptDriftBaselines", ["kms:Decrypt", "kms:GenerateDataKey"], [g.artifacts_key]),
        allow(
            "ReleasePins",
            ["ssm:GetParameter", "ssm:PutParameter"],
            f"arn:aws:ssm:{c.region}:{c.acct}:parameter/clinops/{platform.config.stack}/*",
        ),
        deny("SodDeployersCannotApprove", APPROVAL_ACTIONS),
        deny("SodDeployersCannotBuild", BUILD_ACTIONS),
    ]
