"""Burn-rate and cost arithmetic against hand-computed windows and a worked example."""

from __future__ import annotations

import pytest

from clinops.pricing import PriceError, cost_expression, cost_per_1000, price_table
from clinops.slo import (
    WORKBOOK_TIERS,
    budget_remaining,
    burn_rate,
    detection_seconds,
    exhausted_burn_rate,
    tier_fires,
)

BUDGET = 0.001  # 99.9%


def test_workbook_rates_for_a_30_day_window() -> None:
    # SRE Workbook table 5-8: 2% in 1 h -> 14.4, 5% in 6 h -> 6, 10% in 3 d -> 1.
    assert [t.burn_rate(30) for t in WORKBOOK_TIERS] == [14.4, 6.0, 1.0]
    assert [(t.long_seconds, t.short_seconds, t.notify) for t in WORKBOOK_TIERS] == [
        (3600, 300, "page"),
        (21600, 1800, "page"),
        (259200, 21600, "ticket"),
    ]


def test_rates_scale_with_a_shorter_window() -> None:
    # 7 days = 168 h: 0.02 x 168 / 1 = 3.36; 0.05 x 168 / 6 = 1.4; 0.10 x 168 / 72 = 0.233333
    assert [t.burn_rate(7) for t in WORKBOOK_TIERS] == [3.36, 1.4, 0.233333]


def test_burn_rate_by_hand() -> None:
    # 1 h: 12,000 invocations, 180 5XX -> 1.5% bad / 0.1% allowed = 15x
    assert burn_rate(180, 12_000, BUDGET) == pytest.approx(15.0)
    assert burn_rate(0, 0, BUDGET) == 0.0
    assert budget_remaining(20, 100_000, BUDGET) == pytest.approx(0.8)  # 0.02% of 0.1% spent


def test_fast_tier_needs_both_windows() -> None:
    fast = WORKBOOK_TIERS[0]
    long_hot, short_hot = (180, 12_000), (20, 1_000)  # 15x and 20x
    short_cool = (0, 1_000)  # the incident ended: the page resets
    assert tier_fires(fast, 30, long_hot, short_hot, BUDGET)
    assert not tier_fires(fast, 30, long_hot, short_cool, BUDGET)
    assert not tier_fires(fast, 30, (100, 12_000), short_hot, BUDGET)  # long window 8.3x < 14.4x


def test_detection_time_of_a_full_outage() -> None:
    fast = WORKBOOK_TIERS[0]
    # 100% errors: the 1 h window reaches 14.4 x 0.001 = 1.44% bad after 3600 x 0.0144 = 51.84 s; +120 s delay
    assert detection_seconds(fast, 30, 1.0, BUDGET) == pytest.approx(51.84 + 120)
    # 1% errors never reach 14.4x (needs 1.44%)
    assert detection_seconds(fast, 30, 0.01, BUDGET) is None


def test_exhausted_bound() -> None:
    # a 30-day budget is certainly gone when the 7 days an alarm can see burned 30/7 of the sustainable rate
    assert exhausted_burn_rate(30) == pytest.approx(30 / 7, rel=1e-6)
    assert exhausted_burn_rate(7) == 1.0


def test_cost_per_1000_worked_example() -> None:
    # 2 instances x 24 h = 48 instance-hours x $0.115 = $5.52 for 100,000 predictions -> $0.0552 per 1,000
    assert cost_per_1000(48, 0.115, 100_000) == pytest.approx(0.0552)
    assert cost_per_1000(48, 0.115, 0) is None


def test_cost_expression_evaluates_to_the_worked_example() -> None:
    expression = cost_expression(0.115, "hostminutes", "invocations")
    assert expression == "IF(invocations > 0, (hostminutes / 60) * 0.115 / invocations * 1000)"
    # Evaluate the CloudWatch expression by hand for one day: 2 instances -> 2 x 1,440 samples.
    python = expression.replace("IF(invocations > 0, ", "(")  # the guard holds: what remains is arithmetic
    value = eval(python, {}, {"hostminutes": 2 * 1440, "invocations": 100_000})
    assert value == pytest.approx(0.0552)


def test_price_table_has_source_date_and_overrides() -> None:
    table = price_table()
    assert table.source and table.recorded and table.instance("ml.m5.large") > 0
    assert price_table({"ml.m5.large": 0.2}).instance("ml.m5.large") == 0.2
    with pytest.raises(PriceError, match="clinops:instancePrices"):
        table.instance("ml.p5.48xlarge")
