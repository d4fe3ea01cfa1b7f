"""`clinops cost STACK`: the fixed monthly cost from the shipped price table, by hand."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clinops.cli import app
from clinops.config import load_from_stack_file
from clinops.pricing import fixed_monthly_cost
from tests.conftest import REPO


def test_prod_fixed_cost_by_hand() -> None:
    lines = {x.item: x for x in fixed_monthly_cost(load_from_stack_file("prod", REPO), log_gb_per_month=5)}
    # 16 interface endpoints (X-Ray for the Lambdas' tracing, execute-api for the private CDS API), 3 AZs
    assert lines["VPC interface endpoints"].monthly_usd == pytest.approx(16 * 3 * 0.01 * 730)  # 350.40
    assert lines["endpoint readmission-risk"].monthly_usd == pytest.approx(2 * 0.115 * 730)  # 167.90
    assert lines["endpoint sepsis-warning"].monthly_usd == 0  # no package pinned: no endpoint
    assert lines["MLflow tracking server"].monthly_usd == pytest.approx(1.4 * 730)  # Medium in prod
    # 5 GB/month at $0.50 + 731 days' worth stored (121.8 GB) at $0.03
    assert lines["CloudWatch Logs"].monthly_usd == pytest.approx(5 * 0.5 + 5 * 731 / 30 * 0.03)


def test_cli_json_and_price_override(tmp_path) -> None:
    result = CliRunner().invoke(app, ["cost", "dev", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["prices"]["recorded"] and doc["prices"]["source"]
    assert doc["total_monthly_usd"] == pytest.approx(sum(x["monthly_usd"] for x in doc["lines"]), abs=0.05)


def test_cli_unknown_stack_exits_2() -> None:
    result = CliRunner().invoke(app, ["cost", "nosuch"])
    assert result.exit_code == 2
