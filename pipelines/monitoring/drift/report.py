"""Write a drift result as JSON (for machines and the evidence trail) and as one self-contained HTML page.

The HTML is for a clinical analyst: the verdict in one sentence, what to check, then every input ordered by
severity with a plain-language description and a training-vs-now chart. Numbers are aggregates only.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.bundle import BINS
from pipelines.contracts import Contract
from pipelines.monitoring.drift.detect import DriftResult, DriftSettings, FeatureDrift
from pipelines.monitoring.drift.narrative import advice, display_name, feature_sentences, headline
from pipelines.monitoring.drift.plots import feature_svg

_ORDER = {"drift": 0, "warn": 1, "insufficient-data": 2, "stable": 3}
_BADGE = {
    "drift": ("#b42318", "changed"),
    "warn": ("#b54708", "watch"),
    "stable": ("#067647", "stable"),
    "insufficient-data": ("#475467", "not judged"),
}
_VERDICT = {
    "drift": ("#b42318", "Drift detected"),
    "no-drift": ("#067647", "No drift"),
    "insufficient-data": ("#475467", "Not enough data"),
}
_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:980px;color:#101828}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}.muted{color:#475467}
.banner{padding:14px 18px;border-radius:8px;color:#fff;font-size:16px;margin:14px 0}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:6px 8px;
border-bottom:1px solid #eaecf0;vertical-align:top}th{background:#f9fafb}.badge{color:#fff;border-radius:10px;
padding:1px 8px;font-size:12px;white-space:nowrap}.feature{border:1px solid #eaecf0;border-radius:8px;
padding:10px 14px;margin:10px 0}.feature svg{max-width:100%;height:auto}
td.n{text-align:right;font-variant-numeric:tabular-nums}"""


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):
        return json_safe(value.item())
    return value


def methods(s: DriftSettings) -> dict[str, str]:
    """The exact definition of every statistic in the report, with this run's settings filled in. Each has a
    test against scipy on the same data (tests/pipelines/monitoring/test_methods.py), so a change here without a
    change in `pipelines.monitoring.drift.stats` (or the reverse) fails."""
    return {
        "bins": (
            f"Numbers: the training values' quantiles at 0, 1/{BINS}, ..., 1 (at most {BINS} bins; tied "
            "quantiles merge); bins are [e(i-1), e(i)), the last one closed; values below the training "
            "minimum count in the first bin and values above the training maximum in the last (and are "
            "reported as 'outside the training range'). Categories: one bin per training level plus one "
            "pooled bin for values unseen in training (training share 0)."
        ),
        "psi": (
            f"Population stability index: sum over bins of (q - p) * ln(q / p), natural logarithm, where p "
            f"(training) and q (this window) are bin shares smoothed as (share + {s.epsilon:g}) / (1 + k * "
            f"{s.epsilon:g}) for k bins; equals scipy.stats.entropy(q, p) + scipy.stats.entropy(p, q) on the "
            "smoothed shares."
        ),
        "js": (
            f"Jensen-Shannon distance: square root of the Jensen-Shannon divergence, logarithm base "
            f"{s.js_base:g}, on the unsmoothed bin shares; equals scipy.spatial.distance.jensenshannon(p, q, "
            f"base={s.js_base:g})."
        ),
        "ks": (
            "Kolmogorov-Smirnov (numbers): the largest absolute difference between the training and window "
            "cumulative shares, evaluated at the bin edges (only bins are kept from training). It is a lower "
            "bound of scipy.stats.ks_2samp's statistic on the raw values, below it by at most the largest "
            "bin's share. Its p-value (reported, not used to flag) is the asymptotic one, "
            "scipy.stats.kstwo.sf(D, round(n * m / (n + m))), n training and m window values."
        ),
        "tv": "Total variation (categories): half the sum over bins of |p - q|.",
        "shift": "shift: KS for numbers, total variation for categories.",
        "chi_square": (
            "Pearson's chi-square test of homogeneity on the 2 x k table of training counts (bin "
            "shares x present training rows) and window counts, without continuity correction, "
            "columns empty in both rows dropped, k - 1 degrees of freedom; equals "
            "scipy.stats.chi2_contingency(table, correction=False)."
        ),
        "decision": (
            f"An input's distribution is flagged when the chi-square p-value is below {s.alpha:g} / m "
            "(Bonferroni over the m judged inputs and the score) and PSI >= "
            f"{s.psi_drift:g} or shift >= {s.shift_drift:g}; 'watch' at PSI >= {s.psi_warn:g} or "
            f"shift >= {s.shift_warn:g}."
        ),
        "missingness": (
            f"Missing share: flagged when it moved by >= {s.missing_shift:g} and a two-sided "
            f"two-proportion z-test (pooled standard error) gives p < {s.alpha:g}."
        ),
    }


