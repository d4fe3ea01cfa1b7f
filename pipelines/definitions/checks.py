"""Offline checks of a built pipeline definition.

1. Each step's request against botocore's SageMaker service model: `ParamValidator` checks names, nesting and
   types; it does not check enums, lengths, ranges or patterns, so those are checked here from the same shapes.
   Pipeline expressions (`Get`, `Std:Join`, `Std:JsonGet`) are resolved to a parameter's default where they
   name one, otherwise replaced by a placeholder of the type the shape expects (only concrete values are checked
   against enums and patterns). Names the pipeline service assigns at run time get placeholders too.
2. The security properties every job must hold: execution role, private subnets and security group, KMS on
   volumes and outputs (patient-level outputs under the data key in the data bucket, the rest under the artifact
   key in the artifact bucket), inter-container encryption, network isolation (except where a step needs the
   network: `settings.NETWORK_ALLOWED_STEPS`), the tracking server ARN only on the tracking step, and registration
   only as PendingManualApproval with metrics and a card attached.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from pipelines.definitions.settings import (
    NETWORK_ALLOWED_STEPS,
    TRACKING_STEPS,
    DefinitionError,
    PipelineDefinitionSettings,
)
from pipelines.settings import PENDING
from pipelines.tracking import TRACKING_URI_ENV

OPERATIONS = {
    "Processing": "CreateProcessingJob",
    "Training": "CreateTrainingJob",
    "RegisterModel": "CreateModelPackage",
    "Transform": "CreateTransformJob",
}
RUNTIME_NAMES = {
    "Processing": {"ProcessingJobName": "clinops-step"},
    "Training": {"TrainingJobName": "clinops-step"},
    "Transform": {"TransformJobName": "clinops-step"},
}
_EXPRESSION_KEYS = frozenset({"Get", "Std:Join", "Std:JsonGet"})


@cache
def _service_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


@cache
def _pattern(text: str) -> re.Pattern[str] | None:
    try:
        return re.compile(text, re.DOTALL)
    except re.error:  # a Java-only construct; botocore itself never checks patterns either
        return None


def _is_expression(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _EXPRESSION_KEYS


def _placeholder(shape: Any) -> Any:
    return {
        "string": "s3://placeholder/key" if "S3" in shape.name or "Uri" in shape.name else "placeholder",
        "integer": 1,
        "long": 1,
        "float": 0.5,
        "double": 0.5,
        "boolean": True,
        "list": [],
        "map": {},
        "structure": {},
    }.get(shape.type_name, "placeholder")


class _Resolver:
    def __init__(self, parameters: dict[str, Any]) -> None:
        self.parameters, self.problems = parameters, []  # type: ignore[var-annotated]

    def walk(self, shape: Any, value: Any, path: str) -> Any:
        if _is_expression(value):
            ref = value.get("Get", "")
            if isinstance(ref, str) and ref.startswith("Parameters.") and ref[11:] in self.parameters:
                return self.walk(shape, self.parameters[ref[11:]], f"{path} (parameter {ref[11:]} default)")
            return _placeholder(shape)
        kind = shape.type_name
        if kind == "structure" and isinstance(value, dict):
            return {
                k: self.walk(shape.members[k], v, f"{path}.{k}") if k in shape.members else v for k, v in value.items()
            }
        if kind == "list" and isinstance(value, list):
            self._bounds(shape, len(value), path, "items")
            return [self.walk(shape.member, v, f"{path}[{i}]") for i, v in enumerate(value)]
        if kind == "map" and isinstance(value, dict):
            return {k: self.walk(shape.value, v, f"{path}[{k}]") for k, v in value.items()}
        if kind == "string" and isinstance(value, str):
            if shape.enum and value not in shape.enum:
                self.problems.append(f"{path} = {value!r} is not one of {shape.enum}")
            self._bounds(shape, len(value), path, "characters")
            pattern = shape.metadata.get("pattern")
            compiled = _pattern(pattern) if pattern else None
            if compiled is not None and not compiled.fullmatch(value):
                self.problems.append(f"{path} = {value!r} does not match the pattern {pattern}")
        elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float):
            self._bounds(shape, value, path, "")
        return value

    def _bounds(self, shape: Any, amount: float, path: str, unit: str) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and amount < low:
            self.problems.append(f"{path}: {amount} {unit} is below the minimum {low}".replace("  ", " "))
        if high is not None and amount > high:
            self.problems.append(f"{path}: {amount} {unit} is above the maximum {high}".replace("  ", " "))


def job_steps(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """All steps, including those inside condition branches."""
    found = []
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop(0)
        found.append(step)
        if step["Type"] == "Condition":
            pending += step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", [])
    return found


def validate_against_service_model(definition: str | dict[str, Any]) -> None:
    from botocore.validate import ParamValidator

    doc = json.loads(definition) if isinstance(definition, str) else definition
    parameters = {p["Name"]: p.get("DefaultValue") for p in doc.get("Parameters", [])}
    problems: list[str] = []
    for step in job_steps(doc):
        operation = OPERATIONS.get(step["Type"])
        if operation is None:
            continue
        shape = _service_model().operation_model(operation).input_shape
        resolver = _Resolver(parameters)
        request = resolver.walk(shape, {**RUNTIME_NAMES.get(step["Type"], {}), **step["Arguments"]}, step["Name"])
        report = ParamValidator().validate(request, shape)
        if report.has_errors():
            problems += [
                f"{step['Name']} ({operation}): {line.strip()}"
                for line in report.generate_report().splitlines()
                if line.strip()
            ]
        problems += [f"{step['Name']} ({operation}): {p}" for p in resolver.problems]
    if problems:
        raise DefinitionError(problems)


@dataclass(frozen=True)
class SecurityProperty:
    step: str
    name: str
    expected: Any
    actual: Any

    @property
    def ok(self) -> bool:
        if isinstance(self.expected, list) and isinstance(self.actual, list):
            return sorted(self.expected) == sorted(self.actual)
        return self.expected == self.actual


def _get(data: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _output_bucket(step: str, output: str, uri: Any, settings: PipelineDefinitionSettings) -> SecurityProperty:
    """Where an output lands: the first part of its S3 URI (a literal, or the first value of a Std:Join)."""
    if _is_expression(uri) and "Std:Join" in uri:
        uri = uri["Std:Join"]["Values"][0]
    bucket = uri.removeprefix("s3://").split("/")[0] if isinstance(uri, str) else None
    return SecurityProperty(step, f"output {output} bucket", settings.bucket_for(step), bucket)


def security_properties(
    definition: str | dict[str, Any], settings: PipelineDefinitionSettings
) -> list[SecurityProperty]:
    doc = json.loads(definition) if isinstance(definition, str) else definition
    subnets, groups = list(settings.subnet_ids), list(settings.security_group_ids)
    found: list[SecurityProperty] = []
    for step in job_steps(doc):
        name, args = step["Name"], step["Arguments"]
        expect: dict[str, Any] = {}
        if step["Type"] == "Processing":
            expect = {
                "RoleArn": settings.role_arn,
                "NetworkConfig.VpcConfig.Subnets": subnets,
                "NetworkConfig.VpcConfig.SecurityGroupIds": groups,
                "NetworkConfig.EnableInterContainerTrafficEncryption": True,
                "NetworkConfig.EnableNetworkIsolation": name not in NETWORK_ALLOWED_STEPS,
                "ProcessingResources.ClusterConfig.VolumeKmsKeyId": settings.volume_kms_key_arn,
                "ProcessingOutputConfig.KmsKeyId": settings.output_key_for(name),
                # only the tracking step talks to MLflow, and only to this stack's server
                f"Environment.{TRACKING_URI_ENV}": settings.tracking_server_arn if name in TRACKING_STEPS else None,
            }
            for output in args.get("ProcessingOutputConfig", {}).get("Outputs", []):
                found.append(_output_bucket(name, output["OutputName"], output["S3Output"]["S3Uri"], settings))
        elif step["Type"] == "Training":
            expect = {
                "RoleArn": settings.role_arn,
                "VpcConfig.Subnets": subnets,
                "VpcConfig.SecurityGroupIds": groups,
                "EnableInterContainerTrafficEncryption": True,
                "EnableNetworkIsolation": True,
                "ResourceConfig.VolumeKmsKeyId": settings.volume_kms_key_arn,
                "OutputDataConfig.KmsKeyId": settings.output_key_for(name),
            }
            found.append(_output_bucket(name, "model", _get(args, "OutputDataConfig.S3OutputPath"), settings))
        elif step["Type"] == "RegisterModel":
            expect = {"ModelApprovalStatus": PENDING, "ModelPackageGroupName": settings.model_package_group_name}
            for path in (
                "ModelMetrics.ModelQuality.Statistics",
                "ModelMetrics.Bias.Report",
                "ModelCard.ModelCardContent",
            ):
                found.append(SecurityProperty(name, f"{path} attached", True, _get(args, path) is not None))
        found += [SecurityProperty(name, path, value, _get(args, path)) for path, value in expect.items()]
    logging_steps = [s["Name"] for s in job_steps(doc) if _get(s["Arguments"], f"Environment.{TRACKING_URI_ENV}")]
    found.append(SecurityProperty("(pipeline)", "steps that log to MLflow", sorted(TRACKING_STEPS), logging_steps))
    kinds = [s["Type"] for s in job_steps(doc)]
    found.append(SecurityProperty("(pipeline)", "exactly one RegisterModel step", 1, kinds.count("RegisterModel")))
    return found


def assert_security_properties(
    definition: str | dict[str, Any], settings: PipelineDefinitionSettings
) -> list[SecurityProperty]:
    checked = security_properties(definition, settings)
    failed = [p for p in checked if not p.ok]
    if failed:
        raise DefinitionError([f"{p.step}: {p.name} is {p.actual!r}, expected {p.expected!r}" for p in failed])
    return checked
