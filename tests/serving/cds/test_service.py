"""CDS Hooks 2.0 shapes (discovery, cards, feedback), every fallback path, CORS, and no identifier in any log."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from clinops.names import CDS_METRIC_NAMESPACE, CDS_OVERRIDDEN_METRIC, SHADOW_VARIANT
from serving.cds.feedback import KeyedHasher
from serving.cds.logs import CdsLog
from serving.guardrails.state import FAILED, LANDED, REQUESTED, BreakerState
from tests.serving.cds.conftest import ORIGIN, READMISSION, SEPSIS, Harness

INDICATORS = {"info", "warning", "critical"}
HOOK = "/cds-services/readmission-risk"


def assert_card(card: dict[str, Any]) -> None:
    """CDS Hooks 2.0 Card: required summary (<140), indicator, source.label; links and overrideReasons typed."""
    assert isinstance(card["uuid"], str) and len(card["summary"]) < 140
    assert card["indicator"] in INDICATORS and card["source"]["label"]
    assert all(link["type"] in ("absolute", "smart") and link["url"].startswith("https://") for link in card["links"])
    assert all({"code", "system", "display"} <= set(r) for r in card["overrideReasons"])
    assert "suggestions" not in card or card.get("selectionBehavior")


def one_card(response: Any) -> dict[str, Any]:
    assert response.status == 200, response.body
    assert set(response.body) == {"cards"} and len(response.body["cards"]) == 1
    card = response.body["cards"][0]
    assert_card(card)
    return card


def breaker(
    phase: str, source: str = "clinops-dev-readmission-risk-v3", target: str = "clinops-dev-readmission-risk-v2"
):
    return BreakerState(
        outcome="rolled-back", last_event_id="e1", alarm="clinops-dev-readmission-risk-5xx-rate",
        alarm_at="2026-12-06T10:00:00Z", decided_at="2026-12-06T10:00:05Z", reason="5xx", phase=phase,
        from_config=source, to_config=target,
    )  # fmt: skip


def test_discovery_lists_one_service_per_configured_model_and_hook(harness: Harness) -> None:
    response = harness.call("GET", "/cds-services")
    assert response.status == 200
    services = {s["id"]: s for s in response.body["services"]}
    assert services[READMISSION]["hook"] == "encounter-discharge" and services[SEPSIS]["hook"] == "patient-view"
    for service in services.values():
        assert {"hook", "title", "description", "id", "prefetch"} <= set(service)
        assert all("{{context.patientId}}" in t or "{{context.encounterId}}" in t for t in service["prefetch"].values())


def test_discharge_hook_returns_the_risk_card_with_reasons_version_and_intended_use(harness: Harness) -> None:
    card = one_card(harness.call("POST", HOOK, harness.hook()))
    assert card["summary"] == "30-day readmission risk at discharge: high (46%)" and card["indicator"] == "critical"
    assert "readmission-risk version 3" in card["detail"] and "transitional-care outreach" in card["detail"]
    assert "prior admissions 12m (raises risk); charlson index (raises risk); albumin (lowers risk)" in card["detail"]
    assert "age (" not in card["detail"]  # top 3 only
    assert any(link["label"] == "Model card" for link in card["links"])


def test_the_model_receives_exactly_the_contract_features_of_the_patient(harness: Harness) -> None:
    synthetic = harness.patient(row=2)
    one_card(harness.call("POST", HOOK, harness.hook(synthetic=synthetic)))
    sent = harness.scorers[READMISSION].calls[-1]
    from pipelines.contracts import builtin_contract_path, load_contract

    assert set(sent) == set(load_contract(builtin_contract_path(READMISSION)).feature_columns)
    assert json.dumps(sent)  # JSON-serialisable as the container expects


def test_patient_view_hook_serves_the_sepsis_model(harness: Harness) -> None:
    card = one_card(harness.call("POST", "/cds-services/sepsis-warning", harness.hook(SEPSIS)))
    assert card["summary"].startswith("Sepsis early warning: low") and card["indicator"] == "info"


def test_a_missing_prefetch_key_is_read_from_the_fhir_server_with_the_hooks_token(harness: Harness) -> None:
    request = harness.hook(omit=("labs", "patient"))
    card = one_card(harness.call("POST", HOOK, request))
    assert card["summary"].endswith("(46%)")
    queries = [q for q, _ in harness.fhir.queries]
    assert any(q.startswith("Observation?patient=") for q in queries) and any(q.startswith("Patient/") for q in queries)
    assert {token for _, token in harness.fhir.queries} == {"synthetic-access-token"}


def fallback(harness: Harness, request: Any = None, path: str = HOOK) -> dict[str, Any]:
    card = one_card(harness.call("POST", path, request or harness.hook()))
    assert "model unavailable - use the HOSPITAL score" in card["summary"] and card["indicator"] == "warning"
    assert card["links"][0]["label"] == "HOSPITAL score"
    return card


def test_circuit_open_shows_the_fallback_and_never_calls_the_model(harness: Harness) -> None:
    harness.guardrails.records[READMISSION] = breaker(REQUESTED)
    card = fallback(harness)
    assert "circuit breaker is open" in card["detail"] and "version 2" in card["detail"]
    assert harness.scorers[READMISSION].calls == []


def test_rolled_back_says_which_version_answers_until_a_new_release(harness: Harness) -> None:
    harness.guardrails.records[READMISSION] = breaker(LANDED)
    harness.guardrails.pinned[READMISSION] = "clinops-dev-readmission-risk-v3"
    card = fallback(harness)
    assert "last-known-good version 2, which answers now" in card["detail"]
    harness.guardrails.pinned[READMISSION] = "clinops-dev-readmission-risk-v4"  # released again since
    assert "(46%)" in one_card(harness.call("POST", HOOK, harness.hook()))["summary"]


def test_a_failed_rollback_holds_the_score(harness: Harness) -> None:
    harness.guardrails.records[READMISSION] = breaker(FAILED)
    assert "could not roll the model back" in fallback(harness)["detail"]


def test_a_drift_or_quality_alarm_in_force_holds_the_score(harness: Harness) -> None:
    harness.guardrails.alarms[READMISSION] = ["clinops-dev-readmission-risk-drift"]
    assert "alarm in force: clinops-dev-readmission-risk-drift" in fallback(harness)["detail"]


def test_unreadable_guardrails_are_not_a_green_light(harness: Harness) -> None:
    harness.guardrails.broken = True
    assert "guardrails' state could not be read" in fallback(harness)["detail"]


@pytest.mark.parametrize(
    ("fault", "says"),
    [("error", "the endpoint answered HTTP 500"), ("shadow", "shadow variant")],
)
def test_endpoint_errors_and_shadow_answers_fall_back(harness: Harness, fault: str, says: str) -> None:
    scorer = harness.scorers[READMISSION]
    if fault == "error":
        scorer.fail = "the endpoint answered HTTP 500"
    else:
        scorer.variant = SHADOW_VARIANT
    assert says in fallback(harness)["detail"]


def test_a_hanging_endpoint_gets_the_fallback_within_the_deadline(harness: Harness) -> None:
    harness.scorers[READMISSION].hang = 3.0
    request = harness.hook()
    started = time.perf_counter()
    card = fallback(harness, request)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5  # deadlineMs: 500 in Pulumi.dev.yaml
    assert "did not answer within the 500 ms deadline" in card["detail"]


def test_missing_features_are_named_without_values(harness: Harness) -> None:
    synthetic = harness.patient(row=0, age=None, admission_type=None)
    card = fallback(harness, harness.hook(synthetic=synthetic))
    assert "features missing: age, admission_type" in card["detail"]


def test_features_outside_the_contract_are_named_with_the_rule_not_the_value(harness: Harness) -> None:
    synthetic = harness.patient(row=0, sodium=250.0)
    card = fallback(harness, harness.hook(synthetic=synthetic))
    assert "sodium: outside the contract range [100, 180] mmol/L" in card["detail"] and "250" not in card["detail"]


def test_a_lab_in_a_unit_without_conversion_is_outside_the_contract(harness: Harness) -> None:
    synthetic = harness.patient(row=0)
    creatinine = next(r for r in synthetic.resources if r["resourceType"] == "Observation"
                      and r["code"]["coding"][0]["code"] in ("2160-0", "14682-9"))  # fmt: skip
    creatinine["valueQuantity"].update(code="mg", unit="mg")
    card = fallback(harness, harness.hook(synthetic=synthetic))
    assert "creatinine: unit 'mg' has no conversion to the contract's mg/dL" in card["detail"]


def test_fhir_server_down_with_prefetch_missing_falls_back(harness: Harness) -> None:
    harness.fhir.down = True
    card = fallback(harness, harness.hook(omit=("patient", "encounter", "labs")))
    assert "could not be read" in card["detail"] or "features missing" in card["detail"]


def test_feedback_is_recorded_with_a_hashed_encounter_and_an_override_rate_metric(harness: Harness) -> None:
    request = harness.hook()
    card = one_card(harness.call("POST", HOOK, request))
    body = {"feedback": [
        {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-12-06T12:00:00Z",
         "overrideReason": {"reason": {"code": "already-addressed", "system": "x"}, "userComment": "Pt John Smith"}},
        {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-12-06T12:00:01Z"},
    ]}  # fmt: skip
    response = harness.call("POST", HOOK + "/feedback", body)
    assert response.status == 200 and response.body == {}
    entries = harness.evidence.entries()
    assert [e.kind for e in entries] == ["clinician-feedback", "clinician-feedback"]
    details = entries[0].details
    assert details["outcome"] == "overridden" and details["override_reason"] == "already-addressed"
    assert details["card_kind"] == "risk" and details["band"] == "high" and entries[0].model_version == "3"
    encounter = request["context"]["encounterId"]
    assert len(details["encounter_hash"]) == 32 and encounter not in json.dumps(details)
    assert "John" not in entries[0].model_dump_json() and details["has_comment"] is True
    (call,) = harness.cloudwatch.calls
    assert call["Namespace"] == CDS_METRIC_NAMESPACE
    assert [(d["MetricName"], d["Value"]) for d in call["MetricData"]] == [
        (CDS_OVERRIDDEN_METRIC, 1.0),
        (CDS_OVERRIDDEN_METRIC, 0.0),
    ]


@pytest.mark.parametrize(
    "body",
    [{}, {"feedback": []}, {"feedback": [{"card": "x", "outcome": "ignored", "outcomeTimestamp": "t"}]},
     {"feedback": [{"outcome": "accepted", "outcomeTimestamp": "t"}]}],
)  # fmt: skip
def test_malformed_feedback_is_a_400_naming_the_field(harness: Harness, body: Any) -> None:
    response = harness.call("POST", HOOK + "/feedback", body)
    assert response.status == 400 and response.body["error"].startswith("feedback")


def test_requests_that_are_not_the_hook_are_400_404_405(harness: Harness) -> None:
    assert harness.call("POST", HOOK, {"hook": "patient-view"}).status == 400
    assert harness.call("POST", "/cds-services/unknown", {}).status == 404
    assert harness.call("GET", HOOK).status == 405
    assert harness.call("GET", "/elsewhere").status == 404


def test_cors_only_for_configured_ehr_origins(harness: Harness) -> None:
    allowed = harness.service.handle("OPTIONS", HOOK, {"Origin": ORIGIN}, b"")
    assert allowed.status == 204 and allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    denied = harness.service.handle("OPTIONS", HOOK, {"Origin": "https://evil.example"}, b"")
    assert denied.status == 403 and "Access-Control-Allow-Origin" not in denied.headers
    response = harness.call("GET", "/cds-services", Origin="https://evil.example")
    assert response.status == 200 and "Access-Control-Allow-Origin" not in response.headers


def test_no_identifier_in_any_log_line(harness: Harness) -> None:
    synthetic = harness.patient(row=0)
    request = harness.hook(synthetic=synthetic)
    card = one_card(harness.call("POST", HOOK, request))
    harness.call("POST", HOOK + "/feedback", {"feedback": [
        {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-12-06T12:00:00Z"}]})  # fmt: skip
    harness.call("POST", HOOK, harness.hook(synthetic=harness.patient(row=0, sodium=250.0)))
    harness.call("POST", HOOK, request, token="not-a-jwt")
    harness.scorers[READMISSION].hang = 1.0
    harness.call("POST", HOOK, harness.hook(synthetic=synthetic))
    patient = synthetic.resources[0]
    secrets = {synthetic.patient_id, synthetic.encounter_id, patient["identifier"][0]["value"], patient["birthDate"],
               patient["name"][0]["family"], "synthetic-access-token"}  # fmt: skip
    text = harness.log.getvalue()
    assert len(harness.log_lines()) >= 5
    assert not [s for s in secrets if s in text]


def test_the_log_refuses_fields_off_its_allow_list() -> None:
    with pytest.raises(ValueError, match="allow-list"):
        CdsLog().event("hook", patient_id="p1")


def test_feedback_reaching_another_instance_finds_its_card(harness: Harness, tmp_path: Path) -> None:
    """Lambda runs several instances: the card is issued by one, its feedback lands on another, and the evidence
    still carries the card's model version, band and hashed encounter (from the shared issuance record)."""
    request = harness.hook()
    card = one_card(harness.call("POST", HOOK, request))
    other = harness.another_instance()
    assert other is not harness.service and other.issued is not harness.service.issued
    harness.service = other
    body = {"feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-12-06T12:00:00Z"}]}
    assert harness.call("POST", HOOK + "/feedback", body).status == 200
    (entry,) = harness.evidence.entries()
    details = entry.details
    assert entry.model_version == "3" and details["card_kind"] == "risk" and details["band"] == "high"
    encounter = request["context"]["encounterId"]
    assert details["encounter_hash"] == KeyedHasher(b"k" * 32).hash(encounter) and details["card_issued_at"]
    records = list((tmp_path / "issued").rglob("*.json"))
    assert [r.name for r in records] == [f"{card['uuid']}.json"]
    assert encounter not in records[0].read_text() and request["context"]["patientId"] not in records[0].read_text()
    assert encounter not in harness.log.getvalue()


