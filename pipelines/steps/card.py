"""Step 7 - the model card: what the model is for, what it was trained on, how well and how fairly it performs,
and what the gates decided. Written for every candidate that reached evaluation, registered or not.

Outputs `model-card.md` and `model-card.html` (for people; the HTML has the charts), `model-card.json` (for
machines), `sagemaker-model-card.json` (the SageMaker model card schema, attached to the model package) and
`card-property.json` (that content as one string plus the registry metadata as strings, which the pipeline
reads with JsonGet). Nothing in a card is
patient-level: counts, rates and metrics only; PHI columns appear by name in the list of what was removed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from scipy.special import expit

from pipelines.contracts import Contract, load_contract
from pipelines.contracts.synthetic import synthetic_rows
from pipelines.explain import UNITS, Unexplainable, explainer_for
from pipelines.jobio import PROCESSING, model_dir, read_json, write_json
from pipelines.profiles import ModelProfile, profile_for
from pipelines.settings import describe_relaxations
from pipelines.steps.card_html import card_html
from pipelines.steps.decide import FAIL, NEEDS_SIGNOFF, PENDING
from pipelines.steps.train import features as model_features

CARD_FORMAT = 1
_FAIRNESS_FIELDS = (
    "n",
    "positives",
    "auc",
    "auc_ci95",
    "tpr",
    "fpr",
    "calibration_gap",
    "mean_predicted",
    "prevalence",
    "status",
)
_HEADLINE = ("auc", "auc_ci95", "pr_auc", "brier", "calibration_slope", "calibration_intercept", "ece")


EXAMPLE_ROWS = 3  # synthetic patients from the contract, never training or test rows
EXAMPLE_FACTORS = 3
EXPLANATION_METHOD = "exact Shapley values of the calibrated log-odds (path-dependent TreeSHAP over the model's trees)"


def explanation_section(model: Any, contract: Contract, baseline: dict[str, Any]) -> dict[str, Any]:
    """Why the model scores as it does: global mean |contribution| per feature (the bundle's attribution
    baseline, an aggregate over the train split) and the top reasons for a few SYNTHETIC example patients."""
    try:
        explainer = explainer_for(model, contract.feature_columns)
    except Unexplainable as exc:
        return {"available": False, "reason": str(exc)}
    frame = model_features(pd.DataFrame(synthetic_rows(contract, EXAMPLE_ROWS, seed=11)), contract)
    explanation = explainer.explain(frame)
    risks = expit(explanation.log_odds())
    summary = baseline.get("attributions")
    return {
        "available": True,
        "method": EXPLANATION_METHOD,
        "units": UNITS,
        "global": None
        if summary is None
        else {
            "computed_on": summary["computed_on"],
            "rows": summary["rows"],
            "mean_abs": sorted(([f, float(v)] for f, v in summary["mean_abs"].items()), key=lambda fv: -fv[1]),
        },
        "examples": [
            {"example": i + 1, "risk": float(risks[i]), "top": explanation.top(i, EXAMPLE_FACTORS)}
            for i in range(len(frame))
        ],
    }


def _direction(contribution: float) -> str:
    return "raises" if contribution > 0 else "lowers"


def explanation_lines(section: dict[str, Any] | None) -> list[str]:
    """The card's Markdown section on explanations (also what the HTML shows, as a table)."""
    if not section:
        return []
    lines = ["## Why the model scores as it does", ""]
    if not section["available"]:
        return [*lines, f"No exact explanations for this model: {section['reason']}.", ""]
    lines += [f"Method: {section['method']}; units: {section['units']}.", ""]
    summary = section["global"]
    if summary is not None:
        lines += [
            f"Mean |contribution| per feature ({summary['computed_on']}, {summary['rows']} rows):",
            "",
            "| feature | mean abs. contribution |",
            "|---|---|",
            *[f"| {f} | {v:.3f} |" for f, v in summary["mean_abs"]],
            "",
        ]
    lines.append("Top reasons for SYNTHETIC example patients (generated from the contract, not real people):")
    lines.append("")
    for example in section["examples"]:
        reasons = "; ".join(f"{t['feature']} {_direction(t['contribution'])} risk" for t in example["top"])
        lines.append(f"- example {example['example']} (risk {example['risk']:.0%}): {reasons}")
    return [*lines, ""]