def write_json(result: DriftResult, path: Path, contract: Contract | None = None) -> Path:
    doc = result.to_dict()
    doc["methods"] = methods(result.settings)
    doc["summary"] = headline(result)
    for name, f in result.features.items():
        doc["features"][name]["explanation"] = feature_sentences(f, contract, result.settings.min_feature_rows)
    if result.score is not None:
        doc["score"]["explanation"] = feature_sentences(result.score, contract, result.settings.min_feature_rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(doc), indent=2) + "\n")
    return path


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{100 * x:.1f}%"


def _when(iso: str | None) -> str:
    return (iso or "?")[:16].replace("T", " ") + (" UTC" if iso and iso.endswith("+00:00") else "")


def _badge(status: str) -> str:
    colour, text = _BADGE[status]
    return f'<span class="badge" style="background:{colour}">{text}</span>'


def _row(f: FeatureDrift, contract: Contract | None, min_rows: int) -> str:
    sentences = " ".join(feature_sentences(f, contract, min_rows))
    return (
        f"<tr><td><a href='#f-{html.escape(f.name)}'>{html.escape(display_name(f.name))}</a></td>"
        f"<td>{_badge(f.status)}</td><td>{html.escape(sentences)}</td><td class=n>{_fmt(f.psi)}</td>"
        f"<td class=n>{_fmt(f.shift)}</td><td class=n>{_pct(f.missing_fraction)}</td>"
        f"<td class=n>{_pct(f.violation_rate)}</td></tr>"
    )


def _section(f: FeatureDrift, contract: Contract | None, min_rows: int, charts: bool) -> str:
    chart = (
        feature_svg(f, f"{display_name(f.name)}: share of patients, training vs this window") if charts else None
    ) or ""
    sentences = "".join(f"<li>{html.escape(s)}</li>" for s in feature_sentences(f, contract, min_rows))
    detail = (
        f"PSI {_fmt(f.psi, 3)} · KS {_fmt(f.ks, 3)} · JS distance {_fmt(f.js, 3)} · "
        f"chi-square p {f.pvalue:.2g} · {f.present} values"
        if not math.isnan(f.pvalue)
        else f"{f.present} values"
    )
    return (
        f"<div class=feature id='f-{html.escape(f.name)}'><h3>{html.escape(display_name(f.name))} "
        f"{_badge(f.status)}</h3><ul>{sentences}</ul>{chart}<div class=muted>{html.escape(detail)}</div></div>"
    )


def _attribution_html(result: DriftResult) -> str:
    """What the model leans on, window against training, next to the inputs."""
    a, s = result.attributions, result.settings
    if a is None:
        return f"<p class=muted>Not computed: {html.escape(result.attribution_note)}.</p>"
    if a.status == "insufficient-data":
        return f"<p class=muted>Only {a.rows} rows explained; {s.min_feature_rows} are needed.</p>"
    ranked = sorted(a.features.values(), key=lambda f: (_ORDER.get(f.status, 3), -abs(f.change)))
    rows = "".join(
        f"<tr><td>{html.escape(display_name(f.name))}</td><td>{_badge(f.status)}</td><td>{f.baseline:.3f}</td>"
        f"<td>{f.current:.3f}</td><td>{f.change:+.3f}</td></tr>"
        for f in ranked
    )
    return (
        f"<table><tr><th>input</th><th>status</th><th>training</th><th>this window</th><th>change</th></tr>{rows}"
        f"</table><p class=muted>Mean |contribution| to the score ({html.escape(a.units)}; exact Shapley values of "
        f"the served model) over {a.rows} predictions against the training split. Flagged when it changes by at "
        f"least {s.attribution_shift:g} and by a factor of {s.attribution_ratio:g} or more.</p>"
    )


