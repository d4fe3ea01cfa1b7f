"""`clinops drift demo`: a clean window stays quiet, the creatinine unit change is caught, and a stand-in model (no
bundle given) is kept under OUT, never in a temporary folder left behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pipelines.monitoring.drift.demo import run_demo


def test_the_demo_catches_the_unit_change_and_keeps_its_stand_in_under_out(tmp_path: Path) -> None:
    before = set(Path(tempfile.gettempdir()).glob("clinops-demo-bundle-*"))
    results = run_demo(tmp_path, rows=1500)
    assert results["clean"].verdict == "no-drift"
    assert results["lab-unit-change"].verdict == "drift"
    assert "creatinine" in [name for name, f in results["lab-unit-change"].features.items() if f.status == "drift"]
    assert (tmp_path / "stand-in-bundle" / "model.joblib").is_file()
    assert set(Path(tempfile.gettempdir()).glob("clinops-demo-bundle-*")) == before
