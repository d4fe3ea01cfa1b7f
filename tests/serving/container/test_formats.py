"""Every request and reply format, on the pipeline's model and on a model trained on a real table the project never
saw (scikit-learn's Wisconsin breast cancer data): headerless CSV in contract order, CSV with a header, JSON
records, JSON Lines, CSV replies by Accept, and Custom-Attributes passed through and marking synthetic traffic."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.serving.container.client import READMISSION_ROW, Client
from tests.serving.container.conftest import Running, start_server

ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


def write_breast_cancer_bundle(work: Path) -> tuple[Path, pd.DataFrame]:
    """A contract written for the table, then validate -> split -> train -> save with the pipeline's own steps."""
    from sklearn.datasets import load_breast_cancer

    from pipelines.contracts import load_contract
    from pipelines.contracts.validate import validate_frame
    from tests.pipelines.bundles import save_trained

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    features = [c for c in frame.columns if c != "target"]
    frame["malignant"] = (data.target == 0).astype(int)  # scikit-learn codes malignant as 0
    frame["sex"] = "F"  # the Wisconsin study's patients were women; the contract needs a sensitive attribute
    frame = frame.drop(columns="target")
    columns: dict[str, object] = {
        name: {"dtype": "float", "range": [0.0, round(float(frame[name].max()) * 3, 4)]} for name in features
    }
    columns["sex"] = {"dtype": "category", "categories": ["F", "M"], "sensitive": True, "feature": False}
    columns["malignant"] = {"dtype": "integer", "range": [0, 1]}
    contract_path = work / "breast-cancer.yaml"
    contract_path.write_text(
        yaml.safe_dump(
            {
                "name": "breast-cancer",
                "version": "1.0.0",
                "description": "Fine-needle aspirate nuclei measurements, labelled malignant or benign.",
                "label": {"column": "malignant", "positive": 1, "negative": 0},
                "columns": columns,
            },
            sort_keys=False,
        )
    )
    contract = load_contract(contract_path)
    report, table = validate_frame(frame.astype(str), contract, as_of=date(2025, 7, 1), token_key=b"test")
    assert table is not None, report.reasons()
    bundle = work / "model"
    save_trained(table, contract, bundle, max_iter=40, dataset_sha256="sha256:" + "cd" * 32)
    return bundle, frame[features]


@pytest.fixture(scope="module")
def breast_cancer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, pd.DataFrame]]:
    bundle, table = write_breast_cancer_bundle(tmp_path_factory.mktemp("breast-cancer"))
    server = start_server(bundle, max_body_bytes=6 * 1024 * 1024, max_rows=10_000)
    yield server, table
    server.stop()


def as_csv(frame: pd.DataFrame, header: bool) -> bytes:
    return frame.to_csv(index=False, header=header, lineterminator="\n").encode()


def test_a_real_table_is_served_through_every_format(breast_cancer: tuple[Running, pd.DataFrame]) -> None:
    server, table = breast_cancer
    client = server.client
    assert client.ping().json["model"] == "breast-cancer"
    rows = table.head(200)
    records = json.loads(rows.to_json(orient="records"))
    reference = client.post_json(records)
    assert reference.status == 200, reference.raw
    expected = np.array(reference.json["scores"])
    bodies = {
        "records": (json.dumps(records).encode(), "application/json"),
        "instances": (json.dumps({"instances": records}).encode(), "application/json"),
        "json lines": ("\n".join(json.dumps(r) for r in records).encode(), "application/jsonlines"),
        "csv with header": (as_csv(rows, True), "text/csv"),
        "csv with header, columns reversed": (as_csv(rows[rows.columns[::-1]], True), "text/csv; header=present"),
        "headerless csv": (as_csv(rows, False), "text/csv"),
        "headerless csv, declared": (as_csv(rows, False), "text/csv; header=absent"),
    }
    for name, (body, content_type) in bodies.items():
        for accept in ("application/json", "text/csv"):
            reply = client.post(body, content_type, Accept=accept)
            assert reply.status == 200, (name, reply.raw[:300])
            assert reply.headers["content-type"] == accept
            scores = reply.json["scores"] if accept == "application/json" else [float(x) for x in reply.raw.split()]
            np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12, err_msg=name)
    # the model learned something real: malignant tumours score higher (labels were never sent)
    from sklearn.datasets import load_breast_cancer

    malignant = (load_breast_cancer().target[:200] == 0).astype(int)
    assert expected[malignant == 1].mean() > expected[malignant == 0].mean() + 0.5


def test_one_headerless_row_is_scored_not_mistaken_for_a_header(client: Client) -> None:
    cells = ",".join("" if v is None else str(v) for v in READMISSION_ROW.values())
    reply = client.post(cells + "\n", "text/csv")
    assert reply.status == 200, reply.raw
    assert reply.json["scores"] == client.post_json(READMISSION_ROW).json["scores"]


def test_headerless_csv_is_in_contract_order_and_says_so_when_it_is_not(client: Client) -> None:
    cells = ",".join("" if v is None else str(v) for v in READMISSION_ROW.values())
    reply = client.post(f"{cells},1\n", "text/csv")
    assert reply.status == 400
    problem = reply.json["problems"][0]["problem"]
    assert "the row has 16 cells" in problem and "age, sex, payer" in problem
    swapped = list(READMISSION_ROW.values())
    swapped[0], swapped[1] = swapped[1], swapped[0]  # sex where age goes: caught by the column's type
    reply = client.post(",".join("" if v is None else str(v) for v in swapped) + "\n", "text/csv")
    assert reply.status == 400
    assert {p["field"] for p in reply.json["problems"]} == {"age", "sex"}


def test_csv_reply_is_one_probability_per_line(client: Client) -> None:
    rows = [READMISSION_ROW, {**READMISSION_ROW, "age": 45}]
    as_json = client.post_json(rows).json["scores"]
    reply = client.post(json.dumps(rows), Accept="text/csv")
    assert reply.headers["content-type"] == "text/csv"
    assert [float(r[0]) for r in csv.reader(io.StringIO(reply.raw.decode()))] == as_json


def test_json_lines_with_a_bad_line_names_the_line(client: Client) -> None:
    body = json.dumps(READMISSION_ROW) + "\n\n" + '{"age": 71,' + "\n"
    reply = client.post(body, "application/jsonlines")
    assert reply.status == 400
    assert reply.json["problems"][0]["problem"].startswith("line 3: body is not valid JSON")


def test_custom_attributes_pass_through_and_mark_synthetic_traffic(running: Running) -> None:
    from clinops.traffic import SYNTHETIC_ATTRIBUTE

    before = len(running.log.lines())
    plain = running.client.post(json.dumps(READMISSION_ROW), **{ATTRIBUTES: "trace=abc-123"})
    canary = running.client.post(json.dumps([READMISSION_ROW] * 3), **{ATTRIBUTES: f"trace=x; {SYNTHETIC_ATTRIBUTE}"})
    assert plain.headers[ATTRIBUTES.lower()] == "trace=abc-123"
    assert canary.headers[ATTRIBUTES.lower()] == f"trace=x; {SYNTHETIC_ATTRIBUTE}"
    logged = running.invocations_after(before, 2, where=lambda e: e["rows"] in (1, 3))
    assert {(e["rows"], e["synthetic"]) for e in logged} == {(1, False), (3, True)}
    assert all("trace" not in json.dumps(e) for e in logged)  # attributes may carry ids: never logged