def _limitations(
    profile: ModelProfile,
    evaluation: dict[str, Any],
    fairness: dict[str, Any],
    contract_report: dict[str, Any],
    data_source: str,
) -> list[str]:
    notes = list(profile.limitations)
    if data_source.startswith("synthetic"):
        notes.insert(0, "Trained and evaluated on SYNTHETIC data: the metrics say nothing about real patients.")
    notes.extend(_comparator_note(evaluation))
    sparse = [c for c, f in contract_report.get("missing_fraction", {}).items() if f > 0.3]
    if sparse:
        notes.append(
            f"Often missing in training data (>30%): {', '.join(sparse)}; missingness itself can carry "
            "signal that changes with ordering practice."
        )
    for attribute, result in fairness["attributes"].items():
        skipped = [g for g, r in result["groups"].items() if r["status"] == "not assessed"]
        if skipped:
            notes.append(f"Fairness not assessed for {attribute} = {', '.join(skipped)} (contract fairness_groups).")
    return notes


def _comparator_note(evaluation: dict[str, Any]) -> list[str]:
    """Say plainly how the candidate compares with the simple model: a negative gain is a loss, not a small win."""
    gain = float(evaluation["auc_gain_over_comparator"])
    estimator = evaluation.get("comparator", {}).get("estimator", "logistic regression")
    if gain < 0:
        return [
            f"The candidate is WORSE than the {estimator} comparator trained in the same run: its test AUC is "
            f"{-gain:.3f} lower. The simpler model is preferable unless the candidate is fixed."
        ]
    if gain < 0.01:
        return [
            f"The candidate beats the {estimator} comparator by only {gain:.3f} AUC; the simpler model may be "
            "preferable."
        ]
    return []


