"""The head published outside the log: written on every append, never moved back, its failure reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinops.evidence import EvidenceLog, EvidenceUnavailable, FileHeadStore, HeadNotPublished, PublishedHead
from clinops.exitcodes import UnusableInput
from serving.release.evidence import EvidenceLocation
from tests.clinops.evidence.helpers import CI, KEY, MODEL, stepping_clock


def test_every_append_publishes_the_new_head_with_its_mac(tmp_path: Path) -> None:
    log = EvidenceLog.local(tmp_path / "prod", "prod", clock=stepping_clock())
    for n in range(3):
        entry = log.append("drill", model=MODEL, actor=CI, reason=f"drill {n}")
        head = PublishedHead.parse((tmp_path / "prod.head").read_text())
        assert head.anchor == entry.anchor
        assert head.valid(log.key, "prod")
        assert not head.valid(log.key, "staging")  # bound to its stack: cannot be replayed as another's head
        assert not head.valid(KEY, "prod")  # and to the key


def test_a_writer_that_lost_the_race_does_not_move_the_head_back(tmp_path: Path) -> None:
    slow = EvidenceLog.local(tmp_path / "prod", "prod", clock=stepping_clock())
    fast = EvidenceLog.local(tmp_path / "prod", "prod", clock=stepping_clock())
    first = slow.append("drill", model=MODEL, actor=CI, reason="first")
    second = fast.append("drill", model=MODEL, actor=CI, reason="second")
    slow._publish(first)  # the slow writer's publish arrives last
    assert PublishedHead.parse((tmp_path / "prod.head").read_text()).anchor == second.anchor
    assert slow.verify().ok


class BrokenHeadStore(FileHeadStore):
    def write(self, text: str) -> None:
        raise EvidenceUnavailable("SSM PutParameter failed: ThrottlingException")


def test_an_unpublished_head_says_the_entry_is_recorded_and_the_next_append_catches_up(tmp_path: Path) -> None:
    good = EvidenceLog.local(tmp_path / "prod", "prod", clock=stepping_clock())
    good.append("drill", model=MODEL, actor=CI, reason="first")
    broken = EvidenceLog.local(
        tmp_path / "prod", "prod", clock=stepping_clock(), head_store=BrokenHeadStore(tmp_path / "prod.head")
    )
    with pytest.raises(HeadNotPublished, match="seq 1 is recorded") as caught:
        broken.append("drill", model=MODEL, actor=CI, reason="second")
    assert caught.value.entry.seq == 1 and [e.reason for e in good.entries()] == ["first", "second"]
    report = good.verify()
    assert report.ok and report.published_head is not None and report.published_head.seq == 0  # lags, not wrong
    good.append("drill", model=MODEL, actor=CI, reason="third")
    assert good.verify().published_head.seq == 2  # type: ignore[union-attr]


def test_release_refuses_s3_evidence_without_the_mac_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLINOPS_EVIDENCE_MAC_KEY", raising=False)
    with pytest.raises(UnusableInput, match="CLINOPS_EVIDENCE_MAC_KEY"):
        EvidenceLocation.parse("s3://bucket/evidence").log("prod")
    monkeypatch.setenv("CLINOPS_EVIDENCE_MAC_KEY", "arn:aws:kms:us-east-1:333333333333:key/evidence-mac-key")
    monkeypatch.setenv("CLINOPS_EVIDENCE_KMS_KEY", "arn:aws:kms:us-east-1:333333333333:key/audit-key")
    location = EvidenceLocation.parse("s3://bucket/evidence", s3_client=object())
    assert location.mac_key_id.endswith("evidence-mac-key") and location.kms_key_id.endswith("audit-key")  # type: ignore[union-attr]
