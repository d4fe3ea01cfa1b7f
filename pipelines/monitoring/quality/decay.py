"""Decay verdict: the newest judgeable window against the model's own evaluation (`evaluation.json`).

decay when, in that window, the AUC fell by at least `max_auc_drop` and its 95% CI no longer reaches the
evaluated AUC, or its CI lies wholly under the `min_auc` floor; or calibration-in-the-large is off by at least
`max_oe_deviation` (observed/expected events) with p < alpha. A calibration slope outside the band, a Brier
score 20% worse or a subgroup AUC gap beyond `max_subgroup_auc_gap` are warnings: worth a look, not an alarm.
No judgeable window: `insufficient-data`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipelines.errors import InputError
from pipelines.monitoring.quality.windows import QualitySettings, WindowQuality

Verdict = Literal["decay", "no-decay", "insufficient-data"]


@dataclass(frozen=True)
class ReferenceMetrics:
    auc: float
    brier: float | None = None
    calibration_slope: float | None = None
    source: str = ""


def load_reference(path: Path) -> ReferenceMetrics:
    """The pipeline's evaluation.json (its `candidate` block) or a flat {"auc": ...} document."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"baseline metrics {path} are not readable JSON: {exc}") from None
    block = doc.get("candidate", doc) if isinstance(doc, dict) else {}
    if not isinstance(block.get("auc"), int | float):
        raise InputError(f"baseline metrics {path} have no AUC (expected evaluation.json from the pipeline)")
    return ReferenceMetrics(float(block["auc"]), block.get("brier"), block.get("calibration_slope"), str(path))


@dataclass
class QualityResult:
    verdict: Verdict
    model: str
    variant: str
    reasons: list[str]
    warnings: list[str]
    reference: ReferenceMetrics | None
    windows: list[WindowQuality]
    counts: dict[str, int]
    settings: QualitySettings
    judged_window: int | None = None  # index into windows (0 = newest)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "verdict": self.verdict,
            "model": self.model,
            "variant": self.variant,
            "reasons": self.reasons,
            "warnings": self.warnings,
            "reference": asdict(self.reference) if self.reference else None,
            "judged_window": self.judged_window,
            "counts": self.counts,
            "settings": self.settings.model_dump(),
            "windows": [asdict(w) for w in self.windows],
        }


def judge(
    windows: list[WindowQuality],
    reference: ReferenceMetrics | None,
    settings: QualitySettings,
    *,
    model: str,
    variant: str,
    counts: dict[str, int],
) -> QualityResult:
    s = settings
    index = next((i for i, w in enumerate(windows) if w.status == "ok"), None)
    result = QualityResult("insufficient-data", model, variant, [], [], reference, windows, counts, s, index)
    if index is None:
        return result
    m = windows[index].metrics
    auc, (lo, hi) = m["auc"], m["auc_ci95"]
    if reference is not None and reference.auc - auc >= s.max_auc_drop and hi < reference.auc:
        result.reasons.append(f"AUC {auc:.3f} (95% CI {lo:.3f}-{hi:.3f}) is below the evaluated {reference.auc:.3f}")
    if hi < s.min_auc:
        result.reasons.append(f"AUC {auc:.3f} is under the floor {s.min_auc:.2f} (upper 95% bound {hi:.3f})")
    oe, oe_p = m["observed_expected"], m["observed_expected_pvalue"]
    if not math.isnan(oe) and abs(oe - 1) >= s.max_oe_deviation and oe_p < s.alpha:
        direction = "more" if oe > 1 else "fewer"
        result.reasons.append(f"{abs(oe - 1):.0%} {direction} readmissions than predicted (observed/expected {oe:.2f})")
    low, high = s.calibration_slope_band
    if not low <= m["calibration_slope"] <= high:
        result.warnings.append(f"calibration slope {m['calibration_slope']:.2f} outside {low}-{high}")
    if reference is not None and reference.brier and m["brier"] > 1.2 * reference.brier:
        result.warnings.append(f"Brier score {m['brier']:.4f} is over 20% worse than evaluated {reference.brier:.4f}")
    for attribute, table in windows[index].subgroups.items():
        gap = table["auc_gap"]
        if not math.isnan(gap) and gap > s.max_subgroup_auc_gap:
            result.warnings.append(f"{attribute}: subgroup AUC gap {gap:.3f} (lowest: {table['lowest_group']})")
    result.verdict = "decay" if result.reasons else "no-decay"
    return result
