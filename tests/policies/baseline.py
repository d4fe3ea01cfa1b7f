"""A small stack that satisfies every rule: one resource of each kind the rules judge, linked the way a
real preview links them. Failing fixtures break exactly one thing in it."""

from __future__ import annotations

import json
from typing import Any

from clinops.config import INTERFACE_ENDPOINT_SERVICES
from clinops.models import SLO_DEFAULTS, Slo, SloOverrides
from clinops.names import SLO_EXHAUSTED_SUFFIX, alarm_name, alert_topic_name
from policies.rules.slo import SIGNAL_TIERS
from tests.policies.planbuilder import PlanBuilder, stack_config

REGION = "us-east-1"
ENDPOINT_NAME = "clinops-prod-readmission-risk"  # endpoint_name("prod", SLO_MODEL)
ALARM_NAME = "clinops-prod-readmission-errors"
# As the shipped prod stack declares it (policies/config/prod.json, which CrossGuard tests run the baseline with)
SLO_MODEL = "readmission-risk"
SLO_PACKAGE = "arn:aws:sagemaker:us-east-1:333333333333:model-package/readmission-risk/3"
SLO_OVERRIDES = {"exhaustedAction": "breaker"}
DIMENSIONS = {"EndpointName": ENDPOINT_NAME, "VariantName": "primary"}
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
COMPOSITE = "aws:cloudwatch/compositeAlarm:CompositeAlarm"
OWN_ACCOUNTS = {"StringEquals": {"aws:PrincipalAccount": ["111111111111", "333333333333"]}}
INTERFACE_SERVICES = tuple(service.format(region=REGION) for service in INTERFACE_ENDPOINT_SERVICES)
PERSONA_DENIES = {
    "author": ["sagemaker:UpdateModelPackage"],
    "approver": ["sagemaker:CreateModelPackage", "sagemaker:CreateTrainingJob"],
    "deployer": ["sagemaker:UpdateModelPackage"],
    "execution": [],
}


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def _network(b: PlanBuilder) -> None:
    b.add("aws:ec2/vpc:Vpc", "vpc", {"cidrBlock": "10.40.0.0/16"})
    b.add(
        "aws:ec2/flowLog:FlowLog",
        "vpc-flow-log",
        {"trafficType": "ALL", "logDestinationType": "cloud-watch-logs"},
        {"vpcId": ["vpc"], "logDestination": ["flow-logs"]},
    )
    for service in INTERFACE_SERVICES:
        b.add(
            "aws:ec2/vpcEndpoint:VpcEndpoint",
            f"endpoint-{service.split(REGION + '.')[-1].replace('.', '-')}",
            {
                "serviceName": service,
                "vpcEndpointType": "Interface",
                "privateDnsEnabled": True,
                "policy": policy(
                    {
                        "Sid": "OwnAccountsOnly",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "*",
                        "Resource": "*",
                        "Condition": OWN_ACCOUNTS,
                    }
                ),
            },
            {"vpcId": ["vpc"]},
        )
    b.add(
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        "endpoint-s3",
        {
            "serviceName": f"com.amazonaws.{REGION}.s3",
            "vpcEndpointType": "Gateway",
            "policy": policy(
                {
                    "Sid": "PlatformBucketsOnly",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": ["arn:aws:s3:::clinops-prod-phi-data", "arn:aws:s3:::clinops-prod-phi-data/*"],
                }
            ),
        },
        {"vpcId": ["vpc"]},
    )
    b.add("aws:ec2/routeTable:RouteTable", "private-routes", {"routes": []}, {"vpcId": ["vpc"]})
    b.add(
        "aws:ec2/route:Route",
        "peering-route",
        {"destinationCidrBlock": "10.50.0.0/16", "vpcPeeringConnectionId": "pcx-1"},
        {"routeTableId": ["private-routes"]},
    )
    b.add(
        "aws:ec2/securityGroup:SecurityGroup",
        "workload-sg",
        {"ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}]},
        {"vpcId": ["vpc"]},
    )
    b.add(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "endpoint-https",
        {"cidrIpv4": "10.40.0.0/16", "ipProtocol": "tcp", "fromPort": 443, "toPort": 443},
        {"securityGroupId": ["workload-sg"]},
    )


def _bucket(b: PlanBuilder, name: str, lock_days: int | None = None) -> None:
    b.add(
        "aws:s3/bucket:Bucket",
        name,
        {"bucket": f"clinops-prod-{name}", "objectLockEnabled": lock_days is not None, "forceDestroy": False},
    )
    b.options(name, protect=True, retainOnDelete=True)
    b.add(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        f"{name}-encryption",
        {
            "rules": [
                {
                    "applyServerSideEncryptionByDefault": {
                        "sseAlgorithm": "aws:kms",
                        "kmsMasterKeyId": b.arn("data-key"),
                    },
                    "bucketKeyEnabled": True,
                }
            ]
        },
        {"bucket": [name], "rules": ["data-key"]},
    )
    b.add(
        "aws:s3/bucketPolicy:BucketPolicy",
        f"{name}-policy",
        {
            "policy": policy(
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            )
        },
        {"bucket": [name], "policy": [name]},
    )
    if lock_days is not None:
        retention = {"defaultRetention": {"mode": "COMPLIANCE", "days": lock_days}}
        b.add(
            "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
            f"{name}-lock",
            {"rule": retention},
            {"bucket": [name]},
        )


def _audit(b: PlanBuilder) -> None:
    key = b.arn("data-key")
    b.add(
        "aws:cloudwatch/logGroup:LogGroup",
        "flow-logs",
        {"retentionInDays": 731, "kmsKeyId": key},
        {"kmsKeyId": ["data-key"]},
    )
    b.add("aws:sns/topic:Topic", "alerts", {"kmsMasterKeyId": key}, {"kmsMasterKeyId": ["data-key"]})
    b.add(
        "aws:sns/topicPolicy:TopicPolicy",
        "alerts-policy",
        {
            "arn": b.arn("alerts"),
            "policy": policy(
                {
                    "Sid": "AlarmsPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": "sns:Publish",
                    "Resource": b.arn("alerts"),
                    "Condition": {"StringEquals": {"aws:SourceAccount": "333333333333"}},
                }
            ),
        },
        {"arn": ["alerts"]},
    )
    b.add(
        "aws:cloudtrail/trail:Trail",
        "trail",
        {
            "isMultiRegionTrail": True,
            "enableLogFileValidation": True,
            "enableLogging": True,
            "kmsKeyId": key,
            "advancedEventSelectors": [
                {"name": "management", "fieldSelectors": [{"field": "eventCategory", "equals": ["Management"]}]},
                {
                    "name": "phi objects",
                    "fieldSelectors": [
                        {"field": "eventCategory", "equals": ["Data"]},
                        {"field": "resources.type", "equals": ["AWS::S3::Object"]},
                    ],
                },
            ],
        },
        {"kmsKeyId": ["data-key"], "s3BucketName": ["evidence"]},
    )


def _identity(b: PlanBuilder) -> None:
    b.add(
        "aws:iam/policy:Policy",
        "boundary",
        {
            "policy": policy(
                {"Sid": "PlatformServices", "Effect": "Allow", "Action": ["sagemaker:*", "s3:*"], "Resource": "*"},
                {"Sid": "DenyIamEscalation", "Effect": "Deny", "Action": ["iam:CreateRole"], "Resource": "*"},
            )
        },
    )
    for persona, denied in PERSONA_DENIES.items():
        b.add(
            "aws:iam/role:Role",
            f"{persona}-role",
            {
                "name": f"clinops-prod-{persona}",
                "permissionsBoundary": b.arn("boundary"),
                "assumeRolePolicy": policy(
                    {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ),
                "tags": {"clinops:persona": persona},
            },
            {"permissionsBoundary": ["boundary"]},
        )
        statements = [{"Sid": "Work", "Effect": "Allow", "Action": ["sagemaker:Describe*"], "Resource": "*"}]
        if denied:
            statements.append({"Sid": "Segregation", "Effect": "Deny", "Action": denied, "Resource": "*"})
        b.add(
            "aws:iam/rolePolicy:RolePolicy",
            f"{persona}-permissions",
            {"role": f"clinops-prod-{persona}", "policy": policy(*statements)},
            {"role": [f"{persona}-role"]},
        )


def pipeline_definition(key: str) -> str:
    vpc = {"Subnets": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-workload"]}
    return json.dumps(
        {
            "Version": "2020-12-01",
            "Parameters": [],
            "Steps": [
                {
                    "Name": "Preprocess",
                    "Type": "Processing",
                    "Arguments": {
                        "ProcessingResources": {
                            "ClusterConfig": {
                                "InstanceCount": 1,
                                "InstanceType": "ml.m5.xlarge",
                                "VolumeSizeInGB": 30,
                                "VolumeKmsKeyId": key,
                            }
                        },
                        "ProcessingOutputConfig": {"KmsKeyId": key, "Outputs": [{"OutputName": "train"}]},
                        "NetworkConfig": {
                            "EnableNetworkIsolation": True,
                            "EnableInterContainerTrafficEncryption": True,
                            "VpcConfig": vpc,
                        },
                    },
                },
                {
                    "Name": "Train",
                    "Type": "Training",
                    "Arguments": {
                        "ResourceConfig": {
                            "InstanceCount": 2,
                            "InstanceType": "ml.m5.xlarge",
                            "VolumeSizeInGB": 30,
                            "VolumeKmsKeyId": key,
                        },
                        "OutputDataConfig": {"S3OutputPath": "s3://clinops-prod-artifacts/models", "KmsKeyId": key},
                        "VpcConfig": vpc,
                        "EnableNetworkIsolation": True,
                        "EnableInterContainerTrafficEncryption": True,
                    },
                },
                {
                    "Name": "QualityGate",
                    "Type": "Condition",
                    "Arguments": {
                        "Conditions": [],
                        "ElseSteps": [],
                        "IfSteps": [
                            {
                                "Name": "Register",
                                "Type": "RegisterModel",
                                "Arguments": {
                                    "ModelPackageGroupName": "readmission-risk",
                                    "ModelApprovalStatus": "PendingManualApproval",
                                },
                            }
                        ],
                    },
                },
                {
                    "Name": "BatchScore",
                    "Type": "Transform",
                    "Arguments": {
                        "ModelName": "clinops-prod-readmission-v3",
                        "TransformResources": {
                            "InstanceType": "ml.m5.xlarge",
                            "InstanceCount": 1,
                            "VolumeKmsKeyId": key,
                        },
                        "TransformOutput": {"S3OutputPath": "s3://clinops-prod-phi/scores", "KmsKeyId": key},
                    },
                },
            ],
        },
        sort_keys=True,
    )


def _sagemaker(b: PlanBuilder) -> None:
    key = b.arn("data-key")
    b.add(
        "aws:sagemaker/domain:Domain",
        "studio",
        {
            "appNetworkAccessType": "VpcOnly",
            "kmsKeyId": key,
            "defaultUserSettings": {"sharingSettings": {"notebookOutputOption": "Disabled"}},
        },
        {"kmsKeyId": ["data-key"], "vpcId": ["vpc"]},
    )
    b.add(
        "aws:sagemaker/userProfile:UserProfile",
        "profile-author",
        {"userProfileName": "author", "userSettings": {"sharingSettings": {"notebookOutputOption": "Disabled"}}},
        {"domainId": ["studio"]},
    )
    b.add(
        "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer",
        "mlflow",
        {"trackingServerName": "clinops-prod-mlflow", "automaticModelRegistration": False},
    )
    b.add(
        "aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy",
        "readmission-group-policy",
        {
            "modelPackageGroupName": "readmission-risk",
            "resourcePolicy": policy(
                {
                    "Sid": "PromotionAccountsRead",
                    "Effect": "Allow",
                    "Principal": {"AWS": ["arn:aws:iam::111111111111:root"]},
                    "Action": ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"],
                    "Resource": "arn:aws:sagemaker:us-east-1:333333333333:model-package/readmission-risk/*",
                }
            ),
        },
    )
    b.add(
        "aws:sagemaker/model:Model",
        "readmission-model",
        {
            "name": "clinops-prod-readmission-v3",
            "enableNetworkIsolation": True,
            "vpcConfig": {"subnets": ["subnet-1", "subnet-2"], "securityGroupIds": ["sg-workload"]},
        },
        {"vpcConfig": ["workload-sg"]},
    )
    b.add(
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        "readmission-config",
        {
            "kmsKeyArn": key,
            "productionVariants": [
                {
                    "variantName": "primary",
                    "modelName": "clinops-prod-readmission-v3",
                    "initialInstanceCount": 4,
                    "instanceType": "ml.m5.large",
                }
            ],
            "dataCaptureConfig": {
                "enableCapture": True,
                "initialSamplingPercentage": 100,
                "kmsKeyId": key,
                "captureOptions": [{"captureMode": "Input"}, {"captureMode": "Output"}],
                "destinationS3Uri": "s3://clinops-prod-capture/",
            },
        },
        {"kmsKeyArn": ["data-key"], "dataCaptureConfig": ["data-key"], "productionVariants": ["readmission-model"]},
    )
    b.add(
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "readmission-errors",
        {
            "name": ALARM_NAME,
            "namespace": "AWS/SageMaker",
            "metricName": "Invocation5XXErrors",
            "dimensions": {"EndpointName": ENDPOINT_NAME, "VariantName": "primary"},
            "period": 60,
            "evaluationPeriods": 3,
            "datapointsToAlarm": 2,
            "threshold": 1,
            "statistic": "Sum",
            "comparisonOperator": "GreaterThanOrEqualToThreshold",
        },
    )
    b.add(
        "aws:sagemaker/endpoint:Endpoint",
        "readmission",
        {
            "name": ENDPOINT_NAME,
            "endpointConfigName": "readmission-config",
            "deploymentConfig": {
                "blueGreenUpdatePolicy": {
                    "trafficRoutingConfiguration": {
                        "type": "CANARY",
                        "waitIntervalInSeconds": 600,
                        "canarySize": {"type": "CAPACITY_PERCENT", "value": 10},
                    },
                    "terminationWaitInSeconds": 600,
                    "maximumExecutionTimeoutInSeconds": 3600,
                },
                "autoRollbackConfiguration": {"alarms": [{"alarmName": ALARM_NAME}]},
            },
        },
        {"endpointConfigName": ["readmission-config"]},
    )
    b.add(
        "aws:sagemaker/pipeline:Pipeline",
        "readmission-pipeline",
        {"pipelineDefinition": pipeline_definition(key)},
        {"pipelineDefinition": ["data-key", "workload-sg", "readmission-model"]},
    )


def _cds_api(b: PlanBuilder) -> None:
    """The private CDS Hooks API as infra/cds_api.py builds it: endpoint-pinned, logged, throttled."""
    b.add("aws:apigateway/restApi:RestApi", "cds-api", {"endpointConfiguration": {"types": "PRIVATE"}})
    pinned = {"StringEquals": {"aws:SourceVpce": "vpce-0123456789abcdef0"}}
    outside = {"StringNotEquals": {"aws:SourceVpce": "vpce-0123456789abcdef0"}}
    b.add(
        "aws:apigateway/restApiPolicy:RestApiPolicy",
        "cds-api-policy",
        {
            "policy": policy(
                {
                    "Sid": "ThroughTheEndpoint",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "execute-api:Invoke",
                    "Resource": "*",
                    "Condition": pinned,
                },
                {
                    "Sid": "NothingElse",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "execute-api:Invoke",
                    "Resource": "*",
                    "Condition": outside,
                },
            )
        },
        {"restApiId": ["cds-api"]},
    )
    b.add(
        "aws:apigateway/stage:Stage",
        "cds-api-stage",
        {
            "stageName": "v1",
            "accessLogSettings": {"destinationArn": "arn:aws:logs:us-east-1:1:log-group:x", "format": "{}"},
        },
        {"restApi": ["cds-api"]},
    )
    b.add(
        "aws:apigateway/methodSettings:MethodSettings",
        "cds-api-throttling",
        {"methodPath": "*/*", "settings": {"throttlingRateLimit": 50, "throttlingBurstLimit": 100}},
        {"restApi": ["cds-api"]},
    )


def compliant(environment: str = "prod") -> PlanBuilder:
    b = PlanBuilder("prod", stack_config(environment))
    b.add("aws:kms/key:Key", "data-key", {"enableKeyRotation": True, "rotationPeriodInDays": 365})
    _network(b)
    _bucket(b, "phi-data")
    _bucket(b, "evidence", lock_days=2190)
    _audit(b)
    _identity(b)
    _sagemaker(b)
    _cds_api(b)
    _slo(b)
    return b


def _slo(b: PlanBuilder) -> None:
    """The served model's SLO alarms as infra.slo builds them (prod defaults): burn-rate tiers of window alarms
    ANDed by composites, exhausted budget, quality and cost per 1,000, all notifying the alert topic."""
    b.config["clinops:models"] = json.dumps([{"name": SLO_MODEL, "packageArn": SLO_PACKAGE, "slo": SLO_OVERRIDES}])
    b.set("alerts", "name", alert_topic_name("prod"))
    slo = Slo.model_validate({**SLO_DEFAULTS["prod"], **SloOverrides.model_validate(SLO_OVERRIDES).given()})
    topic = {"alarmActions": ["alerts"], "okActions": ["alerts"]}
    actions = {"alarmActions": [b.arn("alerts")], "okActions": [b.arn("alerts")]}

    def metric_alarm(suffix: str, period: int, threshold: float, notify: bool, severity: str) -> str:
        name = alarm_name("prod", SLO_MODEL, suffix)
        queries = [
            {
                "id": q,
                "metric": {
                    "dimensions": DIMENSIONS,
                    "metricName": m,
                    "namespace": "AWS/SageMaker",
                    "period": period,
                    "stat": "Sum",
                },
                "returnData": False,
            }
            for q, m in (("errors", "Invocation5XXErrors"), ("invocations", "Invocations"))
        ] + [{"id": "value", "expression": "IF(invocations > 0, errors / invocations, 0)", "returnData": True}]
        b.add(
            ALARM,
            name,
            {
                "name": name,
                "metricQueries": queries,
                "threshold": threshold,
                "evaluationPeriods": 1,
                "datapointsToAlarm": 1,
                "comparisonOperator": "GreaterThanOrEqualToThreshold",
                "tags": {"clinops:severity": severity},
                **(actions if notify else {"alarmActions": [], "okActions": []}),
            },
            topic if notify else {},
        )
        return name

    for signal, tier in SIGNAL_TIERS:
        rate = tier.burn_rate(slo.window_days)
        windows = [
            metric_alarm(f"slo-{signal}-{tier.name}-{label}", seconds, rate, False, tier.notify)
            for label, seconds in zip(("long", "short"), tier.windows, strict=True)
        ]
        name = alarm_name("prod", SLO_MODEL, f"slo-{signal}-{tier.name}")
        b.add(
            COMPOSITE,
            name,
            {
                "alarmName": name,
                "alarmRule": " AND ".join(f'ALARM("{w}")' for w in windows),
                "tags": {"clinops:severity": tier.notify},
                **actions,
            },
            topic,
        )
    metric_alarm(SLO_EXHAUSTED_SUFFIX[slo.exhausted_action], 7 * 86400, 4.285714, True, "page")
    metric_alarm("slo-auc", 86400, slo.min_auc, True, "ticket")
    metric_alarm("slo-calibration", 86400, slo.max_calibration_slope_error, True, "ticket")
    metric_alarm("cost-per-1000", 86400, slo.cost_per_1000_usd, True, "ticket")
