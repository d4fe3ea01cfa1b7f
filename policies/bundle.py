"""The evidence bundle of one gate run: report.md and report.html (for people), findings.json, findings.sarif
(locations at the file and line declaring each resource), junit.xml, plan.sha256."""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from policies import controls
from policies.gate import Judged, Verdict
from policies.model import SEVERITY_ORDER
from policies.sources import declaration

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
REPO_ROOT = Path(__file__).resolve().parents[1]
UNMAPPED = "unmapped"


def source_file(urn: str) -> str:
    """The repository file that declares the resource (see `policies.sources`)."""
    return declaration(urn, REPO_ROOT)[0]


def verdict_label(j: Judged) -> str:
    if j.result.status == "passed":
        return "pass"
    if j.waiver:
        return "excepted"
    return "FAIL" if j.result.mandatory else "advisory"


def findings_json(v: Verdict) -> dict[str, Any]:
    return {
        "stack": v.stack,
        "planHash": v.plan_hash,
        "passed": v.passed,
        "counts": _counts(v),
        "engines": [
            {
                "engine": r.engine,
                "results": len(r.results),
                "seconds": round(r.seconds, 3),
                "coverage": dict(sorted(r.coverage.items())),
                "notes": r.notes,
            }
            for r in v.reports
        ],
        "exceptionsInForce": [w.to_json() for w in v.waivers_in_force],
        "unusedExceptions": [w.to_json() for w in v.unused_waivers],
        "results": [
            {**j.result.to_json(), "verdict": verdict_label(j), "exception": j.waiver.to_json() if j.waiver else None}
            for j in v.judged
        ],
    }


def _counts(v: Verdict) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for j in v.judged:
        counts[verdict_label(j)] += 1
    return dict(sorted(counts.items()))


