"""The scorecard as one self-contained HTML page: tables and inline SVG bar charts, no script, no network."""

from __future__ import annotations

from html import escape
from typing import Any

BAR_HEIGHT, BAR_GAP, LABEL_WIDTH, CHART_WIDTH = 18, 6, 220, 640


def bar_chart(title: str, rows: list[tuple[str, float | None]], unit: str) -> str:
    """Horizontal bars scaled to the largest value; a missing value is drawn as 'n/a'."""
    known = [v for _, v in rows if v is not None]
    top = max(known) if known else 1.0
    top = top or 1.0
    height = len(rows) * (BAR_HEIGHT + BAR_GAP) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><text x="0" y="14" font-weight="bold">{escape(title)}</text>'
    ]
    span = CHART_WIDTH - LABEL_WIDTH - 80
    for i, (label, value) in enumerate(rows):
        y = 24 + i * (BAR_HEIGHT + BAR_GAP)
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{escape(label)}</text>')
        if value is None:
            parts.append(f'<text x="{LABEL_WIDTH}" y="{y + 13}" font-size="12" fill="#888">n/a</text>')
            continue
        width = max(1.0, span * max(value, 0) / top)
        parts.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="{width:.1f}" height="{BAR_HEIGHT}" fill="#3b6ea5"/>')
        parts.append(
            f'<text x="{LABEL_WIDTH + width + 4:.1f}" y="{y + 13}" font-size="12">{value:g} {escape(unit)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none in this period</p>"
    head = "".join(f"<th>{escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('' if v is None else str(v))}</td>" for v in row.values()) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(card: dict[str, Any]) -> str:
    summary = card["summary"]
    charts = [
        bar_chart(
            "Cycle time, registration to production (h)",
            [(f"{p['model']} v{p['version']}", p["cycle_time_h"]) for p in card["promotions"]],
            "h",
        ),
        bar_chart("Rollbacks by cause", [(c, float(n)) for c, n in summary["rollbacks_by_cause"].items()], ""),
        bar_chart(
            "Time to detect / to roll back per incident (s)",
            [
                row
                for i in card["incidents"]
                for row in (
                    (f"{i['model']} {i['cause']} detect", i["time_to_detect_s"]),
                    (f"{i['model']} {i['cause']} rollback", i["time_to_rollback_s"]),
                )
            ],
            "s",
        ),
        bar_chart("Error budget left (%)", [(s["model"], s["budget_left_percent"]) for s in card["services"]], "%"),
        bar_chart(
            "Cost per 1,000 predictions (USD)", [(s["model"], s["cost_per_1000_usd"]) for s in card["services"]], "USD"
        ),
    ]
    facts = "".join(f"<li>{escape(k.replace('_', ' '))}: {escape(str(v))}</li>" for k, v in summary.items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>clinops release scorecard: {escape(card['stack'])}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}</style></head><body>"
        f"<h1>Release scorecard: {escape(card['stack'])}</h1>"
        f"<p>Evidence: {card['evidence']['entries']} entries, verified, head {escape(str(card['evidence']['head']))}"
        f"{'; since ' + escape(card['since']) if card['since'] else ''}.</p>"
        f"<ul>{facts}</ul>" + "".join(f"<div>{c}</div>" for c in charts) + "<h2>Promotions</h2>"
        f"{_table(card['promotions'])}<h2>Incidents</h2>{_table(card['incidents'])}"
        f"<h2>Service levels and cost</h2>{_table(card['services'])}</body></html>\n"
    )
