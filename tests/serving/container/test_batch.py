"""`clinops score --local MODEL --data CSV --out CSV`: the endpoint's validation and scorer over an extract, joined
back to record ids, with problem rows left unscored and nothing but counts reported."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clinops.cli import app as clinops_app
from serving.container.artifact import load_served_model
from serving.container.batch import BatchError, score_file
from tests.serving.container.client import READMISSION_ROW
from tests.serving.container.conftest import Running

IDENTIFIER = "MRN-Quintessa-0042"


def extract(rows: int, seed: int = 3) -> pd.DataFrame:
    from pipelines.data.synthetic import generate_readmission

    frame = generate_readmission(rows, seed=seed)
    frame.insert(0, "admission_id", [f"ADM{i:05d}" for i in range(rows)])
    return frame


def test_column_validation_equals_row_validation_on_messy_cells(bundle_dir: Path) -> None:
    """The batch path's memoised column-wise checks give the request path's matrix and problems exactly."""
    schema = load_served_model(bundle_dir).schema
    rng = random.Random(5)
    header = list(READMISSION_ROW)
    noise = ["", " ", "NA", "null", "abc", "1e999", "-5", "71.5", "\u0661\u0662", "Yes", "SNF ", "Jail", "1,5", "0x1"]
    table = [["" if pd.isna(v) else str(v) for v in row] for row in extract(300)[header].itertuples(index=False)]
    for row in table:
        for j in range(len(row)):
            if rng.random() < 0.08:
                row[j] = rng.choice(noise)
    by_row, row_problems = schema.from_csv(header, table)
    columns = [tuple(r[header.index(rule.name)] for r in table) for rule in schema.rules]
    by_column, column_problems = schema.from_columns(columns, len(table))
    assert by_row is None and column_problems == row_problems  # same problems, same order
    clean = [i for i in range(len(table)) if i not in {p.row for p in row_problems}]
    expected, _ = schema.from_csv(header, [table[i] for i in clean])
    np.testing.assert_array_equal(by_column[clean], expected)


def test_scores_join_back_to_their_ids_and_equal_the_endpoints(bundle_dir: Path, running, tmp_path: Path) -> None:
    frame = extract(500)
    frame.loc[7, "age"] = 12  # out of range: left unscored, counted
    frame.loc[9, "sex"] = IDENTIFIER  # a value that must never reach the summary
    frame.to_csv(tmp_path / "extract.csv", index=False)
    summary = score_file(
        bundle_dir, tmp_path / "extract.csv", tmp_path / "scores.csv", id_columns=["admission_id"], chunk_rows=128
    )
    scores = pd.read_csv(tmp_path / "scores.csv", dtype={"admission_id": str})
    assert list(scores.columns) == ["row", "admission_id", "score", "flag", "problems"]
    assert scores["row"].tolist() == list(range(1, 501))
    assert scores["admission_id"].tolist() == frame["admission_id"].tolist()
    assert (summary.rows, summary.scored, summary.rejected) == (500, 498, 2)
    assert scores.loc[[7, 9], "score"].isna().all() and scores.loc[[7, 9], "problems"].tolist() == [1, 1]
    assert IDENTIFIER not in json.dumps(summary.as_dict()) and "ADM" not in json.dumps(summary.as_dict())
    assert summary.problems == {
        "age: out of range: allowed [18, 90] years": 1,
        "sex: unknown category: allowed F, M": 1,
    }
    features = [c for c in READMISSION_ROW]
    sample = frame.drop(index=[7, 9]).head(50)
    records = json.loads(sample[features].to_json(orient="records"))
    endpoint = running.client.post_json(records).json["scores"]
    np.testing.assert_allclose(scores.loc[sample.index, "score"], endpoint, rtol=0, atol=1e-15)
    threshold = json.loads((bundle_dir / "metadata.json").read_text())["operating_threshold"]
    valid = scores.dropna(subset=["score"])
    assert ((valid["score"] >= threshold).astype(int) == valid["flag"]).all()


def test_forked_scoring_processes_write_the_same_file(bundle_dir: Path, tmp_path: Path) -> None:
    extract(3000).to_csv(tmp_path / "extract.csv", index=False)
    score_file(bundle_dir, tmp_path / "extract.csv", tmp_path / "one.csv", chunk_rows=500, workers=1)
    score_file(bundle_dir, tmp_path / "extract.csv", tmp_path / "two.csv", chunk_rows=500, workers=2)
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()


def test_unusable_inputs_name_the_column_and_the_fix(bundle_dir: Path, tmp_path: Path) -> None:
    frame = extract(20)
    frame.drop(columns="age").to_csv(tmp_path / "no-age.csv", index=False)
    with pytest.raises(BatchError, match="lacks required feature columns: age"):
        score_file(bundle_dir, tmp_path / "no-age.csv", tmp_path / "x.csv")
    frame.to_csv(tmp_path / "ok.csv", index=False)
    with pytest.raises(BatchError, match="not in the data's header"):
        score_file(bundle_dir, tmp_path / "ok.csv", tmp_path / "x.csv", id_columns=["record"])
    with pytest.raises(BatchError, match="are feature columns, not record ids"):
        score_file(bundle_dir, tmp_path / "ok.csv", tmp_path / "x.csv", id_columns=["age"])
    (tmp_path / "ragged.csv").write_text("admission_id,age\nA1,71,extra\n")
    with pytest.raises(BatchError, match="lacks required feature columns"):
        score_file(bundle_dir, tmp_path / "ragged.csv", tmp_path / "x.csv")


def test_clinops_score_command(bundle_dir: Path, tmp_path: Path) -> None:
    frame = extract(200)
    frame.to_csv(tmp_path / "extract.csv", index=False)
    runner = CliRunner()
    args = [
        "score",
        "--local",
        str(bundle_dir),
        "--data",
        str(tmp_path / "extract.csv"),
        "--out",
        str(tmp_path / "scores.csv"),
        "--id-column",
        "admission_id",
        "--workers",
        "1",
    ]
    done = runner.invoke(clinops_app, args)
    assert done.exit_code == 0, done.output
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert (line["event"], line["rows"], line["scored"]) == ("batch_scored", 200, 200)
    with (tmp_path / "scores.csv").open() as handle:
        assert sum(1 for _ in csv.reader(handle)) == 201
    frame["sodium"] = frame["sodium"].astype(object)
    frame.loc[3, "sodium"] = "salty"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    bad = runner.invoke(clinops_app, [*args[:4], str(tmp_path / "bad.csv"), *args[5:]])
    assert bad.exit_code == 1 and "1 of 200 rows not scored" in bad.output and "salty" not in bad.output
    missing = runner.invoke(clinops_app, [*args[:4], str(tmp_path / "none.csv"), *args[5:]])
    assert missing.exit_code == 2 and "is not a file" in missing.output


def test_what_batch_transform_does_to_the_rows_matches_local_scoring(
    bundle_dir: Path, running: Running, tmp_path: Path
) -> None:
    """SageMaker's part, done by hand: InputFilter $[1:] drops the id, the container scores headerless CSV
    (Accept text/csv), JoinSource=Input appends the score to the input line, OutputFilter $[0,-1] keeps id,score."""
    frame = extract(200)
    features = json.loads((bundle_dir / "metadata.json").read_text())["feature_columns"]
    lines = frame[["admission_id", *features]].to_csv(index=False, header=False, lineterminator="\n").splitlines()
    cells = [next(csv.reader([line])) for line in lines]
    body = "\n".join(",".join(c[1:]) for c in cells) + "\n"  # $[1:]
    reply = running.client.post(body, "text/csv", Accept="text/csv")
    assert reply.status == 200, reply.raw
    scores = reply.raw.decode().splitlines()
    joined = [[*c, s] for c, s in zip(cells, scores, strict=True)]  # JoinSource=Input
    cloud = [(row[0], float(row[-1])) for row in joined]  # $[0,-1]
    frame.to_csv(tmp_path / "extract.csv", index=False)
    score_file(bundle_dir, tmp_path / "extract.csv", tmp_path / "local.csv", id_columns=["admission_id"])
    local = [
        (r["admission_id"], float(r["score"]))
        for r in csv.DictReader(io.StringIO((tmp_path / "local.csv").read_text()))
    ]
    assert cloud == local