def sarif(v: Verdict) -> dict[str, Any]:
    runs = []
    for report in v.reports:
        judged = [j for j in v.judged if j.result.engine == report.engine and j.result.status == "failed"]
        rules: dict[str, dict[str, Any]] = {}
        results = []
        for j in judged:
            r = j.result
            rules.setdefault(
                r.rule_id,
                {
                    "id": r.rule_id,
                    "name": r.rule_id.replace("-", "").replace(".", ""),
                    "shortDescription": {"text": r.title or r.rule_id},
                    "help": {"text": r.fix or r.title or r.rule_id},
                    "properties": {"tags": list(r.controls), "severity": r.severity},
                },
            )
            file, line = declaration(r.urn, REPO_ROOT)
            result: dict[str, Any] = {
                "ruleId": r.rule_id,
                "level": "error" if j.blocking else ("note" if j.waiver else "warning"),
                "message": {"text": f"{r.message or r.title} [{r.urn}]"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": file},
                            "region": {"startLine": line},
                        },
                        "logicalLocations": [{"fullyQualifiedName": r.urn, "kind": "resource"}],
                    }
                ],
                "partialFingerprints": {"clinopsFinding/v1": f"{v.stack}|{r.rule_id}|{r.urn}"},
            }
            if j.waiver:
                result["suppressions"] = [{"kind": "external", "justification": j.waiver.reason}]
            results.append(result)
        runs.append(
            {
                "tool": {
                    "driver": {
                        "name": f"clinops-gate/{report.engine}",
                        "informationUri": "https://github.com/clinops/clinops",
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
                "properties": {"stack": v.stack, "planHash": v.plan_hash},
            }
        )
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": runs}


def junit(v: Verdict) -> str:
    suites = ET.Element("testsuites", name=f"clinops gate {v.stack}")
    for report in v.reports:
        judged = [j for j in v.judged if j.result.engine == report.engine]
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{v.stack}.{report.engine}",
            tests=str(len(judged)),
            failures=str(sum(j.blocking for j in judged)),
            skipped=str(sum(1 for j in judged if j.waiver)),
            time=f"{report.seconds:.3f}",
        )
        for j in judged:
            case = ET.SubElement(suite, "testcase", classname=f"{report.engine}.{j.result.rule_id}", name=j.result.urn)
            if j.blocking:
                failure = ET.SubElement(case, "failure", message=j.result.message or j.result.title)
                failure.text = f"fix: {j.result.fix}"
            elif j.waiver:
                ET.SubElement(case, "skipped", message=f"exception: {j.waiver.reason}")
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode") + "\n"


def report_md(v: Verdict) -> str:
    lines = [
        f"# Gate evidence: stack `{v.stack}`",
        "",
        f"- Verdict: **{'PASS' if v.passed else 'FAIL'}**",
        f"- Plan hash: `{v.plan_hash}`",
        f"- Results: {', '.join(f'{k} {n}' for k, n in _counts(v).items())}",
        "",
        "## Controls matrix (45 CFR Part 164)",
        "",
        "| control | check | engine | resources passed | excepted | failed |",
        "|---|---|---|---:|---:|---:|",
    ]
    titles = check_titles(v)
    by_control: dict[str, dict[tuple[str, str], list[Judged]]] = defaultdict(lambda: defaultdict(list))
    for j in v.judged:
        for control in j.result.controls or (UNMAPPED,):
            by_control[control][(j.result.engine, j.result.rule_id)].append(j)
    order = [*controls.MATRIX_ORDER, *sorted(set(by_control) - {*controls.MATRIX_ORDER, UNMAPPED}), UNMAPPED]
    for control in order:
        title = _control_title(control)
        checks = by_control.get(control, {})
        if not checks:
            lines.append(f"| {title} | *(no check maps here)* | | | | |")
            continue
        for (engine, rule), js in sorted(checks.items()):
            labels = [verdict_label(j) for j in js]
            lines.append(
                f"| {title} | {rule} {titles.get((engine, rule), '')} | {engine} | {labels.count('pass')} | "
                f"{labels.count('excepted')} | {labels.count('FAIL') + labels.count('advisory')} |"
            )
    lines += ["", *rollup_markdown(v)]
    failed = [j for j in v.judged if j.result.status == "failed" and not j.waiver]
    lines += ["", "## Failed checks", ""]
    if not failed:
        lines.append("None.")
    for j in sorted(failed, key=lambda j: (SEVERITY_ORDER[j.result.severity], j.result.rule_id, j.result.urn)):
        r = j.result
        lines.append(
            f"- **{r.severity}** `{r.rule_id}` {r.title} ({r.engine}, {', '.join(r.controls) or UNMAPPED}) on "
            f"`{r.urn}`: "
            f"{r.message or r.title} — fix: {r.fix}"
        )
    lines += ["", "## Exceptions in force", ""]
    lines += [
        f"- {w.engine}/{w.rule_id} on `{w.resource}` — {w.reason} (owner {w.owner}, expires {w.expires})"
        for w in v.waivers_in_force
    ] or ["None."]
    lines += ["", "## Unused exceptions (review and remove)", ""]
    lines += [f"- {w.label()}" for w in v.unused_waivers] or ["None."]
    lines += ["", "## What each engine saw", ""]
    for report in v.reports:
        seen = sorted(t for t, s in report.coverage.items() if s == "seen")
        unseen = sorted(t for t, s in report.coverage.items() if s != "seen")
        lines.append(
            f"- **{report.engine}** ({report.seconds:.2f} s): {len(report.results)} results; "
            f"judged {len(seen)} resource types; could not see {len(unseen)}"
            + (f": {', '.join(f'`{t}`' for t in unseen)}" if unseen else "")
        )
        lines += [f"  - note: {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def write_bundle(v: Verdict, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "report.md": report_md(v),
        "report.html": report_html(v),
        "findings.json": json.dumps(findings_json(v), indent=2, sort_keys=True) + "\n",
        "findings.sarif": json.dumps(sarif(v), indent=2, sort_keys=True) + "\n",
        "junit.xml": junit(v),
        "plan.sha256": v.plan_hash.removeprefix("sha256:") + "\n",
    }
    paths = []
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text)
        paths.append(path)
    return paths


# -- for the compliance officer: titles, the per-control roll-up, an HTML report ------------------------------


def _control_title(control: str) -> str:
    if control == UNMAPPED:
        return "Unmapped (checks that evidence no HIPAA control; listed, never counted as a control)"
    return f"§{control} {controls.TITLES.get(control, '')}".strip()


