"""Delayed-label quality: outcome join, rolling windows with guards, decay verdicts, CloudWatch, CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from pipelines.monitoring.drift.simulate import write_capture
from pipelines.monitoring.quality.cli import app
from pipelines.monitoring.quality.decay import ReferenceMetrics, judge
from pipelines.monitoring.quality.metrics import NAMESPACE, alarm_specs, ensure_alarms, metric_data, publish
from pipelines.monitoring.quality.outcomes import clean_outcomes, join_outcomes
from pipelines.monitoring.quality.windows import QualitySettings, rolling_windows
from tests.pipelines.monitoring.helpers import baseline, contract, window, write_bundle_files

START = pd.Timestamp("2025-01-01", tz="UTC")
DAYS = 180
REFERENCE = ReferenceMetrics(auc=0.76, brier=0.10, calibration_slope=1.0, source="test")
SETTINGS = QualitySettings(label_lag_days=0, windows=4)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def inferences(
    n: int = 9000,
    seed: int = 0,
    *,
    decay_after: int | None = None,
    miscalibrated: bool = False,
    noisy_group: str | None = None,
    days: int = DAYS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scored inferences over DAYS days with outcomes drawn from the true risk. Knobs break the model: after day
    `decay_after` the score stops ranking patients well; `miscalibrated` makes events 1.6x the predicted rate;
    `noisy_group` makes outcomes for one payer ignore the score (as unreliable ascertainment would)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-2.3, 1.0, n)
    score = _sigmoid(z)
    day = rng.uniform(0, days, n)
    truth = score.copy()
    if decay_after is not None:
        late = day >= decay_after
        truth[late] = _sigmoid(0.25 * z[late] - 1.8)
    if miscalibrated:
        truth = np.clip(truth * 1.6, 0, 1)
    payer = rng.choice(["Medicare", "Medicaid", "Commercial"], n, p=[0.5, 0.25, 0.25])
    if noisy_group is not None:
        noisy = payer == noisy_group
        truth[noisy] = rng.permutation(truth[noisy])
    frame = pd.DataFrame(
        {
            "inference_id": [f"inf-{i}" for i in range(n)],
            "inference_time": START + pd.to_timedelta(day, unit="D"),
            "score": score,
            "payer": payer,
            "sex": rng.choice(["F", "M"], n),
            "age": rng.integers(18, 91, n),
        }
    )
    outcomes = pd.DataFrame(
        {
            "inference_id": frame["inference_id"],
            "outcome": (rng.random(n) < truth).astype(int),
            "outcome_time": frame["inference_time"] + pd.Timedelta(days=40),
        }
    )
    return frame, outcomes


def _result(frame: pd.DataFrame, outcomes: pd.DataFrame, settings: QualitySettings = SETTINGS):
    joined = join_outcomes(frame, clean_outcomes([outcomes.astype(str)]))
    windows = rolling_windows(joined.labelled, joined.inferences, settings, contract=contract(), threshold=0.2)
    return judge(windows, REFERENCE, settings, model="readmission-risk", variant="AllTraffic", counts=joined.counts)


def test_join_counts_pending_orphans_duplicates_and_conflicts() -> None:
    frame, outcomes = inferences(200)
    frame = pd.concat([frame, frame.iloc[:3]], ignore_index=True)  # a retried request captured twice
    later = outcomes.iloc[:5].assign(
        outcome=1 - outcomes["outcome"].iloc[:5], outcome_time=outcomes["outcome_time"].iloc[:5] + pd.Timedelta(days=3)
    )
    extra = pd.DataFrame(
        {"inference_id": ["ghost", "", "inf-7"], "outcome": ["1", "0", "maybe"], "outcome_time": ["2025-03-01"] * 3}
    )
    rows = pd.concat([outcomes.iloc[:150], later, outcomes.iloc[:2]], ignore_index=True).astype(str)
    cleaned = clean_outcomes([rows, extra])
    joined = join_outcomes(frame, cleaned)
    assert joined.counts["inferences"] == 200 and joined.counts["inferences_duplicated"] == 3
    assert joined.counts["labelled"] == 150 and joined.counts["pending"] == 50 and joined.counts["orphan_outcomes"] == 1
    assert cleaned.issues == {
        "missing_inference_id": 1,
        "outcome_unreadable": 1,
        "conflicting_duplicates": 5,
        "duplicates": 7,
    }
    corrected = joined.labelled.set_index("inference_id")["outcome"]
    assert (corrected.loc[[f"inf-{i}" for i in range(5)]].to_numpy() == later["outcome"].to_numpy()).all()


def test_windows_respect_label_lag_and_coverage() -> None:
    frame, outcomes = inferences(6000)
    outcomes = outcomes[frame["inference_time"] < START + pd.Timedelta(days=150)]  # the newest month is pending
    settings = QualitySettings(label_lag_days=10, windows=3, window_days=30, step_days=15)
    joined = join_outcomes(frame, clean_outcomes([outcomes.astype(str)]))
    windows = rolling_windows(joined.labelled, joined.inferences, settings)
    newest = pd.Timestamp(windows[0].end)
    assert newest == frame["inference_time"].max() - timedelta(days=10)
    assert windows[0].label_coverage < 0.5 and windows[0].status == "insufficient-data"  # mostly unadjudicated
    assert windows[2].label_coverage == 1.0 and windows[2].status == "ok"


def test_a_healthy_model_is_not_flagged() -> None:
    result = _result(*inferences())
    assert result.verdict == "no-decay", result.reasons
    assert result.judged_window == 0
    metrics = result.windows[0].metrics
    assert 0.7 < metrics["auc"] < 0.82 and 0.8 < metrics["observed_expected"] < 1.2
    assert set(result.windows[0].subgroups) == {"age", "sex", "payer"}


def test_discrimination_decay_is_flagged() -> None:
    result = _result(*inferences(decay_after=120))
    assert result.verdict == "decay"
    assert any("AUC" in r for r in result.reasons)


def test_calibration_decay_is_flagged() -> None:
    result = _result(*inferences(miscalibrated=True))
    assert result.verdict == "decay"
    assert any("more readmissions than predicted" in r for r in result.reasons)


def test_subgroup_gap_is_a_warning() -> None:
    result = _result(*inferences(12000, noisy_group="Medicaid"))
    payer = result.windows[0].subgroups["payer"]
    assert payer["lowest_group"] == "Medicaid" and payer["auc_gap"] > 0.1
    assert any(w.startswith("payer: subgroup AUC gap") for w in result.warnings)


def test_too_few_events_give_no_verdict() -> None:
    frame, outcomes = inferences(400)
    result = _result(frame, outcomes)
    assert result.verdict == "insufficient-data" and result.judged_window is None
    assert all(w.status == "insufficient-data" for w in result.windows)
    assert {d["MetricName"] for d in metric_data(result)} == {
        "InsufficientData",
        "LabelledInferences",
        "PendingInferences",
    }


@mock_aws
def test_quality_metrics_and_alarms_in_cloudwatch(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    result = _result(*inferences(decay_after=120))
    sent = publish(result, cloudwatch, timestamp=datetime.now(UTC))
    listed = cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]
    assert len(listed) == sent
    names = {m["MetricName"] for m in listed}
    assert {"Decay", "AUC", "Brier", "CalibrationSlope", "ObservedToExpected", "SubgroupAUC"} <= names
    created = ensure_alarms(cloudwatch, alarm_specs("readmission-risk", "AllTraffic", ["arn:aws:sns:us-east-1:1:x"]))
    alarms = cloudwatch.describe_alarms(AlarmNames=created)["MetricAlarms"]
    decay = next(a for a in alarms if a["MetricName"] == "Decay")
    assert decay["Namespace"] == NAMESPACE and decay["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert {d["Name"] for d in decay["Dimensions"]} == {"Model", "Variant"} and len(alarms) == 2


def test_quality_cli_exit_codes(tmp_path: Path) -> None:
    bundle = write_bundle_files(tmp_path / "bundle")
    (tmp_path / "evaluation.json").write_text(json.dumps({"candidate": {"auc": 0.76, "brier": 0.1}}))
    columns = baseline().columns
    runner = CliRunner()
    days = 45  # three 30-day windows a week apart; capture is one file per hour, so keep the span short
    for name, knobs, expected in (("healthy", {}, 0), ("decayed", {"decay_after": 10}, 1)):
        frame, outcomes = inferences(2400, seed=3, days=days, **knobs)
        features = window(len(frame), seed=4)[columns]
        start = START.to_pydatetime()
        # write_capture spaces requests evenly; give the outcomes the matching ids in time order
        ordered = frame.sort_values("inference_time").reset_index(drop=True)
        rows = outcomes.set_index("inference_id").loc[ordered["inference_id"]].reset_index(drop=True)
        rows.insert(0, "inference_id", [f"inf-{i}" for i in range(len(rows))])
        rows.to_csv(tmp_path / f"{name}.csv", index=False)
        scores = ordered["score"].to_numpy()
        write_capture(features, scores, tmp_path / name, columns, start=start, every=timedelta(days=days) / len(frame))
        done = runner.invoke(
            app,
            [
                "run",
                "--baseline",
                str(bundle),
                "--capture",
                str(tmp_path / name),
                "--outcomes",
                str(tmp_path / f"{name}.csv"),
                "--baseline-metrics",
                str(tmp_path / "evaluation.json"),
                "--label-lag-days",
                "0",
                "--windows",
                "3",
                "--out",
                str(tmp_path / f"{name}-out"),
            ],
        )
        assert done.exit_code == expected, done.output
        doc = json.loads((tmp_path / f"{name}-out" / "quality.json").read_text())
        assert doc["verdict"] == ("no-decay" if expected == 0 else "decay")
    missing = runner.invoke(
        app,
        [
            "run",
            "--baseline",
            str(bundle),
            "--capture",
            str(tmp_path / "healthy"),
            "--outcomes",
            str(tmp_path / "nothing.csv"),
        ],
    )
    assert missing.exit_code == 2


def test_synthetic_capture_never_reaches_the_backtest(tmp_path: Path) -> None:
    """The canary's captured requests (its own ids, or a real-looking id marked by Custom-Attributes) are left
    out: the backtest with them is the backtest without them."""
    from clinops.traffic import SYNTHETIC_ATTRIBUTE, synthetic_inference_id

    bundle = write_bundle_files(tmp_path / "bundle")
    (tmp_path / "evaluation.json").write_text(json.dumps({"candidate": {"auc": 0.76, "brier": 0.1}}))
    columns = baseline().columns
    frame, outcomes = inferences(1200, seed=5, days=45)
    ordered = frame.sort_values("inference_time").reset_index(drop=True)
    rows = outcomes.set_index("inference_id").loc[ordered["inference_id"]].reset_index(drop=True)
    rows.insert(0, "inference_id", [f"inf-{i}" for i in range(len(rows))])
    rows.to_csv(tmp_path / "outcomes.csv", index=False)
    every, start = timedelta(days=45) / len(frame), START.to_pydatetime()
    write_capture(
        window(len(frame), seed=4)[columns],
        ordered["score"].to_numpy(),
        tmp_path / "real",
        columns,
        start=start,
        every=every,
    )

    def run(capture: Path, out: str) -> dict:
        done = CliRunner().invoke(
            app,
            [
                "run",
                "--baseline",
                str(bundle),
                "--capture",
                str(capture),
                "--outcomes",
                str(tmp_path / "outcomes.csv"),
                "--baseline-metrics",
                str(tmp_path / "evaluation.json"),
                "--label-lag-days",
                "0",
                "--windows",
                "3",
                "--out",
                str(tmp_path / out),
            ],
        )
        assert done.exit_code in (0, 1), done.output
        return json.loads((tmp_path / out / "quality.json").read_text())

    clean = run(tmp_path / "real", "clean")
    canary = window(300, seed=9)[columns]
    write_capture(
        canary,
        np.full(300, 0.999),
        tmp_path / "canary",
        columns,
        start=start,
        every=every * 4,
        id_prefix=synthetic_inference_id(),
    )
    marked = []
    for i, line in enumerate(capture_lines(tmp_path / "real")[:50]):  # replayed ids: duplicates if not excluded
        event = json.loads(line)
        event["eventMetadata"]["customAttributes"] = SYNTHETIC_ATTRIBUTE
        event["captureData"]["endpointOutput"]["data"] = "0.999" if i % 2 else "0.001"
        marked.append(json.dumps(event))
    for file in (tmp_path / "canary").rglob("*.jsonl"):
        target = tmp_path / "real" / file.relative_to(tmp_path / "canary")
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a") as out:
            out.write(file.read_text())
    with sorted((tmp_path / "real").rglob("*.jsonl"))[0].open("a") as out:
        out.write("\n".join(marked) + "\n")
    assert run(tmp_path / "real", "with-canary") == clean


def capture_lines(folder: Path) -> list[str]:
    return [line for f in sorted(folder.rglob("*.jsonl")) for line in f.read_text().splitlines() if line.strip()]
