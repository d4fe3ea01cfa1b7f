"""One way (or a few) to break each rule, applied to the compliant baseline, and the resource that must be
blamed for it. `also` lists other rules the same change legitimately breaks."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clinops.names import alarm_name
from tests.policies.baseline import ALARM_NAME, ENDPOINT_NAME, SLO_MODEL, policy
from tests.policies.planbuilder import DELETE, PlanBuilder

Mutation = Callable[[PlanBuilder], None]
ROUTING = "deploymentConfig.blueGreenUpdatePolicy.trafficRoutingConfiguration"
BLUE_GREEN = "deploymentConfig.blueGreenUpdatePolicy"


@dataclass(frozen=True)
class Case:
    rule_id: str
    label: str
    mutate: Mutation
    culprit: str | None  # resource name; None: the stack as a whole
    also: frozenset[str] = frozenset()


def _pipeline(edit: Callable[[dict[str, Any]], None]) -> Mutation:
    return lambda b: b.edit_json("readmission-pipeline", "pipelineDefinition", lambda d: edit(d["Steps"]))


def _statements(name: str, edit: Callable[[list[dict[str, Any]]], None], prop: str = "policy") -> Mutation:
    return lambda b: b.edit_json(name, prop, lambda d: edit(d["Statement"]))


MLFLOW_SERVER = "arn:aws:sagemaker:us-east-1:333333333333:mlflow-tracking-server/clinops-prod-mlflow"


def _logs_to_mlflow(uri: Any = MLFLOW_SERVER, in_vpc: bool = True) -> Mutation:
    """The processing step lifts network isolation to log to an MLflow tracking server (pipelines' TrackRun)."""

    def edit(steps: list[dict[str, Any]]) -> None:
        arguments = steps[0]["Arguments"]
        arguments["NetworkConfig"]["EnableNetworkIsolation"] = False
        arguments["Environment"] = {"MLFLOW_TRACKING_URI": uri}
        if not in_vpc:
            arguments["NetworkConfig"].pop("VpcConfig")

    return _pipeline(edit)


REGISTRY = "arn:aws:sagemaker:us-east-1:111111111111"


def _per_model_arns(count: int) -> dict[str, Any]:
    """The registry grant as it was before issue 15's mesh work: one package and one group ARN per model."""
    arns = [
        a
        for i in range(count)
        for a in (f"{REGISTRY}:model-package/model-{i:03d}/*", f"{REGISTRY}:model-package-group/model-{i:03d}")
    ]
    return {"Sid": "ReadRegistry", "Effect": "Allow", "Action": ["sagemaker:DescribeModelPackage"], "Resource": arns}


def _key_policy(statements: int) -> Mutation:
    """A key policy naming each schedule's target role in its own statement (about 280 bytes each)."""
    role = "arn:aws:iam::333333333333:role/clinops-prod-model-{:03d}-drift-scheduler"
    return lambda b: b.set(
        "data-key",
        "policy",
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": f"ScheduleTarget{i}",
                        "Effect": "Allow",
                        "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
                        "Action": ["kms:Decrypt"],
                        "Resource": "*",
                        "Condition": {"StringEquals": {"aws:PrincipalArn": role.format(i)}},
                    }
                    for i in range(statements)
                ],
            }
        ),
    )


def _steps(*mutations: Mutation) -> Mutation:
    def run(b: PlanBuilder) -> None:
        for mutation in mutations:
            mutation(b)

    return run


def _slo(suffix: str) -> str:
    return alarm_name("prod", SLO_MODEL, suffix)


def _without_slo_alarms(b: PlanBuilder) -> None:
    for name in [n for n in b.resources if n.startswith(_slo("slo-")) or n == _slo("cost-per-1000")]:
        b.remove(name)


def _window_period(name: str, seconds: int) -> Mutation:
    return _steps(*(lambda b, i=i: b.set(name, f"metricQueries.{i}.metric.period", seconds) for i in (0, 1)))


