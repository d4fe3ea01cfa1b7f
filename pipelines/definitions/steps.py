"""The steps of the SageMaker training pipeline (see `pipelines.definitions.training` for the overview).

Imported only inside `build_pipeline_definition`, after the environment the SDK needs at import time is set.
Outputs go to s3://<bucket>/<model>/runs/<execution id>/<output>, so executions never overwrite each other.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
from sagemaker.core.network import NetworkConfig
from sagemaker.core.processing import Processor
from sagemaker.core.resources import ModelPackageModelCard
from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output, Tag
from sagemaker.core.training.configs import Compute, InputData, Networking, OutputDataConfig, StoppingCondition
from sagemaker.core.workflow.conditions import ConditionEquals
from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow import ConditionStep, FailStep, ModelStep, Pipeline, ProcessingStep, TrainingStep
from sagemaker.serve.model_builder import ModelBuilder
from sagemaker.train.model_trainer import ModelTrainer

from pipelines.definitions.settings import NETWORK_ALLOWED_STEPS, TRACKING_STEPS, PipelineDefinitionSettings
from pipelines.jobpaths import PROCESSING_ROOT
from pipelines.settings import PENDING
from pipelines.tracking import TRACKING_URI_ENV

# Written by the card step (`registry_metadata`); the release step reads the first four.
REGISTRY_METADATA_KEYS = (
    "auc",
    "brier",
    "max_subgroup_auc_gap",
    "operating_threshold",
    "contract_version",
    "dataset_sha256",
    "model_version",
    "gate_relaxed",  # "no", or which limits were relaxed from the default and by whom
    "signoff_required",  # "no", or the fairness checks whose CI crosses the limit (a named reviewer signs off)
)


class _Builder:
    def __init__(self, settings: PipelineDefinitionSettings, session: Any) -> None:
        self.s, self.session = settings, session
        gate = settings.gate
        self.params = {
            "InputDataUri": ParameterString("InputDataUri", default_value=settings.data_uri),
            "ContractUri": ParameterString("ContractUri", default_value=settings.contract_uri),
            "ProcessingInstanceType": ParameterString(
                "ProcessingInstanceType", default_value=settings.processing_instance_type
            ),
            "TrainingInstanceType": ParameterString(
                "TrainingInstanceType", default_value=settings.training_instance_type
            ),
            "MinAuc": ParameterFloat("MinAuc", default_value=gate.min_auc),
            "MaxSubgroupAucGap": ParameterFloat("MaxSubgroupAucGap", default_value=gate.max_subgroup_auc_gap),
            "MaxSubgroupTprGap": ParameterFloat("MaxSubgroupTprGap", default_value=gate.max_subgroup_tpr_gap),
            "MaxSubgroupFprGap": ParameterFloat("MaxSubgroupFprGap", default_value=gate.max_subgroup_fpr_gap),
            "MaxComparatorShortfall": ParameterFloat(
                "MaxComparatorShortfall", default_value=gate.max_comparator_shortfall
            ),
            "MaxRegression": ParameterFloat("MaxRegression", default_value=gate.max_regression),
            "MinSubgroupSize": ParameterInteger("MinSubgroupSize", default_value=gate.min_subgroup_size),
            "MinSubgroupEvents": ParameterInteger("MinSubgroupEvents", default_value=gate.min_subgroup_events),
        }

    def output_uri(self, step: str, name: str) -> Join:
        return Join(
            on="/",
            values=[
                f"s3://{self.s.bucket_for(step)}",
                self.s.model_name,
                "runs",
                ExecutionVariables.PIPELINE_EXECUTION_ID,
                name,
            ],
        )

    def processor(self, step: str, module: str) -> Processor:
        network = NetworkConfig(
            enable_network_isolation=step not in NETWORK_ALLOWED_STEPS,
            encrypt_inter_container_traffic=True,
            security_group_ids=list(self.s.security_group_ids),
            subnets=list(self.s.subnet_ids),
        )
        return Processor(
            role=self.s.role_arn,
            image_uri=self.s.step_image_uri,
            instance_count=1,
            instance_type=self.params["ProcessingInstanceType"],
            entrypoint=["python3", "-m", f"pipelines.steps.{module}"],
            volume_size_in_gb=self.s.volume_size_gb,
            volume_kms_key=self.s.volume_kms_key_arn,
            output_kms_key=self.s.output_key_for(step),
            max_runtime_in_seconds=self.s.max_runtime_seconds,
            base_job_name=f"clinops-{self.s.model_name}-{module}",
            sagemaker_session=self.session,
            network_config=network,
            tags=[{"Key": k, "Value": v} for k, v in self.s.tags.items()] or None,
            # a literal, never a parameter: an execution cannot point the run's record at another server
            env={TRACKING_URI_ENV: self.s.tracking_server_arn} if step in TRACKING_STEPS else None,
        )

    @staticmethod
    def input(name: str, uri: Any, local: str) -> ProcessingInput:
        return ProcessingInput(
            input_name=name,
            s3_input=ProcessingS3Input(
                s3_uri=uri, local_path=f"{PROCESSING_ROOT}/input/{local}", s3_data_type="S3Prefix", s3_input_mode="File"
            ),
        )

    def output(self, step: str, name: str) -> ProcessingOutput:
        return ProcessingOutput(
            output_name=name,
            s3_output=ProcessingS3Output(
                s3_uri=self.output_uri(step, name),
                local_path=f"{PROCESSING_ROOT}/output/{name}",
                s3_upload_mode="EndOfJob",
            ),
        )

    def processing_step(
        self,
        name: str,
        module: str,
        inputs: list[ProcessingInput],
        outputs: list[str],
        arguments: list[Any] | None = None,
        property_files: list[PropertyFile] | None = None,
    ) -> ProcessingStep:
        step_args = self.processor(name, module).run(
            inputs=inputs, outputs=[self.output(name, o) for o in outputs], arguments=arguments
        )
        return ProcessingStep(name=name, step_args=step_args, property_files=property_files)

    def training_step(self, split: ProcessingStep) -> TrainingStep:
        hyperparameters = {k: str(v) for k, v in self.s.training.model_dump().items()}
        trainer = ModelTrainer(
            training_image=self.s.step_image_uri,
            role=self.s.role_arn,
            sagemaker_session=self.session,
            base_job_name=f"clinops-{self.s.model_name}-train",
            hyperparameters=hyperparameters,
            compute=Compute(
                instance_type=self.params["TrainingInstanceType"],
                instance_count=1,
                volume_size_in_gb=self.s.volume_size_gb,
                volume_kms_key_id=self.s.volume_kms_key_arn,
            ),
            networking=Networking(
                security_group_ids=list(self.s.security_group_ids),
                subnets=list(self.s.subnet_ids),
                enable_network_isolation=True,
                enable_inter_container_traffic_encryption=True,
            ),
            output_data_config=OutputDataConfig(
                s3_output_path=self.output_uri("TrainModel", "model"), kms_key_id=self.s.output_key_for("TrainModel")
            ),
            stopping_condition=StoppingCondition(max_runtime_in_seconds=self.s.max_runtime_seconds),
            tags=[Tag(key=k, value=v) for k, v in self.s.tags.items()] or None,
        )
        outputs = split.properties.ProcessingOutputConfig.Outputs
        channels = [
            InputData(channel_name=c, data_source=outputs[c].S3Output.S3Uri)
            for c in ("train", "calibration", "summary")
        ]
        channels.append(InputData(channel_name="contract", data_source=self.params["ContractUri"]))
        return TrainingStep(name="TrainModel", step_args=trainer.train(input_data_config=channels))


def _flags(params: dict[str, Any], *names: str) -> list[Any]:
    """Container arguments from pipeline parameters: MinAuc -> ["--min-auc", <value as string>]."""
    flags: list[Any] = []
    for name in names:
        flags += ["--" + re.sub(r"(?<!^)([A-Z])", r"-\1", name).lower(), params[name].to_string()]
    return flags


def _output(step: ProcessingStep, name: str) -> Any:
    return step.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri


def build_pipeline(settings: PipelineDefinitionSettings, session: Any) -> Pipeline:
    b = _Builder(settings, session)
    p = b.params
    contract = b.input("contract", p["ContractUri"], "contract")
    validate = b.processing_step(
        "ValidateContract", "validate", [b.input("data", p["InputDataUri"], "data"), contract], ["validated", "report"]
    )
    split = b.processing_step(
        "SplitData",
        "split",
        [b.input("validated", _output(validate, "validated"), "validated"), contract],
        ["train", "calibration", "test", "summary"],
        ["--output", f"{PROCESSING_ROOT}/output", "--seed", str(settings.training.seed)],
    )
    train = b.training_step(split)
    model_uri = train.properties.ModelArtifacts.S3ModelArtifacts
    scores = b.processing_step(
        "ScoreTestSet",
        "score",
        [b.input("model", model_uri, "model"), b.input("test", _output(split, "test"), "test")],
        ["predictions"],
    )
    evaluate = b.processing_step(
        "EvaluateModel",
        "evaluate",
        [b.input("model", model_uri, "model"), b.input("predictions", _output(scores, "predictions"), "predictions")],
        ["evaluation"],
    )
    fairness = b.processing_step(
        "CheckFairness",
        "fairness",
        [
            b.input("predictions", _output(scores, "predictions"), "predictions"),
            b.input("evaluation", _output(evaluate, "evaluation"), "evaluation"),
            contract,
        ],
        ["fairness"],
        _flags(p, "MinSubgroupSize", "MinSubgroupEvents"),
    )
    decision_file = PropertyFile(name="Decision", output_name="decision", path="decision.json")
    decide = b.processing_step(
        "DecideRelease",
        "decide",
        [
            b.input("evaluation", _output(evaluate, "evaluation"), "evaluation"),
            b.input("fairness", _output(fairness, "fairness"), "fairness"),
        ],
        ["decision"],
        [
            "--model-package-group",
            settings.model_package_group_name,
            *_flags(
                p,
                "MinAuc",
                "MaxSubgroupAucGap",
                "MaxSubgroupTprGap",
                "MaxSubgroupFprGap",
                "MaxComparatorShortfall",
                "MaxRegression",
                "MinSubgroupSize",
                "MinSubgroupEvents",
            ),
        ],
        [decision_file],
    )
    card_file = PropertyFile(name="ModelCard", output_name="card", path="card-property.json")
    card = b.processing_step(
        "WriteModelCard",
        "card",
        [
            b.input("model", model_uri, "model"),
            b.input("evaluation", _output(evaluate, "evaluation"), "evaluation"),
            b.input("fairness", _output(fairness, "fairness"), "fairness"),
            b.input("decision", _output(decide, "decision"), "decision"),
            b.input("summary", _output(split, "summary"), "summary"),
            b.input("report", _output(validate, "report"), "report"),
        ],
        ["card"],
        ["--data-source", p["InputDataUri"]],
        [card_file],
    )
    tracking_file = PropertyFile(name="Tracking", output_name="tracking", path="tracking.json")
    track = b.processing_step(
        "TrackRun",
        "track",
        [
            b.input("model", model_uri, "model"),
            b.input("report", _output(validate, "report"), "report"),
            b.input("evaluation", _output(evaluate, "evaluation"), "evaluation"),
            b.input("fairness", _output(fairness, "fairness"), "fairness"),
            b.input("decision", _output(decide, "decision"), "decision"),
            b.input("card", _output(card, "card"), "card"),
        ],
        ["tracking"],
        [
            "--training",
            json.dumps(settings.training.model_dump(), sort_keys=True),
            "--data-source",
            p["InputDataUri"],
            "--run-name",
            ExecutionVariables.PIPELINE_EXECUTION_ID,
        ],
        [tracking_file],
    )
    register = _register_step(settings, session, model_uri, evaluate, fairness, card, card_file, track, tracking_file)
    failed = FailStep(
        name="GatesFailed",
        error_message=Join(
            on=" ",
            values=[
                "The candidate did not pass the release gates:",
                JsonGet(step_name=decide.name, property_file=decision_file, json_path="summary"),
            ],
        ),
    )
    gates = ConditionStep(
        name="CheckGates",
        conditions=[
            ConditionEquals(
                left=JsonGet(step_name=decide.name, property_file=decision_file, json_path="register"), right=True
            )
        ],
        if_steps=[register],
        else_steps=[failed],
    )
    return Pipeline(
        name=settings.pipeline_name,
        parameters=list(p.values()),
        sagemaker_session=session,
        steps=[validate, split, train, scores, evaluate, fairness, decide, card, track, gates],
    )


def _register_step(
    settings: PipelineDefinitionSettings,
    session: Any,
    model_uri: Any,
    evaluate: ProcessingStep,
    fairness: ProcessingStep,
    card: ProcessingStep,
    card_file: PropertyFile,
    track: ProcessingStep,
    tracking_file: PropertyFile,
) -> ModelStep:
    metrics = ModelMetrics(
        model_statistics=MetricsSource(
            content_type="application/json",
            s3_uri=Join(on="/", values=[_output(evaluate, "evaluation"), "model-quality.json"]),
        ),
        bias=MetricsSource(
            content_type="application/json",
            s3_uri=Join(on="/", values=[_output(fairness, "fairness"), "fairness.json"]),
        ),
    )
    # log_level: ModelBuilder otherwise sets the SDK's shared logger to DEBUG for the whole process.
    builder = ModelBuilder(
        image_uri=settings.inference_image_uri,
        s3_model_data_url=model_uri,
        role_arn=settings.role_arn,
        sagemaker_session=session,
        dependencies={},  # the default {"auto": True} would package and upload code: the image already has it
        log_level=logging.ERROR,
    )
    step_args = builder.register(
        model_package_group_name=settings.model_package_group_name,
        approval_status=PENDING,
        model_metrics=metrics,
        content_types=["application/json", "text/csv"],
        response_types=["application/json"],
        inference_instances=list(settings.inference_instance_types),
        transform_instances=list(settings.inference_instance_types),
        customer_metadata_properties={
            "model_card_s3_uri": Join(on="/", values=[_output(card, "card"), "model-card.md"]),
            "pipeline": settings.pipeline_name,
            # the MLflow run that recorded this candidate (TrackRun); registration waits for it
            "mlflow_run_id": JsonGet(step_name=track.name, property_file=tracking_file, json_path="mlflow_run_id"),
            **{
                key: JsonGet(step_name=card.name, property_file=card_file, json_path=f"metadata.{key}")
                for key in REGISTRY_METADATA_KEYS
            },
        },
        model_card=ModelPackageModelCard(
            model_card_status="Draft",
            model_card_content=JsonGet(step_name=card.name, property_file=card_file, json_path="model_card_content"),
        ),
    )
    return ModelStep(name="RegisterModel", step_args=step_args)