def test_feedback_naming_no_uuid_never_reaches_the_store(harness: Harness, tmp_path: Path) -> None:
    body = {
        "feedback": [{"card": "../../../etc/passwd", "outcome": "accepted", "outcomeTimestamp": "2026-12-06T12:00Z"}]
    }
    assert harness.call("POST", HOOK + "/feedback", body).status == 200
    (entry,) = harness.evidence.entries()
    assert entry.details["card_kind"] == "unknown-card" and entry.details["encounter_hash"] is None


def test_a_card_is_answered_even_when_its_record_cannot_be_written(harness: Harness) -> None:
    class Broken:
        def put(self, model: str, card_id: str, card: object) -> None:
            raise OSError("store down")

        def get(self, model: str, card_id: str) -> None:
            return None

    harness.service.issued.store = Broken()
    card = one_card(harness.call("POST", HOOK, harness.hook()))
    assert card["summary"].endswith("(46%)")
    assert any(line["event"] == "issuance_unrecorded" for line in harness.log_lines())


def test_a_store_that_cannot_answer_fails_feedback_whole_for_a_retry(harness: Harness) -> None:
    card = one_card(harness.call("POST", HOOK, harness.hook()))

    class Unreadable:
        def put(self, model: str, card_id: str, record: object) -> None: ...

        def get(self, model: str, card_id: str) -> None:
            raise OSError("store down")

    other = harness.another_instance()
    other.issued.store = Unreadable()
    harness.service = other
    items = [
        {
            "card": "0b7f6f3e-3d0c-4a59-9b0f-1f2d3c4b5a69",
            "outcome": "accepted",
            "outcomeTimestamp": "2026-12-06T12:00Z",
        },
        {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-12-06T12:00Z"},
    ]
    answer = harness.call("POST", HOOK + "/feedback", {"feedback": items})
    assert answer.status == 503 and harness.evidence.entries() == []
