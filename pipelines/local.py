"""Run the whole training pipeline in process: the same step functions the SageMaker jobs run, on local files.

validate -> split -> train -> evaluate -> fairness -> decide -> card -> track -> register. Each step is timed;
a step that stops the pipeline ends the run with its reasons, and the run is still recorded in MLflow (with the
contract report, never the data). Files land in `out/pipeline/<model>/<timestamp>/`, MLflow in `out/mlflow`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from clinops.exitcodes import ExitCode
from pipelines import tracking
from pipelines.contracts import Contract, builtin_contract_path, load_contract
from pipelines.contracts.validate import ContractReport
from pipelines.data.injections import Injections
from pipelines.errors import InputError
from pipelines.jobio import dataset_sha256, read_raw_table, write_json
from pipelines.profiles import profile_for, synthetic_table
from pipelines.settings import PipelineSettings
from pipelines.steps import card as card_step
from pipelines.steps import decide as decide_step
from pipelines.steps import evaluate as evaluate_step
from pipelines.steps import fairness as fairness_step
from pipelines.steps import register as register_step
from pipelines.steps import score as score_step
from pipelines.steps import split as split_step
from pipelines.steps import train as train_step
from pipelines.steps import validate as validate_step

log = logging.getLogger("clinops.pipeline")
STEPS = ("validate", "split", "train", "evaluate", "fairness", "decide", "card", "track", "register")
CONTRACT_VIOLATED, UNUSABLE, INTERRUPTED = "ContractViolated", "Unusable", "Interrupted"
Progress = Callable[[str, str], None]  # (step, "start" | "done" | "skipped")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class PipelineResult:
    model: str
    verdict: str
    exit_code: int
    run_dir: Path
    tracking_uri: str
    stopped_at: str | None = None
    reasons: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    data_source: str = ""
    contract: Contract | None = None
    contract_report: ContractReport | None = None
    evaluation: dict[str, Any] | None = None
    fairness: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    model_dir: Path | None = None
    card: dict[str, Any] | None = None
    card_path: Path | None = None
    mlflow_run_id: str | None = None
    registered_version: str | None = None


class _Run:
    """Times steps and reports progress; holds the result as it fills in."""

    def __init__(self, result: PipelineResult, progress: Progress | None) -> None:
        self.result, self.progress = result, progress or (lambda step, state: None)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.progress(name, "start")
        started = time.perf_counter()
        try:
            yield
        finally:
            self.result.timings[name] = round(time.perf_counter() - started, 3)
            log.info("step %s finished in %.2f s", name, self.result.timings[name])
            self.progress(name, "done")

    def stop(self, step: str, verdict: str, exit_code: int, reasons: list[str]) -> PipelineResult:
        self.result.stopped_at, self.result.verdict, self.result.exit_code = step, verdict, exit_code
        self.result.reasons = reasons
        log.warning("pipeline stopped at %s: %s", step, verdict)
        for later in STEPS[STEPS.index(step) + 1 :]:
            if later not in self.result.timings and later != "track":  # tracking records stopped runs too
                self.progress(later, "skipped")
        return self.result


def _inputs(
    data: Path | None,
    contract_path: Path | None,
    model: str,
    run_dir: Path,
    rows: int,
    seed: int,
    as_of: date,
    injections: Injections | None,
) -> tuple[Path, Contract, str]:
    contract = load_contract(contract_path or _builtin_contract(model))
    if data is not None:
        return data, contract, f"file {data.name}"
    table = synthetic_table(model, rows, seed, as_of, injections)
    data = run_dir / "input" / f"{model}-synthetic-seed{seed}.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(data, index=False)
    return data, contract, f"synthetic generator ({rows} rows, seed {seed})"


DEFAULT_MODEL = "readmission-risk"


def resolve_model_name(model: str | None, contract_path: Path | None) -> str:
    """The model a run is for: the contract's name; `--model` only picks a built-in contract or must agree."""
    if contract_path is None:
        return model or DEFAULT_MODEL
    try:
        declared = load_contract(contract_path).name
    except (OSError, ValueError) as exc:
        raise InputError(f"--contract {contract_path}: {exc}") from None
    if model is not None and model != declared:
        raise InputError(
            f"--model {model} does not match the contract's name '{declared}' ({contract_path}); a run is filed and "
            f"served under its contract's name: drop --model or pass --model {declared}"
        )
    return declared