def _extra_alarms(b: PlanBuilder, count: int) -> None:
    for i in range(count):
        b.add(
            "aws:cloudwatch/metricAlarm:MetricAlarm",
            f"extra-{i}",
            {
                "name": f"extra-{i}",
                "dimensions": {"EndpointName": ENDPOINT_NAME},
                "period": 60,
                "evaluationPeriods": 1,
            },
        )
    b.set(
        "readmission",
        "deploymentConfig.autoRollbackConfiguration.alarms",
        [{"alarmName": ALARM_NAME}] + [{"alarmName": f"extra-{i}"} for i in range(count)],
    )


# fmt: off
FAILING: list[Case] = [
    Case("CLIN-NET-001", "internet gateway", lambda b: b.add("aws:ec2/internetGateway:InternetGateway", "igw", {},
         {"vpcId": ["vpc"]}), "igw"),
    Case("CLIN-NET-001", "NAT gateway", lambda b: b.add("aws:ec2/natGateway:NatGateway", "nat", {}), "nat"),
    Case("CLIN-NET-002", "route to 0.0.0.0/0", lambda b: b.set("peering-route", "destinationCidrBlock", "0.0.0.0/0"),
         "peering-route"),
    Case("CLIN-NET-002", "inline route to ::/0", lambda b: b.set("private-routes", "routes",
         [{"ipv6CidrBlock": "::/0", "gatewayId": "igw-1"}]), "private-routes"),
    Case("CLIN-NET-003", "inline ingress from anywhere", lambda b: b.set("workload-sg", "ingress.0.cidrBlocks",
         ["0.0.0.0/0"]), "workload-sg"),
    Case("CLIN-NET-003", "ingress rule from ::/0", lambda b: b.set("endpoint-https", "cidrIpv6", "::/0"),
         "endpoint-https"),
    Case("CLIN-NET-004", "no flow log", lambda b: b.remove("vpc-flow-log"), "vpc"),
    Case("CLIN-NET-004", "rejected traffic only", lambda b: b.set("vpc-flow-log", "trafficType", "REJECT"), "vpc"),
    Case("CLIN-NET-005", "public internet", lambda b: b.set("studio", "appNetworkAccessType", "PublicInternetOnly"),
         "studio"),
    Case("CLIN-NET-005", "AWS default", lambda b: b.set("studio", "appNetworkAccessType", DELETE), "studio"),
    Case("CLIN-NET-006", "missing runtime endpoint", lambda b: b.remove("endpoint-sagemaker-runtime"), "vpc"),
    Case("CLIN-NET-006", "private DNS off", lambda b: b.set("endpoint-sts", "privateDnsEnabled", False),
         "endpoint-sts"),
    Case("CLIN-ENC-001", "rotation off", lambda b: b.set("data-key", "enableKeyRotation", False), "data-key"),
    Case("CLIN-ENC-001", "rotation every two years", lambda b: b.set("data-key", "rotationPeriodInDays", 730),
         "data-key"),
    Case("CLIN-ENC-002", "SSE-S3", lambda b: b.set("phi-data-encryption",
         "rules.0.applyServerSideEncryptionByDefault", {"sseAlgorithm": "AES256"}), "phi-data"),
    Case("CLIN-ENC-002", "AWS-managed key", _steps(
        lambda b: b.set("phi-data-encryption", "rules.0.applyServerSideEncryptionByDefault.kmsMasterKeyId",
                        "alias/aws/s3"),
        lambda b: b.unlink("phi-data-encryption", "rules")), "phi-data"),
    Case("CLIN-ENC-002", "no encryption resource", lambda b: b.remove("phi-data-encryption"), "phi-data"),
    Case("CLIN-ENC-003", "log group without key", _steps(lambda b: b.set("flow-logs", "kmsKeyId", DELETE),
         lambda b: b.unlink("flow-logs", "kmsKeyId")), "flow-logs"),
    Case("CLIN-ENC-004", "topic on the AWS-managed key", _steps(
        lambda b: b.set("alerts", "kmsMasterKeyId", "alias/aws/sns"), lambda b: b.unlink("alerts", "kmsMasterKeyId")),
        "alerts"),
    Case("CLIN-ENC-005", "domain key from another stack", lambda b: b.unlink("studio", "kmsKeyId"), "studio"),
    Case("CLIN-ENC-006", "no storage key", lambda b: b.set("readmission-config", "kmsKeyArn", DELETE),
         "readmission-config"),
    Case("CLIN-ENC-006", "data capture without key", lambda b: b.set("readmission-config",
         "dataCaptureConfig.kmsKeyId", DELETE), "readmission-config"),
    Case("CLIN-ENC-007", "training volume unencrypted",
         _pipeline(lambda s: s[1]["Arguments"]["ResourceConfig"].pop("VolumeKmsKeyId")), "readmission-pipeline"),
    Case("CLIN-ENC-007", "processing output key from a parameter", _pipeline(
        lambda s: s[0]["Arguments"]["ProcessingOutputConfig"].update(KmsKeyId={"Get": "Parameters.OutputKey"})),
        "readmission-pipeline"),
    Case("CLIN-ENC-007", "transform volume unencrypted",
         _pipeline(lambda s: s[3]["Arguments"]["TransformResources"].pop("VolumeKmsKeyId")), "readmission-pipeline"),
    Case("CLIN-ENC-007", "transform scores under an AWS-managed key", _pipeline(
        lambda s: s[3]["Arguments"]["TransformOutput"].update(KmsKeyId="alias/aws/s3")), "readmission-pipeline"),
    Case("CLIN-TLS-001", "policy without TLS deny", _statements("phi-data-policy", lambda s: s[0]["Condition"].update(
        Bool={"aws:SecureTransport": "true"})), "phi-data"),
    Case("CLIN-TLS-001", "no bucket policy", lambda b: b.remove("evidence-policy"), "evidence"),
    Case("CLIN-TLS-002", "plaintext between training workers", _pipeline(
        lambda s: s[1]["Arguments"].update(EnableInterContainerTrafficEncryption=False)), "readmission-pipeline"),
    Case("CLIN-TLS-002", "processing default", _pipeline(
        lambda s: s[0]["Arguments"]["NetworkConfig"].pop("EnableInterContainerTrafficEncryption")),
        "readmission-pipeline"),
    Case("CLIN-AUD-001", "single region", lambda b: b.set("trail", "isMultiRegionTrail", False), "trail"),
    Case("CLIN-AUD-001", "no log-file validation", lambda b: b.set("trail", "enableLogFileValidation", False),
         "trail"),
    Case("CLIN-AUD-001", "not encrypted", _steps(lambda b: b.set("trail", "kmsKeyId", DELETE),
         lambda b: b.unlink("trail", "kmsKeyId")), "trail"),
    Case("CLIN-AUD-002", "management events only", lambda b: b.set("trail", "advancedEventSelectors.1", DELETE),
         "trail"),
    Case("CLIN-AUD-002", "object writes only", lambda b: b.set("trail", "advancedEventSelectors.1.fieldSelectors.2",
         {"field": "readOnly", "equals": ["false"]}), "trail"),
    Case("CLIN-AUD-003", "30-day logs for PHI", lambda b: b.set("flow-logs", "retentionInDays", 30), "flow-logs"),
    Case("CLIN-AUD-004", "governance mode", lambda b: b.set("evidence-lock", "rule.defaultRetention.mode",
         "GOVERNANCE"), "evidence-lock"),
    Case("CLIN-AUD-004", "one year for PHI", lambda b: b.set("evidence-lock", "rule.defaultRetention.days", 365),
         "evidence-lock"),
    Case("CLIN-AUD-004", "no evidence lock at all", lambda b: b.remove("evidence-lock"), None),
    Case("CLIN-IAM-001", "Action * on Resource *", _statements("execution-permissions",
         lambda s: s.append({"Effect": "Allow", "Action": "*", "Resource": "*"})), "execution-permissions"),
    Case("CLIN-IAM-001", "NotAction on every resource", _statements("boundary",
         lambda s: s.append({"Effect": "Allow", "NotAction": ["iam:*"], "Resource": "*"})), "boundary"),
    Case("CLIN-IAM-001", "AdministratorAccess attached", lambda b: b.add(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "admin",
        {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}, {"role": ["deployer-role"]}), "admin"),
    Case("CLIN-IAM-002", "author may approve", _statements("author-permissions", lambda s: s.pop()), "author-role"),
    Case("CLIN-IAM-002", "approver deny is conditional", _statements("approver-permissions",
         lambda s: s[-1].update(Condition={"StringEquals": {"aws:RequestedRegion": "us-east-1"}})),
         "approver-role"),
    Case("CLIN-IAM-002", "no deployer persona", lambda b: b.set("deployer-role", "tags", {}), None),
    Case("CLIN-IAM-003", "role without boundary", _steps(lambda b: b.set("execution-role", "permissionsBoundary",
         DELETE), lambda b: b.unlink("execution-role", "permissionsBoundary")), "execution-role"),
    Case("CLIN-IAM-004", "one registry ARN per model for 80 models", _statements("execution-permissions",
         lambda s: s.append(_per_model_arns(80))), "execution-role"),
    Case("CLIN-IAM-004", "a trust policy of 160 source accounts", lambda b: b.edit_json("author-role",
         "assumeRolePolicy", lambda d: d["Statement"][0].update(Condition={"StringEquals": {"aws:SourceAccount": [
             f"{i:012d}" for i in range(160)]}})), "author-role"),
    Case("CLIN-IAM-004", "a managed policy of 50 models", _statements("boundary",
         lambda s: s.append(_per_model_arns(50))), "boundary"),
    Case("CLIN-RES-003", "a key policy statement per schedule for 120 schedules", _key_policy(120), "data-key"),
    Case("CLIN-SM-001", "model outside the VPC", lambda b: b.set("readmission-model", "vpcConfig", DELETE),
         "readmission-model"),
    Case("CLIN-SM-001", "model network isolation off", lambda b: b.set("readmission-model",
         "enableNetworkIsolation", False), "readmission-model"),
    Case("CLIN-SM-002", "training outside the VPC", _pipeline(lambda s: s[1]["Arguments"].pop("VpcConfig")),
         "readmission-pipeline"),
    Case("CLIN-SM-002", "processing isolation from a parameter", _pipeline(
        lambda s: s[0]["Arguments"]["NetworkConfig"].update(EnableNetworkIsolation={"Get": "Parameters.Isolate"})),
        "readmission-pipeline"),
    Case("CLIN-SM-002", "isolation off to log to MLflow, outside the VPC", _logs_to_mlflow(in_vpc=False),
         "readmission-pipeline"),
    Case("CLIN-SM-002", "isolation off to log to another stack's MLflow server", _logs_to_mlflow(
        MLFLOW_SERVER.replace("clinops-prod-mlflow", "clinops-staging-mlflow")), "readmission-pipeline"),
    Case("CLIN-SM-002", "isolation off to log to MLflow in another account", _logs_to_mlflow(
        MLFLOW_SERVER.replace("333333333333", "999999999999")), "readmission-pipeline"),
    Case("CLIN-SM-002", "isolation off to log to an MLflow server from a parameter", _logs_to_mlflow(
        {"Get": "Parameters.TrackingUri"}), "readmission-pipeline"),
    Case("CLIN-SM-002", "isolation off to log to MLflow without the MLflow endpoint", _steps(
        _logs_to_mlflow(), lambda b: b.remove("endpoint-experiments")), "readmission-pipeline",
        frozenset({"CLIN-NET-006"})),
    Case("CLIN-SM-002", "isolation off to log to MLflow from a VPC with a NAT gateway", _steps(
        _logs_to_mlflow(), lambda b: b.add("aws:ec2/natGateway:NatGateway", "nat", {})), "readmission-pipeline",
        frozenset({"CLIN-NET-001"})),
    Case("CLIN-SM-003", "registers as Approved", _pipeline(
        lambda s: s[2]["Arguments"]["IfSteps"][0]["Arguments"].update(ModelApprovalStatus="Approved")),
        "readmission-pipeline"),
    Case("CLIN-SM-003", "approval status from a parameter", _pipeline(
        lambda s: s[2]["Arguments"]["IfSteps"][0]["Arguments"].update(
            ModelApprovalStatus={"Get": "Parameters.ApprovalStatus"})), "readmission-pipeline"),
    Case("CLIN-SM-004", "variant serves an outside model", _steps(
        lambda b: b.set("readmission-config", "productionVariants.0.modelName", "somebody-elses-model"),
        lambda b: b.unlink("readmission-config", "productionVariants")), "readmission-config"),
    Case("CLIN-SM-005", "transform runs an outside model", _pipeline(
        lambda s: s[3]["Arguments"].update(ModelName="somebody-elses-model")), "readmission-pipeline"),
    Case("CLIN-SM-005", "transform model from a parameter", _pipeline(
        lambda s: s[3]["Arguments"].update(ModelName={"Get": "Parameters.Model"})), "readmission-pipeline"),
    Case("CLIN-DEP-001", "all at once in prod", lambda b: b.set("readmission", f"{ROUTING}.type", "ALL_AT_ONCE"),
         "readmission"),
    Case("CLIN-DEP-001", "no deployment config in prod", lambda b: b.set("readmission", "deploymentConfig", DELETE),
         "readmission", frozenset({"CLIN-DEP-002"})),
    Case("CLIN-DEP-001", "canary without a size", lambda b: b.set("readmission", f"{ROUTING}.canarySize", DELETE),
         "readmission"),
    Case("CLIN-DEP-002", "no rollback alarms in prod", lambda b: b.set("readmission",
         "deploymentConfig.autoRollbackConfiguration", DELETE), "readmission"),
    Case("CLIN-DEP-002", "alarm not in the stack", lambda b: b.set("readmission",
         "deploymentConfig.autoRollbackConfiguration.alarms.0.alarmName", "made-up-alarm"), "readmission"),
    Case("CLIN-DEP-002", "alarm watches another endpoint", lambda b: b.set("readmission-errors",
         "dimensions.EndpointName", "clinops-prod-sepsis"), "readmission"),
    Case("CLIN-DEP-002", "eleven alarms", lambda b: _extra_alarms(b, 10), "readmission"),
    Case("CLIN-DEP-003", "wait over an hour", lambda b: b.set("readmission", f"{ROUTING}.waitIntervalInSeconds", 4000),
         "readmission"),
    Case("CLIN-DEP-003", "timeout below the waits", lambda b: b.set("readmission",
         f"{BLUE_GREEN}.maximumExecutionTimeoutInSeconds", 1200), "readmission"),
    Case("CLIN-DEP-003", "timeout above eight hours", lambda b: b.set("readmission",
         f"{BLUE_GREEN}.maximumExecutionTimeoutInSeconds", 30000), "readmission"),
    Case("CLIN-DEP-003", "linear steps outlast the timeout", _steps(
        lambda b: b.set("readmission", ROUTING, {"type": "LINEAR", "waitIntervalInSeconds": 600,
                                                 "linearStepSize": {"type": "CAPACITY_PERCENT", "value": 10}}),
        lambda b: b.set("readmission", f"{BLUE_GREEN}.maximumExecutionTimeoutInSeconds", 5400)), "readmission"),
    Case("CLIN-DEP-004", "five-minute alarm periods", lambda b: b.set("readmission-errors", "period", 300),
         "readmission-errors", frozenset({"CLIN-DEP-005"})),
    Case("CLIN-DEP-005", "canary bakes two minutes", lambda b: b.set("readmission",
         f"{ROUTING}.waitIntervalInSeconds", 120), "readmission"),
    Case("CLIN-RES-001", "topic open to everyone", _statements("alerts-policy",
         lambda s: s[0].update(Principal="*", Condition={})), "alerts-policy"),
    Case("CLIN-RES-001", "service publishes with no source account", _statements("alerts-policy",
         lambda s: s[0].pop("Condition")), "alerts-policy"),
    Case("CLIN-RES-002", "foreign account reads the registry", _statements("readmission-group-policy",
         lambda s: s[0].update(Principal={"AWS": "arn:aws:iam::999999999999:root"}), "resourcePolicy"),
         "readmission-group-policy"),
    Case("CLIN-RES-002", "other account may approve", _statements("readmission-group-policy",
         lambda s: s[0]["Action"].append("sagemaker:UpdateModelPackage"), "resourcePolicy"),
         "readmission-group-policy"),
    Case("CLIN-NET-008", "interface endpoint without a policy", lambda b: b.set("endpoint-kms", "policy", DELETE),
         "endpoint-kms"),
    Case("CLIN-NET-008", "interface endpoint open to any account", _statements("endpoint-sts",
         lambda s: s[0].pop("Condition")), "endpoint-sts"),
    Case("CLIN-NET-009", "S3 gateway endpoint reaches every bucket", _statements("endpoint-s3",
         lambda s: s[0].update(Resource="*")), "endpoint-s3"),
    Case("CLIN-NET-009", "S3 gateway endpoint without a policy", lambda b: b.set("endpoint-s3", "policy", DELETE),
         "endpoint-s3"),
    Case("CLIN-SM-006", "data capture off", lambda b: b.set("readmission-config", "dataCaptureConfig.enableCapture",
         False), "readmission-config"),
    Case("CLIN-SM-006", "outputs not captured", lambda b: b.set("readmission-config",
         "dataCaptureConfig.captureOptions", [{"captureMode": "Input"}]), "readmission-config"),
    Case("CLIN-SM-007", "domain shares notebook output", lambda b: b.set("studio",
         "defaultUserSettings.sharingSettings.notebookOutputOption", "Allowed"), "studio"),
    Case("CLIN-SM-007", "a profile overrides sharing", lambda b: b.set("profile-author",
         "userSettings.sharingSettings.notebookOutputOption", "Allowed"), "profile-author"),
    Case("CLIN-SM-008", "MLflow registers models itself", lambda b: b.set("mlflow", "automaticModelRegistration",
         True), "mlflow"),
    Case("CLIN-AUD-005", "evidence bucket force-destroyable", lambda b: b.set("evidence", "forceDestroy", True),
         "evidence"),
    Case("CLIN-AUD-005", "prod evidence not retained on delete", lambda b: b.options("evidence",
         retainOnDelete=False), "evidence"),
    Case("CLIN-DEP-006", "canary above half the fleet", lambda b: b.set("readmission", f"{ROUTING}.canarySize.value",
         60), "readmission"),
    Case("CLIN-DEP-006", "canary of three of four instances", lambda b: b.set("readmission", f"{ROUTING}.canarySize",
         {"type": "INSTANCE_COUNT", "value": 3}), "readmission"),
    Case("CLIN-DEP-006", "linear steps of 5%", lambda b: b.set("readmission", ROUTING, {
        "type": "LINEAR", "waitIntervalInSeconds": 600, "linearStepSize": {"type": "CAPACITY_PERCENT", "value": 5}}),
        "readmission", frozenset({"CLIN-DEP-003"})),
    Case("CLIN-DEP-007", "blue/green wait of 0", lambda b: b.set("readmission", f"{ROUTING}.waitIntervalInSeconds",
         0), "readmission", frozenset({"CLIN-DEP-005"})),
    Case("CLIN-API-001", "regional API", lambda b: b.set("cds-api", "endpointConfiguration.types", "REGIONAL"),
         "cds-api"),
    Case("CLIN-API-002", "no resource policy", lambda b: b.remove("cds-api-policy"), "cds-api"),
    Case("CLIN-API-002", "allow not pinned to the endpoint", lambda b: b.set("cds-api-policy", "policy",
         policy({"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*"})),
         "cds-api-policy"),
    Case("CLIN-API-003", "no access log", lambda b: b.set("cds-api-stage", "accessLogSettings", DELETE),
         "cds-api-stage"),
    Case("CLIN-API-003", "no throttling", lambda b: b.remove("cds-api-throttling"), "cds-api-stage"),
    Case("CLIN-SLO-001", "fast burn long window removed", lambda b: b.remove(_slo("slo-availability-fast-long")),
         "readmission", frozenset({"CLIN-SLO-004"})),
    Case("CLIN-SLO-001", "a model with no SLO alarms", _without_slo_alarms, "readmission",
         frozenset({"CLIN-SLO-003", "CLIN-SLO-004"})),
    Case("CLIN-SLO-001", "slow tier ORs its windows", lambda b: b.set(_slo("slo-availability-slow"), "alarmRule",
         f'ALARM("{_slo("slo-availability-slow-long")}") OR ALARM("{_slo("slo-availability-slow-short")}")'),
         "readmission"),
    Case("CLIN-SLO-001", "medium window at the fast tier's rate", lambda b: b.set(
         _slo("slo-availability-medium-short"), "threshold", 14.4), "readmission"),
    Case("CLIN-SLO-001", "endpoint of a model the config does not declare", lambda b: b.config.update(
         {"clinops:models": "[]"}), "readmission"),
    Case("CLIN-SLO-002", "fast tier without the topic action", _steps(
         lambda b: b.set(_slo("slo-availability-fast"), "alarmActions", []),
         lambda b: b.unlink(_slo("slo-availability-fast"), "alarmActions")), _slo("slo-availability-fast")),
    Case("CLIN-SLO-002", "fast tier notifies another topic", lambda b: (
         b.add("aws:sns/topic:Topic", "other", {"name": "other", "kmsMasterKeyId": b.arn("data-key")},
               {"kmsMasterKeyId": ["data-key"]}),
         b.set(_slo("slo-latency-fast"), "alarmActions", [b.arn("other")]),
         b.link(_slo("slo-latency-fast"), "alarmActions", "other")), _slo("slo-latency-fast")),
    Case("CLIN-SLO-002", "slow tier pages", lambda b: b.set(_slo("slo-availability-slow"), "tags",
         {"clinops:severity": "page"}), _slo("slo-availability-slow")),
    Case("CLIN-SLO-003", "cost alarm removed", lambda b: b.remove(_slo("cost-per-1000")), "readmission"),
    Case("CLIN-SLO-003", "cost alarm off its target", lambda b: b.set(_slo("cost-per-1000"), "threshold", 5.0),
         "readmission"),
    Case("CLIN-SLO-003", "cost alarm without the topic", _steps(
         lambda b: b.set(_slo("cost-per-1000"), "alarmActions", []),
         lambda b: b.unlink(_slo("cost-per-1000"), "alarmActions")), "readmission"),
    # 1-day long window: 86400 s x 14.4 x 0.001 = 1244 s of outage + 120 s > 600 s
    Case("CLIN-SLO-004", "fast window stretched beyond the rollback SLO",
         _window_period(_slo("slo-availability-fast-long"), 86400), "readmission", frozenset({"CLIN-SLO-001"})),
    # 99%: 3600 s x 14.4 x 0.01 = 518.4 s + 120 s = 638 s > 600 s
    Case("CLIN-SLO-004", "a 99% objective pages after the rollback SLO", lambda b: b.config.update(
         {"clinops:slo": '{"availabilityPercent": 99.0}'}), "readmission"),
    Case("CLIN-SLO-004", "wall-clock evaluation", lambda b: b.set(_slo("slo-availability-fast-short"),
         "evaluationWindow", {"wallClockWindow": {"timezone": "UTC"}}), "readmission"),
]
# fmt: on

