"""The HTML model card and the gate report, rendered by headless Chromium: the page renders, the charts are in
the rendered DOM, and the screenshot shows them (chart and verdict colours present in quantity).

Chromium is Debian's (`apt-get install -y chromium`; .ci/run installs it). Without it the test is skipped and
says why; nothing else in the suite needs a browser.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1400, 1000)


def _chromium() -> str:
    for name in CANDIDATES:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
        if found:
            return found
    pytest.skip("no Chromium on this machine (apt-get install -y chromium); the HTML pages are not screenshot-checked")


def _browser(page: Path, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *mode,
        page.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _share(image: object, rgb: tuple[int, int, int], tolerance: int = 40) -> float:
    """Share of the screenshot's pixels within `tolerance` (per channel) of `rgb`."""
    import numpy as np

    pixels = np.asarray(image.convert("RGB"), dtype=int)  # type: ignore[attr-defined]
    close = (np.abs(pixels - np.array(rgb)) <= tolerance).all(axis=2)
    return float(close.mean())


def _screenshot(page: Path, tmp_path: Path) -> object:
    from PIL import Image

    png = tmp_path / f"{page.stem}.png"
    _browser(page, tmp_path, f"--screenshot={png}")
    assert png.stat().st_size > 20_000, "a near-empty screenshot: the page did not render"
    image = Image.open(png)
    assert image.size == WINDOW
    return image


def test_the_html_model_card_renders_with_its_charts(tmp_path: Path) -> None:
    from pipelines.steps.card_html import card_html
    from tests.pipelines.test_approver import minimal_card

    page = tmp_path / "model-card.html"
    page.write_text(card_html(minimal_card()))
    dom = _browser(page, tmp_path, "--dump-dom").stdout
    for chart in ("chart-roc", "chart-calibration", "chart-tpr", "chart-fpr", "chart-calgroup"):
        assert f'id="{chart}"' in dom, chart
    assert dom.count("<polyline") >= 4 and dom.count('class="bar"') >= 4
    image = _screenshot(page, tmp_path)
    assert _share(image, (0x1F, 0x5F, 0xA8)) > 0.002, "the charts' blue is missing from the screenshot"
    assert _share(image, (0xB0, 0x30, 0x24)) > 0.0005, "the Rejected verdict's red is missing"
    assert _share(image, (0xFF, 0xF3, 0xCD), tolerance=8) > 0.001, "the relaxed-limits banner is missing"


def test_the_gate_report_renders_with_its_rollup(tmp_path: Path) -> None:
    from infra.render import dumps
    from policies.bundle import report_html
    from policies.gate import run_gate
    from policies.plan import parse_plan
    from tests.conftest import rendered

    doc = rendered("dev")
    doc["steps"] = [s for s in doc["steps"] if s["newState"]["type"] != "aws:ec2/flowLog:FlowLog"]
    verdict = run_gate(parse_plan(doc), dumps(doc), engines=["clinops"])
    page = tmp_path / "report.html"
    page.write_text(report_html(verdict))
    dom = _browser(page, tmp_path, "--dump-dom").stdout
    assert 'id="rollup"' in dom and dom.count('class="rollup-bar"') >= 5 and "<details" in dom
    image = _screenshot(page, tmp_path)
    assert _share(image, (0x1E, 0x7B, 0x34), tolerance=20) > 0.001, "the roll-up's passing green is missing"
    assert _share(image, (0xB0, 0x30, 0x24), tolerance=20) > 0.0003, "the FAIL verdict's red is missing"


def test_ci_installs_chromium_before_the_tests() -> None:
    """CI's clean machine gets Chromium before `make test`; a failed install leaves the screenshots skipped,
    never the run failed."""
    script = (REPO / ".ci" / "run").read_text()
    install = script.index("apt-get install -y -qq chromium")
    assert "command -v chromium" in script[:install] and install < script.index("make test")
    assert "|| echo" in script[install : script.index("make test")]
