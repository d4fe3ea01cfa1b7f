"""Key policies are measured against KMS's quota before a render, from the same statements the keys get."""

from __future__ import annotations

import pytest

from clinops.config import ConfigError, StackConfig, load_from_stack_file
from infra.base import Platform, policy_json
from infra.keys import KEY_POLICY_MAX_BYTES, key_policies, key_policy_problems
from infra.stack import check_quotas, key_users
from tests.conftest import REPO, rendered

STACKS = ("dev", "staging", "prod")


def _mesh(count: int) -> StackConfig:
    """The prod stack with `count` served models named like the benchmark's mesh."""
    config = load_from_stack_file("prod", REPO)
    served = next(m for m in config.models if m.package_arn)
    models = [served.model_copy(update={"name": f"mesh-model-{i:03d}"}) for i in range(count)]
    return config.model_copy(update={"models": models})


@pytest.mark.parametrize("stack", STACKS)
def test_the_measured_policies_are_the_rendered_ones(stack: str) -> None:
    """What check_quotas measures is byte for byte what the keys are given: one source for both."""
    config = load_from_stack_file(stack, REPO)
    platform = Platform(config)
    measured = {purpose: policy_json(*s) for purpose, s in key_policies(platform, key_users(platform)).items()}
    keys = {
        s["urn"].split("::")[-1].removesuffix("-key"): s["newState"]["inputs"]["policy"]
        for s in rendered(stack)["steps"]
        if s["newState"]["type"] == "aws:kms/key:Key"
    }
    assert measured == keys


@pytest.mark.parametrize("stack", STACKS)
def test_the_shipped_stacks_fit(stack: str) -> None:
    check_quotas(load_from_stack_file(stack, REPO))


def test_a_mesh_of_120_models_fits_and_140_is_refused_naming_the_key_and_the_fix() -> None:
    check_quotas(_mesh(120))
    with pytest.raises(ConfigError) as refused:
        check_quotas(_mesh(140))
    (problem,) = refused.value.problems
    assert problem.startswith("models: the logs key's policy would be ")
    assert f"over KMS's {KEY_POLICY_MAX_BYTES:,}" in problem and "split the 140 models across stacks" in problem


def test_growth_per_model_is_a_few_hundred_bytes() -> None:
    """Linear and small: the logs key names each model's canary and two scheduler roles (no statement per model)."""

    def logs_bytes(count: int) -> int:
        platform = Platform(_mesh(count))
        return len(policy_json(*key_policies(platform, key_users(platform))["logs"]).encode())

    per_model = (logs_bytes(60) - logs_bytes(10)) / 50
    assert 150 < per_model < 300
    assert key_policy_problems(Platform(_mesh(10)), key_users(Platform(_mesh(10)))) == []
