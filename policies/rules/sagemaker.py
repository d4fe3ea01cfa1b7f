"""SageMaker workloads: models and jobs stay in the VPC with network isolation, endpoints and batch transforms
run only models this stack declares, and nothing registers a model as already approved.

pulumi-aws 7 has no model package resource (packages are created by pipelines' RegisterModel steps), so
approval status is judged in pipeline definitions.
"""

from __future__ import annotations

import re
from typing import Any

from policies.controls import ACCESS_CONTROL, INTEGRITY, TRANSMISSION, WORKFORCE_SECURITY
from policies.rules.base import UNKNOWN, Findings, StackView, as_list, rule
from policies.rules.pipelines import PIPELINE, definition, expression, jobs, registrations, transforms

MODEL = "aws:sagemaker/model:Model"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
PENDING = "PendingManualApproval"  # CreateModelPackage's default for versioned packages
TRACKING_SERVER = "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer"
VPC_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
# Any of these gives a VPC a way to the internet; the platform's VPC has none (CLIN-NET-001/002 judge the routes).
INTERNET_PATHS = (
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
)
TRACKING_URI = "MLFLOW_TRACKING_URI"  # set by pipelines/definitions/steps.py on the steps that log
_SERVER_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:([a-z0-9-]+):(\d{12}):mlflow-tracking-server/([A-Za-z0-9-]+)$")


def _vpc_problem(vpc: Any, subnets_key: str, groups_key: str) -> str | None:
    if not isinstance(vpc, dict):
        return "runs outside the VPC (no VPC config)"
    if not as_list(vpc.get(subnets_key)) or not as_list(vpc.get(groups_key)):
        return f"VPC config lacks {subnets_key} or {groups_key}"
    return None


@rule(
    id="CLIN-SM-001",
    title="Models run in the VPC with network isolation",
    severity="high",
    controls=(ACCESS_CONTROL, TRANSMISSION),
    types=(MODEL,),
    fix="Give the model vpc_config (private subnets, workload security group) and enable_network_isolation=True.",
)
def models_isolated(stack: StackView, findings: Findings) -> None:
    for model in stack.of_type(MODEL):
        props = stack.props(model)
        problem = _vpc_problem(props.get("vpcConfig"), "subnets", "securityGroupIds")
        if problem:
            findings.fail(model, f"model '{model.name}' {problem}")
        if props.get("enableNetworkIsolation") is not True:
            findings.fail(model, f"model '{model.name}' containers can make outbound calls (network isolation off)")


def _tracking_server(stack: StackView, job: Any) -> str | None:
    """The name of this stack's MLflow tracking server the job logs to (its literal MLFLOW_TRACKING_URI), if any."""
    environment = job.arguments.get("Environment")
    uri = environment.get(TRACKING_URI) if isinstance(environment, dict) else None
    match = _SERVER_ARN.match(uri) if isinstance(uri, str) else None
    if match is None:
        return None
    region, account, name = match.groups()
    if stack.config["region"] and region != stack.config["region"]:
        return None
    if stack.config["platformAccounts"] and account not in stack.config["platformAccounts"]:
        return None
    servers = {stack.props(s).get("trackingServerName") for s in stack.of_type(TRACKING_SERVER)}
    return name if name in servers else None


def _no_mlflow_only_path(stack: StackView) -> str:
    """Why the stack's network is not "private subnets, no internet, MLflow through its endpoint" ("" if it is)."""
    internet = sorted({r.resource_type.split(":")[-1] for r in stack.of_type(*INTERNET_PATHS)})
    if internet:
        return f"the stack has a path to the internet ({', '.join(internet)})"
    region = re.escape(stack.config["region"]) if stack.config["region"] else "[a-z0-9-]+"
    service = re.compile(rf"^aws\.sagemaker\.{region}\.experiments$")
    for endpoint in stack.of_type(VPC_ENDPOINT):
        props = stack.props(endpoint)
        if (
            service.match(str(props.get("serviceName")))
            and props.get("vpcEndpointType") == "Interface"
            and props.get("privateDnsEnabled") is True
        ):
            return ""
    return "the VPC has no MLflow interface endpoint (aws.sagemaker.<region>.experiments) with private DNS"