def _row_verdict(attribute: str, group: str, row: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    """What the gates said about this subgroup: the limit it breaks, a sign-off it needs, or within limits."""
    if row.get("status") not in ("ok", "too_small"):
        return str(row.get("status"))
    if row.get("status") == "too_small":
        return "too small to judge"
    notes = []
    for check in checks:
        if check.get("attribute") != attribute or group not in check.get("groups", ()):
            continue
        short = (check.get("metric") or check["name"]).upper()
        if check.get("outcome") == FAIL:
            notes.append(f"breaks {short} gap limit {check['limit']:.2f}")
        elif check.get("outcome") == NEEDS_SIGNOFF:
            notes.append(f"sign-off: {short} gap limit {check['limit']:.2f} inside CI")
    return "; ".join(notes) or "within limits"


def _fairness_rows(fairness: dict[str, Any], checks: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [
        {
            "attribute": attribute,
            "group": group,
            **{k: row.get(k) for k in _FAIRNESS_FIELDS},
            "verdict": _row_verdict(attribute, group, row, checks or []),
        }
        for attribute, result in fairness["attributes"].items()
        for group, row in result["groups"].items()
    ]


def build_card(
    *,
    metadata: dict[str, Any],
    evaluation: dict[str, Any],
    fairness: dict[str, Any],
    decision: dict[str, Any],
    contract_report: dict[str, Any],
    split_summary: dict[str, Any],
    profile: ModelProfile,
    data_source: str,
    explanations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    contract_features = metadata["feature_columns"]
    verdict = decision["verdict"]
    return {
        "card_format": CARD_FORMAT,
        "model": {
            k: metadata[k]
            for k in (
                "model_name",
                "model_version",
                "estimator",
                "trained_at",
                "operating_threshold",
                "target_sensitivity",
                "sklearn_version",
            )
        },
        "approval_status": PENDING if verdict == PENDING else f"Not registered ({verdict})",
        "intended_use": profile.intended_use,
        "out_of_scope": list(profile.out_of_scope),
        "risk_rating": profile.risk_rating,
        "limitations": _limitations(profile, evaluation, fairness, contract_report, data_source),
        "training_data": {
            "source": data_source,
            "dataset_sha256": metadata["dataset_sha256"],
            "contract": {
                "name": metadata["contract_name"],
                "version": metadata["contract_version"],
                "fingerprint": metadata["contract_fingerprint"],
                "validation": contract_report["status"],
            },
            "rows_checked": contract_report["rows"],
            "splits": split_summary,
            "phi_removed": contract_report["phi_removed"],
            "features": contract_features,
            "missing_fraction": {c: contract_report["missing_fraction"].get(c) for c in contract_features},
        },
        "metrics": {
            "evaluated_on": evaluation["evaluated_on"],
            "candidate": {k: evaluation["candidate"][k] for k in _HEADLINE},
            "comparator": {k: evaluation["comparator"][k] for k in _HEADLINE},
            "at_operating_threshold": evaluation["candidate"]["at_threshold"],
            "approved_reference": decision.get("approved_reference"),
        },
        "fairness": _fairness_rows(fairness, decision["checks"]),
        "fairness_gaps": {a: r["gaps"] for a, r in fairness["attributes"].items()},
        "charts": evaluation.get("curves", {}),
        "explanations": explanations,
        "decision": {
            "verdict": verdict,
            "reasons": decision["reasons"],
            "signoff_required": decision.get("signoff_required", []),
            "checks": decision["checks"],
            "gate": decision.get("gate", {}),
            "relaxed_limits": decision.get("relaxed_limits", []),
            "relaxed_by": decision.get("relaxed_by"),
        },
    }


def relaxation_note(card: dict[str, Any]) -> str:
    """'' when every gate is at least as strict as the platform default; else what was relaxed and by whom."""
    return describe_relaxations(card["decision"].get("relaxed_limits", []), card["decision"].get("relaxed_by"))


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v, digits) for v in value) + "]"
    return str(value)


def _outcome(check: dict[str, Any]) -> str:
    if check.get("outcome"):
        return str(check["outcome"])
    return "pass" if check["passed"] else "fail" if check["passed"] is False else "not judged"


def card_markdown(card: dict[str, Any]) -> str:
    m, data, metrics = card["model"], card["training_data"], card["metrics"]
    point = metrics["at_operating_threshold"]
    lines = [
        f"# Model card: {m['model_name']} {m['model_version']}",
        "",
        f"**Approval status: {card['approval_status']}**",
        "",
        *(
            [f"**GATE LIMITS RELAXED from the platform default: {relaxation_note(card)}**", ""]
            if relaxation_note(card)
            else []
        ),
        "## Intended use",
        "",
        card["intended_use"],
        "",
        "Out of scope: " + "; ".join(card["out_of_scope"]) + ".",
        f"Risk rating: {card['risk_rating']}.",
        "",
        "## Limitations",
        "",
        *[f"- {n}" for n in card["limitations"]],
        "",
        "## Model",
        "",
        f"- estimator: {m['estimator']}",
        f"- trained at: {m['trained_at']}",
        f"- operating threshold: {m['operating_threshold']:.4f} (set for sensitivity {m['target_sensitivity']:.2f}"
        " on the calibration split)",
        "",
        "## Training data",
        "",
        f"- source: {data['source']}",
        f"- dataset hash: `{data['dataset_sha256']}`",
        f"- contract: {data['contract']['name']} v{data['contract']['version']} ({data['contract']['validation']})",
        f"- rows checked: {data['rows_checked']}; PHI removed: "
        + ", ".join(f"{c} ({h})" for c, h in data["phi_removed"].items()),
        "- splits: "
        + ", ".join(
            f"{s} {v['rows']} rows / {v['positives']} events" for s, v in data["splits"].items() if isinstance(v, dict)
        ),
        f"- features: {', '.join(data['features'])}",
        "",
        f"## Metrics ({metrics['evaluated_on']})",
        "",
        "| metric | candidate | logistic comparator |",
        "|---|---|---|",
        *[f"| {k} | {_fmt(metrics['candidate'][k])} | {_fmt(metrics['comparator'][k])} |" for k in _HEADLINE],
        "",
        f"At the operating threshold: sensitivity {_fmt(point['sensitivity'])}, specificity "
        f"{_fmt(point['specificity'])}, PPV {_fmt(point['ppv'])}, NPV {_fmt(point['npv'])}, alert rate "
        f"{_fmt(point['alert_rate'])} (TP {point['tp']}, FP {point['fp']}, FN {point['fn']}, TN {point['tn']}).",
        "",
        "## Fairness (test split)",
        "",
        "| attribute | group | n | events | AUC | AUC 95% CI | TPR | FPR | calib. gap | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['attribute']} | {r['group']} | {r['n']} | {_fmt(r['positives'])} | {_fmt(r['auc'])} | "
            f"{_fmt(r['auc_ci95'])} | {_fmt(r['tpr'])} | {_fmt(r['fpr'])} | {_fmt(r['calibration_gap'])} | "
            f"{r.get('verdict', r['status'])} |"
            for r in card["fairness"]
        ],
        "",
        *explanation_lines(card.get("explanations")),
        "## Decision",
        "",
        f"Verdict: **{card['decision']['verdict']}**",
        "",
        *[f"- {_outcome(c).upper()}: {c['message']}" for c in card["decision"]["checks"]],
        "",
    ]
    return "\n".join(lines)