def check_titles(v: Verdict) -> dict[tuple[str, str], str]:
    """(engine, check id) -> the check's title as its engine states it (every check id gets one)."""
    titles: dict[tuple[str, str], str] = {}
    for j in v.judged:
        key = (j.result.engine, j.result.rule_id)
        if not titles.get(key):
            titles[key] = j.result.title or j.result.rule_id
    return titles


def control_rollup(v: Verdict) -> list[dict[str, Any]]:
    """Controls -> resources -> checks -> verdicts, with counts at each level; unmapped checks last, on their own.

    Each control: {control, title, counts, resources: [{urn, type, counts, checks: [{engine, id, title,
    verdict}]}]}. A check mapped to several controls appears under each, so control counts do not add up to the
    total: the total is in `findings.json`.
    """
    grouped: dict[str, dict[str, list[Judged]]] = defaultdict(lambda: defaultdict(list))
    for j in v.judged:
        for control in j.result.controls or (UNMAPPED,):
            grouped[control][j.result.urn].append(j)
    order = [*controls.MATRIX_ORDER, *sorted(set(grouped) - {*controls.MATRIX_ORDER, UNMAPPED}), UNMAPPED]
    rollup = []
    for control in order:
        resources: list[dict[str, Any]] = []
        for urn, judged in sorted(grouped.get(control, {}).items()):
            checks = [
                {
                    "engine": j.result.engine,
                    "id": j.result.rule_id,
                    "title": j.result.title,
                    "verdict": verdict_label(j),
                }
                for j in sorted(judged, key=lambda j: (j.result.engine, j.result.rule_id))
            ]
            resources.append(
                {
                    "urn": urn,
                    "name": urn.rsplit("::", 1)[-1],
                    "type": judged[0].result.resource_type,
                    "counts": _tally(c["verdict"] for c in checks),
                    "checks": checks,
                }
            )
        rollup.append(
            {
                "control": control,
                "title": _control_title(control),
                "counts": _tally(c["verdict"] for r in resources for c in r["checks"]),
                "resources": resources,
            }
        )
    return rollup


def _tally(labels: Any) -> dict[str, int]:
    counts = {"pass": 0, "FAIL": 0, "advisory": 0, "excepted": 0}
    for label in labels:
        counts[label] += 1
    return counts


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in counts.items() if n) or "no checks"


def rollup_markdown(v: Verdict) -> list[str]:
    lines = ["## Roll-up by control (controls → resources → checks)", ""]
    for entry in control_rollup(v):
        resources = entry["resources"]
        lines.append(f"### {entry['title']}: {len(resources)} resources; {_counts_text(entry['counts'])}")
        lines.append("")
        if not resources:
            lines += ["No check maps here: this control is not evidenced by the gate.", ""]
            continue
        lines += ["| resource | type | checks | verdicts | not passing |", "|---|---|---:|---|---|"]
        for r in resources:
            open_checks = [f"{c['id']} {c['title']} ({c['verdict']})" for c in r["checks"] if c["verdict"] != "pass"]
            lines.append(
                f"| `{r['name']}` | {r['type']} | {len(r['checks'])} | {_counts_text(r['counts'])} | "
                f"{'; '.join(open_checks) or '-'} |"
            )
        lines.append("")
    return lines


_HTML_CSS = """
body{font:13px/1.4 system-ui,sans-serif;margin:12px 20px;color:#222}h1{font-size:19px}h2{font-size:15px;margin-top:18px}
.pass{color:#1e7b34}.FAIL{color:#b03024;font-weight:bold}.advisory{color:#a86b00}.excepted{color:#555}
table{border-collapse:collapse;font-size:12px;margin:4px 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
details{margin:3px 0}summary{cursor:pointer}.verdict{display:inline-block;padding:3px 10px;color:#fff;font-weight:bold}
.bar{display:inline-block;height:10px;vertical-align:middle}
"""


