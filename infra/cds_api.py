"""The CDS Hooks API: a private API Gateway reachable only through the platform's execute-api VPC endpoint,
in front of VPC Lambdas running `serving/cds` (handler: serving/cds/lambda_handler.py).

    GET  /cds-services                    the discovery function (no endpoint access at all)
    POST /cds-services/{id}[/feedback]    the model's function: may invoke only its model's endpoint, read
                                          only its model's breaker record, pin and alarms

The resource policy admits `execute-api:Invoke` only with `aws:SourceVpce` = that endpoint and denies the
rest; access logs (no bodies, no query strings) go to a KMS-encrypted log group; the stage throttles. The JWT
check is the functions' own (every call). The code ships like the guardrails' (`infra/guardrails.py`), with
its dependencies (fhir.resources, pyjwt, pydantic, pyyaml) in the layer `build/cds-lambda-deps.zip`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from clinops.config import project_root
from clinops.evidence.anchor import head_parameter_name
from clinops.models import ModelConfig
from clinops.names import (
    CDS_ISSUANCE_PREFIX,
    CDS_METRIC_NAMESPACE,
    CDS_OVERRIDDEN_METRIC,
    CDS_OVERRIDE_ALARM_SUFFIX,
    alarm_name,
    cds_alarm_names,
)
from infra.base import Platform, allow, policy_document, service_trust, vpc_network_interface_statements
from infra.logs import encrypted_log_group

RUNTIME = "python3.11"
LAYER_ZIP = Path("build") / "cds-lambda-deps.zip"
STAGE = "v1"
_CODE = (
    "serving/__init__.py",
    "serving/cds/*.py",
    "serving/guardrails/__init__.py",
    "serving/guardrails/state.py",
    "serving/guardrails/events.py",
    "clinops/__init__.py",
    "clinops/models.py",
    "clinops/names.py",
    "clinops/exitcodes.py",
    "clinops/identity.py",
    "clinops/traffic.py",
    "clinops/evidence/*.py",
    "pipelines/__init__.py",
    "pipelines/errors.py",
    "pipelines/contracts/*.py",
    "pipelines/contracts/*.yaml",
)
# API Gateway access log: who called what and how it went; never a body or a query string (patient ids).
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "time": "$context.requestTimeEpoch",
        "vpce": "$context.identity.vpceId",
        "method": "$context.httpMethod",
        "resource": "$context.resourcePath",
        "status": "$context.status",
        "latencyMs": "$context.responseLatency",
        "integrationStatus": "$context.integration.status",
    },
    sort_keys=True,
)


@dataclass(frozen=True)
class CdsApiArgs:
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    execute_api_endpoint_id: pulumi.Input[str]
    boundary_arn: pulumi.Input[str]
    logs_key: aws.kms.Key
    evidence_key: aws.kms.Key
    evidence_mac_key: aws.kms.Key  # seals feedback entries like every other evidence writer's
    encounter_mac_key: (
        aws.kms.Key | None
    )  # (None when no model is served) hashes encounter ids (infra.keys: the CDS functions' own HMAC key)
    evidence_bucket: pulumi.Input[str]
    endpoints: dict[str, pulumi.Input[str]]  # model -> endpoint name (models with an endpoint)
    models: list[ModelConfig]  # models with a `cds` section
    topic_arn: pulumi.Input[str]  # the platform's alert topic


def code_archive(root: Path | None = None) -> pulumi.AssetArchive:
    root = root or project_root()
    files = sorted({p for pattern in _CODE for p in root.glob(pattern)})
    return pulumi.AssetArchive({str(p.relative_to(root)): pulumi.FileAsset(str(p)) for p in files})


class CdsHooksApi(pulumi.ComponentResource):
    def __init__(self, name: str, platform: Platform, args: CdsApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("clinops:serving:CdsHooksApi", name, None, opts)
        cfg = platform.config
        assert cfg.cds is not None
        self._platform, self._args = platform, args
        child = platform.child(self)
        self.api = aws.apigateway.RestApi(
            "cds-api",
            name=f"{platform.prefix}-cds-hooks",
            description="CDS Hooks 2.0 for the EHR; private, through the platform's execute-api VPC endpoint",
            endpoint_configuration={"types": "PRIVATE", "vpc_endpoint_ids": [args.execute_api_endpoint_id]},
            tags=platform.tags(),
            opts=child,
        )
        # Built from the id (not `execution_arn`) so the plan, and the gate, see the policy's real resource.
        self.execute_arn = self.api.id.apply(lambda i: f"arn:aws:execute-api:{platform.region}:{platform.account}:{i}")
        execute_arn = self.execute_arn
        aws.apigateway.RestApiPolicy(
            "cds-api-policy",
            rest_api_id=self.api.id,
            policy=policy_document(
                {
                    "Sid": "OnlyThroughThePlatformEndpoint",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "execute-api:Invoke",
                    "Resource": execute_arn.apply(lambda a: f"{a}/*"),
                    "Condition": {"StringEquals": {"aws:SourceVpce": args.execute_api_endpoint_id}},
                },
                {
                    "Sid": "DenyAnyOtherPath",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "execute-api:Invoke",
                    "Resource": execute_arn.apply(lambda a: f"{a}/*"),
                    "Condition": {"StringNotEquals": {"aws:SourceVpce": args.execute_api_endpoint_id}},
                },
            ),
            opts=child,
        )
        base_url = pulumi.Output.all(self.api.id, args.execute_api_endpoint_id).apply(
            lambda ids: f"https://{ids[0]}-{ids[1]}.execute-api.{platform.region}.amazonaws.com/{STAGE}"
        )
        self._layer = aws.lambda_.LayerVersion(
            "cds-deps",
            layer_name=f"{platform.prefix}-cds-deps",
            compatible_runtimes=[RUNTIME],
            code=pulumi.FileArchive(str(LAYER_ZIP)),
            description="fhir.resources, pyjwt, pydantic, pyyaml for the CDS Hooks functions",
            opts=child,
        )
        self._code = code_archive()
        models_json = json.dumps([m.model_dump(mode="json", by_alias=True) for m in args.models])
        common = {
            "CDS_STACK": cfg.stack,
            "CDS_MODELS": models_json,
            "CDS_ISSUERS": json.dumps(cfg.cds.issuers, sort_keys=True),
            "CDS_ORIGINS": ",".join(cfg.cds.allowed_origins),
        }
        root = self.api.root_resource_id
        services = aws.apigateway.Resource(
            "cds-services", rest_api=self.api.id, parent_id=root, path_part="cds-services", opts=child
        )
        methods: list[pulumi.Resource] = []
        discovery = self._function("cds-discovery", {**common, "CDS_MODEL": ""}, base_url, [])
        methods += self._route("discovery", services, "GET", discovery)
        for model in args.models:
            if model.name not in args.endpoints:
                continue  # no endpoint deployed yet: discovery lists it, its hook answers from no function
            assert args.encounter_mac_key is not None, "infra.keys creates it for every served CDS model"
            statements = self._model_statements(model.name, args.endpoints[model.name], args.encounter_mac_key)
            env = {
                **common,
                "CDS_MODEL": model.name,
                "ENDPOINT_NAME": args.endpoints[model.name],
                "EVIDENCE_BUCKET": args.evidence_bucket,
                "EVIDENCE_KMS_KEY_ID": args.evidence_key.arn,
                "EVIDENCE_MAC_KEY_ID": args.evidence_mac_key.arn,
                "ENCOUNTER_MAC_KEY_ID": args.encounter_mac_key.arn,
            }
            function = self._function(f"cds-{model.name}", env, base_url, statements)
            self._override_alarm(model)
            hook = aws.apigateway.Resource(
                f"cds-{model.name}-hook",
                rest_api=self.api.id,
                parent_id=services.id,
                path_part=str(model.cds_service_id),
                opts=child,
            )
            feedback = aws.apigateway.Resource(
                f"cds-{model.name}-feedback",
                rest_api=self.api.id,
                parent_id=hook.id,
                path_part="feedback",
                opts=child,
            )
            for resource, label in ((hook, "hook"), (feedback, "feedback")):
                for method in ("POST", "OPTIONS"):
                    methods += self._route(f"{model.name}-{label}", resource, method, function)
        access_logs = encrypted_log_group(
            "cds-api-access-logs", platform, self, f"/clinops/{cfg.stack}/cds-hooks-api/access", args.logs_key
        )
        deployment = aws.apigateway.Deployment(
            "cds-api-deployment",
            rest_api=self.api.id,
            triggers={"routes": json.dumps(sorted(m.name for m in args.models)) + models_json},
            opts=platform.child(self, depends_on=methods),
        )
        self.stage = aws.apigateway.Stage(
            "cds-api-stage",
            rest_api=self.api.id,
            deployment=deployment.id,
            stage_name=STAGE,
            xray_tracing_enabled=True,
            access_log_settings={"destination_arn": access_logs.arn, "format": ACCESS_LOG_FORMAT},
            tags=platform.tags(),
            opts=child,
        )
        aws.apigateway.MethodSettings(
            "cds-api-throttling",
            rest_api=self.api.id,
            stage_name=self.stage.stage_name,
            method_path="*/*",
            settings={
                "throttling_rate_limit": cfg.cds.throttle_rate_per_second,
                "throttling_burst_limit": cfg.cds.throttle_burst,
                "metrics_enabled": True,
                "logging_level": "ERROR",
                "data_trace_enabled": False,  # execution logs would hold request bodies: FHIR, i.e. PHI
            },
            opts=child,
        )
        self.base_url = base_url
        self.register_outputs({"baseUrl": base_url})

    def _override_alarm(self, model: ModelConfig) -> None:
        """Clinicians overriding the model more often is a drift signal: the service holds the score while it is
        in ALARM (`clinops.names.cds_alarm_names`), and it pages. Days with little feedback give no verdict."""
        assert model.cds is not None
        p = self._platform
        dims = {"Stack": p.config.stack, "Model": model.name}
        stat = {"metric_name": CDS_OVERRIDDEN_METRIC, "namespace": CDS_METRIC_NAMESPACE, "dimensions": dims}
        aws.cloudwatch.MetricAlarm(
            f"cds-{model.name}-override-rate",
            name=alarm_name(p.config.stack, model.name, CDS_OVERRIDE_ALARM_SUFFIX),
            alarm_description=f"clinicians override {model.name}'s cards more than the configured daily share",
            comparison_operator="GreaterThanThreshold",
            threshold=model.cds.override_rate_alarm,
            evaluation_periods=1,
            treat_missing_data="notBreaching",
            metric_queries=[
                {"id": "rate", "metric": {**stat, "period": 86400, "stat": "Average"}, "return_data": False},
                {"id": "feedback", "metric": {**stat, "period": 86400, "stat": "SampleCount"}, "return_data": False},
                {
                    "id": "judged",
                    "expression": f"IF(feedback >= {model.cds.override_min_feedback}, rate, 0)",
                    "label": "override rate (days with enough feedback)",
                    "return_data": True,
                },
            ],
            alarm_actions=[self._args.topic_arn],
            ok_actions=[self._args.topic_arn],
            insufficient_data_actions=[self._args.topic_arn],
            tags=p.tags(),
            opts=p.child(self),
        )

    def _model_statements(self, model: str, endpoint_name: pulumi.Input[str], encounter_key: aws.kms.Key) -> list:
        p, stack = self._platform, self._platform.config.stack
        region, account = p.region, p.account
        return [
            allow(
                "InvokeOnlyItsModel",
                ["sagemaker:InvokeEndpoint"],
                pulumi.Output.from_input(endpoint_name).apply(
                    lambda n: f"arn:aws:sagemaker:{region}:{account}:endpoint/{n.lower()}"
                ),
            ),
            allow(
                "ReadItsGuardrailRecords",
                ["ssm:GetParameter", "ssm:GetParameterHistory"],
                f"arn:aws:ssm:{region}:{account}:parameter/clinops/{stack}/{model}/*",
            ),
            allow(
                "ReadItsAlarms",
                ["cloudwatch:DescribeAlarms"],
                [f"arn:aws:cloudwatch:{region}:{account}:alarm:{a}" for a in cds_alarm_names(stack, model)],
            ),
            allow(
                "PutOverrideMetric",
                ["cloudwatch:PutMetricData"],
                "*",
                Condition={"StringEquals": {"cloudwatch:namespace": CDS_METRIC_NAMESPACE}},
            ),
            allow(
                "AppendEvidence",
                ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
                pulumi.Output.from_input(self._args.evidence_bucket).apply(
                    lambda b: [f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/evidence/*"]
                ),
            ),
            allow(
                "RecordAndReadIssuedCards",
                ["s3:GetObject", "s3:PutObject"],
                pulumi.Output.from_input(self._args.evidence_bucket).apply(
                    lambda b: f"arn:aws:s3:::{b}/{CDS_ISSUANCE_PREFIX}/{stack}/{model}/*"
                ),
            ),
            allow("EncryptEvidence", ["kms:Decrypt", "kms:GenerateDataKey"], self._args.evidence_key.arn),
            allow("SealEvidence", ["kms:GenerateMac", "kms:VerifyMac"], self._args.evidence_mac_key.arn),
            allow(
                "HashEncounterIds",
                ["kms:GenerateMac"],
                encounter_key.arn,
                Condition={"StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_256"}},
            ),
            allow(
                "PublishEvidenceHead",
                ["ssm:GetParameter", "ssm:PutParameter"],
                f"arn:aws:ssm:{p.region}:{p.account}:parameter{head_parameter_name(p.config.stack)}",
            ),
        ]

    def _function(
        self, purpose: str, env: dict[str, pulumi.Input[str]], base_url: pulumi.Output[str], statements: list
    ) -> aws.lambda_.Function:
        p, args = self._platform, self._args
        fn_name = f"{p.prefix}-{purpose}"
        log_group = encrypted_log_group(f"{purpose}-logs", p, self, f"/aws/lambda/{fn_name}", args.logs_key)
        role = aws.iam.Role(
            f"{purpose}-role",
            name=fn_name,
            assume_role_policy=service_trust("lambda.amazonaws.com", p.account),
            permissions_boundary=args.boundary_arn,
            tags=p.tags(),
            opts=p.child(self),
        )
        permissions = aws.iam.RolePolicy(
            f"{purpose}-permissions",
            role=role.id,
            policy=policy_document(
                *statements,
                allow(
                    "WriteOwnLogs",
                    ["logs:CreateLogStream", "logs:PutLogEvents"],
                    log_group.arn.apply(lambda a: f"{a}:*"),
                ),
                # tracing is on: segments go to X-Ray through its VPC endpoint (the actions take no resource)
                allow("WriteTraces", ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*"),
                *vpc_network_interface_statements(p),
            ),
            opts=p.child(self),
        )
        return aws.lambda_.Function(
            purpose,
            name=fn_name,
            runtime=RUNTIME,
            handler="serving.cds.lambda_handler.handler",
            code=self._code,
            layers=[self._layer.arn],
            role=role.arn,
            timeout=10,
            memory_size=1024,  # FHIR parsing is CPU-bound; Lambda CPU scales with memory
            # off by default like every function's (new accounts' concurrency quota of 10 refuses reservations)
            reserved_concurrent_executions=20 if p.config.lambda_reserved_concurrency else None,
            kms_key_arn=args.logs_key.arn,
            tracing_config={"mode": "Active"},
            environment={"variables": {**env, "CDS_BASE_URL": base_url}},
            vpc_config={"subnet_ids": args.subnet_ids, "security_group_ids": [args.security_group_id]},
            logging_config={"log_format": "JSON", "log_group": log_group.name},
            tags=p.tags(**{"clinops:purpose": purpose}),
            # CreateFunction checks the role's ENI permissions: the policy must exist first
            opts=p.child(self, depends_on=[log_group, permissions]),
        )

    def _route(
        self, label: str, resource: aws.apigateway.Resource, method: str, function: aws.lambda_.Function
    ) -> list[pulumi.Resource]:
        p = self._platform
        name = f"cds-{label}-{method.lower()}"
        m = aws.apigateway.Method(
            name,
            rest_api=self.api.id,
            resource_id=resource.id,
            http_method=method,
            authorization="NONE",  # the function validates the EHR's JWT on every call (CDS Hooks 2.0)
            opts=p.child(self),
        )
        integration = aws.apigateway.Integration(
            f"{name}-integration",
            rest_api=self.api.id,
            resource_id=resource.id,
            http_method=m.http_method,
            integration_http_method="POST",
            type="AWS_PROXY",
            uri=function.invoke_arn,
            timeout_milliseconds=5000,
            opts=p.child(self),
        )
        aws.lambda_.Permission(
            f"{name}-invoke",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="apigateway.amazonaws.com",
            source_arn=self.execute_arn.apply(lambda a: f"{a}/*/{method}/*"),
            opts=p.child(self),
        )
        return [m, integration]