def sagemaker_card_content(card: dict[str, Any]) -> dict[str, Any]:
    """The card in SageMaker's model card schema (ModelCardContent), for CreateModelPackage's ModelCard."""
    m, metrics = card["model"], card["metrics"]
    metric_data = [
        {"name": k, "type": "number", "value": float(metrics["candidate"][k])} for k in _HEADLINE if k != "auc_ci95"
    ]
    fairness_data = [
        {
            "name": f"AUC {r['attribute']}={r['group']}"[:255],
            "type": "number",
            "value": float(r["auc"]),
            "notes": f"n={r['n']}, status={r['status']}",
        }
        for r in card["fairness"]
        if isinstance(r.get("auc"), float) and not math.isnan(r["auc"])
    ]
    return {
        "model_overview": {
            "model_description": card["intended_use"][:1024],
            "algorithm_type": m["estimator"][:1024],
            "problem_type": "Binary Classification",
            "model_creator": "clinops training pipeline",
        },
        "intended_uses": {
            "purpose_of_model": card["intended_use"][:2048],
            "intended_uses": ("Out of scope: " + "; ".join(card["out_of_scope"]))[:2048],
            "risk_rating": card["risk_rating"],
            "explanations_for_risk_rating": "Clinical decision support for patient care.",
        },
        "training_details": {
            "training_observations": (
                f"dataset {card['training_data']['dataset_sha256']}; "
                f"contract {card['training_data']['contract']['name']} v{card['training_data']['contract']['version']}"
            )[:1024]
        },
        "evaluation_details": [
            {
                "name": "test split",
                "evaluation_observation": card["decision"]["verdict"],
                "metric_groups": [
                    {"name": "discrimination and calibration", "metric_data": metric_data},
                    {"name": "fairness", "metric_data": fairness_data},
                ],
            }
        ],
        "additional_information": {
            "caveats_and_recommendations": " ".join(card["limitations"])[:2048],
            "ethical_considerations": "Subgroup performance is in the fairness metric group; "
            "approval requires a human reviewer.",
        },
    }