def _bar(counts: dict[str, int]) -> str:
    total = sum(counts.values()) or 1
    colours = {"pass": "#1e7b34", "FAIL": "#b03024", "advisory": "#d39e00", "excepted": "#888"}
    return (
        '<svg class="rollup-bar" width="160" height="10" role="img" '
        f'aria-label="{html.escape(_counts_text(counts))}">'
        + "".join(
            f'<rect x="{160 * sum(list(counts.values())[:i]) / total:.1f}" width="{160 * n / total:.1f}" height="10" '
            f'fill="{colours[k]}"/>'
            for i, (k, n) in enumerate(counts.items())
            if n
        )
        + "</svg>"
    )


def report_html(v: Verdict) -> str:
    """The report for a compliance officer: verdict, roll-up by control with expandable resources, failures."""
    esc = html.escape
    verdict_colour = "#1e7b34" if v.passed else "#b03024"
    totals = _counts_text(_tally(verdict_label(j) for j in v.judged))
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Gate evidence: {esc(v.stack)}</title>"
        f"<style>{_HTML_CSS}</style></head><body>",
        f"<h1>Gate evidence: stack {esc(v.stack)}</h1>",
        f"<p><span class='verdict' style='background:{verdict_colour}'>{'PASS' if v.passed else 'FAIL'}</span> "
        f"plan <code>{esc(v.plan_hash)}</code>; results: {esc(totals)}</p>",
        "<h2>Roll-up by control (45 CFR Part 164)</h2><table id='rollup'><thead><tr><th>control</th>"
        "<th>resources</th><th>verdicts</th><th></th></tr></thead><tbody>",
    ]
    rollup = control_rollup(v)
    for entry in rollup:
        parts.append(
            f"<tr><td>{esc(entry['title'])}</td><td>{len(entry['resources'])}</td>"
            f"<td>{esc(_counts_text(entry['counts']))}</td><td>{_bar(entry['counts'])}</td></tr>"
        )
    parts.append("</tbody></table><h2>Controls → resources → checks</h2>")
    for entry in rollup:
        parts.append(
            f"<details class='control'><summary><b>{esc(entry['title'])}</b>: {len(entry['resources'])} resources; "
            f"{esc(_counts_text(entry['counts']))}</summary>"
        )
        for r in entry["resources"]:
            rows = "".join(
                f"<tr><td>{esc(c['id'])}</td><td>{esc(c['title'])}</td><td>{esc(c['engine'])}</td>"
                f"<td class='{esc(c['verdict'])}'>{esc(c['verdict'])}</td></tr>"
                for c in r["checks"]
            )
            parts.append(
                f"<details class='resource'><summary><code>{esc(r['name'])}</code> {esc(r['type'])}: "
                f"{esc(_counts_text(r['counts']))}</summary><table><tr><th>check</th><th>title</th><th>engine</th>"
                f"<th>verdict</th></tr>{rows}</table></details>"
            )
        parts.append("</details>")
    failed = [j for j in v.judged if j.result.status == "failed" and not j.waiver]
    parts.append("<h2>Failed checks</h2>")
    if failed:
        parts.append("<table id='failed'><tr><th>severity</th><th>check</th><th>resource</th><th>fix</th></tr>")
        for j in sorted(failed, key=lambda j: (SEVERITY_ORDER[j.result.severity], j.result.rule_id, j.result.urn)):
            r = j.result
            file, line = declaration(r.urn, REPO_ROOT)
            parts.append(
                f"<tr><td class='{'FAIL' if j.blocking else 'advisory'}'>{esc(r.severity)}</td>"
                f"<td>{esc(r.rule_id)} {esc(r.title)}</td><td><code>{esc(r.urn.rsplit('::', 1)[-1])}</code> "
                f"({esc(file)}:{line})</td><td>{esc(r.fix)}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    parts.append("<h2>Exceptions in force</h2><ul>")
    parts += [
        f"<li>{esc(w.engine)}/{esc(w.rule_id)} on <code>{esc(w.resource)}</code>: {esc(w.reason)} "
        f"(owner {esc(w.owner)}, expires {esc(str(w.expires))})</li>"
        for w in v.waivers_in_force
    ] or ["<li>None.</li>"]
    parts.append("</ul></body></html>\n")
    return "".join(parts)
