"""The S3 reads and writes a plan's SageMaker pipelines declare, read from their definitions.

A pipeline definition names its inputs and outputs as S3 URIs built from parameters, step properties and
`Std:Join`. Each is reduced to a static prefix, with `*` for what is only known at run time (the execution
id); inputs computed from another step's outputs are that step's business and are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from policies.plan import PlanResource

RUNTIME = "*"


@dataclass(frozen=True)
class PipelineIO:
    pipeline: str  # logical name of the pipeline resource
    step: str
    direction: str  # "input" | "output"
    uri: str  # s3://bucket/prefix, `*` for run-time segments
    kms_key: str | None  # outputs: the key the step encrypts with
    role_arn: str | None

    @property
    def bucket(self) -> str:
        return self.uri.removeprefix("s3://").split("/", 1)[0]

    @property
    def key_prefix(self) -> str:
        parts = self.uri.removeprefix("s3://").split("/", 1)
        return parts[1] if len(parts) > 1 else ""

    def literal(self) -> str:
        """The prefix up to the first run-time segment."""
        return self.uri.split(RUNTIME, 1)[0]

    def example_object(self) -> str:
        """A concrete object ARN under this prefix (run-time segments filled), to simulate a request on."""
        key = self.key_prefix.replace(RUNTIME, "run-1").rstrip("/")
        return f"arn:aws:s3:::{self.bucket}/{key}/part-0000" if key else f"arn:aws:s3:::{self.bucket}/part-0000"


def _expr(value: Any, parameters: dict[str, str]) -> str | None:
    """A static rendering of an S3 URI expression; None when it comes from another step."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Get" in value:
            ref = str(value["Get"])
            if ref.startswith("Parameters."):
                return parameters.get(ref.removeprefix("Parameters."), RUNTIME)
            if ref.startswith("Steps."):
                return None
            return RUNTIME  # Execution.PipelineExecutionId and friends
        if "Std:Join" in value:
            join = value["Std:Join"]
            parts = [_expr(v, parameters) for v in join.get("Values", [])]
            if any(p is None for p in parts):
                return None
            return str(join.get("On", "")).join(p for p in parts if p is not None)
    return None


def pipeline_io(pipeline: PlanResource) -> list[PipelineIO]:
    raw = pipeline.inputs.get("pipelineDefinition")
    if not isinstance(raw, str):
        return []
    try:
        definition = json.loads(raw)
    except json.JSONDecodeError:
        return []
    parameters = {
        str(p.get("Name")): str(p.get("DefaultValue"))
        for p in definition.get("Parameters", [])
        if isinstance(p, dict) and isinstance(p.get("DefaultValue"), str)
    }
    default_role = pipeline.inputs.get("roleArn")
    found: list[PipelineIO] = []
    for step in _steps(definition.get("Steps", [])):
        args = step.get("Arguments") or {}
        role = args.get("RoleArn") or default_role
        name = str(step.get("Name"))

        def add(direction: str, uri: Any, key: Any = None, step_name: str = name, role_arn: Any = role) -> None:
            text = _expr(uri, parameters)
            if text and text.startswith("s3://"):
                found.append(PipelineIO(pipeline.name, step_name, direction, text, key, role_arn))

        for item in args.get("ProcessingInputs", []):
            add("input", (item.get("S3Input") or {}).get("S3Uri"))
        outputs = args.get("ProcessingOutputConfig") or {}
        for item in outputs.get("Outputs", []):
            add("output", (item.get("S3Output") or {}).get("S3Uri"), outputs.get("KmsKeyId"))
        for item in args.get("InputDataConfig", []):
            add("input", ((item.get("DataSource") or {}).get("S3DataSource") or {}).get("S3Uri"))
        if args.get("OutputDataConfig"):
            add("output", args["OutputDataConfig"].get("S3OutputPath"), args["OutputDataConfig"].get("KmsKeyId"))
    return found


def _steps(steps: list[Any]) -> list[dict[str, Any]]:
    """Steps, including those nested in condition steps."""
    out: list[dict[str, Any]] = []
    for step in steps:
        if not isinstance(step, dict):
            continue
        out.append(step)
        args = step.get("Arguments") or {}
        out += _steps(args.get("IfSteps", []) + args.get("ElseSteps", []))
    return out
