"""What the compliance officer reads in the gate's evidence: a title for every check, a roll-up per control
(controls -> resources -> checks -> verdicts, with counts), an honest unmapped bucket, an HTML report, and SARIF
locations at the real file and line that declare each resource."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from infra.render import dumps
from policies.bundle import UNMAPPED, control_rollup, report_html, report_md, sarif, verdict_label, write_bundle
from policies.gate import Verdict, run_gate
from policies.plan import parse_plan
from policies.sources import declaration
from tests.conftest import REPO, rendered


@lru_cache(maxsize=1)
def verdict() -> Verdict:
    doc = rendered("dev")
    # A public-read ACL-free bucket without encryption config would be too much surgery: drop the flow log so
    # something fails and the SARIF has results.
    doc["steps"] = [s for s in doc["steps"] if s["newState"]["type"] != "aws:ec2/flowLog:FlowLog"]
    return run_gate(parse_plan(doc), dumps(doc), engines=["clinops", "checkov"])


def test_every_check_id_in_the_report_has_its_title() -> None:
    v = verdict()
    report = report_md(v)
    for j in v.judged:
        assert j.result.title, j.result.rule_id
        assert f"{j.result.rule_id} {j.result.title}" in report, j.result.rule_id


def test_rollup_counts_add_up_from_checks_to_resources_to_controls() -> None:
    v = verdict()
    rollup = control_rollup(v)
    assert rollup[-1]["control"] == UNMAPPED
    for entry in rollup:
        for resource in entry["resources"]:
            tally = {k: sum(c["verdict"] == k for c in resource["checks"]) for k in resource["counts"]}
            assert tally == resource["counts"]
        summed = {k: sum(r["counts"][k] for r in entry["resources"]) for k in entry["counts"]}
        assert summed == entry["counts"]
    mapped = {(j.result.rule_id, j.result.urn) for j in v.judged if not j.result.controls}
    listed = {(c["id"], r["urn"]) for r in rollup[-1]["resources"] for c in r["checks"]}
    assert listed == mapped  # the unmapped bucket holds exactly the checks that claim no control


def test_unmapped_checkov_checks_are_not_counted_as_access_control() -> None:
    from policies.engines import checkov_engine

    assert checkov_engine.DEFAULT_CONTROLS == ()
    v = verdict()
    notes = [n for r in v.reports if r.engine == "checkov" for n in r.notes]
    unmapped = [j for j in v.judged if j.result.engine == "checkov" and not j.result.controls]
    if unmapped:  # whichever checks checkov has without a table entry: said so, and not in §164.312(a)(1)
        assert any("not mapped to a HIPAA control" in n for n in notes)
        access = next(e for e in control_rollup(v) if e["control"] == "164.312(a)(1)")
        ids = {c["id"] for r in access["resources"] for c in r["checks"]}
        assert not ids & {j.result.rule_id for j in unmapped}
    assert "Unmapped (checks that evidence no HIPAA control" in report_md(v)


def test_sarif_points_at_the_declaring_file_and_line() -> None:
    document = sarif(verdict())
    locations = [
        loc["physicalLocation"] for run in document["runs"] for result in run["results"] for loc in result["locations"]
    ]
    assert locations
    for location in locations:
        path = REPO / location["artifactLocation"]["uri"]
        assert path.is_file(), location
        line = path.read_text().splitlines()[location["region"]["startLine"] - 1]
        assert "aws." in line or "class " in line or '"' in line, (location, line)
    subnet = "urn:pulumi:dev::clinops::clinops:infra:Network$aws:ec2/subnet:Subnet::private-1"
    file, number = declaration(subnet, REPO)
    assert file == "infra/network.py" and "aws.ec2.Subnet(" in (REPO / file).read_text().splitlines()[number - 1]
    bucket = "urn:pulumi:dev::clinops::clinops:infra:Storage$clinops:infra:SecureBucket$aws:s3/bucket:Bucket::phi-data"
    file, number = declaration(bucket, REPO)
    assert file == "infra/storage.py" and "aws.s3.Bucket(" in (REPO / file).read_text().splitlines()[number - 1]


def test_html_report_has_the_rollup_and_the_failures(tmp_path: Path) -> None:
    v = verdict()
    page = report_html(v)
    assert "id='rollup'" in page and "<details class='control'>" in page and 'class="rollup-bar"' in page
    assert "Unmapped" in page and "<script" not in page
    failed = [j for j in v.judged if verdict_label(j) == "FAIL"]
    assert failed and all(j.result.rule_id in page for j in failed)
    write_bundle(v, tmp_path)
    assert (tmp_path / "report.html").read_text() == page
    assert json.loads((tmp_path / "findings.sarif").read_text())["runs"]