def render_html(result: DriftResult, contract: Contract | None = None, *, charts: bool = True) -> str:
    colour, title = _VERDICT[result.verdict]
    s = result.settings
    features = sorted(result.features.values(), key=lambda f: (_ORDER[f.status], -np.nan_to_num(f.shift)))
    tips = "".join(f"<li>{html.escape(t)}</li>" for t in advice(result))
    malformed = sum(result.malformed_records.values())
    notes = []
    if malformed:
        notes.append(
            f"{malformed} captured records could not be read and were skipped "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(result.malformed_records.items()))})."
        )
    if result.unexpected_columns:
        notes.append("Fields the model does not use were sent: " + ", ".join(sorted(result.unexpected_columns)) + ".")
    window = f"{_when(result.first_time)} to {_when(result.last_time)}" if result.first_time else "not recorded"
    rows = "".join(_row(f, contract, s.min_feature_rows) for f in features)
    score = "<p>No scores captured.</p>"
    if result.score is not None:
        score = _section(result.score, contract, s.min_feature_rows, charts)
    sections = "".join(_section(f, contract, s.min_feature_rows, charts) for f in features)
    method_items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in methods(s).items())
    return f"""<!doctype html><html lang=en><head><meta charset=utf-8>
<title>Drift report: {html.escape(result.model)} ({html.escape(result.variant)})</title>
<style>{_CSS}</style></head><body>
<h1>Input drift report: {html.escape(result.model)}</h1>
<div class=muted>model version {html.escape(result.model_version)} · variant {html.escape(result.variant)} ·
predictions from {html.escape(window)} · compared with the training data</div>
<div class=banner style="background:{colour}"><b>{title}.</b> {html.escape(headline(result))}</div>
{f"<h2>What to check</h2><ul>{tips}</ul>" if tips else ""}
{"".join(f"<p class=muted>{html.escape(n)}</p>" for n in notes)}
<h2>Inputs, most changed first</h2>
<table><tr><th>input</th><th>status</th><th>what changed</th><th>PSI</th><th>shift</th><th>missing</th>
<th>contract breaks</th></tr>{rows}</table>
<p class=muted>How to read this: <b>shift</b> is the largest share of patients that moved across any cut-off
value (Kolmogorov-Smirnov for numbers, total variation for categories); <b>PSI</b> (population stability index)
below 0.1 is stable, 0.1-0.2 moderate, 0.2 or more a major shift. An input is flagged only when the change is
statistically clear (chi-square test, {s.alpha:g} false-alarm rate per report) and at least PSI {s.psi_drift:g} or
shift {100 * s.shift_drift:.0f}%; missing values (change of {100 * s.missing_shift:.0f} points or more) and contract
breaks (over {100 * s.max_violation_rate:g}% of rows) are flagged on their own. Inputs with fewer than
{s.min_feature_rows} values are not judged; windows with fewer than {s.min_rows} predictions get no verdict.</p>
<h2>Risk scores</h2>{score}
<h2 id=attributions>What the model leans on (attribution drift)</h2>{_attribution_html(result)}
<h2>Each input</h2>{sections}
<h2 id=methods>Methods</h2><dl>{method_items}</dl>
<p class=muted>Generated by clinops drift from aggregate counts only; no patient-level values are shown.
Baseline: {html.escape(result.baseline_source)}.</p></body></html>
"""


def write_html(result: DriftResult, path: Path, contract: Contract | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(result, contract), encoding="utf-8")
    return path