def registry_metadata(card: dict[str, Any]) -> dict[str, str]:
    """Flat string metadata for the registry entry (SageMaker CustomerMetadataProperties, MLflow version tags).

    The release step reads `auc`, `brier`, `max_subgroup_auc_gap` and `operating_threshold` from here, so a
    cross-account release needs no access to the metrics bucket. The gap is left out when any attribute could
    not be judged: an unknown gap must not read as a small one.
    """
    gaps = [g["auc"] for g in card["fairness_gaps"].values()]
    metadata = {
        "auc": f"{card['metrics']['candidate']['auc']:.6f}",
        "brier": f"{card['metrics']['candidate']['brier']:.6f}",
        "operating_threshold": f"{card['model']['operating_threshold']:.6f}",
        "contract_version": card["training_data"]["contract"]["version"],
        "dataset_sha256": card["training_data"]["dataset_sha256"],
        "model_version": card["model"]["model_version"],
    }
    if gaps and all(g is not None for g in gaps):
        metadata["max_subgroup_auc_gap"] = f"{max(g['value'] for g in gaps):.6f}"
    # Always present, so a reader of the registry never mistakes a missing flag for "not relaxed".
    decision = card["decision"]
    relaxed = decision.get("relaxed_limits", [])
    metadata["gate_relaxed"] = _registry_value(
        " ".join(f"{r['limit']}={r['value']:g} default={r['default']:g}" for r in relaxed)
        + f" relaxed by {decision.get('relaxed_by') or 'an unnamed user'}"
        if relaxed
        else "no"
    )
    signoff = [c["name"] for c in decision["checks"] if c.get("outcome") == NEEDS_SIGNOFF]
    metadata["signoff_required"] = _registry_value(" ".join(signoff) if signoff else "no")
    return metadata


def _registry_value(text: str) -> str:
    """SageMaker CustomerMetadataProperties values: at most 256 characters of letters, digits, spaces and
    _ . : / = + - @ (MLflow tags take the same strings)."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s.:/=+\-@]", " ", text)).strip()[:256] or "no"


def write_card(card: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_json(card, directory / "model-card.json")
    content = sagemaker_card_content(card)
    write_json(content, directory / "sagemaker-model-card.json")
    write_json(
        {"model_card_content": json.dumps(content, separators=(",", ":")), "metadata": registry_metadata(card)},
        directory / "card-property.json",
    )
    path = directory / "model-card.md"
    path.write_text(card_markdown(card))
    (directory / "model-card.html").write_text(card_html(card))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=PROCESSING / "input/model")
    parser.add_argument("--evaluation", default=PROCESSING / "input/evaluation/evaluation.json")
    parser.add_argument("--fairness", default=PROCESSING / "input/fairness")
    parser.add_argument("--decision", default=PROCESSING / "input/decision")
    parser.add_argument("--split-summary", default=PROCESSING / "input/summary")
    parser.add_argument("--contract-report", default=PROCESSING / "input/report/contract-report.json")
    parser.add_argument("--data-source", default="S3 extract")
    parser.add_argument("--output", type=Path, default=PROCESSING / "output/card")
    args = parser.parse_args(argv)
    bundle_dir = model_dir(args.model, scratch=tempfile.mkdtemp(prefix="model-"))
    metadata = json.loads((bundle_dir / "metadata.json").read_text())
    contract = load_contract(bundle_dir / "contract.yaml")
    import joblib  # the bundle's own serialisation

    explanations = explanation_section(
        joblib.load(bundle_dir / "model.joblib"), contract, read_json(bundle_dir / "baseline.json")
    )
    card = build_card(
        metadata=metadata,
        evaluation=read_json(args.evaluation),
        fairness=read_json(args.fairness),
        decision=read_json(args.decision),
        contract_report=read_json(args.contract_report),
        split_summary=read_json(args.split_summary),
        profile=profile_for(contract.name, contract),
        data_source=args.data_source,
        explanations=explanations,
    )
    write_card(card, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
