"""Sharded runs equal single runs; the CLI writes its outputs and maps verdicts to exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.data.synthetic import Injections
from pipelines.monitoring.drift.cli import app
from pipelines.monitoring.drift.detect import compare
from pipelines.monitoring.drift.shard import assign, merge_partials, processing_host, summarize_batch, write_partial
from pipelines.monitoring.drift.simulate import write_capture
from pipelines.monitoring.drift.sources import list_local_files, read_capture_files, read_current
from tests.pipelines.monitoring.helpers import baseline, window, write_bundle_files

RUNNER = CliRunner()


def _capture(
    folder: Path,
    rows: int,
    seed: int,
    injections: Injections | None = None,
    variant: str = "AllTraffic",
    prefix: str = "inf",
) -> None:
    frame = window(rows, seed=seed, injections=injections)
    columns = baseline().columns
    write_capture(
        frame[columns],
        frame["score"].to_numpy(),
        folder,
        columns,
        variant=variant,
        id_prefix=prefix,
        start=datetime(2025, 7, 1, tzinfo=UTC),
    )


def test_sharded_summaries_merge_to_the_single_run_result(tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    _capture(capture, 900, 31, Injections(unit_change="creatinine"), variant="blue")
    _capture(capture, 500, 32, variant="green", prefix="g")
    files = list_local_files(capture)
    keys = [f.as_posix() for f in files]
    for index in range(3):  # three Processing instances, each with its ShardedByS3Key share
        mine = [Path(k) for k in assign(keys, index, 3)]
        batch = read_capture_files(mine, baseline().columns)
        write_partial(summarize_batch(batch, baseline()), batch.malformed, tmp_path / "partials", f"algo-{index}")
    merged, malformed = merge_partials(tmp_path / "partials")
    single = summarize_batch(read_current(str(capture), baseline().columns), baseline())
    assert set(merged) == set(single) == {"blue", "green"} and not malformed
    for variant in merged:
        a, b = compare(baseline(), merged[variant]), compare(baseline(), single[variant])
        assert a.rows == b.rows and a.drifted == b.drifted and a.verdict == b.verdict
        for name, f in a.features.items():
            assert f.psi == pytest.approx(b.features[name].psi, nan_ok=True)
    assert compare(baseline(), merged["blue"]).drifted == ["creatinine"]
    assert sorted(k for i in range(3) for k in assign(keys, i, 3)) == sorted(keys)


def test_processing_host_reads_sagemaker_resource_config(tmp_path: Path) -> None:
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2", "algo-3"]}))
    assert processing_host(config) == ("algo-2", 1, 3)
    assert processing_host(tmp_path / "absent.json") == ("local", 0, 1)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bundle_files(tmp_path_factory.mktemp("bundle"))


def test_cli_no_drift_exits_0_and_writes_json_and_html(tmp_path: Path, bundle: Path) -> None:
    _capture(tmp_path / "capture", 600, 41)
    out = tmp_path / "out"
    done = RUNNER.invoke(
        app, ["run", "--baseline", str(bundle.parent), "--current", str(tmp_path / "capture"), "--out", str(out)]
    )
    assert done.exit_code == 0, done.output
    doc = json.loads((out / "drift.json").read_text())
    assert doc["verdict"] == "no-drift" and doc["rows"] == 600 and doc["model"] == "readmission-risk"
    page = (out / "drift-report.html").read_text()
    assert "No drift" in page and page.count("<svg") == len(baseline().features) + 1
    assert "inf-1" not in page and "inf-1" not in (out / "drift.json").read_text()  # no row-level identifiers


def test_cli_drift_exits_1_with_the_unit_change_explained(tmp_path: Path, bundle: Path) -> None:
    table = tmp_path / "window.csv"
    window(1500, seed=42, injections=Injections(unit_change="creatinine")).to_csv(table, index=False)
    done = RUNNER.invoke(app, ["run", "--baseline", str(bundle), "--current", str(table), "--out", str(tmp_path)])
    assert done.exit_code == 1, done.output
    doc = json.loads((tmp_path / "drift.json").read_text())
    assert doc["drifted_features"] == ["creatinine"]
    assert any("umol/L" in s for s in doc["features"]["creatinine"]["explanation"])
    assert "Drift detected" in (tmp_path / "drift-report.html").read_text()


def test_cli_unusable_input_and_too_few_rows_exit_2(tmp_path: Path, bundle: Path) -> None:
    missing = RUNNER.invoke(app, ["run", "--baseline", str(tmp_path / "nope.json"), "--current", str(tmp_path)])
    assert missing.exit_code == 2 and "does not exist" in " ".join(missing.output.split())
    (tmp_path / "empty").mkdir()
    empty = RUNNER.invoke(app, ["run", "--baseline", str(bundle), "--current", str(tmp_path / "empty")])
    assert empty.exit_code == 2
    _capture(tmp_path / "few", 40, 43)
    few = RUNNER.invoke(
        app, ["run", "--baseline", str(bundle), "--current", str(tmp_path / "few"), "--out", str(tmp_path / "few-out")]
    )
    assert few.exit_code == 2
    assert json.loads((tmp_path / "few-out" / "drift.json").read_text())["verdict"] == "insufficient-data"


def test_cli_partial_and_merge(tmp_path: Path, bundle: Path) -> None:
    _capture(tmp_path / "capture", 700, 44, Injections(unit_change="hba1c"))
    for index in range(2):
        done = RUNNER.invoke(
            app,
            [
                "partial",
                "--baseline",
                str(bundle),
                "--capture",
                str(tmp_path / "capture"),
                "--out",
                str(tmp_path / "partials"),
                "--shard-index",
                str(index),
                "--shard-count",
                "2",
            ],
        )
        assert done.exit_code == 0, done.output
    merged = RUNNER.invoke(
        app,
        ["merge", "--baseline", str(bundle), "--partials", str(tmp_path / "partials"), "--out", str(tmp_path / "out")],
    )
    assert merged.exit_code == 1, merged.output
    assert json.loads((tmp_path / "out" / "drift.json").read_text())["drifted_features"] == ["hba1c"]
