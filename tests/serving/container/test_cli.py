"""`clinops serve --local MODEL`: which bundle each form of MODEL names, and the errors when none.

The command serving over HTTP (a subprocess on loopback) is exercised by `test_no_phi_in_logs`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from clinops.cli.serve import app
from serving.container.locate import LocateError, locate


def clinops_root() -> typer.Typer:
    """Mounted as the lead mounts it: `clinops serve ...`."""
    root = typer.Typer()
    root.add_typer(app)

    @root.command()
    def render() -> None:  # a second command, as in the real CLI, so `serve` stays a subcommand
        """stand-in"""

    return root


@pytest.fixture(scope="module")
def out_dir(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    for run in ("20250101T000000000000Z", "20250301T000000000000Z"):
        shutil.copytree(bundle_dir, out / "pipeline" / "readmission-risk" / run / "model")
    (out / "pipeline" / "readmission-risk" / "20250401T000000000000Z" / "report").mkdir(parents=True)  # no model
    return out


def test_a_bundle_directory_or_a_run_directory(bundle_dir: Path, out_dir: Path, tmp_path: Path) -> None:
    assert locate(str(bundle_dir), out_dir=out_dir, tracking_uri=None, scratch=tmp_path).path == bundle_dir
    run = out_dir / "pipeline" / "readmission-risk" / "20250101T000000000000Z"
    assert locate(str(run), out_dir=out_dir, tracking_uri=None, scratch=tmp_path).path == run / "model"


def test_a_model_name_means_its_newest_run_with_a_model(out_dir: Path, tmp_path: Path) -> None:
    located = locate("readmission-risk", out_dir=out_dir, tracking_uri=None, scratch=tmp_path)
    assert located.path == out_dir / "pipeline" / "readmission-risk" / "20250301T000000000000Z" / "model"
    assert "verdict: unknown" in located.source


@pytest.mark.parametrize("model", ["sepsis-warning", "./no/such/dir", "models:/readmission-risk/1"])
def test_nothing_to_serve_is_a_clear_error(model: str, out_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(LocateError) as error:
        locate(model, out_dir=out_dir, tracking_uri=None, scratch=tmp_path)
    assert any(hint in str(error.value) for hint in ("clinops pipeline run", "is not a directory", "no MLflow store"))


def test_a_registry_version_serves_the_bundle_its_run_logged(bundle_dir: Path, tmp_path: Path) -> None:
    """Logged and registered with the pipeline's own tracking and registration code."""
    from pipelines import tracking
    from pipelines.steps.register import register

    uri = tracking.default_tracking_uri(tmp_path)
    run_id, _ = tracking.log_run(
        uri, "readmission-risk", run_name="test", params={}, metrics={}, tags={}, artifact_dirs={"bundle": bundle_dir}
    )
    version = register(
        tracking.client(uri),
        "readmission-risk",
        f"runs:/{run_id}/bundle",
        run_id,
        {"register": True, "verdict": "PendingManualApproval"},
        {},
    )
    for reference in (f"models:/readmission-risk/{version}", "models:/readmission-risk/latest"):
        located = locate(reference, out_dir=tmp_path, tracking_uri=uri, scratch=tmp_path / reference[-6:])
        assert (located.path / "model.joblib").read_bytes() == (bundle_dir / "model.joblib").read_bytes()
        assert "PendingManualApproval" in located.source
    with pytest.raises(LocateError):
        locate("models:/readmission-risk/99", out_dir=tmp_path, tracking_uri=uri, scratch=tmp_path / "x")


def test_serve_without_local_or_with_nothing_exits_2(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(clinops_root(), ["serve"])
    nothing = runner.invoke(clinops_root(), ["serve", "--local", str(tmp_path), "--out", str(tmp_path)])
    assert missing.exit_code == 2 and "only --local MODEL" in missing.output
    assert nothing.exit_code == 2 and "holds no model.joblib" in nothing.output


def test_serve_help_names_the_model_forms() -> None:
    result = CliRunner().invoke(clinops_root(), ["serve", "--help"])
    assert result.exit_code == 0
    assert "models:/NAME/VERSION" in result.output


def _run_dir(out: Path, bundle_dir: Path, name: str, verdict: str | None) -> Path:
    run = out / "pipeline" / "readmission-risk" / name
    shutil.copytree(bundle_dir, run / "model")
    if verdict is not None:
        (run / "decision").mkdir()
        (run / "decision" / "decision.json").write_text(json.dumps({"verdict": verdict}))
    return run


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [("Rejected", "verdict Rejected"), (None, "no decision on record (the run was interrupted")],
)
def test_a_rejected_or_interrupted_run_is_refused_without_the_flag(
    verdict: str | None, expected: str, bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run_dir(tmp_path, bundle_dir, "20250101T000000000000Z", verdict)
    result = CliRunner().invoke(clinops_root(), ["serve", "--local", "readmission-risk", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "refused:" in result.output and expected in result.output
    assert "--allow-unapproved" in result.output
    import serving.container.workers

    served: list[Path] = []
    monkeypatch.setattr(
        serving.container.workers, "serve", lambda settings, on_ready: served.append(settings.model_dir) or 0
    )
    flagged = CliRunner().invoke(
        clinops_root(), ["serve", "--local", "readmission-risk", "--out", str(tmp_path), "--allow-unapproved"]
    )
    assert flagged.exit_code == 0, flagged.output
    assert "WARNING: serving a model whose verdict is" in flagged.output and len(served) == 1


def test_a_pending_run_serves_without_the_flag(
    bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import serving.container.workers

    _run_dir(tmp_path, bundle_dir, "20250101T000000000000Z", "PendingManualApproval")
    served: list[Path] = []
    monkeypatch.setattr(
        serving.container.workers, "serve", lambda settings, on_ready: served.append(settings.model_dir) or 0
    )
    result = CliRunner().invoke(clinops_root(), ["serve", "--local", "readmission-risk", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output and served
