"""The model card as one HTML page a clinician reads on one screen: decision first, then the charts (ROC,
calibration, sensitivity/false-alarm rate and calibration by subgroup, as inline SVG - no scripts, no network),
the data summary and the limitations. Built from the card dict only, so it holds nothing patient-level.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from pipelines.settings import describe_relaxations

_W, _H, _PAD = 240, 200, 30  # one chart; small enough that four sit side by side on a laptop screen
_CANDIDATE, _COMPARATOR, _LIMIT = "#1f5fa8", "#b0793a", "#c0392b"
_VERDICT_COLOUR = {"PendingManualApproval": "#1e7b34", "Rejected": "#b03024", "Inconclusive": "#a86b00"}


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else escape(str(value))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _axes(title: str, x_label: str, y_label: str, chart_id: str, height: int = _H) -> list[str]:
    inner_w, inner_h = _W - 2 * _PAD, height - 2 * _PAD
    parts = [
        f'<svg class="chart" id="{chart_id}" role="img" aria-label="{escape(title)}" viewBox="0 0 {_W} {height}" '
        f'width="{_W}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{_W / 2}" y="14" text-anchor="middle" class="ct">{escape(title)}</text>',
        f'<rect x="{_PAD}" y="{_PAD}" width="{inner_w}" height="{inner_h}" fill="#fafafa" stroke="#999"/>',
        f'<text x="{_W / 2}" y="{height - 4}" text-anchor="middle" class="al">{escape(x_label)}</text>',
        f'<text x="10" y="{height / 2}" text-anchor="middle" class="al" '
        f'transform="rotate(-90 10 {height / 2})">{escape(y_label)}</text>',
    ]
    for tick in (0.0, 0.5, 1.0):
        x = _PAD + tick * inner_w
        y = height - _PAD - tick * inner_h
        parts.append(f'<text x="{x:.1f}" y="{height - _PAD + 12}" text-anchor="middle" class="tk">{tick:g}</text>')
        parts.append(f'<text x="{_PAD - 4}" y="{y + 3:.1f}" text-anchor="end" class="tk">{tick:g}</text>')
    return parts


def _point(x: float, y: float, height: int = _H) -> tuple[float, float]:
    return _PAD + x * (_W - 2 * _PAD), height - _PAD - y * (height - 2 * _PAD)


def _polyline(points: list[tuple[float, float]], colour: str, cls: str, dash: str = "") -> str:
    coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in (_point(x, y) for x, y in points))
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline class="{cls}" points="{coords}" fill="none" stroke="{colour}" stroke-width="2"{dashed}/>'


def _legend(items: list[tuple[str, str]]) -> list[str]:
    return [
        f'<rect x="{_PAD + 6}" y="{_PAD + 6 + 13 * i}" width="10" height="3" fill="{colour}"/>'
        f'<text x="{_PAD + 20}" y="{_PAD + 11 + 13 * i}" class="tk">{escape(label)}</text>'
        for i, (label, colour) in enumerate(items)
    ]


def roc_chart(charts: dict[str, Any], auc: dict[str, Any]) -> str:
    parts = _axes("ROC curve (test split)", "false-positive rate", "sensitivity", "chart-roc")
    parts.append(_polyline([(0, 0), (1, 1)], "#bbb", "diagonal", "4 3"))
    legend = []
    for name, colour in (("comparator", _COMPARATOR), ("candidate", _CANDIDATE)):
        roc = charts.get(name, {}).get("roc")
        if roc:
            parts.append(_polyline([(float(x), float(y)) for x, y in roc], colour, f"curve-{name}"))
            legend.append((f"{name} AUC {_num(auc.get(name))}", colour))
    parts += _legend(legend[::-1])
    return "\n".join([*parts, "</svg>"])


def calibration_chart(charts: dict[str, Any]) -> str:
    parts = _axes("Calibration (deciles of risk)", "mean predicted risk", "observed rate", "chart-calibration")
    parts.append(_polyline([(0, 0), (1, 1)], "#bbb", "diagonal", "4 3"))
    bins = charts.get("candidate", {}).get("calibration", [])
    top = max([1e-3] + [max(b["mean_predicted"], b["observed"]) for b in bins])
    scale = min(1.0, math.ceil(top * 10) / 10)  # zoom to the risk range the model uses
    if bins:
        points = [(b["mean_predicted"] / scale, b["observed"] / scale) for b in bins]
        parts.append(_polyline(points, _CANDIDATE, "curve-candidate"))
        parts += [
            f'<circle class="bin" cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{_CANDIDATE}"/>'
            for px, py in (_point(x, y) for x, y in points)
        ]
    parts.append(f'<text x="{_W - _PAD}" y="{_PAD - 4}" text-anchor="end" class="tk">axes 0 to {scale:g}</text>')
    return "\n".join([*parts, "</svg>"])


def subgroup_chart(rows: list[dict[str, Any]], metric: str, title: str, chart_id: str, limit: float | None) -> str:
    """Horizontal bars, one per judged subgroup; bars of groups that break or may break a limit are outlined."""
    judged = [r for r in rows if _finite(r.get(metric))]
    bar_h, gap = 11, 3
    height = max(_H, 2 * _PAD + len(judged) * (bar_h + gap) + 8)
    inner_w = _W - 2 * _PAD
    signed = metric == "calibration_gap"
    parts = [
        f'<svg class="chart" id="{chart_id}" role="img" aria-label="{escape(title)}" viewBox="0 0 {_W + 120} '
        f'{height}" width="{_W + 120}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{(_W + 120) / 2}" y="14" text-anchor="middle" class="ct">{escape(title)}</text>',
    ]
    left = _PAD + 120  # room for group labels
    span = max([0.05] + [abs(float(r[metric])) for r in judged]) if signed else 1.0
    zero = left + (inner_w / 2 if signed else 0)
    for i, row in enumerate(judged):
        y = _PAD + i * (bar_h + gap)
        value = float(row[metric])
        width = abs(value) / span * (inner_w / 2 if signed else inner_w)
        x = zero - width if signed and value < 0 else zero
        flagged = not str(row.get("verdict", "within limits")).startswith("within")
        stroke = f' stroke="{_LIMIT}" stroke-width="2"' if flagged else ""
        label = f"{row['attribute']}={row['group']}"
        tip = f"{label}: {value:.3f} ({row.get('verdict', '')})"
        parts.append(
            f'<text x="{left - 4}" y="{y + bar_h - 2}" text-anchor="end" class="tk">{escape(label[:28])}</text>'
            f'<rect class="bar" x="{x:.1f}" y="{y}" width="{max(width, 0.5):.1f}" height="{bar_h}" '
            f'fill="{_CANDIDATE}"{stroke}><title>{escape(tip)}</title></rect>'
            f'<text x="{x + max(width, 0.5) + 3 if not (signed and value < 0) else x - 3:.1f}" y="{y + bar_h - 2}" '
            f'text-anchor="{"end" if signed and value < 0 else "start"}" class="tk">{value:.2f}</text>'
        )
    axis_top, axis_bottom = _PAD - 4, _PAD + len(judged) * (bar_h + gap)
    parts.append(f'<line x1="{zero}" y1="{axis_top}" x2="{zero}" y2="{axis_bottom}" stroke="#666"/>')
    if limit is not None and judged and not signed:
        # The gap limit drawn from the best group: bars left of it are further than the limit from the best.
        best = max(float(r[metric]) for r in judged) if metric == "tpr" else min(float(r[metric]) for r in judged)
        edge = best - limit if metric == "tpr" else best + limit
        if 0 <= edge <= 1:
            lx = left + edge * inner_w
            parts.append(
                f'<line class="limit" x1="{lx:.1f}" y1="{axis_top}" x2="{lx:.1f}" y2="{axis_bottom}" '
                f'stroke="{_LIMIT}" stroke-dasharray="3 2"/>'
                f'<text x="{lx:.1f}" y="{axis_bottom + 12}" text-anchor="middle" class="tk" fill="{_LIMIT}">'
                f"limit {limit:.2f} from best</text>"
            )
    parts.append("</svg>")
    return "\n".join(parts)


def _decision_html(card: dict[str, Any]) -> str:
    decision = card["decision"]
    verdict = decision["verdict"]
    colour = _VERDICT_COLOUR.get(verdict, "#555")
    relaxed = describe_relaxations(decision.get("relaxed_limits", []), decision.get("relaxed_by"))

    def item(c: dict[str, Any]) -> str:
        outcome = str(c.get("outcome", ""))
        return (
            f'<li class="o-{escape(outcome.replace(" ", "-"))}"><b>{escape(outcome.upper())}</b> '
            f"{escape(c['message'])}</li>"
        )

    # What stands between this model and approval first; every check, passes included, one click away.
    open_items = "".join(item(c) for c in decision["checks"] if c.get("outcome") != "pass")
    all_items = "".join(item(c) for c in decision["checks"])
    signoff = decision.get("signoff_required") or []
    return (
        f'<section id="decision"><h2>Decision</h2><p class="verdict" style="background:{colour}">{escape(verdict)}'
        f" &middot; {escape(card['approval_status'])}</p>"
        + (
            f'<p class="relaxed"><b>Gate limits relaxed from the platform default:</b> {escape(relaxed)}</p>'
            if relaxed
            else ""
        )
        + (
            f'<p class="signoff"><b>Needs a named reviewer\'s sign-off ({len(signoff)}):</b> '
            + "; ".join(escape(s) for s in signoff)
            + "</p>"
            if signoff
            else ""
        )
        + (f"<ul class='checks'>{open_items}</ul>" if open_items else "<p>Every gate passed.</p>")
        + f"<details class='all'><summary>all {len(decision['checks'])} checks</summary>"
        f"<ul class='checks'>{all_items}</ul></details></section>"
    )


def _fairness_table(rows: list[dict[str, Any]]) -> str:
    head = "".join(
        f"<th>{h}</th>" for h in ("attribute", "group", "n", "events", "AUC", "TPR", "FPR", "calib. gap", "verdict")
    )
    body = "".join(
        f'<tr class="{"flag" if not str(r.get("verdict", "")).startswith(("within", "not assessed")) else ""}">'
        f"<td>{escape(r['attribute'])}</td><td>{escape(str(r['group']))}</td><td>{_num(r['n'])}</td>"
        f"<td>{_num(r.get('positives'))}</td><td>{_num(r.get('auc'))}</td><td>{_num(r.get('tpr'))}</td>"
        f"<td>{_num(r.get('fpr'))}</td><td>{_num(r.get('calibration_gap'))}</td>"
        f"<td>{escape(str(r.get('verdict', r['status'])))}</td></tr>"
        for r in rows
    )
    return f"<table class='fairness'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _data_html(card: dict[str, Any]) -> str:
    data, m = card["training_data"], card["model"]
    metrics = card["metrics"]
    point = metrics["at_operating_threshold"]
    splits = ", ".join(
        f"{escape(s)} {v['rows']} rows / {v['positives']} events"
        for s, v in data["splits"].items()
        if isinstance(v, dict)
    )
    return (
        "<section id='data'><h2>Model and data</h2><ul>"
        f"<li>{escape(m['estimator'])}, trained {escape(m['trained_at'])}</li>"
        f"<li>source: {escape(data['source'])}; contract {escape(data['contract']['name'])} "
        f"v{escape(data['contract']['version'])} ({escape(data['contract']['validation'])})</li>"
        f"<li>splits: {splits}</li>"
        f"<li>features: {escape(', '.join(data['features']))}</li>"
        f"<li>PHI removed: {escape(', '.join(data['phi_removed']))}</li>"
        f"<li>test AUC {_num(metrics['candidate']['auc'])} (95% CI {_num(metrics['candidate']['auc_ci95'][0])}"
        f" to {_num(metrics['candidate']['auc_ci95'][1])}); comparator {_num(metrics['comparator']['auc'])}; "
        f"Brier {_num(metrics['candidate']['brier'])}</li>"
        f"<li>at threshold {_num(m['operating_threshold'], 4)}: sensitivity {_num(point['sensitivity'])}, "
        f"specificity {_num(point['specificity'])}, PPV {_num(point['ppv'])}, alert rate {_num(point['alert_rate'])}"
        "</li></ul></section>"
    )


def _explanations_html(section: dict[str, Any] | None) -> str:
    """Global mean |contribution| as bars, and the top reasons of a few synthetic example patients."""
    if not section:
        return ""
    head = "<section id='explanations'><h2>Why the model scores as it does</h2>"
    if not section["available"]:
        return f"{head}<p>No exact explanations for this model: {escape(section['reason'])}.</p></section>"
    parts = [head, f"<p>{escape(section['method'])}; units: {escape(section['units'])}.</p><div class='cols'>"]
    summary = section["global"]
    if summary is not None and summary["mean_abs"]:
        largest = max(v for _, v in summary["mean_abs"]) or 1.0
        bars = "".join(
            f"<tr><td>{escape(f)}</td><td class='bar'><span style='width:{100 * v / largest:.0f}%'></span></td>"
            f"<td>{v:.3f}</td></tr>"
            for f, v in summary["mean_abs"]
        )
        parts.append(
            f"<section><h3>Mean |contribution| ({escape(summary['computed_on'])}, {summary['rows']} rows)</h3>"
            f"<table class='importance'><tbody>{bars}</tbody></table></section>"
        )
    examples = "".join(
        f"<li>example {e['example']} (risk {e['risk']:.0%}): "
        + "; ".join(
            f"{escape(t['feature'])} <b class='{'up' if t['contribution'] > 0 else 'down'}'>"
            f"{'raises' if t['contribution'] > 0 else 'lowers'}</b> risk"
            for t in e["top"]
        )
        + "</li>"
        for e in section["examples"]
    )
    parts.append(
        "<section><h3>Top reasons for SYNTHETIC example patients</h3>"
        f"<p>Generated from the contract, not real people.</p><ul>{examples}</ul></section></div></section>"
    )
    return "".join(parts)


_CSS = """
body{font:13px/1.35 system-ui,sans-serif;margin:10px 16px;color:#222}
h1{font-size:18px;margin:0 0 4px}h2{font-size:14px;margin:8px 0 4px}
.grid{display:flex;flex-wrap:wrap;gap:4px 10px}figure{margin:0}details.all{margin:4px 0}
.verdict{color:#fff;padding:4px 8px;font-weight:bold;display:inline-block;margin:0}
.relaxed{background:#fff3cd;border:1px solid #d39e00;padding:3px 6px}
.signoff{background:#fde2e1;border:1px solid #b03024;padding:3px 6px}
.checks{margin:4px 0;padding-left:18px}.checks li.o-fail b{color:#b03024}.checks li.o-needs-sign-off b{color:#a86b00}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:1px 5px;text-align:right}
td:nth-child(-n+2),td:last-child{text-align:left}tr.flag td{background:#fde2e1}
.ct{font:bold 11px sans-serif}.al{font:10px sans-serif;fill:#444}.tk{font:9px sans-serif;fill:#333}
.cols{display:flex;gap:16px;flex-wrap:wrap}.cols>section{flex:1 1 420px}
h3{font-size:13px;margin:4px 0}td.bar{width:160px}td.bar span{display:block;height:9px;background:#1f5fa8}
b.up{color:#b03024}b.down{color:#1e7b34}
"""


def card_html(card: dict[str, Any]) -> str:
    m = card["model"]
    charts = card.get("charts") or {}
    rows = [r for r in card["fairness"] if r.get("status") == "ok"]
    gate = card["decision"].get("gate", {})
    auc = {"candidate": card["metrics"]["candidate"]["auc"], "comparator": card["metrics"]["comparator"]["auc"]}
    figures = [
        roc_chart(charts, auc),
        calibration_chart(charts),
        subgroup_chart(rows, "tpr", "Sensitivity (TPR) by subgroup", "chart-tpr", gate.get("max_subgroup_tpr_gap")),
        subgroup_chart(
            rows, "fpr", "False-alarm rate (FPR) by subgroup", "chart-fpr", gate.get("max_subgroup_fpr_gap")
        ),
        subgroup_chart(
            rows, "calibration_gap", "Calibration by subgroup (predicted - observed)", "chart-calgroup", None
        ),
    ]
    limitations = "".join(f"<li>{escape(n)}</li>" for n in card["limitations"])
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Model card: {escape(m['model_name'])} {escape(m['model_version'])}</title><style>{_CSS}</style>"
        "</head><body>"
        f"<h1>Model card: {escape(m['model_name'])} {escape(m['model_version'])}</h1>"
        f"<p>{escape(card['intended_use'])} <i>Out of scope:</i> {escape('; '.join(card['out_of_scope']))}. "
        f"Risk rating: {escape(card['risk_rating'])}.</p>"
        + _decision_html(card)
        + "<section id='charts'><h2>Performance and fairness (test split)</h2><div class='grid'>"
        + "".join(f"<figure>{f}</figure>" for f in figures)
        + "</div></section><div class='cols'>"
        + _data_html(card)
        + f"<section id='limitations'><h2>Limitations</h2><ul>{limitations}</ul></section></div>"
        + f"<section id='fairness'><h2>Subgroups</h2>{_fairness_table(card['fairness'])}</section>"
        + _explanations_html(card.get("explanations"))
        + "</body></html>\n"
    )