def _builtin_contract(model: str) -> Path:
    path = builtin_contract_path(model)
    if not path.is_file():
        raise InputError(f"no built-in contract for model '{model}'; pass --contract PATH")
    return path


def run_local(
    *,
    data: Path | None = None,
    contract: Path | None = None,
    model: str | None = None,
    out_dir: Path = Path("out"),
    settings: PipelineSettings | None = None,
    rows: int = 50_000,
    seed: int = 7,
    tracking_uri: str | None = None,
    clock: Callable[[], datetime] = utc_now,
    progress: Progress | None = None,
    injections: Injections | None = None,
    as_of: date | None = None,
    relaxed_by: str | None = None,
) -> PipelineResult:
    """Run every step in process. Raises `InputError` only if the inputs cannot be read at all.

    `model` defaults to the contract's name (the built-in readmission-risk contract when neither is given), so a
    run is filed and registered under the model its contract describes. `as_of` is the date freshness is judged
    against (default: the clock's date), for re-running an old extract. `relaxed_by` names who loosened a gate.
    """
    model = resolve_model_name(model, contract)
    settings = settings or PipelineSettings()
    started_at = clock()
    as_of = as_of or started_at.date()
    run_dir = out_dir / "pipeline" / model / started_at.strftime("%Y%m%dT%H%M%S%fZ")
    tracking_uri = tracking_uri or tracking.default_tracking_uri(out_dir)
    tracking.warm_up(tracking_uri)  # MLflow's imports and schema load while the CPU-bound steps run
    result = PipelineResult(model, "", ExitCode.UNUSABLE_INPUT, run_dir, tracking_uri)
    run = _Run(result, progress)
    try:
        data_path, result.contract, result.data_source = _inputs(
            data, contract, model, run_dir, rows, seed, as_of, injections
        )
        raw = read_raw_table(data_path, result.contract.text_columns)
        digest = dataset_sha256(data_path)
    except ValueError as exc:  # e.g. no generator for this model
        raise InputError(str(exc)) from None
    try:
        _pipeline(run, raw, digest, result.contract, settings, started_at, as_of, relaxed_by)
    except BaseException as exc:
        # Ctrl-C can leave a model written with no decision: record it as KILLED (serve refuses such runs).
        interrupted = isinstance(exc, KeyboardInterrupt)
        result.verdict, result.exit_code = (INTERRUPTED if interrupted else "Failed"), ExitCode.FAILED
        _record(run, settings, digest, status="KILLED" if interrupted else "FAILED")
        raise
    _record(run, settings, digest)
    return result


