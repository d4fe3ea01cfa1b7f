"""SageMaker workloads: models and jobs stay in the VPC with network isolation, endpoints and batch transforms
run only models this stack declares, and nothing registers a model as already approved.

pulumi-aws 7 has no model package resource (packages are created by pipelines' RegisterModel steps), so
approval status is judged in pipeline definitions.
"""

from __future__ import annotations

from typing import Any

from policies.controls import ACCESS_CONTROL, INTEGRITY, TRANSMISSION, WORKFORCE_SECURITY
from policies.rules.base import UNKNOWN, Findings, StackView, as_list, rule
from policies.rules.pipelines import PIPELINE, definition, expression, jobs, registrations, transforms

MODEL = "aws:sagemaker/model:Model"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
PENDING = "PendingManualApproval"  # CreateModelPackage's default for versioned packages


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


@rule(
    id="CLIN-SM-002",
    title="Training and processing jobs run in the VPC with network isolation",
    severity="high",
    controls=(ACCESS_CONTROL, TRANSMISSION),
    types=(PIPELINE,),
    fix="Set VpcConfig and EnableNetworkIsolation=true on Training steps (NetworkConfig.VpcConfig and "
    "NetworkConfig.EnableNetworkIsolation on Processing steps).",
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
            if isolation is not True:
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
