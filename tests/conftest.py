"""Shared fixtures: every stack rendered once per test session (rendering costs ~1 s per stack warm)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CKV_SKIP_PACKAGE_UPDATE_CHECK", "True")
os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# rich wraps at the terminal width, which differs between a terminal, xdist workers and CI: fix it wide so
# assertions on CLI output do not depend on where the tests run.
os.environ["COLUMNS"] = "200"

REPO = Path(__file__).resolve().parents[1]  # the repository root, wherever a test file sits

_PLANS: dict[str, dict] = {}


@pytest.fixture(autouse=True)
def _restore_environment() -> object:
    """Whatever a test (or the code it drives) writes into os.environ is undone, so test order never matters."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


def rendered(stack: str) -> dict:
    """A deep copy of the stack's rendered plan, so a test may break it freely."""
    if stack not in _PLANS:
        from infra.render import render

        _PLANS[stack] = render(stack)
    return copy.deepcopy(_PLANS[stack])


@pytest.fixture(params=["dev", "staging", "prod"])
def stack_plan(request: pytest.FixtureRequest) -> tuple[str, dict]:
    return request.param, rendered(request.param)
