"""The SageMaker jobs a pipeline definition will launch, read from `aws:sagemaker/pipeline:Pipeline`.

A definition (https://aws-sagemaker-mlops.github.io/sagemaker-model-building-pipeline-definition-JSON-schema/)
lists steps whose `Arguments` are the request of the API the step calls: CreateTrainingJob for Training,
CreateProcessingJob for Processing, CreateHyperParameterTuningJob (its `TrainingJobDefinition`) for Tuning,
CreateModelPackage for RegisterModel, CreateTransformJob for Transform. Condition steps nest further steps in
IfSteps/ElseSteps. A Transform step's network settings live on the SageMaker Model it names (CreateModel), so
rules judge that Model; its storage and output keys are in the step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyResource

from policies.rules.base import UNKNOWN, Findings, StackView, dig
from policies.rules.documents import BadDocument, parse_json

PIPELINE = "aws:sagemaker/pipeline:Pipeline"

# Where each job kind keeps the settings the rules judge (paths into the step's Arguments).
_PATHS: dict[str, dict[str, tuple[str, ...]]] = {
    "training": {
        "vpc": ("VpcConfig",),
        "isolation": ("EnableNetworkIsolation",),
        "inter_container_encryption": ("EnableInterContainerTrafficEncryption",),
        "volume_key": ("ResourceConfig", "VolumeKmsKeyId"),
        "output_key": ("OutputDataConfig", "KmsKeyId"),
    },
    "processing": {
        "vpc": ("NetworkConfig", "VpcConfig"),
        "isolation": ("NetworkConfig", "EnableNetworkIsolation"),
        "inter_container_encryption": ("NetworkConfig", "EnableInterContainerTrafficEncryption"),
        "volume_key": ("ProcessingResources", "ClusterConfig", "VolumeKmsKeyId"),
        "output_key": ("ProcessingOutputConfig", "KmsKeyId"),
    },
    "transform": {
        "volume_key": ("TransformResources", "VolumeKmsKeyId"),
        "output_key": ("TransformOutput", "KmsKeyId"),
    },
}


@dataclass(frozen=True)
class Job:
    step: str
    kind: str  # "training" | "processing" | "transform"
    arguments: dict[str, Any]

    def setting(self, name: str) -> tuple[str, Any]:
        """(dotted path for messages, value) of one judged setting."""
        path = _PATHS[self.kind][name]
        return f"{self.step}.{'.'.join(path)}", dig(self.arguments, *path)

    @property
    def has_outputs(self) -> bool:
        # Training and transform always write (a model artifact, scores); processing only when it declares outputs.
        return self.kind in ("training", "transform") or bool(self.arguments.get("ProcessingOutputConfig"))


def steps(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pending = list(definition.get("Steps") or [])
    while pending:
        step = pending.pop(0)
        if not isinstance(step, dict):
            continue
        yield step
        arguments = raw if isinstance(raw := step.get("Arguments"), dict) else {}
        pending += [s for key in ("IfSteps", "ElseSteps") for s in (arguments.get(key) or [])]


def jobs(definition: dict[str, Any]) -> list[Job]:
    found = []
    for step in steps(definition):
        name, kind, arguments = str(step.get("Name", "?")), step.get("Type"), step.get("Arguments") or {}
        if kind == "Training":
            found.append(Job(name, "training", arguments))
        elif kind == "Tuning" and isinstance(arguments.get("TrainingJobDefinition"), dict):
            found.append(Job(name, "training", arguments["TrainingJobDefinition"]))
        elif kind == "Processing":
            found.append(Job(name, "processing", arguments))
    return found


def transforms(definition: dict[str, Any]) -> list[Job]:
    """Batch Transform steps (their VPC and isolation are the named Model's, judged on the Model)."""
    return [
        Job(str(s.get("Name", "?")), "transform", s.get("Arguments") or {})
        for s in steps(definition)
        if s.get("Type") == "Transform"
    ]


def registrations(definition: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in steps(definition) if s.get("Type") == "RegisterModel"]


def definition(stack: StackView, pipeline: PolicyResource, findings: Findings) -> dict[str, Any] | None:
    """The parsed definition, or None after recording why it cannot be judged."""
    raw = stack.props(pipeline).get("pipelineDefinition")
    if raw is UNKNOWN:
        findings.unknown(pipeline, "pipelineDefinition")
        return None
    try:
        doc = parse_json(raw)
    except BadDocument as exc:
        findings.fail(pipeline, f"pipelineDefinition {exc}")
        return None
    if doc is None:
        findings.fail(pipeline, "has no inline pipelineDefinition (a definition in S3 cannot be checked)")
    return doc


def expression(value: Any) -> str | None:
    """Describe a value computed when the pipeline runs (a parameter or another step's output), else None."""
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Get":
            return f"`{argument}`"
        return f"a `{function}` expression"
    return None
