"""Baseline-vs-current bar charts per feature as inline SVG: one self-contained page, no plotting library,
no files, no network, and ~100x cheaper than rendering PNGs (a report has a chart for every input)."""

from __future__ import annotations

import html

from pipelines.monitoring.drift.detect import FeatureDrift

BASELINE_COLOUR, CURRENT_COLOUR = "#9aa5b1", "#1f6feb"
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 210, 44, 62, 22


def _bars(f: FeatureDrift) -> tuple[list[str], list[float], list[float]]:
    labels, base, cur = list(f.bins["labels"]), list(f.bins["baseline"]), list(f.bins["current"])
    if f.kind != "categorical" and (f.bins.get("below") or f.bins.get("above")):
        # The end bins hold everything beyond the training range; show that share on its own.
        cur = [*cur]
        cur[0] -= f.bins["below"]
        cur[-1] -= f.bins["above"]
        labels, base, cur = (
            ["below training", *labels, "above training"],
            [0.0, *base, 0.0],
            [f.bins["below"], *cur, f.bins["above"]],
        )
    return labels, base, cur


def feature_svg(f: FeatureDrift, title: str) -> str | None:
    """SVG of the feature's shares per baseline bin (numbers) or level (categories); None if not judged."""
    if not f.bins:
        return None
    labels, base, cur = _bars(f)
    top = max(max(base), max(cur), 0.01)
    plot_w, plot_h = WIDTH - LEFT - 10, HEIGHT - BOTTOM - TOP
    slot = plot_w / len(labels)
    bar = slot * 0.38
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{html.escape(title)}" font-family="system-ui,sans-serif" font-size="10">',
        f'<text x="{LEFT}" y="13" font-size="12">{html.escape(title)}</text>',
    ]
    for tick in (0.0, top / 2, top):
        y = TOP + plot_h * (1 - tick / top)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaecf0"/>'
            f'<text x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{100 * tick:.0f}%</text>'
        )
    for i, (label, b, c) in enumerate(zip(labels, base, cur, strict=True)):
        x = LEFT + i * slot + slot * 0.1
        for offset, share, colour, who in ((0.0, b, BASELINE_COLOUR, "training"), (bar, c, CURRENT_COLOUR, "now")):
            h = plot_h * share / top
            tip = f"{html.escape(label)} {who}: {100 * share:.1f}%"
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{tip}</title></rect>'
            )
        cx, cy = x + bar, TOP + plot_h + 10
        parts.append(
            f'<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="end" transform="rotate(-35 {cx:.1f} {cy:.1f})">'
            f"{html.escape(label[:18])}</text>"
        )
    legend_x = WIDTH - 170
    parts.append(
        f'<rect x="{legend_x}" y="4" width="10" height="10" fill="{BASELINE_COLOUR}"/>'
        f'<text x="{legend_x + 14}" y="13">training</text>'
        f'<rect x="{legend_x + 70}" y="4" width="10" height="10" fill="{CURRENT_COLOUR}"/>'
        f'<text x="{legend_x + 84}" y="13">this window</text></svg>'
    )
    return "".join(parts)
