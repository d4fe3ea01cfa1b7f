"""The scorecard on a synthetic evidence log with known answers, and a tampered log refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinops.cli import app
from clinops.config import load_from_stack_file
from clinops.evidence import EvidenceLog
from serving.release.scorecard import ScorecardRefused, Traffic, compute
from serving.release.scorecard_html import render_html
from tests.clinops.evidence.helpers import APPROVER, CI, DEPLOYER, entry_path, overwrite
from tests.conftest import REPO

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=60)
RR, SW = "readmission-risk", "sepsis-warning"
H, D = timedelta(hours=1), timedelta(days=1)


def arn(version: int, model: str = RR) -> str:
    return f"arn:aws:sagemaker:us-east-1:111111111111:model-package/{model}/{version}"


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


# (time, append kwargs): v2 survives its 7 days; v3 is rolled back by its 5XX alarm; sepsis drifts.
STORY = [
    (T0, dict(kind="approval", model=RR, package_arn=arn(2), actor=APPROVER, reason="board approved v2",
              details={"status": "Approved", "registered_at": iso(T0 - 48 * H)})),
    (T0 + 24 * H, dict(kind="release", model=RR, package_arn=arn(2), actor=DEPLOYER, reason="release v2",
                       details={"check": "release", "outcome": "deployed"})),
    (T0 + 20 * D, dict(kind="approval", model=RR, package_arn=arn(3), actor=APPROVER, reason="board approved v3",
                       details={"status": "Approved", "registered_at": iso(T0 + 19 * D)})),
    (T0 + 21 * D, dict(kind="release", model=RR, package_arn=arn(3), actor=DEPLOYER, reason="release v3",
                       details={"check": "release", "outcome": "deployed"})),
    (T0 + 21 * D + 2 * H, dict(kind="rollback", model=RR, package_arn=arn(2), actor=DEPLOYER, reason="5xx alarm",
                               details={"outcome": "rolled-back", "alarm": "clinops-prod-readmission-risk-5xx-rate",
                                        "alarm_state_changed_at": iso(T0 + 21 * D + timedelta(minutes=30))})),
    (T0 + 25 * D, dict(kind="drift", model=SW, model_version=7, actor=CI, reason="PSI above threshold",
                       details={"onset_at": iso(T0 + 24 * D)})),
    (T0 + 25 * D + H, dict(kind="rollback", model=SW, actor=DEPLOYER, reason="drift alarm",
                           details={"outcome": "rolled-back", "alarm": "clinops-prod-sepsis-warning-drift",
                                    "alarm_state_changed_at": iso(T0 + 25 * D + timedelta(minutes=30))})),
]  # fmt: skip


def write_log(root: Path) -> EvidenceLog:
    times = iter([t for t, _ in STORY])
    log = EvidenceLog.local(root, "prod", clock=lambda: next(times))
    for _, event in STORY:
        log.append(**event)
    return EvidenceLog.local(root, "prod")


class FakeTraffic:
    def traffic(self, endpoint: str, start: datetime, end: datetime) -> Traffic | None:
        assert end - start == timedelta(days=30)
        return Traffic(1_000_000, 200) if endpoint.endswith(RR) else None


@pytest.fixture
def card(tmp_path: Path) -> dict:
    log = write_log(tmp_path / "prod")
    return compute(load_from_stack_file("prod", REPO), log, now=NOW, traffic=FakeTraffic()).as_dict()


def test_promotions_cycle_time_and_success(card: dict) -> None:
    v2, v3 = card["promotions"]
    assert (v2["version"], v2["outcome"], v2["cycle_time_h"]) == ("2", "survived", 72.0)
    assert (v2["registration_to_approval_h"], v2["approval_to_production_h"]) == (48.0, 24.0)
    assert (v3["version"], v3["outcome"], v3["cycle_time_h"]) == ("3", "rolled-back", 48.0)
    assert card["summary"]["promotion_success_percent"] == 50.0
    assert card["summary"]["median_cycle_time_h"] == 60.0


def test_incidents_by_cause_detect_and_rollback(card: dict) -> None:
    assert card["summary"]["rollbacks_by_cause"] == {"5xx-rate": 1, "drift": 1}
    bad_release, drift = card["incidents"]
    # a bad release: onset = its deployment; alarm 30 min later; rolled back 90 min after the alarm
    assert (bad_release["time_to_detect_s"], bad_release["time_to_rollback_s"]) == (1800.0, 5400.0)
    # drift: onset recorded by the drift job a day before; alarm 30 min into day 25; rollback 30 min later
    assert (drift["time_to_detect_s"], drift["time_to_rollback_s"]) == (88200.0, 1800.0)


def test_slo_attainment_budget_and_cost(card: dict) -> None:
    rr = next(s for s in card["services"] if s["model"] == RR)
    assert rr["attainment_percent"] == 99.98  # 200 5XX in 1,000,000
    assert rr["budget_left_percent"] == 80.0  # 0.02% of a 0.1% budget spent
    # 2 x ml.m5.large for the 30-day window (720 h) = 1,440 instance-hours x $0.115 / 1,000,000 x 1,000
    assert rr["cost_per_1000_usd"] == pytest.approx(0.1656)
    sw = next(s for s in card["services"] if s["model"] == SW)
    assert sw["attainment_percent"] is None  # no traffic known


def test_since_filters_promotions_and_incidents(tmp_path: Path) -> None:
    log = write_log(tmp_path / "prod")
    card = compute(load_from_stack_file("prod", REPO), log, since=T0 + 10 * D, now=NOW).as_dict()
    assert [p["version"] for p in card["promotions"]] == ["3"]
    assert card["summary"]["promotion_success_percent"] == 0.0


def test_tampered_log_is_refused(tmp_path: Path) -> None:
    write_log(tmp_path / "prod")
    path = entry_path(tmp_path / "prod", 3)
    overwrite(path, path.read_bytes().replace(b"release v3", b"release v9"))
    with pytest.raises(ScorecardRefused, match="does not verify"):
        compute(load_from_stack_file("prod", REPO), EvidenceLog.local(tmp_path / "prod", "prod"), now=NOW)
    result = CliRunner().invoke(app, ["scorecard", "--stack", "prod", "--log", str(tmp_path)])
    assert result.exit_code == 1


def test_cli_json_and_html(tmp_path: Path, card: dict) -> None:
    write_log(tmp_path / "evidence" / "prod")
    page = tmp_path / "scorecard.html"
    result = CliRunner().invoke(
        app, ["scorecard", "--stack", "prod", "--log", str(tmp_path / "evidence"), "--json", "--html", str(page)]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["summary"]["rollbacks"] == 2 and doc["evidence"]["verified"] is True
    html = page.read_text()
    assert html.count("<svg") == 5 and "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "Rollbacks by cause" in render_html(card)


def test_a_rollback_landed_by_the_schedule_takes_the_alarm_time_of_its_request(tmp_path: Path) -> None:
    """The breaker records `rolled-back` from its schedule, without the alarm's time: the incident takes it from
    the `rolling-back` entry of the same rollback (the offline rehearsal found this: both times read n/a)."""
    alarm, rollback_id = "clinops-prod-readmission-risk-drift", "evt-1"
    story = [
        (T0, dict(kind="release", model=RR, package_arn=arn(3), actor=DEPLOYER, reason="release v3",
                  details={"check": "release", "outcome": "deployed"})),
        (T0 + 2 * H, dict(kind="rollback", model=RR, actor=DEPLOYER, reason="drift alarm",
                          details={"outcome": "rolling-back", "alarm": alarm, "rollback_id": rollback_id,
                                   "alarm_state_changed_at": iso(T0 + H)})),
        (T0 + 3 * H, dict(kind="rollback", model=RR, package_arn=arn(2), actor=DEPLOYER, reason="landed",
                          details={"outcome": "rolled-back", "alarm": alarm, "rollback_id": rollback_id,
                                   "alarm_state_changed_at": None})),
    ]  # fmt: skip
    times = iter([t for t, _ in story])
    log = EvidenceLog.local(tmp_path / "prod", "prod", clock=lambda: next(times))
    for _, event in story:
        log.append(**event)
    (incident,) = compute(load_from_stack_file("prod", REPO), log, now=NOW).incidents
    assert (incident.cause, incident.time_to_detect_s, incident.time_to_rollback_s) == ("drift", 3600.0, 7200.0)
