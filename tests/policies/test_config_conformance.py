"""The AWS Config HIPAA Security conformance-pack prediction: each detection fires on a mutated plan, and the
shipped stacks pass (fixed in infra, or under a reviewed exception)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from infra.render import dumps
from policies.engines.config_conformance import ENGINE, RULES, evaluate
from policies.exceptions import DEFAULT_PATH, load
from policies.gate import ENGINES, run_gate
from policies.plan import parse_plan
from tests.conftest import rendered


def _state(doc: dict, type_: str, name: str) -> dict:
    return next(
        s["newState"] for s in doc["steps"] if s["newState"]["type"] == type_ and s["urn"].endswith(f"::{name}")
    )


def _failed(doc: dict, rule: str) -> list[str]:
    report = evaluate(parse_plan(doc))
    return [r.urn.split("::")[-1] for r in report.results if r.rule_id == rule and r.status == "failed"]


def _no_insufficient_data_action(doc: dict) -> None:
    _state(doc, "aws:cloudwatch/metricAlarm:MetricAlarm", "clinops-prod-readmission-risk-5xx-rate")["inputs"].pop(
        "insufficientDataActions"
    )


def _evidence_unlocked(doc: dict) -> None:
    _state(doc, "aws:s3/bucket:Bucket", "evidence")["inputs"]["objectLockEnabled"] = False


def _role_decrypts_every_key(doc: dict) -> None:
    # the author's role: staging/prod's execution role already carries the reviewed DecryptPromotedModels grant
    policy = _state(doc, "aws:iam/rolePolicy:RolePolicy", "author-permissions")
    document = json.loads(policy["inputs"]["policy"])
    document["Statement"].append({"Sid": "AnyKey", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"})
    policy["inputs"]["policy"] = json.dumps(document)


def _data_capture_unlogged(doc: dict) -> None:
    doc["steps"] = [s for s in doc["steps"] if not s["urn"].endswith("BucketLogging::data-capture-access-logging")]


@pytest.mark.parametrize(
    ("mutate", "rule", "culprit"),
    [
        (_no_insufficient_data_action, "cloudwatch-alarm-action-check", "clinops-prod-readmission-risk-5xx-rate"),
        (_evidence_unlocked, "s3-bucket-default-lock-enabled", "evidence"),
        (_role_decrypts_every_key, "iam-inline-policy-blocked-kms-actions", "author-permissions"),
        (_data_capture_unlogged, "s3-bucket-logging-enabled", "data-capture"),
    ],
)
def test_detection_fires_on_a_mutated_plan(mutate: Callable[[dict], None], rule: str, culprit: str) -> None:
    doc = rendered("prod")
    assert culprit not in _failed(doc, rule)
    mutate(doc)
    assert culprit in _failed(doc, rule)
    verdict = run_gate(parse_plan(doc), dumps(doc), engines=[ENGINE], exceptions_path=DEFAULT_PATH)
    assert not verdict.passed  # no reviewed exception absorbs the new finding
    assert any(j.result.rule_id == rule for j in verdict.blocking())


def test_boundary_kms_decrypt_is_detected_and_scoping_it_passes() -> None:
    doc = rendered("prod")
    assert _failed(doc, "iam-customer-policy-blocked-kms-actions") == ["permissions-boundary"]
    boundary = _state(doc, "aws:iam/policy:Policy", "permissions-boundary")
    document = json.loads(boundary["inputs"]["policy"])
    for statement in document["Statement"]:
        if statement["Effect"] == "Allow" and "kms:Decrypt" in statement["Action"]:
            kms = [a for a in statement["Action"] if a.startswith("kms:")]
            statement["Action"] = [a for a in statement["Action"] if not a.startswith("kms:")]
            keys = "arn:aws:kms:us-east-1:333333333333:key/phi-key"
            document["Statement"].append({"Sid": "Keys", "Effect": "Allow", "Action": kms, "Resource": keys})
            break
    boundary["inputs"]["policy"] = json.dumps(document)
    assert _failed(doc, "iam-customer-policy-blocked-kms-actions") == []


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_shipped_stacks_are_predicted_compliant_or_excepted(stack: str) -> None:
    doc = rendered(stack)
    verdict = run_gate(parse_plan(doc), dumps(doc), engines=[ENGINE], exceptions_path=DEFAULT_PATH)
    assert verdict.passed, [(j.result.rule_id, j.result.urn.split("::")[-1]) for j in verdict.blocking()]
    report = verdict.reports[0]
    assert {r.rule_id for r in report.results} >= {"cloudwatch-alarm-action-check", "s3-bucket-logging-enabled"}
    assert "account-level rules not predictable" in report.notes[0]


def test_rule_names_are_unique_and_the_engine_is_registered(tmp_path: Path) -> None:
    from serving.release.gate import GateOptions

    assert len({r.name for r in RULES}) == len(RULES)
    assert ENGINE in ENGINES
    # One registry (policies.gate.ENGINES): the release gate defaults to it, the exceptions file accepts exactly it.
    assert GateOptions().engines is None
    entry = {
        "engine": ENGINE,
        "rule": "s3-bucket-logging-enabled",
        "resource": "*$aws:s3/bucket:Bucket::access-logs",
        "reason": "reviewed",
        "owner": "platform",
        "expires": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
    }
    path = tmp_path / "exceptions.yaml"
    path.write_text(yaml.safe_dump({"exceptions": [entry, {**entry, "engine": "trivy"}]}))
    waivers, problems = load(path, engines=ENGINES)
    assert [w.engine for w in waivers] == [ENGINE]
    assert problems == [f"exceptions.yaml: exceptions[1]: engine 'trivy' is not one of {', '.join(ENGINES)}"]


def test_prediction_lands_in_the_evidence_bundle(tmp_path: Path) -> None:
    import jsonschema

    from policies.bundle import write_bundle
    from tests.policies.test_gate import SARIF_SCHEMA

    doc = rendered("prod")
    _no_insufficient_data_action(doc)
    verdict = run_gate(parse_plan(doc), dumps(doc), engines=[ENGINE], exceptions_path=DEFAULT_PATH)
    write_bundle(verdict, tmp_path)
    findings = json.loads((tmp_path / "findings.json").read_text())
    assert [e["engine"] for e in findings["engines"]] == [ENGINE]
    assert any(e["ruleId"] == "s3-bucket-logging-enabled" for e in findings["exceptionsInForce"])
    sarif = json.loads((tmp_path / "findings.sarif").read_text())
    jsonschema.validate(sarif, json.loads(SARIF_SCHEMA.read_text()))
    errors = [r["ruleId"] for run in sarif["runs"] for r in run["results"] if r["level"] == "error"]
    assert errors == ["cloudwatch-alarm-action-check"]
    assert "cloudwatch-alarm-action-check" in (tmp_path / "junit.xml").read_text()
