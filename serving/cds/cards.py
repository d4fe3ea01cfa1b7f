"""CDS Hooks 2.0 cards: the model's risk card and the fallback card. Both carry the same overrideReasons so
clinicians can say why they did not follow it (feedback: `serving.cds.feedback`)."""

from __future__ import annotations

import uuid
from typing import Any

from clinops.models import CdsConfig, ModelConfig
from serving.cds.scoring import Score

OVERRIDE_SYSTEM = "https://clinops.hospital.example/cds/override-reason"
OVERRIDE_REASONS = {
    "disagree-risk": "Risk estimate does not match my clinical assessment",
    "already-addressed": "Already addressed in the care plan",
    "not-applicable": "Not applicable to this patient",
    "data-incorrect": "The patient data behind it is wrong or incomplete",
}
SUMMARY_MAX = 140  # CDS Hooks 2.0: summary SHOULD be under 140 characters


def override_reasons() -> list[dict[str, str]]:
    return [{"code": code, "system": OVERRIDE_SYSTEM, "display": text} for code, text in OVERRIDE_REASONS.items()]


def band_of(cds: CdsConfig, probability: float) -> Any:
    return [band for band in cds.bands if probability >= band.min_score][-1]


def _readable(feature: str) -> str:
    return feature.replace("_", " ")


def risk_card(model: ModelConfig, score: Score) -> dict[str, Any]:
    cds = model.cds
    assert cds is not None
    band = band_of(cds, score.probability)
    lines = [
        f"**Risk:** {score.probability:.0%} ({band.label}; bands: "
        + ", ".join(f"{b.label} from {b.min_score:.0%}" for b in cds.bands)
        + ")."
    ]
    shown = score.factors[: cds.top_factors]
    if shown:
        lines.append(
            "**Top contributing factors:** "
            + "; ".join(f"{_readable(f.feature)} ({'raises' if f.contribution > 0 else 'lowers'} risk)" for f in shown)
            + "."
        )
    lines += [
        f"**Model:** {score.model} version {score.model_version}.",
        f"**Intended use:** {model.description}",
        f"Decision support only: weigh it with your clinical judgement. [Model card]({cds.model_card_url})",
    ]
    return {
        "uuid": str(uuid.uuid4()),
        "summary": f"{cds.title}: {band.label} ({score.probability:.0%})"[:SUMMARY_MAX],
        "detail": "\n\n".join(lines),
        "indicator": band.indicator,
        "source": {"label": f"clinops {model.name} v{score.model_version}", "url": cds.model_card_url},
        "links": [{"label": "Model card", "url": cds.model_card_url, "type": "absolute"}],
        "overrideReasons": override_reasons(),
    }


def fallback_card(model: ModelConfig, why: str) -> dict[str, Any]:
    """The model cannot answer safely: say why (no patient values) and what to use instead."""
    cds = model.cds
    assert cds is not None
    fallback = cds.fallback
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": f"{cds.title}: model unavailable - use the {fallback.name}"[:SUMMARY_MAX],
        "detail": f"**Why no model score:** {why}.\n\n**Use instead:** {fallback.guidance}\n\n"
        f"[Model card]({cds.model_card_url})",
        "indicator": "warning",
        "source": {"label": f"clinops {model.name} (fallback: {fallback.name})", "url": cds.model_card_url},
        "links": [{"label": "Model card", "url": cds.model_card_url, "type": "absolute"}],
        "overrideReasons": override_reasons(),
    }
    if fallback.url:
        card["links"].insert(0, {"label": fallback.name, "url": fallback.url, "type": "absolute"})
    return card