@rule(
    id="CLIN-SM-002",
    title="Training and processing jobs run in the VPC with network isolation",
    severity="high",
    controls=(ACCESS_CONTROL, TRANSMISSION),
    types=(PIPELINE,),
    reads=(TRACKING_SERVER, VPC_ENDPOINT, *INTERNET_PATHS),
    config=("region", "platformAccounts"),
    fix="Set VpcConfig and EnableNetworkIsolation=true on Training steps (NetworkConfig.VpcConfig and "
    "NetworkConfig.EnableNetworkIsolation on Processing steps). The one accepted exception by design: a step that "
    "logs to this stack's MLflow tracking server (MLFLOW_TRACKING_URI = its ARN, a literal) from the private "
    "subnets of a VPC with no internet path, through the MLflow interface endpoint.",
)
def jobs_isolated(stack: StackView, findings: Findings) -> None:
    for pipeline in stack.of_type(PIPELINE):
        doc = definition(stack, pipeline, findings)
        for job in jobs(doc) if doc else []:
            path, vpc = job.setting("vpc")
            problem = _vpc_problem(vpc, "Subnets", "SecurityGroupIds")
            if expression(vpc):
                findings.fail(pipeline, f"{path} comes from {expression(vpc)}, which an execution can override")
            elif problem:
                findings.fail(pipeline, f"step {job.step} {problem}")
            path, isolation = job.setting("isolation")
            if isolation is True:
                continue
            # Isolation blocks every network call, VPC endpoints included: a step that records the run in MLflow
            # needs it off. Accepted only in the VPC, with no internet path, for this stack's server via its endpoint.
            server = (
                _tracking_server(stack, job) if isolation is False and not problem and not expression(vpc) else None
            )
            if server is not None:
                missing = _no_mlflow_only_path(stack)
                if not missing:
                    findings.accept(
                        pipeline,
                        f"{job.step} runs without network isolation to log to this stack's MLflow server '{server}': "
                        "in the private subnets, no internet path, through the MLflow VPC endpoint",
                    )
                    continue
                findings.fail(pipeline, f"{path} is False to log to MLflow server '{server}', but {missing}")
                continue
            shown = expression(isolation) or ("not set" if isolation is None else isolation)
            findings.fail(pipeline, f"{path} is {shown}: the job's containers can reach the network")


@rule(
    id="CLIN-SM-003",
    title="Model registration never auto-approves",
    severity="critical",
    controls=(INTEGRITY, WORKFORCE_SECURITY),
    types=(PIPELINE,),
    fix="Register models with ModelApprovalStatus='PendingManualApproval' (a literal, not a parameter) and "
    "leave approval to the approver persona.",
)
def registration_pending(stack: StackView, findings: Findings) -> None:
    for pipeline in stack.of_type(PIPELINE):
        doc = definition(stack, pipeline, findings)
        for step in registrations(doc) if doc else []:
            status = (step.get("Arguments") or {}).get("ModelApprovalStatus", PENDING)
            if expression(status):
                findings.fail(
                    pipeline,
                    f"step {step.get('Name')} approval status comes from {expression(status)}, "
                    "so whoever starts the pipeline can pass Approved",
                )
            elif status != PENDING:
                findings.fail(
                    pipeline, f"step {step.get('Name')} registers the model as {status}, bypassing clinical review"
                )


@rule(
    id="CLIN-SM-004",
    title="Endpoints serve only models declared in this stack",
    severity="high",
    controls=(ACCESS_CONTROL,),
    reads=(MODEL,),
    types=(ENDPOINT_CONFIG,),
    fix="Create the served model as an aws.sagemaker.Model in this stack and pass model.name to the variant.",
)
def variants_use_stack_models(stack: StackView, findings: Findings) -> None:
    for config in stack.of_type(ENDPOINT_CONFIG):
        props = stack.props(config)
        for prop in ("productionVariants", "shadowProductionVariants"):
            models = stack.refs(config, prop, MODEL)
            names = {stack.props(m).get("name") for m in models}
            for variant in [v for v in as_list(props.get(prop)) if isinstance(v, dict)]:
                model_name = variant.get("modelName")
                known = model_name in names or (model_name is UNKNOWN and models)
                if not known:
                    findings.fail(
                        config,
                        f"'{config.name}' {prop} variant {variant.get('variantName')} serves "
                        f"{model_name}, not a model of this stack (its isolation is unchecked)",
                    )


@rule(
    id="CLIN-SM-005",
    title="Batch transforms run a model declared in this stack",
    severity="high",
    controls=(ACCESS_CONTROL, TRANSMISSION),
    reads=(MODEL,),
    types=(PIPELINE,),
    fix="Set the Transform step's ModelName to the name of an aws.sagemaker.Model of this stack (the endpoint's "
    "model), as a literal, so CLIN-SM-001 judges its VPC and network isolation.",
)
def transforms_use_stack_models(stack: StackView, findings: Findings) -> None:
    for pipeline in stack.of_type(PIPELINE):
        doc = definition(stack, pipeline, findings)
        models = stack.refs(pipeline, "pipelineDefinition", MODEL)
        names = {stack.props(m).get("name") for m in models}
        for job in transforms(doc) if doc else []:
            name = job.arguments.get("ModelName")
            if expression(name):
                findings.fail(
                    pipeline,
                    f"step {job.step} ModelName comes from {expression(name)}, so whoever "
                    "starts the pipeline chooses the model (and its network settings)",
                )
            elif name is UNKNOWN:
                findings.unknown(pipeline, f"pipelineDefinition:{job.step}.ModelName")
            elif name not in names:
                findings.fail(
                    pipeline,
                    f"step {job.step} transforms with {name}, not a model of this stack (its "
                    "VPC and isolation are unchecked)",
                )


RULES = (models_isolated, jobs_isolated, registration_pending, variants_use_stack_models, transforms_use_stack_models)
