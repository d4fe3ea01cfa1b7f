"""Plain-language sentences for a clinical analyst: what changed, by how much, and what to check.

Only aggregates appear (shares, averages, counts); never a patient's value. Unseen category values are named
only when seen at least `small_cell` times and when they do not look like an identifier.
"""

from __future__ import annotations

import math

from pipelines.contracts import Contract
from pipelines.contracts.validate import safe_example
from pipelines.monitoring.drift.detect import DriftResult, FeatureDrift

SPREAD_RATIO = 1.15  # a standard deviation this much larger (or smaller) reads as "more spread out"
MEAN_SHIFT_SD = 0.1  # an average this many baseline SDs away reads as "higher" / "lower"


def display_name(name: str) -> str:
    return "risk score" if name == "score" else name.replace("_", " ")


def _pct(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    return f"{100 * x:.0f}%" if x >= 0.01 or x == 0 else f"{100 * x:.1f}%"


def _num(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.3g}"


def _unit(contract: Contract | None, name: str) -> str:
    spec = contract.columns.get(name) if contract is not None else None
    return (
        f" {spec.unit}"
        if spec is not None and spec.unit and spec.unit not in ("count", "%")
        else ("%" if spec is not None and spec.unit == "%" else "")
    )


def _numeric_change(f: FeatureDrift, unit: str) -> list[str]:
    out = []
    # After a unit switch the current numbers are not in the contract's unit: do not label them with it.
    now_unit = " as received" if f.unit_hint or f.unit_change else unit
    if f.baseline_sd and not math.isnan(f.mean) and f.baseline_sd > 0:
        moved = (f.mean - f.baseline_mean) / f.baseline_sd
        if abs(moved) >= MEAN_SHIFT_SD:
            direction = "higher" if moved > 0 else "lower"
            times = f.mean / f.baseline_mean if f.baseline_mean > 0 else math.nan
            size = (
                f"about {times:.0f} times the training average"
                if times >= 3
                else f"{abs(moved):.2f} training standard deviations"
            )
            out.append(
                f"Values are {direction} than in training: average {_num(f.baseline_mean)}{unit} now "
                f"{_num(f.mean)}{now_unit} ({size})."
            )
        ratio = f.sd / f.baseline_sd if not math.isnan(f.sd) else math.nan
        if ratio >= SPREAD_RATIO or ratio <= 1 / SPREAD_RATIO:
            how = "more spread out" if ratio > 1 else "more tightly grouped"
            out.append(f"Values are {how}: standard deviation {_num(f.baseline_sd)}{unit} now {_num(f.sd)}{now_unit}.")
    if f.outside_training_range >= 0.01:
        out.append(f"{_pct(f.outside_training_range)} more values than in training lie beyond its usual range.")
    return out


def _categorical_change(f: FeatureDrift) -> list[str]:
    labels, base, cur = f.bins.get("labels", []), f.bins.get("baseline", []), f.bins.get("current", [])
    moves = sorted(zip(labels, base, cur, strict=True), key=lambda t: -abs(t[2] - t[1]))[:2]
    parts = [f"'{lab}' {_pct(b)} now {_pct(c)}" for lab, b, c in moves if abs(c - b) >= 0.01]
    out = [f"Largest changes in share: {'; '.join(parts)}."] if parts else []
    if f.unseen_values:
        named = ", ".join(f"'{safe_example(v)}'" for v in list(f.unseen_values)[:3])
        out.append(f"Values never seen in training appear (most frequent: {named}).")
    return out


def feature_sentences(f: FeatureDrift, contract: Contract | None, min_feature_rows: int) -> list[str]:
    unit = _unit(contract, f.name)
    out: list[str] = []
    if f.status == "insufficient-data":
        out.append(f"Not judged: {f.present} values in this window, {min_feature_rows} needed.")
    if f.unit_change:
        out.append(
            f"The values look like a UNIT CHANGE: average and spread both moved by about {f.unit_change}, "
            "whatever the contract's range says. Confirm the feed's unit and convert or fix it."
        )
    if "distribution" in f.reasons or f.status == "warn" or f.unit_change:
        out += _numeric_change(f, unit) if f.kind != "categorical" else _categorical_change(f)
        if not math.isnan(f.shift):
            out.append(f"Up to {_pct(f.shift)} of patients moved across some cut-off (PSI {f.psi:.2f}).")
    if "missingness" in f.reasons:
        before, now = _pct(f.baseline_missing_fraction), _pct(f.missing_fraction)
        out.append(f"Missing for {now} of patients (training: {before}).")
    out += _violation_sentences(f, contract, unit)
    if not out:
        out.append("No meaningful change.")
    return out


def _violation_sentences(f: FeatureDrift, contract: Contract | None, unit: str) -> list[str]:
    out = []
    spec = contract.columns.get(f.name) if contract is not None else None
    if f.violations.get("out_of_range") and spec is not None and spec.range is not None:
        share = f.violations["out_of_range"] / max(f.present, 1)
        lo, hi = spec.range
        text = f"{_pct(share)} of values are outside the contract's range {lo:g}-{hi:g}{unit}"
        if f.unit_hint:
            text += (
                f"; nearly all of them fit it if read as {f.unit_hint}: the source has probably switched units. "
                "Check with the lab or interface team before trusting the scores."
            )
        out.append(text + ("" if text.endswith(".") else "."))
    if f.violations.get("not_a_number"):
        out.append(f"{f.violations['not_a_number']} values are not numbers (a changed export format?).")
    if f.violations.get("unseen_category"):
        out.append(f"{f.violations['unseen_category']} values are not among the contract's categories.")
    return out


def headline(result: DriftResult) -> str:
    n = len(result.features)
    if result.verdict == "insufficient-data":
        return (
            f"Only {result.rows} predictions in this window; at least {result.settings.min_rows} are needed "
            "before anything is concluded. No verdict."
        )
    score_changed = result.score is not None and result.score.status == "drift"
    score_text = (
        " The model's risk scores have changed too."
        if score_changed
        else (" The model's risk scores have not changed meaningfully." if result.score is not None else "")
    )
    leaning = result.attribution_drifted
    attribution_text = (
        f" The model leans differently on {', '.join(display_name(x) for x in leaning)} than in training "
        "(attribution drift)."
        if leaning
        else ""
    )
    if result.verdict == "drift" and not result.drifted and not score_changed and leaning:
        return (
            f"None of the {n} inputs changed on its own over {result.rows} predictions, but the model leans "
            f"differently on {', '.join(display_name(x) for x in leaning)} than in training (attribution drift): "
            "look for inputs changing together or a different mix of patients."
        )
    if result.verdict == "drift" and not result.drifted and score_changed:
        return (
            f"The model's risk scores have shifted over {result.rows} predictions, but none of the {n} inputs "
            "changed meaningfully: look for what the inputs do not show (a different model version serving, a "
            "feature computed differently before it reaches the model, or a change in which patients are scored)."
        )
    if result.verdict == "drift":
        names = ", ".join(display_name(x) for x in result.drifted) or "none of the inputs"
        count = len(result.drifted)
        return (
            f"Drift detected in {count} of {n} inputs ({names}) over {result.rows} predictions."
            f"{score_text}{attribution_text}"
        )
    return f"No meaningful change in the {n} inputs over {result.rows} predictions.{score_text}"


def advice(result: DriftResult) -> list[str]:
    tips = []
    flagged = [*result.features.values(), *([result.score] if result.score else [])]
    if any(f.unit_hint or f.unit_change for f in flagged):
        tips.append(
            "A unit change is the likeliest cause where the report says so: scores for affected patients "
            "are unreliable until the feed is fixed or converted."
        )
    if any("missingness" in f.reasons for f in flagged):
        tips.append("Inputs that went missing usually mean a broken interface mapping or a renamed field.")
    if any("distribution" in f.reasons and "contract" not in f.reasons for f in result.features.values()):
        tips.append(
            "A distribution change without a contract violation can be a real change in the patients "
            "seen (new service line, season, referral pattern): check with the clinical lead, then see "
            "whether model quality on adjudicated outcomes has moved (clinops quality)."
        )
    return tips
