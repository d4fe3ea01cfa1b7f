"""The evidence bundle of one gate run: report.md, findings.json, findings.sarif, junit.xml, plan.sha256."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from policies import controls
from policies.gate import Judged, Verdict
from policies.model import SEVERITY_ORDER

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# Where a finding points in the repository: the file that declares the component (for code scanning).
_COMPONENT_FILES = {
    "clinops:infra:Network": "infra/network.py",
    "clinops:infra:Keys": "infra/keys.py",
    "clinops:infra:Storage": "infra/storage.py",
    "clinops:infra:SecureBucket": "infra/storage.py",
    "clinops:infra:Audit": "infra/audit.py",
    "clinops:infra:Identity": "infra/identity.py",
    "clinops:infra:Studio": "infra/studio.py",
    "clinops:infra:Registry": "infra/registry.py",
}


def source_file(urn: str) -> str:
    qualified = urn.split("::")[2] if urn.count("::") >= 3 else ""
    for part in reversed(qualified.split("$")):
        if part in _COMPONENT_FILES:
            return _COMPONENT_FILES[part]
        if part.startswith("clinops:"):
            module = part.split(":")[1]
            return f"{module}/{part.split(':')[-1].lower()}.py"
    return "infra/stack.py"


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
            result: dict[str, Any] = {
                "ruleId": r.rule_id,
                "level": "error" if j.blocking else ("note" if j.waiver else "warning"),
                "message": {"text": f"{r.message or r.title} [{r.urn}]"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": source_file(r.urn)},
                            "region": {"startLine": 1},
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
    by_control: dict[str, dict[tuple[str, str], list[Judged]]] = defaultdict(lambda: defaultdict(list))
    for j in v.judged:
        for control in j.result.controls or ("unmapped",):
            by_control[control][(j.result.engine, j.result.rule_id)].append(j)
    order = [*controls.MATRIX_ORDER, *sorted(set(by_control) - set(controls.MATRIX_ORDER))]
    for control in order:
        title = f"§{control} {controls.TITLES.get(control, '')}".strip()
        checks = by_control.get(control, {})
        if not checks:
            lines.append(f"| {title} | *(no check maps here)* | | | | |")
            continue
        for (engine, rule), js in sorted(checks.items()):
            labels = [verdict_label(j) for j in js]
            lines.append(
                f"| {title} | {rule} | {engine} | {labels.count('pass')} | {labels.count('excepted')} | "
                f"{labels.count('FAIL') + labels.count('advisory')} |"
            )
    failed = [j for j in v.judged if j.result.status == "failed" and not j.waiver]
    lines += ["", "## Failed checks", ""]
    if not failed:
        lines.append("None.")
    for j in sorted(failed, key=lambda j: (SEVERITY_ORDER[j.result.severity], j.result.rule_id, j.result.urn)):
        r = j.result
        lines.append(
            f"- **{r.severity}** `{r.rule_id}` ({r.engine}, {', '.join(r.controls)}) on `{r.urn}`: "
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
