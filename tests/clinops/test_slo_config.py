"""Per-model SLOs: environment defaults, stack-wide and per-model overrides, and errors naming key and fix."""

from __future__ import annotations

import pytest

from clinops.config import load_from_stack_file
from clinops.models import SLO_DEFAULTS
from tests.clinops.test_config import ROOT, problems, prod_values


def test_resolution_order_environment_then_stack_then_model() -> None:
    prod = load_from_stack_file("prod", ROOT)
    by_name = {m.name: prod.slo_for(m) for m in prod.models}
    assert by_name["readmission-risk"].min_auc == 0.72  # the model's own override
    assert by_name["sepsis-warning"].min_auc == 0.70  # the stack's clinops:slo
    assert by_name["sepsis-warning"].exhausted_action == "freeze"
    assert by_name["sepsis-warning"].error_budget == pytest.approx(0.001)


def test_environment_defaults_fill_what_the_stack_leaves_out() -> None:
    dev = load_from_stack_file("dev", ROOT)
    slo = dev.slo_for(dev.models[0])
    assert slo.latency_p99_ms == SLO_DEFAULTS["dev"]["latency_p99_ms"]
    assert slo.window_days == SLO_DEFAULTS["dev"]["window_days"]
    assert slo.availability_percent == 99.0  # set in Pulumi.dev.yaml


@pytest.mark.parametrize(
    ("slo", "key", "fragment"),
    [
        ({"availabilityPercent": 100}, "clinops:slo.availabilityPercent", "less than 100"),
        ({"exhaustedAction": "page"}, "clinops:slo.exhaustedAction", "'breaker', 'freeze' or 'none'"),
        ({"costPer1000Usd": 0}, "clinops:slo.costPer1000Usd", "greater than 0"),
        ({"burnRate": 3}, "clinops:slo.burnRate", "unknown key"),
    ],
)
def test_bad_stack_slo_names_key_and_fix(slo: dict, key: str, fragment: str) -> None:
    text = problems(prod_values(slo=slo))
    assert key in text and fragment in text


def test_bad_model_slo_names_the_model() -> None:
    values = prod_values()
    values["models"][0]["slo"] = {"minAuc": 0.4}
    text = problems(values)
    assert "clinops:models[readmission-risk].slo.minAuc" in text


def test_instance_price_override_is_checked() -> None:
    text = problems(prod_values(instancePrices={"m5.large": 0.1}))
    assert "instancePrices" in text and "fix: e.g. ml.m5.large" in text