# Variations that must still pass: the rule reads these as compliant, not as gaps.
# fmt: off
PASSING: list[Case] = [
    Case("CLIN-DEP-001", "all at once is allowed in dev", lambda b: (
        b.config.update({"clinops:environment": "dev"}), b.set("readmission", f"{ROUTING}.type", "ALL_AT_ONCE")),
        None),
    Case("CLIN-DEP-002", "dev may deploy without rollback alarms", lambda b: (
        b.config.update({"clinops:environment": "dev"}),
        b.set("readmission", "deploymentConfig.autoRollbackConfiguration", DELETE)), None),
    Case("CLIN-AUD-003", "never-expiring logs satisfy the floor", lambda b: b.set("flow-logs", "retentionInDays", 0),
         None),
    Case("CLIN-AUD-003", "30-day logs are enough for synthetic data", lambda b: (
        b.config.update({"clinops:tags": '{"dataClassification": "synthetic"}'}),
        b.set("flow-logs", "retentionInDays", 30)), None),
    Case("CLIN-DEP-004", "a slower alarm fits a wider SLO", lambda b: (
        b.config.update({"clinops:rollbackSloSeconds": "1200"}), b.set("readmission-errors", "period", 300),
        b.set("readmission", f"{ROUTING}.waitIntervalInSeconds", 1200)), None),
    Case("CLIN-DEP-002", "alarm name known only after apply, linked by dependency", lambda b: (
        b.set("readmission", "deploymentConfig.autoRollbackConfiguration.alarms.0.alarmName",
              "04da6b54-80e4-46f7-96ec-b56ff0331ba9"),
        b.link("readmission", "deploymentConfig", "readmission-errors")), None),
    Case("CLIN-ENC-003", "key ARN unknown until apply, linked by dependency", lambda b: b.set(
        "flow-logs", "kmsKeyId", "04da6b54-80e4-46f7-96ec-b56ff0331ba9"), None),
    Case("CLIN-TLS-001", "BoolIfExists and an AWS principal wildcard", _statements("phi-data-policy",
         lambda s: s[0].update(Principal={"AWS": "*"}, Condition={"BoolIfExists": {"aws:SecureTransport": False}})),
         None),
    Case("CLIN-DEP-006", "a canary of half the fleet", lambda b: b.set("readmission", f"{ROUTING}.canarySize",
         {"type": "INSTANCE_COUNT", "value": 2}), None),
    Case("CLIN-SM-002", "isolation off only to log to this stack's MLflow through its endpoint", _logs_to_mlflow(),
         None),
    Case("CLIN-IAM-002", "deny inherited from the permissions boundary", _steps(
        _statements("author-permissions", lambda s: s.pop()),
        _statements("boundary", lambda s: s.append({"Effect": "Deny", "Action": "sagemaker:UpdateModelPackage",
                                                    "Resource": "*"}))), None),
    # 99.1%: 3600 s x 14.4 x 0.009 = 466.6 s + 120 s = 587 s <= 600 s
    Case("CLIN-SLO-004", "a 99.1% objective pages within the rollback SLO", lambda b: b.config.update(
         {"clinops:slo": '{"availabilityPercent": 99.1}'}), None),
    Case("CLIN-IAM-004", "the same grant for 30 models fits", _statements("execution-permissions",
         lambda s: s.append(_per_model_arns(30))), None),
    Case("CLIN-RES-003", "a statement per schedule for 60 schedules fits", _key_policy(60), None),
    Case("CLIN-SLO-001", "dev may serve a model without SLO alarms", lambda b: (
        b.config.update({"clinops:environment": "dev"}), _without_slo_alarms(b)), None),
    Case("CLIN-SLO-002", "alarm ARN known only after apply, linked to the alert topic", lambda b: b.set(
        _slo("slo-availability-fast"), "alarmActions", ["04da6b54-80e4-46f7-96ec-b56ff0331ba9"]), None),
    Case("CLIN-SLO-001", "a model without a pinned package needs no SLO alarms yet", lambda b: (
        b.config.update({"clinops:models": json.dumps([*json.loads(b.config["clinops:models"]), {"name": "sepsis"}])})),
        None),
]
# fmt: on