def _pipeline(
    run: _Run,
    raw: Any,
    digest: str,
    contract: Contract,
    settings: PipelineSettings,
    started_at: datetime,
    as_of: date,
    relaxed_by: str | None = None,
) -> PipelineResult:
    result = run.result
    with run.step("validate"):
        validated = validate_step.validate(raw, contract, as_of=as_of)
        result.contract_report = validated.report
        validate_step.write_report(validated.report, result.run_dir / "report", digest)
    if validated.table is None:
        unusable = validated.report.status == "unusable"
        return run.stop(
            "validate",
            UNUSABLE if unusable else CONTRACT_VIOLATED,
            ExitCode.UNUSABLE_INPUT if unusable else ExitCode.FAILED,
            validated.report.reasons(),
        )
    with run.step("split"):
        try:
            splits = split_step.split(validated.table, contract, settings.training)
        except InputError as exc:
            return run.stop("split", UNUSABLE, ExitCode.UNUSABLE_INPUT, [str(exc)])
    with run.step("train"):
        trained = train_step.train(splits.train, splits.calibration, contract, settings.training)
        bundle = train_step.save(
            trained,
            splits.train,
            contract,
            settings.training,
            result.run_dir / "model",
            dataset_sha256=digest,
            trained_at=started_at,
        )
        result.model_dir = bundle.path
    with run.step("evaluate"):
        predictions = score_step.score(bundle, splits.test)
        result.evaluation = evaluate_step.evaluate(predictions, bundle.metadata)
        write_json(result.evaluation, result.run_dir / "evaluation" / "evaluation.json")
    with run.step("fairness"):
        threshold = result.evaluation["operating_threshold"]
        result.fairness = fairness_step.assess_fairness(predictions, contract, threshold, settings.gate)
        write_json(result.fairness, result.run_dir / "fairness" / "fairness.json")
    with run.step("decide"):
        x_test = train_step.features(splits.test, contract)
        approved = register_step.approved_reference(
            tracking.client(result.tracking_uri),
            result.tracking_uri,
            contract.name,
            x_test,
            splits.test[contract.label.column].to_numpy(),
        )
        result.decision = decide_step.decide(result.evaluation, result.fairness, settings.gate, approved, relaxed_by)
        write_json(result.decision, result.run_dir / "decision" / "decision.json")
    with run.step("card"):
        result.card = card = card_step.build_card(
            metadata=bundle.metadata,
            evaluation=result.evaluation,
            fairness=result.fairness,
            decision=result.decision,
            contract_report=validated.report.to_dict(),
            split_summary=splits.summary,
            profile=profile_for(contract.name, contract),
            data_source=result.data_source,
            explanations=card_step.explanation_section(bundle.model, contract, bundle.baseline),
        )
        result.card_path = card_step.write_card(card, result.run_dir / "card")
    verdict = result.decision["verdict"]
    result.verdict, result.reasons = verdict, result.decision["reasons"]
    if verdict != decide_step.PENDING:
        exit_code = ExitCode.UNUSABLE_INPUT if verdict == decide_step.INCONCLUSIVE else ExitCode.FAILED
        return run.stop("decide", verdict, exit_code, result.reasons)
    result.exit_code = ExitCode.OK  # registration needs the logged model: it happens after tracking
    return result


def _record(run: _Run, settings: PipelineSettings, digest: str, status: str = "FINISHED") -> None:
    """Log the run to MLflow whatever happened, then register if the decision allows it."""
    result = run.result
    contract = result.contract
    assert contract is not None
    bundle = None
    if result.model_dir is not None:
        from pipelines.bundle import read_bundle

        bundle = read_bundle(result.model_dir)
    with run.step("track"):
        result.mlflow_run_id, model_uri = tracking.record_run(
            result.tracking_uri,
            run_name=result.run_dir.name,
            contract=contract,
            gate=settings.gate,
            training=settings.training,
            data_source=result.data_source,
            verdict=result.verdict,
            stopped_at=result.stopped_at,
            dataset_sha256=digest,
            evaluation=result.evaluation,
            fairness=result.fairness,
            decision=result.decision,
            timings=result.timings,
            run_dir=result.run_dir,
            bundle_dir=result.model_dir,
            model=bundle.model if bundle else None,
            signature_frame=train_step.signature_frame(contract) if bundle else None,
            status=status,
        )
    if result.exit_code != ExitCode.OK or model_uri is None or result.decision is None:
        return
    with run.step("register"):
        try:
            result.registered_version = register_step.register(
                tracking.client(result.tracking_uri),
                contract.name,
                model_uri,
                result.mlflow_run_id,
                result.decision,
                {
                    **card_step.registry_metadata(result.card or {}),
                    "model_card": f"runs:/{result.mlflow_run_id}/card/model-card.md",
                },
            )
        except Exception:
            result.exit_code, result.verdict = ExitCode.FAILED, "RegistrationFailed"
            raise
